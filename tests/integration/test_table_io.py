"""Table-layer conformance on real Spark and real Delta tables (both engines where present)."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medlake.io import (
    CommitContext,
    ConstraintViolationError,
    Retract,
    SchemaMismatchError,
    TableIO,
    TableIOError,
    TableNotFoundError,
)

DAY = dt.date(2026, 3, 1)
ORDER_COLUMNS = [
    "plant_id",
    "order_id",
    "version",
    "qty",
    "amount",
    "ordered_at",
    "order_date",
    "note",
]


def ctx(run: str = "run-1", day: dt.date = DAY, job: str = "test_job") -> CommitContext:
    return CommitContext(job=job, run_id=run, logical_date=day, plant="SZ")


def order(
    plant: str, oid: int, version: int = 1, qty: float = 1.0, note: str | None = None
) -> tuple[Any, ...]:
    return (
        plant,
        oid,
        version,
        qty,
        Decimal("12.5000") * oid,
        dt.datetime(2026, 3, 1, 8, 30, 0, 123456),  # naive UTC, as PySpark returns it
        DAY,
        note,
    )


def orders(spark: SparkSession, io: TableIO, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, io.registry.get("silver.orders").spark_schema)


def rows_of(df: DataFrame) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in df.select(*ORDER_COLUMNS).collect())


def test_when_appended_then_read_returns_exactly_the_rows(
    spark: SparkSession, any_io: TableIO
) -> None:
    data = [order("SZ", 1, note="中文 ok"), order("GW", 2, qty=3.5), order("SZ", 3)]
    result = any_io.append("silver.orders", orders(spark, any_io, data), ctx=ctx())
    back = any_io.read("silver.orders")
    assert back.columns == ORDER_COLUMNS
    assert rows_of(back) == sorted(data)
    if result.rows_written >= 0:
        assert result.rows_written == 3


def test_when_appended_twice_then_both_batches_are_visible(
    spark: SparkSession, any_io: TableIO
) -> None:
    any_io.append("silver.orders", orders(spark, any_io, [order("SZ", 1)]), ctx=ctx())
    any_io.append("silver.orders", orders(spark, any_io, [order("SZ", 2)]), ctx=ctx("run-2"))
    assert [r[1] for r in rows_of(any_io.read("silver.orders"))] == [1, 2]


def test_when_overwritten_then_only_new_rows_remain(spark: SparkSession, any_io: TableIO) -> None:
    any_io.append(
        "silver.orders", orders(spark, any_io, [order("SZ", 1), order("GW", 2)]), ctx=ctx()
    )
    any_io.overwrite("silver.orders", orders(spark, any_io, [order("PN", 9)]), ctx=ctx("run-2"))
    assert rows_of(any_io.read("silver.orders")) == [order("PN", 9)]


def test_when_partition_replaced_then_other_partitions_are_untouched(
    spark: SparkSession, any_io: TableIO
) -> None:
    any_io.append(
        "silver.orders",
        orders(spark, any_io, [order("SZ", 1), order("SZ", 2), order("GW", 3)]),
        ctx=ctx(),
    )
    any_io.replace_partitions(
        "silver.orders",
        orders(spark, any_io, [order("SZ", 7, qty=4.0)]),
        partition={"plant_id": "SZ"},
        ctx=ctx("run-2"),
    )
    assert rows_of(any_io.read("silver.orders")) == sorted(
        [order("GW", 3), order("SZ", 7, qty=4.0)]
    )


def test_when_replacing_a_list_of_partitions_then_each_listed_one_is_replaced_or_emptied(
    spark: SparkSession, any_io: TableIO
) -> None:
    rows = [order("SZ", 1), order("GW", 2), order("MN", 3)]
    any_io.append("silver.orders", orders(spark, any_io, rows), ctx=ctx())
    any_io.replace_partitions(
        "silver.orders",
        orders(spark, any_io, [order("SZ", 8)]),  # nothing for GW: its partition empties
        partition={"plant_id": ["SZ", "GW"]},
        ctx=ctx("run-2"),
    )
    assert rows_of(any_io.read("silver.orders")) == sorted([order("MN", 3), order("SZ", 8)])


def test_when_upserted_then_higher_version_wins_and_stale_rows_are_ignored(
    spark: SparkSession, any_io: TableIO
) -> None:
    any_io.append(
        "silver.orders",
        orders(
            spark,
            any_io,
            [order("SZ", 1, 2, qty=10.0), order("SZ", 2, 1, qty=20.0), order("GW", 1, 1)],
        ),
        ctx=ctx(),
    )
    incoming = [
        order("SZ", 1, 1, qty=99.0),  # older than stored version 2: ignored
        order("SZ", 2, 3, qty=21.0),  # newer: replaces
        order("SZ", 2, 2, qty=22.0),  # same key, superseded inside the batch
        order("SZ", 5, 1, qty=5.0),  # new key: inserted
    ]
    result = any_io.upsert("silver.orders", orders(spark, any_io, incoming), ctx=ctx("run-2"))
    expected = sorted(
        [
            order("SZ", 1, 2, qty=10.0),
            order("SZ", 2, 3, qty=21.0),
            order("GW", 1, 1),
            order("SZ", 5, 1, qty=5.0),
        ]
    )
    assert rows_of(any_io.read("silver.orders")) == expected
    if result.rows_inserted is not None:
        assert (result.rows_inserted, result.rows_updated, result.rows_ignored) == (1, 1, 2)


def test_when_upserting_with_count_by_then_each_plant_gets_its_own_changes(
    spark: SparkSession, any_io: TableIO
) -> None:
    any_io.append(
        "silver.orders", orders(spark, any_io, [order("SZ", 1, 2), order("GW", 1, 1)]), ctx=ctx()
    )
    incoming = [
        order("SZ", 1, 1),  # SZ: older than stored, ignored
        order("SZ", 7, 1),  # SZ: new
        order("GW", 1, 2),  # GW: replaces
        order("GW", 2, 1),  # GW: new
        order("GW", 3, 1),  # GW: new
        order("MN", 4, 1),  # MN: new
    ]
    result = any_io.upsert(
        "silver.orders", orders(spark, any_io, incoming), ctx=ctx("run-2"), count_by="plant_id"
    )
    # (inserted, updated, ignored, retracted) per plant, from the comments above
    assert result.changes_by == {"SZ": (1, 0, 1, 0), "GW": (2, 1, 0, 0), "MN": (1, 0, 0, 0)}
    with pytest.raises(TableIOError, match="count_by='note' is not a business key"):
        any_io.upsert(
            "silver.orders", orders(spark, any_io, incoming), ctx=ctx("run-3"), count_by="note"
        )


def test_when_a_correction_moves_a_key_to_another_partition_then_only_the_new_row_remains(
    spark: SparkSession, any_io: TableIO
) -> None:
    name = "silver.orders_by_month"
    schema = any_io.registry.get(name).spark_schema
    first = [
        ("SZ", "2026-01", 1, 1, 5.0),
        ("SZ", "2026-01", 2, 1, 6.0),
        ("GW", "2026-01", 1, 1, 7.0),
    ]
    any_io.append(name, spark.createDataFrame(first, schema), ctx=ctx())
    # order 1 at SZ: its date was corrected into February (version 2)
    moved = [("SZ", "2026-02", 1, 2, 5.0)]
    result = any_io.upsert(name, spark.createDataFrame(moved, schema), ctx=ctx("run-2"))
    rows = sorted(tuple(r) for r in any_io.read(name).select(*schema.fieldNames()).collect())
    assert rows == sorted([("SZ", "2026-02", 1, 2, 5.0), ("SZ", "2026-01", 2, 1, 6.0), first[2]])
    if result.rows_inserted is not None:
        assert (result.rows_inserted, result.rows_updated) == (0, 1)
    # a stale copy of the old version does not bring the January row back
    any_io.upsert(name, spark.createDataFrame(first[:1], schema), ctx=ctx("run-3"))
    again = sorted(tuple(r) for r in any_io.read(name).select(*schema.fieldNames()).collect())
    assert again == rows


def test_an_upsert_reads_only_the_stored_files_that_can_hold_its_keys(
    spark: SparkSession, io: TableIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlake.io.deltars import DeltaRsEngine

    name = "silver.orders_by_month"
    schema = io.registry.get(name).spark_schema
    jan = [("SZ", "2026-01", i, 1, 1.0) for i in (1, 2, 3)]
    feb = [("SZ", "2026-02", i, 1, 1.0) for i in (4, 5, 6)]
    gw = [("GW", "2026-01", 1, 1, 1.0)]
    assert not io.may_hold(name, {"plant_id": ["SZ"]})  # no table yet
    for batch in (jan, feb, gw):  # one file each
        io.append(name, spark.createDataFrame(batch, schema), ctx=ctx())
    # by partition values and by the order-id statistics of each file, without reading data
    assert io.may_hold(name, {"plant_id": ["SZ"], "order_id": [5]})
    assert not io.may_hold(name, {"plant_id": ["GW"], "order_id": [5]})
    assert not io.may_hold(name, {"plant_id": ["SZ"], "order_month": ["2026-01"], "order_id": [4]})
    assert not io.may_hold(name, {"order_id": [9, 12]})
    assert io.may_hold(name, {"order_id": [0, 12]})  # a range that spans stored ids
    scanned: list[str] = []
    real_scan = DeltaRsEngine._scan

    def recording(self: DeltaRsEngine, storage: Any, schema: Any, paths: list[str], *a: Any) -> Any:
        if not a:  # the table's own files (a staging folder comes as a further argument)
            scanned.extend(paths)
        return real_scan(self, storage, schema, paths, *a)

    monkeypatch.setattr(DeltaRsEngine, "_scan", recording)

    read: list[str] = []  # the stored files the last upsert read

    def upsert(rows: list[tuple[Any, ...]], **kw: Any) -> list[tuple[Any, ...]]:
        scanned.clear()
        io.upsert(name, spark.createDataFrame(rows, schema), ctx=ctx("run-n"), **kw)
        read[:] = scanned
        return sorted(tuple(r) for r in io.read(name).select(*schema.fieldNames()).collect())

    # a new key above every stored SZ key: no stored file can hold it, none is read
    new = ("SZ", "2026-03", 7, 1, 1.0)
    assert upsert([new]) == sorted([*jan, *feb, *gw, new])
    assert read == []
    # order 2 corrected into March: January's file can hold key 2 (range 1-3) and is read
    # and rewritten; February's (4-6) and GW's (another plant) are not read
    moved = ("SZ", "2026-03", 2, 2, 1.0)
    assert upsert([moved]) == sorted([jan[0], jan[2], *feb, *gw, new, moved])
    assert any("order_month=2026-01" in p for p in read)
    assert all("order_month=2026-02" not in p and "plant_id=GW" not in p for p in read)
    # a retraction limited to GW reads GW's file and no other outside the incoming partition
    kept = upsert(
        [("SZ", "2026-03", 8, 1, 1.0)],
        retract=Retract("plant_id = 'GW'", within={"plant_id": ["GW"]}),
    )
    assert kept == sorted([jan[0], jan[2], *feb, new, moved, ("SZ", "2026-03", 8, 1, 1.0)])
    assert any("plant_id=GW" in p for p in read)
    assert all("plant_id=SZ/order_month=2026-0" not in p or "2026-03" in p for p in read)


def test_when_upserting_with_retract_then_withdrawn_keys_leave_and_others_stay(
    spark: SparkSession, any_io: TableIO
) -> None:
    stored = [order("SZ", 1, note="d1"), order("SZ", 2, note="d1"), order("SZ", 3, note="d2")]
    stored += [order("GW", 1, note="d1")]
    any_io.append("silver.orders", orders(spark, any_io, stored), ctx=ctx())
    # SZ re-delivers "d1" with order 1 only (order 2 withdrawn); d2 and GW are not re-read
    again = [order("SZ", 1, 2, note="d1")]
    result = any_io.upsert(
        "silver.orders",
        orders(spark, any_io, again),
        ctx=ctx("run-2"),
        count_by="plant_id",
        retract=Retract("plant_id = 'SZ' AND note = 'd1'"),
    )
    expected = [order("SZ", 1, 2, note="d1"), order("SZ", 3, note="d2"), order("GW", 1, note="d1")]
    assert rows_of(any_io.read("silver.orders")) == sorted(expected)
    # (inserted, updated, ignored, retracted)
    assert result.changes_by == {"SZ": (0, 1, 0, 1)}
    # order 3 of d2 is withdrawn too unless the caller still knows its key
    keep = spark.createDataFrame([("SZ", 3)], "plant_id string, order_id bigint")
    result = any_io.upsert(
        "silver.orders",
        orders(spark, any_io, []),
        ctx=ctx("run-3"),
        count_by="plant_id",
        retract=Retract("plant_id = 'SZ'", keep=keep),
    )
    assert rows_of(any_io.read("silver.orders")) == sorted(expected[1:])
    assert result.changes_by == {"SZ": (0, 0, 0, 1)}


def test_when_upserting_into_empty_table_then_latest_per_key_is_inserted(
    spark: SparkSession, any_io: TableIO
) -> None:
    incoming = [order("SZ", 1, 1, qty=1.0), order("SZ", 1, 4, qty=4.0), order("SZ", 2, 1)]
    any_io.upsert("silver.orders", orders(spark, any_io, incoming), ctx=ctx())
    assert rows_of(any_io.read("silver.orders")) == sorted(
        [order("SZ", 1, 4, qty=4.0), order("SZ", 2, 1)]
    )


def test_when_reading_as_of_version_then_that_commit_is_returned(
    spark: SparkSession, any_io: TableIO
) -> None:
    first = any_io.append("silver.orders", orders(spark, any_io, [order("SZ", 1)]), ctx=ctx())
    any_io.append("silver.orders", orders(spark, any_io, [order("SZ", 2)]), ctx=ctx("run-2"))
    any_io.overwrite("silver.orders", orders(spark, any_io, [order("SZ", 3)]), ctx=ctx("run-3"))
    assert rows_of(any_io.read("silver.orders", version=first.version)) == [order("SZ", 1)]
    assert rows_of(any_io.read("silver.orders", version=first.version + 1)) == [
        order("SZ", 1),
        order("SZ", 2),
    ]
    assert rows_of(any_io.read("silver.orders")) == [order("SZ", 3)]


def test_when_reading_as_of_timestamp_then_latest_commit_before_it_is_returned(
    spark: SparkSession, any_io: TableIO
) -> None:
    any_io.append("silver.orders", orders(spark, any_io, [order("SZ", 1)]), ctx=ctx())
    time.sleep(1.1)
    between = dt.datetime.now(dt.UTC)
    time.sleep(1.1)
    any_io.overwrite("silver.orders", orders(spark, any_io, [order("SZ", 2)]), ctx=ctx("run-2"))
    assert rows_of(any_io.read("silver.orders", timestamp=between)) == [order("SZ", 1)]
    assert rows_of(any_io.read("silver.orders", timestamp=dt.datetime.now(dt.UTC))) == [
        order("SZ", 2)
    ]


def test_when_every_commit_is_made_then_history_names_job_run_date_and_code(
    spark: SparkSession, any_io: TableIO
) -> None:
    any_io.append(
        "silver.orders", orders(spark, any_io, [order("SZ", 1)]), ctx=ctx("run-a", job="job_a")
    )
    any_io.replace_partitions(
        "silver.orders",
        orders(spark, any_io, [order("SZ", 2)]),
        partition={"plant_id": "SZ"},
        ctx=ctx("run-b", dt.date(2026, 3, 2), job="job_b"),
    )
    history = any_io.history("silver.orders")
    latest, previous = history[0], history[1]
    assert (latest["job"], latest["run_id"], latest["logical_date"]) == (
        "job_b",
        "run-b",
        "2026-03-02",
    )
    assert (previous["job"], previous["run_id"], previous["logical_date"]) == (
        "job_a",
        "run-a",
        "2026-03-01",
    )
    assert latest["code_version"] == "test-code-version"
    assert latest["version"] > previous["version"]


def test_when_never_written_then_read_says_table_not_found(any_io: TableIO) -> None:
    with pytest.raises(TableNotFoundError, match=r"silver\.orders"):
        any_io.read("silver.orders")


def test_when_column_missing_or_undeclared_then_write_fails_naming_them(
    spark: SparkSession, io: TableIO
) -> None:
    frame = orders(spark, io, [order("SZ", 1)]).drop("note").withColumn("colour", F.col("qty"))
    with pytest.raises(SchemaMismatchError) as err:
        io.append("silver.orders", frame, ctx=ctx())
    assert "missing columns: note" in str(err.value)
    assert "colour" in str(err.value)
    assert io.version("silver.orders") is None  # nothing was created


def test_when_type_is_incompatible_then_write_fails_naming_column_and_types(
    spark: SparkSession, io: TableIO
) -> None:
    frame = orders(spark, io, [order("SZ", 1)]).withColumn("qty", F.col("note"))
    with pytest.raises(SchemaMismatchError, match="column qty: expected double, got string"):
        io.append("silver.orders", frame, ctx=ctx())


def test_when_type_widens_losslessly_then_write_succeeds(spark: SparkSession, io: TableIO) -> None:
    frame = spark.createDataFrame([(1, 2.5)], "id int, value float")
    io.append("gold.evolving", frame, ctx=ctx())
    assert [tuple(r) for r in io.read("gold.evolving").collect()] == [(1, 2.5)]
    assert dict(io.read("gold.evolving").dtypes) == {"id": "bigint", "value": "double"}


def test_when_not_null_column_has_nulls_then_nothing_is_committed(
    spark: SparkSession, io: TableIO
) -> None:
    io.append("silver.orders", orders(spark, io, [order("SZ", 1)]), ctx=ctx())
    before = io.version("silver.orders")
    schema = io.registry.get("silver.orders").spark_schema
    loose = schema.__class__([f.__class__(f.name, f.dataType, True) for f in schema.fields])
    bad = spark.createDataFrame([("SZ", None, 1, 1.0, None, None, None, None)], loose)
    with pytest.raises(
        ConstraintViolationError, match="1 rows have NULL in NOT NULL column order_id"
    ):
        io.append("silver.orders", bad, ctx=ctx("run-2"))
    assert io.version("silver.orders") == before
    assert io.read("silver.orders").count() == 1


def test_when_check_constraint_is_violated_then_nothing_is_committed(
    spark: SparkSession, io: TableIO
) -> None:
    io.append("silver.orders", orders(spark, io, [order("SZ", 1)]), ctx=ctx())
    bad = orders(spark, io, [order("SZ", 2, qty=-1.0), order("SZ", 3, qty=-2.0), order("SZ", 4)])
    with pytest.raises(ConstraintViolationError, match="2 rows violate CHECK qty_non_negative"):
        io.append("silver.orders", bad, ctx=ctx("run-2"))
    assert rows_of(io.read("silver.orders")) == [order("SZ", 1)]
    staging = io.location("silver.orders") + "/_staging"
    import os

    assert not os.path.exists(staging) or os.listdir(staging) == []


def test_when_replacing_with_rows_outside_the_partition_then_nothing_is_committed(
    spark: SparkSession, io: TableIO
) -> None:
    io.append("silver.orders", orders(spark, io, [order("SZ", 1), order("GW", 2)]), ctx=ctx())
    with pytest.raises(TableIOError, match="rows outside the partitions being replaced"):
        io.replace_partitions(
            "silver.orders",
            orders(spark, io, [order("SZ", 3), order("GW", 4)]),
            partition={"plant_id": "SZ"},
            ctx=ctx("run-2"),
        )
    assert rows_of(io.read("silver.orders")) == sorted([order("SZ", 1), order("GW", 2)])


def test_when_replacing_by_a_non_partition_column_then_it_is_refused(
    spark: SparkSession, io: TableIO
) -> None:
    with pytest.raises(TableIOError, match="replace_partitions needs partition columns"):
        io.replace_partitions(
            "silver.orders",
            orders(spark, io, [order("SZ", 1)]),
            partition={"order_id": 1},
            ctx=ctx(),
        )


def test_when_two_level_partition_is_replaced_then_only_that_date_and_plant_change(
    spark: SparkSession, io: TableIO
) -> None:
    schema = io.registry.get("bronze.erp__receipts").spark_schema
    d1, d2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    base = [(d1, "SZ", 1, 1.0), (d1, "GW", 2, 1.0), (d2, "SZ", 3, 1.0)]
    io.append("bronze.erp__receipts", spark.createDataFrame(base, schema), ctx=ctx())
    io.replace_partitions(
        "bronze.erp__receipts",
        spark.createDataFrame([(d1, "SZ", 10, 2.0), (d1, "SZ", 11, 2.0)], schema),
        partition={"ingest_date": d1, "plant_id": "SZ"},
        ctx=ctx("run-2"),
    )
    got = sorted(tuple(r) for r in io.read("bronze.erp__receipts").collect())
    assert got == sorted(
        [(d1, "GW", 2, 1.0), (d2, "SZ", 3, 1.0), (d1, "SZ", 10, 2.0), (d1, "SZ", 11, 2.0)]
    )


def test_when_replacing_with_where_then_other_rows_of_the_partition_are_kept_in_one_file(
    spark: SparkSession, any_io: TableIO
) -> None:
    # a coarse partition (plant) replaced one day at a time, as bronze's months are
    name = "silver.orders"
    d1, d2, d3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)

    def line(plant: str, oid: int, day: dt.date, qty: float = 1.0) -> tuple[Any, ...]:
        return (*order(plant, oid, qty=qty)[:6], day, None)

    for day, ids in ((d1, [1, 2]), (d2, [3]), (d3, [4, 5])):
        for plant, offset in (("SZ", 0), ("GW", 100)):
            any_io.replace_partitions(
                name,
                orders(spark, any_io, [line(plant, offset + i, day) for i in ids]),
                partition={"plant_id": plant},
                where={"order_date": day},
                ctx=ctx(f"run-{day}-{plant}"),
            )
    # a corrected re-delivery of SZ's second day replaces exactly those rows
    any_io.replace_partitions(
        name,
        orders(spark, any_io, [line("SZ", 30, d2, 2.0), line("SZ", 31, d2, 2.0)]),
        partition={"plant_id": "SZ"},
        where={"order_date": [d2]},
        ctx=ctx("run-fix"),
    )
    expected = [line("SZ", i, d) for d, i in [(d1, 1), (d1, 2), (d3, 4), (d3, 5)]]
    expected += [line("SZ", 30, d2, 2.0), line("SZ", 31, d2, 2.0)]
    expected += [line("GW", 100 + i, d) for d, i in [(d1, 1), (d1, 2), (d2, 3), (d3, 4), (d3, 5)]]
    assert rows_of(any_io.read(name)) == sorted(expected)
    # seven writes, yet each partition is one file: replacements never pile up small files
    live = DeltaTable(any_io.location(name)).file_uris()
    assert len(live) == 2, live
    # an empty replacement withdraws the day and keeps the rest
    any_io.replace_partitions(
        name,
        orders(spark, any_io, []),
        partition={"plant_id": "GW"},
        where={"order_date": d1},
        ctx=ctx("run-empty"),
    )
    left = rows_of(any_io.read(name).where("plant_id = 'GW'"))
    assert left == sorted(line("GW", 100 + i, d) for d, i in [(d2, 3), (d3, 4), (d3, 5)])


def test_when_a_row_lies_outside_where_then_nothing_is_committed(
    spark: SparkSession, any_io: TableIO
) -> None:
    name = "bronze.erp__receipts"
    schema = any_io.registry.get(name).spark_schema
    d1, d2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    any_io.append(name, spark.createDataFrame([(d1, "SZ", 1, 1.0)], schema), ctx=ctx())
    before = any_io.version(name)
    with pytest.raises(Exception, match=r"(?i)outside|replaceWhere|does not conform|violat"):
        any_io.replace_partitions(
            name,
            spark.createDataFrame([(d2, "SZ", 2, 1.0)], schema),
            partition={"plant_id": "SZ"},
            where={"ingest_date": d1},
            ctx=ctx("run-2"),
        )
    assert any_io.version(name) == before
    assert [tuple(r) for r in any_io.read(name).collect()] == [(d1, "SZ", 1, 1.0)]
    with pytest.raises(TableIOError, match="unknown columns"):
        any_io.replace_partitions(
            name,
            spark.createDataFrame([], schema),
            partition={"plant_id": "SZ"},
            where={"no_such": 1},
            ctx=ctx("run-3"),
        )


def test_when_reading_listed_partitions_then_only_their_rows_come_back(
    spark: SparkSession, any_io: TableIO
) -> None:
    name = "bronze.erp__receipts"
    schema = any_io.registry.get(name).spark_schema
    d1, d2, d3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)
    base = [(d1, "SZ", 1, 1.0), (d1, "GW", 2, 1.0), (d2, "SZ", 3, 1.0), (d3, "SZ", 4, 1.0)]
    any_io.append(name, spark.createDataFrame(base, schema), ctx=ctx())
    got = any_io.read(name, partitions={"plant_id": "SZ", "ingest_date": [d1, d2]})
    assert sorted(tuple(r) for r in got.collect()) == [(d1, "SZ", 1, 1.0), (d2, "SZ", 3, 1.0)]
    assert any_io.read(name, partitions={"plant_id": []}).count() == 0
    assert sorted(map(str, any_io.partition_values(name))) == sorted(
        map(
            str,
            [
                {"ingest_date": d.isoformat(), "plant_id": p}
                for d, p in [(d1, "SZ"), (d1, "GW"), (d2, "SZ"), (d3, "SZ")]
            ],
        )
    )
    with pytest.raises(TableIOError, match=r"receipt_id.* not partition columns"):
        any_io.read(name, partitions={"receipt_id": 1})


def test_when_a_check_expression_is_null_then_the_row_violates_it_as_in_delta(
    spark: SparkSession, io: TableIO
) -> None:
    io.append(
        "gold.evolving", spark.createDataFrame([(1, 1.0)], "id bigint, value double"), ctx=ctx()
    )
    with pytest.raises(ConstraintViolationError, match="1 rows violate CHECK value_non_negative"):
        io.append(
            "gold.evolving",
            spark.createDataFrame([(2, None)], "id bigint, value double"),
            ctx=ctx(),
        )
    assert [tuple(r) for r in io.read("gold.evolving").collect()] == [(1, 1.0)]


def test_when_upserting_an_equal_sequence_then_the_incoming_row_wins(
    spark: SparkSession, io: TableIO
) -> None:
    io.append("silver.orders", orders(spark, io, [order("SZ", 1, 2, qty=1.0)]), ctx=ctx())
    result = io.upsert(
        "silver.orders", orders(spark, io, [order("SZ", 1, 2, qty=9.0)]), ctx=ctx("run-2")
    )
    assert rows_of(io.read("silver.orders")) == [order("SZ", 1, 2, qty=9.0)]
    assert (result.rows_inserted, result.rows_updated, result.rows_ignored) == (0, 1, 0)


def test_when_upserting_one_partition_then_other_partitions_files_are_untouched(
    spark: SparkSession, io: TableIO
) -> None:
    io.append(
        "silver.orders",
        orders(spark, io, [order("SZ", 1), order("GW", 2), order("PN", 3)]),
        ctx=ctx(),
    )
    location = io.location("silver.orders")

    def files(plant: str) -> set[str]:
        return {f for f in DeltaTable(location).file_uris() if f"plant_id={plant}/" in f}

    before = {p: files(p) for p in ("SZ", "GW", "PN")}
    result = io.upsert(
        "silver.orders", orders(spark, io, [order("SZ", 1, 2, qty=5.0)]), ctx=ctx("run-2")
    )
    assert files("GW") == before["GW"] and files("PN") == before["PN"]
    assert files("SZ") != before["SZ"]
    assert result.files_removed == len(before["SZ"])


@pytest.mark.parametrize("plant", ["A/B", "50% off", "苏州 工厂", "x=y&z", "tab\tand:colon"])
def test_when_partition_values_hold_special_characters_then_they_round_trip(
    spark: SparkSession, io: TableIO, plant: str
) -> None:
    io.append("silver.orders", orders(spark, io, [order(plant, 1), order("SZ", 2)]), ctx=ctx())
    io.replace_partitions(
        "silver.orders",
        orders(spark, io, [order(plant, 3)]),
        partition={"plant_id": plant},
        ctx=ctx("run-2"),
    )
    assert rows_of(io.read("silver.orders")) == sorted([order(plant, 3), order("SZ", 2)])
    assert sorted(pl.read_delta(io.location("silver.orders"))["plant_id"].to_list()) == sorted(
        [plant, "SZ"]
    )


def test_when_the_commit_call_fails_after_the_commit_landed_then_the_write_is_kept(
    spark: SparkSession, io: TableIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    io.append("silver.orders", orders(spark, io, [order("SZ", 1)]), ctx=ctx())
    real_commit = DeltaTable.create_write_transaction

    def commit_then_fail(self: DeltaTable, *args: Any, **kwargs: Any) -> None:
        real_commit(self, *args, **kwargs)  # the log entry is written ...
        raise OSError("connection reset while writing the checkpoint")  # ... then a failure

    monkeypatch.setattr(DeltaTable, "create_write_transaction", commit_then_fail)
    result = io.append("silver.orders", orders(spark, io, [order("SZ", 2)]), ctx=ctx("run-2"))
    monkeypatch.undo()
    assert result.version == io.version("silver.orders")
    assert rows_of(io.read("silver.orders")) == [order("SZ", 1), order("SZ", 2)]  # files intact


def test_when_the_commit_call_fails_before_the_commit_then_a_clear_error_and_no_files_remain(
    spark: SparkSession, io: TableIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    io.append("silver.orders", orders(spark, io, [order("SZ", 1)]), ctx=ctx())
    location = io.location("silver.orders")
    files_before = set(Path(location).rglob("*.parquet"))

    def fail(self: DeltaTable, *args: Any, **kwargs: Any) -> None:
        raise OSError("object store unavailable")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", fail)
    with pytest.raises(
        TableIOError, match=r"the commit failed .*object store unavailable.*Re-run the job"
    ):
        io.append("silver.orders", orders(spark, io, [order("SZ", 2)]), ctx=ctx("run-2"))
    monkeypatch.undo()
    assert set(Path(location).rglob("*.parquet")) == files_before
    assert rows_of(io.read("silver.orders")) == [order("SZ", 1)]
