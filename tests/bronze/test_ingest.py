"""Bronze ingestion on the simulator's deliveries: every row lands or is quarantined, re-runs
skip identical files, changed files become new versions, broken files lose nothing."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medlake.config import DEFAULT_CONF_DIR, Settings, load_settings
from medlake.jobs import ingest as ingest_job
from medlake.runtime import JobContext
from medlake.sources import load_sources
from medlake_simulator.generate import generate
from tests.delivered import data_rows

START = dt.date(2026, 3, 27)  # spans the EU daylight-saving change on 2026-03-29
DAYS = 4
DATES = [START + dt.timedelta(days=i) for i in range(DAYS)]


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deliveries") / "landing"
    generate(out, start=START, days=DAYS, scale=0.3, seed=7, progress=False)
    return out


@pytest.fixture
def landing(deliveries: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "landing"
    shutil.copytree(deliveries, copy)
    return copy


def context(spark: SparkSession, tmp_path: Path, landing: Path, **kw: object) -> JobContext:
    settings: Settings = load_settings(
        "test",
        overrides={
            "storage": {"root": str(tmp_path / "lake")},
            "landing": {"root": str(landing)},
            "lineage": {"transport": "file", "folder": str(tmp_path / "openlineage")},
        },
    )
    ctx = JobContext(settings=settings, job="ingest", dates=DATES, run_id="t1", **kw)  # type: ignore[arg-type]
    ctx._spark = spark
    return ctx


SOURCES = load_sources(DEFAULT_CONF_DIR / "sources")


def test_every_delivered_row_is_in_bronze_or_in_quarantine_and_reruns_skip(
    spark: SparkSession, tmp_path: Path, landing: Path
) -> None:
    ctx = context(spark, tmp_path, landing)
    summary = ingest_job.run(ctx)
    expected: Counter[str] = Counter()
    for plant_id, source in SOURCES.items():
        for day in DATES:
            for cfg in source.entities.values():
                expected[f"{plant_id}/{day}/{cfg.file}"] = data_rows(
                    landing / plant_id / day.isoformat() / cfg.file, source
                )
    landed: Counter[str] = Counter()
    for entity in SOURCES["SZ"].entities:
        for r in ctx.io.read(f"bronze.{entity}").groupBy("_source_file").count().collect():
            landed[r["_source_file"]] += r["count"]
    quarantine = ctx.io.read("_bronze_quarantine")
    for r in quarantine.groupBy("source_file").count().collect():
        landed[r["source_file"]] += r["count"]
    assert +landed == +expected
    assert summary["files_ingested"] + summary["files_quarantined"] == len(expected)
    assert summary["rows_ingested"] + summary["rows_quarantined"] == sum(expected.values())

    versions = {t: ctx.io.version(t) for t in ("bronze.erp__suppliers", "bronze.erp__materials")}
    again = ingest_job.run(context(spark, tmp_path, landing))
    # a file refused as a whole is read again (its reason may lie outside it, such as the
    # declared encoding); every file that landed is skipped, no bronze table rewritten
    refused = summary["files_quarantined"]
    assert refused and again["files_quarantined"] == refused
    assert again["files_skipped"] == len(expected) - refused and again["files_ingested"] == 0
    assert {t: ctx.io.version(t) for t in versions} == versions


def test_broken_files_are_quarantined_with_reasons_naming_the_problem(
    spark: SparkSession, tmp_path: Path, landing: Path
) -> None:
    ctx = context(spark, tmp_path, landing)
    ingest_job.run(ctx)
    reasons = {
        (r["source_file"], r["reason"])
        for r in ctx.io.read("_bronze_quarantine").select("source_file", "reason").collect()
    }
    middle = DATES[DAYS // 2].isoformat()
    wrong = f"SU/{DATES[1]}/erp__materials.csv"  # the simulator's wrong-encoding file
    truncated = f"PN/{middle}/wms__stock_movements.csv"
    assert any(f == wrong and "not valid gb18030" in r and "UTF-8" in r for f, r in reasons)
    assert any(f == truncated and "cut short" in r for f, r in reasons)
    # the wrong-encoding file is kept whole, readable, in quarantine
    raw = [
        r["raw"]
        for r in ctx.io.read("_bronze_quarantine").where(F.col("source_file") == wrong).collect()
    ]
    assert len(raw) == data_rows(
        landing / "SU" / DATES[1].isoformat() / "erp__materials.csv", SOURCES["SU"]
    )
    assert all(x.startswith("WL") for x in raw)  # decoded as the UTF-8 it really is
    manifest = {r["source_file"]: r for r in ctx.io.read("_bronze_manifest").collect()}
    assert manifest[wrong]["status"] == "quarantined"
    assert (
        manifest[truncated]["status"] == "ingested" and manifest[truncated]["rows_quarantined"] == 1
    )


def test_schema_drift_column_is_kept_and_reported(
    spark: SparkSession, tmp_path: Path, landing: Path
) -> None:
    path = landing / "GW" / DATES[0].isoformat() / "erp__goods_receipts.jsonl"
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert lines
    path.write_text(
        "".join(json.dumps({**x, "dockDoor": f"D{i}"}) + "\n" for i, x in enumerate(lines)),
        encoding="utf-8",
    )
    ctx = context(spark, tmp_path, landing, plants=["GW"])
    ingest_job.run(ctx)
    drifted = f"GW/{DATES[0]}/erp__goods_receipts.jsonl"
    table = ctx.io.read("bronze.erp__goods_receipts")
    rows = table.where(F.col("_source_file") == drifted).collect()
    assert sorted(r["_record"]["dockDoor"] for r in rows) == sorted(
        f"D{i}" for i in range(len(lines))
    )
    manifest = {r["source_file"]: r for r in ctx.io.read("_bronze_manifest").collect()}
    assert manifest[drifted]["extra_columns"] == ["dockDoor"]
    assert "schema drift" in manifest[drifted]["message"]


def test_changed_redelivery_becomes_version_two_and_replaces_its_partition_only(
    spark: SparkSession, tmp_path: Path, landing: Path
) -> None:
    ctx = context(spark, tmp_path, landing, plants=["TU"])
    ingest_job.run(ctx)
    path = landing / "TU" / DATES[1].isoformat() / "mes__process_measurements.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), encoding="utf-8")  # the plant re-sends one row fewer
    table = ctx.io.read("bronze.mes__process_measurements")
    before = Counter(r["_source_file"] for r in table.select("_source_file").collect())
    summary = ingest_job.run(context(spark, tmp_path, landing, plants=["TU"]))
    assert summary["files_ingested"] == 1
    after = Counter(
        r["_source_file"]
        for r in ctx.io.read("bronze.mes__process_measurements").select("_source_file").collect()
    )
    changed = f"TU/{DATES[1]}/mes__process_measurements.csv"
    assert after[changed] == before[changed] - 1
    assert {k: v for k, v in after.items() if k != changed} == {
        k: v for k, v in before.items() if k != changed
    }
    versions = {
        r["_file_version"]
        for r in ctx.io.read("bronze.mes__process_measurements")
        .where(F.col("_source_file") == changed)
        .collect()
    }
    assert versions == {2}


def test_missing_unexpected_and_corrupt_files_are_reported_and_the_run_goes_on(
    spark: SparkSession, tmp_path: Path, landing: Path
) -> None:
    day = landing / "MN" / DATES[0].isoformat()
    (day / "plm__ecos.parquet").unlink()
    (day / "notes.txt").write_text("hello")
    (day / "wms__on_hand.parquet").write_bytes(b"PAR1 this is not parquet")
    (day / "qc__nonconformances.parquet").write_bytes(b"")  # zero bytes
    ctx = context(spark, tmp_path, landing, plants=["MN"])
    summary = ingest_job.run(ctx)
    assert summary["files_missing"] == 1 and summary["files_unexpected"] == 1
    manifest = {r["source_file"]: r for r in ctx.io.read("_bronze_manifest").collect()}
    corrupt = manifest[f"MN/{DATES[0]}/wms__on_hand.parquet"]
    assert corrupt["status"] == "quarantined" and "parquet" in corrupt["message"]
    assert manifest[f"MN/{DATES[0]}/notes.txt"]["status"] == "unexpected"
    empty = manifest[f"MN/{DATES[0]}/qc__nonconformances.parquet"]
    # MN's contract allows a day without nonconformances (empty: nothing_today): no rows
    assert empty["status"] == "ingested" and empty["rows_read"] == 0
    assert "nothing today" in empty["message"]
    assert manifest[f"MN/{DATES[0]}/plm__ecos.parquet"]["status"] == "missing"
    assert ctx.io.read("bronze.wms__on_hand").where(F.col("_delivery_date") == DATES[1]).count() > 0


def test_lineage_links_each_bronze_version_to_its_files_and_events_are_written(
    spark: SparkSession, tmp_path: Path, landing: Path
) -> None:
    ctx = context(spark, tmp_path, landing, plants=["SZ"])
    ingest_job.run(ctx)
    version = ctx.io.version("bronze.crm__complaints")
    edges = (
        ctx.io.read("_lineage").where(F.col("target_table") == "bronze.crm__complaints").collect()
    )
    assert {e["target_version"] for e in edges} == {version}
    assert sorted(Path(e["source"]).name for e in edges) == ["crm__complaints.csv"] * DAYS
    events = [
        json.loads(line)
        for line in (tmp_path / "openlineage" / "ingest.jsonl").read_text().splitlines()
    ]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
