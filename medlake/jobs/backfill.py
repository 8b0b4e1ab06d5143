"""Job `backfill`: ingest, silver and gold over a date range in a few large steps, resumable.

`lakehouse run backfill --date D1 --to D2` cuts the range into chunks of whole calendar
months, as many months as fit `backfill.chunk_mib` delivered MiB (at most
`backfill.chunk_months`; a month larger than that is cut into runs of days), and runs, per
chunk, the `ingest` and `silver` jobs over the whole chunk, then `gold` once over the whole
range (no gold when `--entities` limits silver to some entities). A silver run costs about
a minute of fixed work (25 entities, each a chain of Spark jobs and commits) whatever its
row count at these volumes, so the fewer the chunks, the faster: a year at scale 1 (about
160 MiB delivered) is one chunk (bench/RESULTS.md, `rebuild`). Each finished step is appended to
`_backfill`; the same command started again (after a kill, a failed gate that was fixed, a
reboot) skips the steps already recorded and continues with the next one. Every job is
idempotent for its dates, so a step cut short by a kill is simply run again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pyspark.sql import functions as F
from tqdm import tqdm

from medlake.config import NotReadyError
from medlake.io import CommitContext, failpoints
from medlake.runtime import JobContext, JobResult

log = logging.getLogger("medlake.backfill")

PROGRESS = "_backfill"
LAYERS = ("ingest", "silver", "gold")


def month_chunks(dates: list[dt.date]) -> list[list[dt.date]]:
    """`dates` in calendar-month pieces, in order.

    >>> [(c[0].isoformat(), len(c)) for c in month_chunks(
    ...     [dt.date(2026, 1, 30) + dt.timedelta(days=i) for i in range(4)])]
    [('2026-01-30', 2), ('2026-02-01', 2)]
    """
    chunks: dict[tuple[int, int], list[dt.date]] = {}
    for day in sorted(dates):
        chunks.setdefault((day.year, day.month), []).append(day)
    return list(chunks.values())


def chunks(sizes: Mapping[dt.date, int], budget: float, max_months: int) -> list[list[dt.date]]:
    """The days of `sizes` (delivered bytes per day) in steps of whole calendar months, as
    many consecutive months as fit `budget` bytes and at most `max_months`; a month larger
    than the budget is cut into runs of days that fit it (a day larger than the budget is a
    step of its own).

    >>> day = dt.date(2026, 1, 30)
    >>> sizes = {day + dt.timedelta(days=i): 10 for i in range(4)}  # Jan 30, 31, Feb 1, 2
    >>> [(c[0].day, len(c)) for c in chunks(sizes, budget=100, max_months=12)]
    [(30, 4)]
    >>> [(c[0].day, len(c)) for c in chunks(sizes, budget=100, max_months=1)]
    [(30, 2), (1, 2)]
    >>> [(c[0].day, len(c)) for c in chunks(sizes, budget=15, max_months=12)]
    [(30, 1), (31, 1), (1, 1), (2, 1)]
    """
    steps: list[list[dt.date]] = []
    current: list[dt.date] = []
    size = 0
    for month in month_chunks(list(sizes)):
        month_size = sum(sizes[d] for d in month)
        if current and (size + month_size > budget or len(month_chunks(current)) >= max_months):
            steps.append(current)
            current, size = [], 0
        if month_size <= budget:
            current += month
            size += month_size
            continue
        piece: list[dt.date] = []
        piece_size = 0
        for day in month:
            if piece and piece_size + sizes[day] > budget:
                steps.append(piece)
                piece, piece_size = [], 0
            piece.append(day)
            piece_size += sizes[day]
        steps.append(piece)
    if current:
        steps.append(current)
    return steps


def delivered_bytes(
    landing: Path, plants: Iterable[str], dates: Iterable[dt.date]
) -> dict[dt.date, int]:
    """Bytes of the files in each day's delivery folders (`<plant>/<YYYY-MM-DD>/`)."""
    sizes: dict[dt.date, int] = {}
    for day in dates:
        total = 0
        for plant in plants:
            folder = landing / plant / day.isoformat()
            if folder.is_dir():
                with os.scandir(folder) as entries:
                    total += sum(e.stat().st_size for e in entries if e.is_file())
        sizes[day] = total
    return sizes


def backfill_id(ctx: JobContext) -> str:
    plants = ",".join(sorted(ctx.plants)) if ctx.plants else "all"
    return f"{min(ctx.dates)}..{max(ctx.dates)}:{plants}"


def _done(ctx: JobContext, ident: str) -> set[tuple[str, dt.date, dt.date]]:

    if ctx.force or ctx.io.version(PROGRESS) is None:
        return set()
    rows = (
        ctx.io.read(PROGRESS)
        .where(F.col("backfill_id") == ident)
        .select("layer", "date_from", "date_to")
        .collect()
    )
    return {(r.layer, r.date_from, r.date_to) for r in rows}


