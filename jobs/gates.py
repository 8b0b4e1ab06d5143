"""Job `gates`: the quality gate before gold; fails when any rule with action `fail` failed.

Reads `_dq` (every quality rule of silver and the governance scan) and `_reconciliation` for
the run's dates and keeps the latest evaluation of each rule (a retried or re-run task
evaluates again). Exits 1 naming each failed gate and each reconciliation that does not
balance, so the nightly DAG stops before gold; exits 1 too when silver left no results for
the dates at all.
"""

from __future__ import annotations

from typing import Any

from jobs import JobContext


def run(ctx: JobContext) -> dict[str, Any]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first, last = min(ctx.dates), max(ctx.dates)

    def latest(table: str, key: list[str], order: str) -> Any:
        frame = ctx.io.read(table)  # starts the session the column expressions need
        w = Window.partitionBy(*key).orderBy(F.col(order).desc())
        return (
            frame.where(F.col("logical_date").between(F.lit(first), F.lit(last)))
            .withColumn("_n", F.row_number().over(w))
            .where("_n = 1")
            .drop("_n")
        )

    if ctx.io.version("_dq") is None:
        rules: list[Any] = []
    else:
        rules = (
            latest("_dq", ["logical_date", "table_name", "rule_id"], "evaluated_at")
            .orderBy("table_name", "rule_id")
            .collect()
        )
    recon = (
        []
        if ctx.io.version("_reconciliation") is None
        else latest("_reconciliation", ["logical_date", "entity", "plant_id"], "recorded_at")
        .where(~F.col("balanced"))
        .orderBy("entity", "plant_id")
        .collect()
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
    return {
        "run_id": ctx.run_id,
        "dates": f"{first}..{last}",
        "rules_evaluated": len(rules),
        "rules_passed": sum(1 for r in rules if r["passed"]),
        "rules_warned": len(warned),
        "failed_gates": failed,
        "exit_code": 1 if failed else 0,
    }


if __name__ == "__main__":  # spark-submit jobs/gates.py --date D [...]
    from jobs import submit

    submit("gates")
