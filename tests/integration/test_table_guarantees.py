"""delta-rs engine guarantees: idempotency, interoperability, statistics, checkpoints,
schema evolution, compaction, vacuum and refusal of features the read path cannot honour."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrame, SparkSession

from medlake.config import Settings
from medlake.io import (
    CommitContext,
    SchemaMismatchError,
    TableIO,
    TableIOError,
    UnsupportedTableError,
)
from medlake.tables import ColumnSpec, Registry

D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)


def ctx(run: str = "run-1", day: dt.date = D1) -> CommitContext:
    return CommitContext(job="receipts_bronze", run_id=run, logical_date=day, plant="SZ")


def receipts(spark: SparkSession, io: TableIO, rows: list[tuple[object, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, io.registry.get("bronze.erp__receipts").spark_schema)


def snapshot(io: TableIO, name: str) -> list[tuple[object, ...]]:
    return sorted(tuple(r) for r in io.read(name).collect())


def test_when_the_same_date_and_plant_is_written_three_times_then_results_are_identical(
    spark: SparkSession, io: TableIO
) -> None:
    io.append(
        "bronze.erp__receipts",
        receipts(spark, io, [(D1, "GW", 1, 1.0), (D2, "SZ", 2, 1.0)]),
        ctx=ctx(),
    )
    delivery = [(D1, "SZ", 10, 5.0), (D1, "SZ", 11, 6.0), (D1, "SZ", 12, None)]
    seen = []
    for attempt in range(3):
        io.replace_partitions(
            "bronze.erp__receipts",
            receipts(spark, io, delivery),
            partition={"ingest_date": D1, "plant_id": "SZ"},
            ctx=ctx(f"attempt-{attempt}"),
        )
        seen.append(snapshot(io, "bronze.erp__receipts"))
    expected = sorted([(D1, "GW", 1, 1.0), (D2, "SZ", 2, 1.0), *delivery], key=repr)
    assert seen[0] == seen[1] == seen[2]
    assert sorted(seen[0], key=repr) == expected
    ids = [row[2] for row in seen[0]]
    assert len(ids) == len(set(ids)) == 5


def test_when_the_same_upsert_runs_three_times_then_results_are_identical(
    spark: SparkSession, io: TableIO
) -> None:
    schema = io.registry.get("silver.orders").spark_schema
    ts = dt.datetime(2026, 3, 1, 9, 0)
    batch = spark.createDataFrame(
        [("SZ", i, 1 + i % 2, float(i), Decimal(i), ts, D1, None) for i in range(20)], schema
    )
    states = []
    for attempt in range(3):
        io.upsert("silver.orders", batch, ctx=ctx(f"attempt-{attempt}"))
        states.append(snapshot(io, "silver.orders"))
    assert states[0] == states[1] == states[2]
    assert len(states[0]) == 20


def test_when_written_by_the_table_layer_then_deltalake_polars_and_pyarrow_read_the_same(
    spark: SparkSession, io: TableIO
) -> None:
    schema = io.registry.get("silver.orders").spark_schema
    rows = [
        (
            "SZ",
            1,
            1,
            2.5,
            Decimal("10.1250"),
            dt.datetime(2026, 3, 1, 8, 0, 0, 250000),
            D1,
            "患者 note",
        ),
        ("GW", 2, 3, None, None, None, None, None),
        ("TU", 3, 1, 0.0, Decimal("-1.0000"), dt.datetime(2026, 2, 28, 23, 59, 59), D2, "Prüfung"),
    ]
    io.append("silver.orders", spark.createDataFrame(rows, schema), ctx=ctx())
    location = io.location("silver.orders")

    spark_rows = snapshot(io, "silver.orders")
    by_deltalake = DeltaTable(location).to_pyarrow_table()
    by_polars = pl.read_delta(location)
    table = DeltaTable(location)
    by_pyarrow = pads.dataset(
        table.file_uris(),
        format="parquet",
        partitioning=pads.partitioning(flavor="hive"),
    ).to_table()

    assert by_deltalake.num_rows == by_polars.height == by_pyarrow.num_rows == len(rows)
    expected_names = [f.name for f in schema.fields]
    assert by_deltalake.column_names == expected_names
    assert by_polars.columns == expected_names

    def normalise(records: list[dict[str, object]]) -> list[tuple[object, ...]]:
        out = []
        for r in records:
            stamp = r["ordered_at"]
            if isinstance(stamp, dt.datetime) and stamp.tzinfo is not None:
                stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
            out.append(
                (
                    r["plant_id"],
                    r["order_id"],
                    r["version"],
                    r["qty"],
                    r["amount"],
                    stamp,
                    r["order_date"],
                    r["note"],
                )
            )
        return sorted(out, key=repr)

    want = sorted(spark_rows, key=repr)
    assert normalise(by_deltalake.to_pylist()) == want
    assert normalise(by_polars.to_dicts()) == want
    assert sorted((r["order_id"], r["note"]) for r in by_pyarrow.to_pylist()) == [
        (1, "患者 note"),
        (2, None),
        (3, "Prüfung"),
    ]
    types = {f.name: str(f.type) for f in by_deltalake.schema}
    assert types["amount"] == "decimal128(18, 4)"
    assert types["ordered_at"].startswith("timestamp[us")
    assert types["order_date"] == "date32[day]"
    assert table.protocol().min_reader_version == 1  # no reader features a plain reader lacks


def test_when_files_are_committed_then_the_log_carries_their_statistics(
    spark: SparkSession, io: TableIO
) -> None:
    schema = io.registry.get("silver.orders").spark_schema
    rows = [
        ("SZ", 7, 1, 3.0, Decimal(1), dt.datetime(2026, 3, 1, 8, 0, 0, 123456), D1, "b" * 40),
        ("SZ", 3, 1, None, Decimal(2), dt.datetime(2026, 3, 1, 9, 0, 0), D2, "a"),
        ("SZ", 5, 2, 1.5, Decimal(3), None, D1, None),
    ]
    io.append("silver.orders", spark.createDataFrame(rows, schema).coalesce(1), ctx=ctx())
    log = Path(io.location("silver.orders"), "_delta_log")
    adds = [
        json.loads(line)["add"]
        for f in sorted(log.glob("*.json"))
        for line in f.read_text().splitlines()
        if line.startswith('{"add"')
    ]
    assert len(adds) == 1
    stats = json.loads(adds[0]["stats"])
    assert stats["numRecords"] == 3
    assert stats["minValues"]["order_id"] == 3 and stats["maxValues"]["order_id"] == 7
    assert stats["minValues"]["qty"] == 1.5
    assert "qty" not in stats["maxValues"]  # no upper bounds for floats: NaN sorts above them
    assert stats["nullCount"]["qty"] == 1 and stats["nullCount"]["note"] == 1
    assert (
        stats["minValues"]["order_date"] == "2026-03-01"
        and stats["maxValues"]["order_date"] == "2026-03-02"
    )
    # timestamps: millisecond precision, min rounded down, max rounded up
    assert stats["minValues"]["ordered_at"] == "2026-03-01T08:00:00.123Z"
    assert stats["maxValues"]["ordered_at"] == "2026-03-01T09:00:00.000Z"
    # a free-text column has no bounds at all: the log outlives vacuum and erasure, so no
    # delivered text may sit in it (prefix bounds of long strings: tests/unit/test_stats.py)
    assert "note" not in stats["minValues"] and "note" not in stats["maxValues"]
    assert adds[0]["partitionValues"] == {"plant_id": "SZ"}
    assert "plant_id" not in stats["minValues"]


def test_when_history_grows_then_checkpoints_are_written(spark: SparkSession, io: TableIO) -> None:
    interval = io.settings.storage.checkpoint_interval
    for i in range(interval + 2):
        io.append(
            "bronze.erp__receipts",
            receipts(spark, io, [(D1, "SZ", i, float(i))]),
            ctx=ctx(f"run-{i}"),
        )
    log = Path(io.location("bronze.erp__receipts"), "_delta_log")
    checkpoints = sorted(p.name for p in log.glob("*.checkpoint.parquet"))
    assert checkpoints, "no checkpoint after more commits than the checkpoint interval"
    assert (log / "_last_checkpoint").exists()
    assert io.read("bronze.erp__receipts").count() == interval + 2
    assert DeltaTable(str(log.parent)).version() == io.version("bronze.erp__receipts")


def test_when_the_registry_adds_a_column_to_an_additive_table_then_the_table_evolves(
    spark: SparkSession, io: TableIO, settings: Settings
) -> None:
    io.append(
        "gold.evolving", spark.createDataFrame([(1, 1.0)], "id bigint, value double"), ctx=ctx()
    )
    spec = io.registry.get("gold.evolving")
    wider = spec.model_copy(
        update={
            "columns": [*spec.columns, ColumnSpec(name="grade", type="string", description="Grade")]
        }
    )
    io2 = TableIO(spark, settings, Registry([wider]))
    io2.append(
        "gold.evolving",
        spark.createDataFrame([(2, 2.0, "A")], "id bigint, value double, grade string"),
        ctx=ctx(),
    )
    assert snapshot(io2, "gold.evolving") == [(1, 1.0, None), (2, 2.0, "A")]
    assert DeltaTable(io2.location("gold.evolving")).schema().fields[-1].name == "grade"


def test_when_the_registry_adds_a_column_to_a_strict_table_then_writes_fail_naming_it(
    spark: SparkSession, io: TableIO, settings: Settings
) -> None:
    io.append("bronze.erp__receipts", receipts(spark, io, [(D1, "SZ", 1, 1.0)]), ctx=ctx())
    spec = io.registry.get("bronze.erp__receipts")
    wider = spec.model_copy(
        update={
            "columns": [*spec.columns, ColumnSpec(name="uom", type="string", description="Unit")]
        }
    )
    io2 = TableIO(spark, settings, Registry([wider]))
    frame = receipts(spark, io, [(D1, "SZ", 2, 2.0)]).selectExpr("*", "'EA' AS uom")
    with pytest.raises(SchemaMismatchError, match="declared columns not in the stored table: uom"):
        io2.append("bronze.erp__receipts", frame, ctx=ctx())
    assert io.read("bronze.erp__receipts").count() == 1


def test_when_optimized_then_fewer_files_hold_the_same_rows(
    spark: SparkSession, io: TableIO
) -> None:
    for i in range(4):
        batch = [(D1, "SZ", 10 * i + k, float(k)) for k in range(3)] + [(D2, "GW", 100 + i, 1.0)]
        io.append("bronze.erp__receipts", receipts(spark, io, batch), ctx=ctx(f"run-{i}"))
    before_rows = snapshot(io, "bronze.erp__receipts")
    before_version = io.version("bronze.erp__receipts")
    location = io.location("bronze.erp__receipts")
    files_before = len(DeltaTable(location).file_uris())

    result = io.optimize("bronze.erp__receipts", ctx=ctx("compact"))

    files_after = len(DeltaTable(location).file_uris())
    assert files_after == 2 < files_before  # one file per partition
    assert (result.files_removed, result.files_added) == (files_before, files_after)
    assert snapshot(io, "bronze.erp__receipts") == before_rows
    assert (
        sorted(tuple(r) for r in io.read("bronze.erp__receipts", version=before_version).collect())
        == before_rows
    )
    commit = Path(location, "_delta_log", f"{result.version:020d}.json").read_text().splitlines()
    actions = [json.loads(line) for line in commit]
    file_actions = [a[k] for a in actions for k in ("add", "remove") if k in a]
    assert len(file_actions) == files_before + files_after
    assert all(a["dataChange"] is False for a in file_actions)  # compaction changes no data


def test_when_vacuumed_then_replaced_files_go_and_the_table_still_reads(
    spark: SparkSession, io: TableIO
) -> None:
    io.append("bronze.erp__receipts", receipts(spark, io, [(D1, "SZ", 1, 1.0)]), ctx=ctx())
    io.overwrite(
        "bronze.erp__receipts", receipts(spark, io, [(D1, "SZ", 2, 2.0)]), ctx=ctx("run-2")
    )
    location = io.location("bronze.erp__receipts")
    on_disk = {p for p in Path(location).rglob("*.parquet") if "_delta_log" not in p.parts}
    assert len(on_disk) == 2
    kept = io.vacuum("bronze.erp__receipts")  # default retention keeps time travel possible
    assert kept == []
    removed = io.vacuum("bronze.erp__receipts", retention_hours=0)
    assert len(removed) == 1
    assert snapshot(io, "bronze.erp__receipts") == [(D1, "SZ", 2, 2.0)]


@pytest.mark.parametrize(
    "configuration",
    [{"delta.enableDeletionVectors": "true"}, {"delta.columnMapping.mode": "name"}],
    ids=["deletion-vectors", "column-mapping"],
)
def test_when_a_table_uses_features_the_parquet_path_cannot_honour_then_read_refuses(
    io: TableIO, configuration: dict[str, str]
) -> None:
    location = io.location("gold.evolving")
    write_deltalake(location, pa.table({"id": [1], "value": [1.0]}), configuration=configuration)
    with pytest.raises(UnsupportedTableError, match="delta-spark engine"):
        io.read("gold.evolving")


def test_when_the_registry_repartitions_a_stored_table_then_writes_fail_saying_how_to_rebuild(
    spark: SparkSession, io: TableIO, settings: Settings
) -> None:
    io.append("bronze.erp__receipts", receipts(spark, io, [(D1, "SZ", 1, 1.0)]), ctx=ctx())
    spec = io.registry.get("bronze.erp__receipts")
    coarser = spec.model_copy(update={"partition_by": ["plant_id"]})
    io2 = TableIO(spark, settings, Registry([coarser]))
    with pytest.raises(
        TableIOError, match=r"partitioned by \['ingest_date', 'plant_id'\].*backfill"
    ):
        io2.append("bronze.erp__receipts", receipts(spark, io, [(D1, "SZ", 2, 1.0)]), ctx=ctx())
    assert io.read("bronze.erp__receipts").count() == 1