def _steps(ctx: JobContext) -> list[tuple[str, list[dt.date]]]:
    """Ingest and silver per chunk, then gold once over the whole range (gold
    recomputes every month of its range in one pass, as of the range's last day: what the
    nightly runs converge to once late rows have settled). Gold reads every silver entity
    it needs, so a backfill of some entities (`--entities`) stops at silver."""
    conf = ctx.settings.backfill
    sizes = delivered_bytes(ctx.landing, ctx.sources, ctx.dates)
    pieces = chunks(sizes, conf.chunk_mib * 2**20, conf.chunk_months)
    steps = [(layer, chunk) for chunk in pieces for layer in LAYERS[:2]]
    if not ctx.entities:
        steps.append(("gold", sorted(ctx.dates)))
    return steps


def run(ctx: JobContext) -> JobResult:

    ident = backfill_id(ctx)
    done = _done(ctx, ident)
    steps = _steps(ctx)
    if ctx.entities:
        log.info("backfill %s: only silver entities %s, so no gold", ident, ", ".join(ctx.entities))
    todo = [(layer, chunk) for layer, chunk in steps if (layer, chunk[0], chunk[-1]) not in done]
    if done:
        log.info(
            "backfill %s: %d of %d steps already done, continuing",
            ident,
            len(steps) - len(todo),
            len(steps),
        )
    totals: dict[str, int] = {"rows_ingested": 0, "rows_quarantined": 0, "silver_rows_read": 0}
    unbalanced = 0
    failed: list[str] = []
    ran = 0
    began = time.perf_counter()
    bar = tqdm(
        total=len(steps),
        initial=len(steps) - len(todo),
        unit="step",
        file=sys.stderr,
        desc="backfill",
        disable=None,
    )
    try:
        for layer, chunk in todo:
            bar.set_postfix_str(f"{layer} {chunk[0]}..{chunk[-1]}")
            step = dataclasses.replace(
                ctx,
                job=layer,
                dates=chunk,
                run_id=f"{ctx.run_id}__{layer}__{chunk[0]:%Y%m%d}",
                force=ctx.force and layer == "ingest",
            )
            step._spark = ctx.spark
            started = time.perf_counter()
            try:
                result: JobResult = importlib.import_module(f"medlake.jobs.{layer}").run(step)
            except NotReadyError as exc:  # e.g. gold before its inputs exist: nothing to do
                log.warning("backfill: %s %s..%s not ready: %s", layer, chunk[0], chunk[-1], exc)
                result = JobResult(job=layer, run_id=step.run_id, summary={"not_ready": str(exc)})
            seconds = time.perf_counter() - started
            code = result.exit_code
            totals["rows_ingested"] += int(result.get("rows_ingested", 0) or 0)
            totals["rows_quarantined"] += int(result.get("rows_quarantined", 0) or 0)
            totals["silver_rows_read"] += int(
                result.get("rows_read", 0) if layer == "silver" else 0
            )
            unbalanced += len(result.get("unbalanced", []))
            if code != 0:
                failed = [*result.failed_gates, f"{layer} exited {code}"]
                log.error(
                    "backfill %s: %s of %s..%s failed (%s); fix it and run the same command "
                    "again: it continues with this step",
                    ident,
                    layer,
                    chunk[0],
                    chunk[-1],
                    "; ".join(failed),
                )
                break
            failpoints.reach("backfill-step")  # tests: killed with the work done, unrecorded
            record = {
                "backfill_id": ident,
                "layer": layer,
                "date_from": chunk[0],
                "date_to": chunk[-1],
                "run_id": step.run_id,
                "seconds": seconds,
                "summary": json.dumps(_brief(result.summary), default=str),
                "finished_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            }
            frame = ctx.spark.createDataFrame([record], ctx.registry.get(PROGRESS).spark_schema)
            commit = CommitContext(job="backfill", run_id=ctx.run_id, logical_date=chunk[-1])
            ctx.io.append(PROGRESS, frame, ctx=commit)
            log.info("backfill: %s %s..%s done in %.0f s", layer, chunk[0], chunk[-1], seconds)
            ran += 1
            bar.update(1)
    finally:
        bar.close()
    return JobResult.of(
        ctx,
        {
            "run_id": ctx.run_id,
            "backfill_id": ident,
            "steps": len(steps),
            "steps_skipped": len(steps) - len(todo),
            "steps_run": ran,
            "seconds": round(time.perf_counter() - began, 1),
            **totals,
            "unbalanced_reconciliations": unbalanced,
            "failed_gates": failed,
            "exit_code": 1 if failed else 0,
        },
    )


def _brief(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar figures of a job's summary (no manifests or row lists)."""
    return {
        k: v for k, v in summary.items() if isinstance(v, str | int | float | bool) or v is None
    }


if __name__ == "__main__":  # spark-submit medlake/jobs/backfill.py --date D1 --to D2 [...]
    from medlake.cli import submit

    submit("backfill")
