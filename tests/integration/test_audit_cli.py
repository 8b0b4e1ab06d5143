"""The audit trail with real Spark and the real `lakehouse` command: one table, two writers."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from medlake.config import Settings, load_settings
from medlake.governance.audit import AuditEvent, AuditTrail
from medlake.io import CommitContext, TableIO
from medlake.tables import Registry
from tests.identities import Identities

LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")


@pytest.fixture
def lake(conf: Path) -> Settings:
    """Settings of the `conf` copy (tests/integration/conftest.py), as the CLI loads them."""
    return load_settings()


def _events(trail: AuditTrail, n: int) -> None:
    for i in range(n):
        trail.record(
            AuditEvent(
                action="read",
                table_name="silver.complaints",
                role="analyst_cn",
                columns=("complaint_id",),
                row_count=i,
                logical_date=dt.date(2026, 1, 5),
            )
        )


def test_spark_reads_the_trail_as_written_and_a_spark_compaction_keeps_it_intact(
    lake: Settings, spark: SparkSession
) -> None:
    trail = AuditTrail(lake)
    _events(trail, 5)
    io = TableIO(spark, lake, Registry.load(lake.conf_dir / "tables"))
    rows = [r.asDict() for r in io.read("_audit").orderBy("seq").collect()]
    expected = trail.events()
    assert [r["hash"] for r in rows] == [e["hash"] for e in expected]
    assert [r["columns"] for r in rows] == [e["columns"] for e in expected]
    assert [r["event_date"] for r in rows] == [e["event_date"] for e in expected]
    # Spark hands back naive local datetimes; the test session runs in UTC
    assert [r["event_time"] for r in rows] == [
        e["event_time"].replace(tzinfo=None) for e in expected
    ]

    io.optimize("_audit", ctx=CommitContext(job="test", run_id="optimize"))  # Spark's files now
    assert len(DeltaTable(trail.location).file_uris()) < 5
    _events(trail, 2)
    result = trail.verify()
    assert result.ok and result.checked == 7


def test_the_lakehouse_command_verifies_the_trail_quickly_and_names_a_bad_event(
    lake: Settings, identities: Identities, monkeypatch: pytest.MonkeyPatch
) -> None:
    identities.sign_in(monkeypatch, "auditor")  # the subprocesses inherit the token
    trail = AuditTrail(lake)
    _events(trail, 20)
    started = time.perf_counter()
    done = subprocess.run(
        [LAKEHOUSE, "audit", "verify"], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert f"audit trail intact: 20 events at {trail.location}" in done.stdout
    assert f"20 anchored heads checked in {lake.audit_anchor}" in done.stdout
    assert "key ids: test-1" in done.stdout  # the key itself is never printed
    assert seconds < 15, f"`lakehouse audit verify` took {seconds:.1f} s"

    shown = subprocess.run(
        [LAKEHOUSE, "audit", "show", "--last", "3", "--role", "auditor"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert [line.split()[0] for line in shown.stdout.splitlines()[1:]] == ["17", "18", "19"]

    data = sorted(Path(trail.location).glob("event_date=*/*.parquet"))
    data[0].write_bytes(b"garbage")
    broken = subprocess.run(
        [LAKEHOUSE, "audit", "verify"], capture_output=True, text=True, check=False
    )
    assert broken.returncode == 1
    assert trail.location in broken.stderr and "restore the folder from backup" in broken.stderr
    assert "Traceback" not in broken.stderr
