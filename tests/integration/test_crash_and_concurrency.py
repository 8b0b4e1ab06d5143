"""Crash consistency and concurrent writers, with real separate writer processes."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from medlake.io import CommitContext, TableIO
from tests import REPO

pytestmark = pytest.mark.slow
TABLE = "silver.orders"


def start_writer(
    root: str, mode: str, start: int, count: int, plant: str = "SZ", **env: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.writer_process",
            "--root",
            root,
            "--mode",
            mode,
            "--start",
            str(start),
            "--count",
            str(count),
            "--plant",
            plant,
        ],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def seed(spark: SparkSession, io: TableIO, count: int = 100) -> int:
    frame = spark.range(count).selectExpr(
        "'SZ' AS plant_id",
        "id AS order_id",
        "1 AS version",
        "CAST(id AS DOUBLE) AS qty",
        "CAST(id AS DECIMAL(18,4)) AS amount",
        "TIMESTAMP'2026-03-01 08:00:00' AS ordered_at",
        "DATE'2026-03-01' AS order_date",
        "CAST(NULL AS STRING) AS note",
    )
    ctx = CommitContext(job="seed", run_id="seed", logical_date=dt.date(2026, 3, 1))
    return io.append(TABLE, frame, ctx=ctx).version


def parquet_on_disk(location: str) -> set[str]:
    root = Path(location)
    return {
        str(p.relative_to(root)) for p in root.rglob("*.parquet") if "_delta_log" not in p.parts
    }


def files_in_log(location: str) -> set[str]:
    root = Path(location)
    return {str(Path(uri).relative_to(root)) for uri in DeltaTable(location).file_uris()}


def order_ids(io: TableIO) -> list[int]:
    return sorted(r.order_id for r in io.read(TABLE).select("order_id").collect())


@pytest.mark.parametrize("point", ["staged", "published"])
def test_when_writer_is_killed_before_commit_then_table_keeps_last_version_and_vacuum_cleans(
    spark: SparkSession, io: TableIO, point: str
) -> None:
    version = seed(spark, io)
    location = io.location(TABLE)
    writer = start_writer(io.settings.storage_root, "append", 1000, 5000, LAKEHOUSE_FAILPOINT=point)
    writer.communicate(timeout=300)
    assert writer.returncode == -signal.SIGKILL

    assert DeltaTable(location).version() == version
    assert order_ids(io) == list(range(100))
    orphans = parquet_on_disk(location) - files_in_log(location)
    assert orphans, "the killed writer should have left uncommitted files behind"

    io.vacuum(TABLE, retention_hours=0)
    assert parquet_on_disk(location) == files_in_log(location)
    assert not any(Path(location, "_staging").glob("*"))
    assert order_ids(io) == list(range(100))


def test_when_writer_is_killed_after_commit_then_the_write_is_complete(
    spark: SparkSession, io: TableIO
) -> None:
    version = seed(spark, io)
    location = io.location(TABLE)
    writer = start_writer(
        io.settings.storage_root, "append", 1000, 500, LAKEHOUSE_FAILPOINT="committed"
    )
    writer.communicate(timeout=300)
    assert writer.returncode == -signal.SIGKILL
    assert DeltaTable(location).version() == version + 1
    assert order_ids(io) == [*range(100), *range(1000, 1500)]
    io.vacuum(TABLE, retention_hours=0)
    assert parquet_on_disk(location) == files_in_log(location)
    assert order_ids(io) == [*range(100), *range(1000, 1500)]


def test_when_writer_is_killed_during_the_spark_write_then_nothing_is_visible(
    spark: SparkSession, io: TableIO
) -> None:
    version = seed(spark, io)
    location = io.location(TABLE)
    writer = start_writer(io.settings.storage_root, "append", 1000, 6_000_000)
    staging = Path(location, "_staging")
    deadline = time.monotonic() + 240
    while not any(staging.rglob("*")) and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(writer.pid, signal.SIGKILL)
    writer.communicate(timeout=60)
    assert writer.returncode == -signal.SIGKILL, "writer finished before it could be killed"

    assert DeltaTable(location).version() == version
    assert order_ids(io) == list(range(100))
    io.vacuum(TABLE, retention_hours=0)
    assert parquet_on_disk(location) == files_in_log(location)
    assert order_ids(io) == list(range(100))


def _race(
    io: TableIO, mode: str, tmp_path: Path, plants: tuple[str, str] = ("SZ", "SZ")
) -> list[tuple[int, str]]:
    """Two writers that both read the same version, then commit at the same moment."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {"LAKEHOUSE_BARRIER": "published", "LAKEHOUSE_BARRIER_DIR": str(barrier)}
    writers = [
        start_writer(io.settings.storage_root, mode, 1000, 50, plants[0], **env),
        start_writer(io.settings.storage_root, mode, 2000, 70, plants[1], **env),
    ]
    deadline = time.monotonic() + 240
    while len(list(barrier.glob("ready.*"))) < 2:
        assert time.monotonic() < deadline, "writers never reached the commit point"
        assert all(w.poll() is None for w in writers), [w.communicate() for w in writers]
        time.sleep(0.05)
    (barrier / "go").touch()
    errors = [w.communicate(timeout=120)[1] for w in writers]
    return [(w.returncode, err) for w, err in zip(writers, errors, strict=True)]


