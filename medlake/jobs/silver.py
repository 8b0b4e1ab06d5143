"""Job `silver`: conform the run's bronze deliveries into the canonical group tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medlake.config import ConfigError
from medlake.entities import load_specs
from medlake.governance.classes import load_classes, plant_jurisdictions
from medlake.governance.keys import load_keys
from medlake.governance.masking import Masker
from medlake.io import CommitContext
from medlake.runtime import JobContext, JobResult, lineage_run
from medlake.silver.build import DQ, RECON, SilverRun, build, load_rules

if TYPE_CHECKING:
    from medlake.governance.masking import Masker


def run(ctx: JobContext) -> JobResult:

    conf = ctx.settings.conf_dir
    specs = load_specs(conf / "silver")
    unknown = sorted(set(ctx.entities or []) - set(specs))
    if unknown:
        raise ConfigError(
            f"unknown silver entity {', '.join(unknown)}; the entities are "
            f"{', '.join(sorted(specs))} (conf/silver/<entity>.yaml)"
        )
    every = ctx.all_sources
    masker = _masker(ctx)  # before anything is read or written: a missing key stops the run
    silver = SilverRun(
        io=ctx.io,
        specs=specs,
        rules=load_rules(conf / "quality"),
        sources=every,
        plants=list(ctx.sources),
        dates=ctx.dates,
        run_id=ctx.run_id,
        group_currency=ctx.settings.group.currency,
        date_window=ctx.settings.silver.date_window,
        masker=masker,
    )
    with lineage_run(ctx) as recorder:
        result = build(silver, ctx.entities)
        recon = [row for e in result.entities for row in e.recon]
        commit = CommitContext(job=ctx.job, run_id=ctx.run_id, logical_date=ctx.logical_date)
        dq = [row for e in result.entities for row in e.dq_rows]
        for table, rows in ((DQ, dq), (RECON, recon)):
            if rows:
                frame = ctx.spark.createDataFrame(rows, ctx.registry.get(table).spark_schema)
                ctx.io.append(table, frame, ctx=commit)
        _lineage(ctx, result)
        for e in result.entities:
            for table, version in e.versions_read.items():
                recorder.read_table(table, version)
            for table, version in e.versions_written.items():
                recorder.wrote(table, version)
        failed = result.failed_gates
        if failed:
            recorder.fail(
                "; ".join(f"{e}: rule {r.rule_id} failed: {r.message}" for e, r in failed)
            )
    return JobResult.of(
        ctx,
        {
            "run_id": ctx.run_id,
            "entities": len(result.entities),
            "rows_read": sum(e.rows_read for e in result.entities),
            "unbalanced": [r for r in recon if not r["balanced"]],
            "failed_gates": [f"{e}: {r.rule_id} ({r.message})" for e, r in failed],
            "exit_code": 1 if failed else 0,
            "recon": recon,
            "dq_table": DQ,
            "vaulted": _vaulted(result),
        },
    )


def _masker(ctx: JobContext) -> Masker:
    """Column classes, the run's plants' jurisdictions and their keys (env or secret file)."""

    classes = load_classes(ctx.settings.conf_dir)
    classes.check(ctx.registry)
    countries = {p: s.plant.country for p, s in ctx.all_sources.items()}
    by_plant = plant_jurisdictions(classes, countries, ctx.sources)
    keys = load_keys(by_plant.values(), ctx.settings.home)
    return Masker(classes, keys, by_plant)


def _vaulted(result: Any) -> dict[str, int]:
    """New vault rows per jurisdiction in this run."""
    total: dict[str, int] = {}
    for e in result.entities:
        for jurisdiction, n in e.vaulted.items():
            total[jurisdiction] = total.get(jurisdiction, 0) + n
    return total


def _lineage(ctx: JobContext, result: Any) -> None:
    """One set of edges per entity: the tables it read to the tables it wrote."""
    rows: list[dict[str, Any]] = []
    for e in result.entities:
        edges = ctx.edges()
        for table, version in e.versions_read.items():
            edges.read_table(table, version)
        for table, version in e.versions_written.items():
            edges.wrote(table, version)
        rows += edges.rows()
    ctx.record_edges(rows)


if __name__ == "__main__":  # spark-submit medlake/jobs/silver.py --date D [...]
    from medlake.cli import submit

    submit("silver")
