"""`make demo`: the simulator's default dataset, then the table layer on local Spark.

Until bronze, silver and the nightly chain exist, the demo (1) generates the default
simulated deliveries of the six plants under `var/deliveries/` and (2) proves the table
layer on the real system tables: it records a run in `_lineage` and `_audit`, re-runs the
same logical date (idempotent), time-travels, compacts, vacuums and prints the history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
import uuid
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from lakehouse.config import Settings
from lakehouse.io import CommitContext, TableIO
from lakehouse.simulator.generate import generate
from lakehouse.spark import build_spark
from lakehouse.tables import Registry

DEMO_DATE = dt.date(2026, 1, 5)
DEMO_DAYS = 7  # the default small scale: a few minutes of pipeline time on 2 cores
DEMO_SCALE = 1.0
DEMO_SEED = 42


def _audit_rows(
    spark: SparkSession, io: TableIO, ctx: CommitContext, actions: list[str]
) -> DataFrame:
    schema = io.registry.get("_audit").spark_schema
    at = dt.datetime(2026, 1, 5, 23, 0, tzinfo=dt.UTC)
    rows, prev = [], "0" * 64
    for i, action in enumerate(actions):
        event = {
            "event_id": f"{ctx.run_id}-{i}",
            "event_time": at + dt.timedelta(seconds=i),
            "event_date": DEMO_DATE,
            "actor": "demo",
            "action": action,
            "table_name": "_lineage",
            "table_version": None,
            "job": ctx.job,
            "run_id": ctx.run_id,
            "logical_date": DEMO_DATE,
            "row_count": None,
            "details": json.dumps({"step": i}),
            "prev_hash": prev,
        }
        digest = hashlib.sha256(json.dumps(event, default=str, sort_keys=True).encode()).hexdigest()
        rows.append({**event, "hash": digest})
        prev = digest
    return spark.createDataFrame(rows, schema)


def _lineage_rows(spark: SparkSession, io: TableIO, ctx: CommitContext, n: int) -> DataFrame:
    schema = io.registry.get("_lineage").spark_schema
    at = dt.datetime(2026, 1, 5, 23, 0, tzinfo=dt.UTC)
    rows = [
        {
            "target_table": "_audit",
            "target_version": i,
            "source": f"file:///deliveries/plant-{i % 6}/erp/purchase_orders.csv",
            "source_kind": "file",
            "source_version": hashlib.sha256(str(i).encode()).hexdigest()[:16],
            "job": ctx.job,
            "run_id": ctx.run_id,
            "logical_date": DEMO_DATE,
            "recorded_at": at,
            "recorded_date": DEMO_DATE,
        }
        for i in range(n)
    ]
    return spark.createDataFrame(rows, T.StructType(schema.fields))


def run_demo(settings: Settings) -> int:
    started = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    deliveries = Path(settings.resolve("var/deliveries"))
    step(f"generating {DEMO_DAYS} days of deliveries for six plants under {deliveries}")
    made = generate(
        deliveries,
        start=dt.date(2026, 1, 1),
        days=DEMO_DAYS,
        scale=DEMO_SCALE,
        seed=DEMO_SEED,
        progress=False,
        workers=2,
    )
    summary = json.loads((deliveries / "_truth" / "summary.json").read_text())
    per_plant: dict[str, int] = {}
    for key, count in summary["rows"].items():
        per_plant[key.split("/")[0]] = per_plant.get(key.split("/")[0], 0) + count
    step(
        f"{made.rows:,} rows in {made.files:,} files ("
        + ", ".join(f"{plant} {rows:,}" for plant, rows in per_plant.items())
        + f"); {summary['pii_labels']:,} planted personal values labelled"
    )
    step(f"starting Spark ({settings.spark.master}); tables under {settings.storage_root}")
    spark = build_spark(settings, app_name="lakehouse-demo")
    io = TableIO(spark, settings, Registry.load(settings.conf_dir / "tables"))
    step(f"table engine: {io.engine.name}")
    run_id = f"demo__{uuid.uuid4().hex[:8]}"
    ctx = CommitContext(job="demo", run_id=run_id, logical_date=DEMO_DATE)
    partition = {"recorded_date": DEMO_DATE}

    versions = []
    for attempt in (1, 2, 3):
        result = io.replace_partitions(
            "_lineage", _lineage_rows(spark, io, ctx, 6000), partition=partition, ctx=ctx
        )
        versions.append(result.version)
        count = io.read("_lineage").where(f"recorded_date = '{DEMO_DATE}'").count()
        step(f"run {attempt} of {DEMO_DATE}: _lineage v{result.version}, {count} rows for the date")
    before = versions[0] - 1
    rows_before = io.read("_lineage", version=before).count()
    step(f"time travel: before run 1 (v{before}) the table had {rows_before} rows")

    audit = io.append(
        "_audit", _audit_rows(spark, io, ctx, ["write", "write", "write", "read"]), ctx=ctx
    )
    step(f"_audit v{audit.version}: {audit.rows_written} hash-chained events appended")

    optimized = io.optimize("_lineage", ctx=ctx)
    step(f"optimize _lineage: {optimized.files_removed} files -> {optimized.files_added}")
    removed = io.vacuum("_lineage", retention_hours=0, ctx=ctx)
    step(f"vacuum _lineage (retention 0 h): {len(removed)} unreferenced files deleted")

    print("\n_lineage history (newest first):")
    for entry in io.history("_lineage", limit=6):
        operation = entry.get("lakehouse_operation", entry.get("operation"))
        print(
            f"  v{entry['version']:<3} {operation:<20}"
            f" job={entry.get('job')} run_id={entry.get('run_id')} "
            f"logical_date={entry.get('logical_date')} code={entry.get('code_version')}"
        )
    step("demo finished")
    spark.stop()
    return 0
