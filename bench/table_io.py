"""Table-layer benchmark: delta-rs engine vs plain Spark Parquet on the same data and session.

Run with `make bench` (or `python -m bench.table_io --rows 10000000 --runs 5`). Each round
writes the same generated DataFrame as plain Parquet and through `TableIO.append`, then
reads both back and aggregates; the order alternates between rounds. Medians and their
ratios go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.common import machine, median, write_section
from medlake.config import load_settings
from medlake.io import CommitContext, TableIO
from medlake.spark import build_spark
from medlake.tables import Registry

REPO = Path(__file__).resolve().parents[1]  # the checkout: var/bench, the working folder

TABLE = "silver.bench_receipts"
PLANTS = ["SZ", "SU", "PN", "GW", "TU", "MN"]


def source(spark: SparkSession, rows: int) -> DataFrame:
    plants = F.array(*[F.lit(p) for p in PLANTS])
    return spark.range(rows, numPartitions=4).select(
        F.element_at(plants, (F.col("id") % len(PLANTS) + 1).cast("int")).alias("plant_id"),
        F.col("id").alias("line_id"),
        F.concat(F.lit("MAT-"), (F.col("id") % 5000).cast("string")).alias("material"),
        ((F.col("id") * 7919) % 1000 / 10.0).alias("qty"),
        ((F.col("id") % 100000) / 100).cast("decimal(18,4)").alias("amount"),
        F.timestamp_seconds(F.lit(1767225600) + F.col("id") % 31_536_000).alias("received_at"),
        F.date_add(F.lit(dt.date(2026, 1, 1)), (F.col("id") % 365).cast("int")).alias(
            "receipt_date"
        ),
    )


def aggregate(df: DataFrame) -> list[tuple[object, ...]]:
    rows = (
        df.groupBy("plant_id")
        .agg(F.count("*").alias("n"), F.sum("qty").alias("qty"), F.sum("amount").alias("amount"))
        .orderBy("plant_id")
        .collect()
    )
    return [tuple(r) for r in rows]


def timed(fn) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="print only, leave RESULTS.md")
    args = parser.parse_args()

    root = REPO / "var" / "bench" / "table_io"
    shutil.rmtree(root, ignore_errors=True)
    settings = load_settings("local", overrides={"storage": {"root": str(root / "lake")}})
    spark = build_spark(settings, app_name="bench-table-io")
    io = TableIO(spark, settings, Registry.load(Path(__file__).parent / "tables"))
    ctx = CommitContext(job="bench_table_io", run_id="bench", logical_date=dt.date(2026, 1, 1))

    write_plain, write_table, read_plain, read_table = [], [], [], []
    for run in range(args.runs + 1):  # run 0 warms the JVM up and is not counted
        plain_path = str(root / f"plain-{run}")
        shutil.rmtree(io.location(TABLE), ignore_errors=True)

        def plain_write(path: str = plain_path) -> None:
            source(spark, args.rows).write.mode("overwrite").partitionBy("plant_id").parquet(path)

        def table_write() -> None:
            io.append(TABLE, source(spark, args.rows), ctx=ctx)

        order = [(plain_write, write_plain), (table_write, write_table)]
        for fn, bucket in order if run % 2 == 0 else order[::-1]:
            seconds, _ = timed(fn)
            if run:
                bucket.append(seconds)

        reads = [
            (lambda path=plain_path: aggregate(spark.read.parquet(path)), read_plain),
            (lambda: aggregate(io.read(TABLE)), read_table),
        ]
        answers = []
        for fn, bucket in reads if run % 2 == 0 else reads[::-1]:
            seconds, answer = timed(fn)
            answers.append(answer)
            if run:
                bucket.append(seconds)
        assert answers[0] == answers[1], "plain and table reads disagree"
        shutil.rmtree(plain_path, ignore_errors=True)
        print(f"round {run}{' (warm-up)' if run == 0 else ''} done", flush=True)

    w_ratio = median(write_table) / median(write_plain)
    r_ratio = median(read_table) / median(read_plain)
    fmt = ", ".join
    body = f"""## Table layer (delta-rs engine) vs plain Spark Parquet

Measured {dt.date.today().isoformat()} on {machine()}.
Command: `python -m bench.table_io --rows {args.rows} --runs {args.runs}` (`make bench`).
Data: {args.rows:,} generated receipt lines, 7 columns, partitioned by plant (6 partitions),
same Spark session (local[2]), same DataFrame; order alternated per round; one warm-up
round not counted. Times in seconds, medians of {args.runs} rounds.

| operation | plain Parquet | table layer | ratio | target |
| --- | ---: | ---: | ---: | ---: |
| write (append: stage, stats, check, publish, commit) | {median(write_plain):.2f} | {median(write_table):.2f} | **{w_ratio:.2f}x** | <= 1.25x |
| read + aggregate by plant | {median(read_plain):.2f} | {median(read_table):.2f} | **{r_ratio:.2f}x** | <= 1.10x |

Raw times — write plain: {fmt(f"{v:.2f}" for v in write_plain)}; write table: {fmt(f"{v:.2f}" for v in write_table)};
read plain: {fmt(f"{v:.2f}" for v in read_plain)}; read table: {fmt(f"{v:.2f}" for v in read_table)}.
"""
    print(body)
    if not args.no_record:
        write_section("table_io", body)
    spark.stop()


if __name__ == "__main__":
    main()
