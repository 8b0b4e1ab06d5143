"""`lakehouse run backfill`: a range run gives the tables a day-by-day run gives, and a
backfill killed with SIGKILL continues after its last recorded step when started again.

Three days across a month end (two chunks: Jan 30-31, Feb 1), the supply-chain entities
of silver (the others are built the same way), two plants: enough to cross a chunk
boundary, small enough to run in the suite."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medlake.config import load_settings
from medlake.jobs import backfill as backfill_job
from medlake.jobs import ingest as ingest_job
from medlake.jobs import silver as silver_job
from medlake.runtime import JobContext
from medlake_simulator.generate import generate
from tests import REPO
from tests.conf_copy import copy_conf

pytestmark = pytest.mark.slow

DAYS = [dt.date(2026, 1, 30), dt.date(2026, 1, 31), dt.date(2026, 2, 1)]
PLANTS = ["SZ", "GW"]
ENTITIES = ["fx_rates", "suppliers", "materials", "purchase_orders", "goods_receipts"]
RUN_COLUMNS = {"_run_id", "_ingested_at", "run_id", "recorded_at", "computed_at"}


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("backfill") / "landing"
    generate(folder, start=DAYS[0], days=len(DAYS), scale=0.2, seed=11, progress=False)
    return folder


def conf_for(root: Path, landing: Path) -> Path:
    """A copy of medlake/conf/ whose `test` overlay keeps tables under `root` and reads `landing`."""
    return copy_conf(
        root / "conf",
        {
            "storage": {"root": str(root / "lake")},
            "landing": {"root": str(landing)},
            "lineage": {"transport": "none"},
            "backfill": {"chunk_months": 1},  # a chunk per month: two chunks to cross
        },
    )


def context(spark: SparkSession, conf: Path, job: str, dates: list[dt.date]) -> JobContext:
    settings = load_settings("test", conf_dir=conf)
    ctx = JobContext(
        settings=settings,
        job=job,
        dates=dates,
        run_id=f"{job}-{dates[0]:%m%d}",
        plants=PLANTS,
        entities=ENTITIES,
    )
    ctx._spark = spark
    return ctx


def silver_tables(ctx: JobContext) -> dict[str, list[str]]:
    """Every silver table's rows (sorted, as text) without the run-specific columns."""
    out = {}
    for spec in ctx.io.registry:
        if spec.layer != "silver" or ctx.io.version(spec.name) is None:
            continue
        frame = ctx.io.read(spec.name)
        keep = sorted(c for c in frame.columns if c not in RUN_COLUMNS)
        out[spec.name] = sorted(repr(tuple(r)) for r in frame.select(*keep).collect())
    return out


def recon_totals(ctx: JobContext) -> dict[tuple[str, str], tuple[int, int]]:
    """Rows read and quarantined per silver table and plant, over all runs."""
    rows = (
        ctx.io.read("_reconciliation")
        .groupBy("entity", "plant_id")
        .agg(F.sum("rows_read").alias("read"), F.sum("rows_quarantined").alias("q"))
        .collect()
    )
    return {(r.entity, r.plant_id): (int(r.read), int(r.q)) for r in rows}


def failed_rules(ctx: JobContext) -> set[tuple[str, str]]:
    if ctx.io.version("_dq") is None:
        return set()
    rows = ctx.io.read("_dq").where(~F.col("passed")).select("table_name", "rule_id").collect()
    return {(r.table_name, r.rule_id) for r in rows}


