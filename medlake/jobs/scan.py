"""Job `scan`: the governance scan of every silver table's string columns (gate `pii_scan`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from medlake.governance.classes import load_classes
from medlake.governance.scan import dq_rows, judge_table, sample_table
from medlake.io import CommitContext
from medlake.runtime import JobContext, JobResult


def run(ctx: JobContext) -> JobResult:

    classes = load_classes(ctx.settings.conf_dir)
    classes.check(ctx.registry)
    scans = []
    tables = [spec for spec in ctx.registry if spec.layer == "silver"]
    # one small Spark job per table, each mostly planning and file listing: overlapped, as
    # silver builds its entities (the scan took 12 s of a demo night one table at a time)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="scan") as pool:
        samples = list(pool.map(lambda spec: sample_table(ctx.io, spec), tables))
    for spec, sample in zip(tables, samples, strict=True):
        scans += judge_table(spec, sample, classes)  # Presidio, one value after the other
    rows = dq_rows(scans, run_id=ctx.run_id, logical_date=ctx.logical_date)
    if rows:
        frame = ctx.spark.createDataFrame(rows, ctx.registry.get("_dq").spark_schema)
        commit = CommitContext(job=ctx.job, run_id=ctx.run_id, logical_date=ctx.logical_date)
        ctx.io.append("_dq", frame, ctx=commit)
    failed = [s for s in scans if not s.passed]
    return JobResult.of(
        ctx,
        {
            "run_id": ctx.run_id,
            "columns_scanned": len(scans),
            "values_sampled": sum(s.sampled for s in scans),
            "failed_gates": [s.message for s in failed],
            "exit_code": 1 if failed else 0,
        },
    )


if __name__ == "__main__":  # spark-submit medlake/jobs/scan.py --date D [...]
    from medlake.cli import submit

    submit("scan")