def test_when_two_processes_append_at_once_then_both_land(
    spark: SparkSession, io: TableIO, tmp_path: Path
) -> None:
    version = seed(spark, io)
    writers = _race(io, "append", tmp_path)
    assert [code for code, _ in writers] == [0, 0], writers
    assert DeltaTable(io.location(TABLE)).version() == version + 2
    assert order_ids(io) == [*range(100), *range(1000, 1050), *range(2000, 2070)]


def test_when_two_processes_overwrite_at_once_then_one_fails_with_a_conflict(
    spark: SparkSession, io: TableIO, tmp_path: Path
) -> None:
    version = seed(spark, io)
    writers = _race(io, "overwrite", tmp_path)
    codes = [code for code, _ in writers]
    assert sorted(codes) == [0, 3], writers
    loser_stderr = writers[codes.index(3)][1]
    assert f"{TABLE}: another writer committed after version {version}" in loser_stderr
    winner = codes.index(0)
    expected = list(range(1000, 1050)) if winner == 0 else list(range(2000, 2070))
    assert DeltaTable(io.location(TABLE)).version() == version + 1
    assert order_ids(io) == expected
    # the loser removed its own files: what is on disk but not in the log is exactly
    # what the winning overwrite replaced (kept for time travel until vacuum)
    location = io.location(TABLE)
    assert parquet_on_disk(location) - files_in_log(location) == _removed_by_overwrite(io)


def test_when_two_processes_replace_different_plants_at_once_then_both_land(
    spark: SparkSession, io: TableIO, tmp_path: Path
) -> None:
    version = seed(spark, io)  # plant SZ, ids 0..99
    writers = _race(io, "replace", tmp_path, plants=("GW", "PN"))
    assert [code for code, _ in writers] == [0, 0], writers
    assert DeltaTable(io.location(TABLE)).version() == version + 2
    by_plant = {
        plant: sorted(r.order_id for r in io.read(TABLE).where(f"plant_id = '{plant}'").collect())
        for plant in ("SZ", "GW", "PN")
    }
    assert by_plant == {
        "SZ": list(range(100)),
        "GW": list(range(1000, 1050)),
        "PN": list(range(2000, 2070)),
    }


@pytest.mark.parametrize("plant", ["SZ", "GW"], ids=["existing-partition", "new-partition"])
def test_when_two_processes_replace_the_same_plant_at_once_then_one_fails_with_a_conflict(
    spark: SparkSession, io: TableIO, tmp_path: Path, plant: str
) -> None:
    version = seed(spark, io)  # plant SZ only: GW is a partition neither writer has seen
    writers = _race(io, "replace", tmp_path, plants=(plant, plant))
    codes = [code for code, _ in writers]
    assert sorted(codes) == [0, 3], writers
    winner = list(range(1000, 1050)) if codes[0] == 0 else list(range(2000, 2070))
    assert DeltaTable(io.location(TABLE)).version() == version + 1
    rows = io.read(TABLE).where(f"plant_id = '{plant}'").select("order_id").collect()
    assert sorted(r.order_id for r in rows) == winner


def _removed_by_overwrite(io: TableIO) -> set[str]:
    """Files the winning overwrite removed from the log (still on disk until vacuum)."""
    location = io.location(TABLE)
    table = DeltaTable(location)
    table.load_as_version(table.version() - 1)
    return {str(Path(uri).relative_to(location)) for uri in table.file_uris()}
