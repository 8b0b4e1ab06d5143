"""Job `gates`: the quality gate before gold; fails when any rule with action `fail` failed.

Reads `_dq` (every quality rule of silver and the governance scan) and `_reconciliation` for
the run's dates and keeps the latest evaluation of each rule (a retried or re-run task
evaluates again). Exits 1 naming each failed gate and each reconciliation that does not
balance, so the nightly DAG stops before gold; exits 1 too when silver left no results for
the dates at all.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pyspark.sql import Window
from pyspark.sql import functions as F

from medlake.runtime import JobContext, JobResult

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


# What identifies one result, and its time: a re-run or retried task evaluates again, and
# the latest evaluation counts (the report reads them the same way).
RESULT_KEYS = {
    "_dq": (["logical_date", "table_name", "rule_id"], "evaluated_at"),
    "_reconciliation": (["logical_date", "entity", "plant_id"], "recorded_at"),
}


def latest(frame: DataFrame, key: list[str], order: str) -> DataFrame:
    """The row with the greatest `order` per `key`."""

    w = Window.partitionBy(*key).orderBy(F.col(order).desc())
    return frame.withColumn("_n", F.row_number().over(w)).where("_n = 1").drop("_n")


def latest_results(ctx: JobContext, table: str, first: dt.date, last: dt.date) -> DataFrame | None:
    """The latest evaluation of each result of `_dq` or `_reconciliation` for the dates
    first..last, by the nights' own runs or by range runs that covered them; None when the
    table was never written."""

    if ctx.io.version(table) is None:
        return None
    key, order = RESULT_KEYS[table]
    frame = ctx.io.read(table)
    # a night's own run, or a range run that covered the dates (first_date..logical_date)
    covered = F.col("logical_date").between(F.lit(first), F.lit(last))
    if "first_date" in frame.columns:  # lakes recorded before it was kept lack the column
        covered = covered | (
            (F.col("logical_date") > F.lit(last)) & (F.col("first_date") <= F.lit(last))
        )
    return latest(frame.where(covered), key, order)


def run(ctx: JobContext) -> JobResult:

    first, last = min(ctx.dates), max(ctx.dates)
    dq = latest_results(ctx, "_dq", first, last)
    rules = [] if dq is None else dq.orderBy("table_name", "rule_id").collect()
    reconciliation = latest_results(ctx, "_reconciliation", first, last)
    recon = (
        []
        if reconciliation is None
        else reconciliation.where(~F.col("balanced")).orderBy("entity", "plant_id").collect()
    )
    failed = [
        f"{r['table_name']} {r['rule_id']} ({r['check']}): {r['message'] or 'failed'}"
        for r in rules
        if r["action"] == "fail" and not r["passed"]
    ]
    failed += [
        f"_reconciliation {r['entity']} at {r['plant_id']} on {r['logical_date']} does not "
        f"balance: read {r['rows_read']} rows"
        for r in recon
    ]
    if not rules:
        failed.append(
            f"no quality results in _dq for {first}..{last}: silver has not run for these dates "
            f"(`lakehouse run silver --date {first} --to {last}`)"
        )
    warned = [r for r in rules if r["action"] != "fail" and not r["passed"]]
    return JobResult.of(
        ctx,
        {
            "run_id": ctx.run_id,
            "dates": f"{first}..{last}",
            "rules_evaluated": len(rules),
            "rules_passed": sum(1 for r in rules if r["passed"]),
            "rules_warned": len(warned),
            "failed_gates": failed,
            "exit_code": 1 if failed else 0,
        },
    )


if __name__ == "__main__":  # spark-submit medlake/jobs/gates.py --date D [...]
    from medlake.cli import submit

    submit("gates")
