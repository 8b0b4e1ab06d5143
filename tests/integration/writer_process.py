"""A separate writer process for the crash and concurrency tests (own Python, own JVM).

Exit codes: 0 committed, 3 lost a commit race (TableConflictError), other = crash.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from medlake.config import load_settings
from medlake.io import CommitContext, TableConflictError, TableIO
from medlake.spark import build_spark
from medlake.tables import Registry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
EXIT_CONFLICT = 3


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--mode", choices=["append", "overwrite", "replace"], required=True)
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--plant", default="SZ")
    parser.add_argument("--files", type=int, default=2)
    args = parser.parse_args()

    settings = load_settings("test", overrides={"storage": {"root": args.root}})
    spark = build_spark(settings, app_name=f"writer-{args.mode}-{args.start}")
    io = TableIO(spark, settings, Registry.load(FIXTURES / "tables"))
    frame = spark.range(args.start, args.start + args.count, numPartitions=args.files).selectExpr(
        f"'{args.plant}' AS plant_id",
        "id AS order_id",
        "1 AS version",
        "CAST(id % 100 AS DOUBLE) AS qty",
        "CAST(id AS DECIMAL(18,4)) AS amount",
        "TIMESTAMP'2026-03-01 08:00:00' AS ordered_at",
        "DATE'2026-03-01' AS order_date",
        "CAST(NULL AS STRING) AS note",
    )
    ctx = CommitContext(
        job=f"writer_{args.mode}", run_id=f"w{args.start}", logical_date=dt.date(2026, 3, 1)
    )
    try:
        if args.mode == "append":
            result = io.append("silver.orders", frame, ctx=ctx)
        elif args.mode == "overwrite":
            result = io.overwrite("silver.orders", frame, ctx=ctx)
        else:
            result = io.replace_partitions(
                "silver.orders", frame, partition={"plant_id": args.plant}, ctx=ctx
            )
    except TableConflictError as exc:
        print(f"CONFLICT: {exc}", file=sys.stderr)
        return EXIT_CONFLICT
    print(f"COMMITTED version={result.version}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