@pytest.fixture(scope="module")
def both_ways(
    spark: SparkSession, landing: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    daily_conf = conf_for(tmp_path_factory.mktemp("daily"), landing)
    for day in DAYS:
        ingest_job.run(context(spark, daily_conf, "ingest", [day]))
        assert silver_job.run(context(spark, daily_conf, "silver", [day]))["exit_code"] == 0
    range_conf = conf_for(tmp_path_factory.mktemp("range"), landing)
    summary = backfill_job.run(context(spark, range_conf, "backfill", DAYS))
    return {
        "daily": context(spark, daily_conf, "check", DAYS),
        "range": context(spark, range_conf, "check", DAYS),
        "range_conf": range_conf,
        "summary": summary,
    }


def test_month_chunks_follow_the_calendar() -> None:
    chunks = backfill_job.month_chunks(DAYS)
    assert chunks == [DAYS[:2], DAYS[2:]]


def test_chunks_hold_whole_months_within_the_byte_budget() -> None:
    # Jan 30 .. Mar 2: two January days of 10 bytes, February's 28 days of 1 byte, two
    # March days of 50 bytes. Expected steps worked out by hand from the rule.
    days = [dt.date(2026, 1, 30) + dt.timedelta(days=i) for i in range(32)]
    sizes = {d: {1: 10, 2: 1, 3: 50}[d.month] for d in days}
    jan, feb, mar = days[:2], days[2:30], days[30:]
    assert backfill_job.chunks(sizes, budget=1000, max_months=12) == [days]
    assert backfill_job.chunks(sizes, budget=1000, max_months=2) == [jan + feb, mar]
    # 20 + 28 fit in 48; March (100) does not fit 48 and is cut into days of 50 each
    assert backfill_job.chunks(sizes, budget=48, max_months=12) == [jan + feb, mar[:1], mar[1:]]
    # a budget below one January day: each such day alone, February packed by 15 bytes
    cut = backfill_job.chunks(sizes, budget=15, max_months=12)
    assert cut == [jan[:1], jan[1:], feb[:15], feb[15:], mar[:1], mar[1:]]
    assert sorted(d for c in cut for d in c) == days  # every day once, in order


def test_delivered_bytes_sum_the_run_plants_folders(tmp_path: Path) -> None:
    day, other = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    for plant, size in (("SZ", 7), ("GW", 5), ("TU", 100)):
        folder = tmp_path / plant / day.isoformat()
        folder.mkdir(parents=True)
        (folder / "erp__suppliers.csv").write_bytes(b"x" * size)
        (folder / "erp__materials.csv").write_bytes(b"y" * 3)
    sizes = backfill_job.delivered_bytes(tmp_path, ["SZ", "GW"], [day, other])
    assert sizes == {day: 7 + 3 + 5 + 3, other: 0}


def test_a_range_run_gives_the_tables_of_a_day_by_day_run(both_ways: dict[str, Any]) -> None:
    daily, ranged = both_ways["daily"], both_ways["range"]
    summary = both_ways["summary"]
    assert summary["exit_code"] == 0, summary
    assert summary["steps"] == 4 and summary["steps_run"] == 4  # 2 chunks x ingest, silver
    got, expected = silver_tables(ranged), silver_tables(daily)
    assert set(got) == set(expected)
    for name in ("silver.suppliers", "silver.purchase_orders", "silver.goods_receipts"):
        assert expected[name], f"{name} is empty: the comparison would prove nothing"
    for name in sorted(expected):
        assert got[name] == expected[name], f"{name} differs between range and daily runs"
    # every delivered row is read and quarantined alike, whatever the grouping of days
    assert recon_totals(ranged) == recon_totals(daily)
    assert failed_rules(ranged) == failed_rules(daily)
    unbalanced = ranged.io.read("_reconciliation").where(~F.col("balanced")).count()
    assert unbalanced == 0


def test_a_killed_backfill_continues_after_its_last_recorded_step(
    both_ways: dict[str, Any], landing: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = conf_for(tmp_path, landing)
    command = [
        sys.executable,
        "-m",
        "medlake.cli",
        "run",
        "backfill",
        "--from",
        DAYS[0].isoformat(),
        "--to",
        DAYS[-1].isoformat(),
        "--plant",
        ",".join(PLANTS),
        "--entities",
        ",".join(ENTITIES),
    ]
    env = {**os.environ, "LAKEHOUSE_CONF": str(conf), "LAKEHOUSE_ENV": "test"}
    # killed after chunk 1 (2 steps) and chunk 2's ingest, with chunk 2's silver done but
    # not yet recorded: the restart must run that silver again (no gold: some entities only)
    killed = subprocess.run(
        command,
        env={**env, "LAKEHOUSE_FAILPOINT": "backfill-step", "LAKEHOUSE_FAILPOINT_SKIP": "3"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # started again (in this process: the same job the command runs, without a second JVM)
    spark = both_ways["range"].spark
    with caplog.at_level(logging.INFO, logger="medlake.backfill"):
        resumed = backfill_job.run(context(spark, conf, "backfill", DAYS))
    assert resumed["exit_code"] == 0, resumed
    assert resumed["steps_skipped"] == 3 and resumed["steps_run"] == 1, resumed
    assert "3 of 4 steps already done, continuing" in caplog.text
    check = context(spark, conf, "check", DAYS)
    progress = check.io.read("_backfill").collect()
    assert sorted((r.layer, r.date_from) for r in progress) == sorted(
        (layer, chunk[0]) for chunk in (DAYS[:2], DAYS[2:]) for layer in ("ingest", "silver")
    )
    got, expected = silver_tables(check), silver_tables(both_ways["range"])
    for name in sorted(expected):
        assert got[name] == expected[name], f"{name} differs after the kill and restart"
    assert check.io.read("_reconciliation").where(~F.col("balanced")).count() == 0
