"""Erasure reaches every copy: after `erase`, not one byte of the subject's value is left in
any file under the lakehouse root or the landing zone (data files, Delta logs, checkpoints,
the landing files in their own encodings), and every other row reconciles unchanged.

A day of the simulator's deliveries for Shenzhen (GB18030 CSV, China's vault) and Minneapolis
(Parquet, the United States' vault) is ingested and built into silver; one delivered person
of each is erased. The values are chosen by the test from the delivered files and the
vaults, and the scan is over bytes (in UTF-8, GB18030, UTF-16 and JSON escapes) plus the
decoded text of every Parquet file, whatever table or folder it belongs to."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from medlake.governance.audit import AuditTrail
from medlake.governance.subjects import erase, reidentify
from medlake.jobs import ingest as ingest_job
from medlake.jobs import silver as silver_job
from medlake_simulator.generate import generate
from tests.identities import as_role
from tests.silver.jobs import job_context

DAY = dt.date(2026, 3, 2)
PLANTS = ["SZ", "MN"]
PURPOSE = "DSR-2026-0107: erasure request of a customer contact"
TOMBSTONE = "[erased]"
# the silver entities that hold people (contacts, operators, narratives): what fills the vaults
PERSONAL_ENTITIES = ["customers", "suppliers", "operators", "complaints", "service_orders"]


def forms(value: str) -> list[bytes]:
    """The byte forms a text can take in the files: UTF-8, GB18030, UTF-16 and JSON escapes."""
    out = {value.encode("utf-8"), value.encode("utf-16-le"), json.dumps(value)[1:-1].encode()}
    with contextlib.suppress(UnicodeEncodeError):
        out.add(value.encode("gb18030"))
    return sorted(out)


def files_holding(roots: list[Path], value: str) -> list[str]:
    found = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            raw = path.read_bytes()
            hit = any(form in raw for form in forms(value))
            if not hit and path.suffix == ".parquet":
                rows = pq.read_table(path).to_pylist()
                hit = value in json.dumps(rows, ensure_ascii=False, default=str)
            if hit:
                found.append(str(path))
    return found


def table_rows(spark: SparkSession, lake: Path) -> dict[str, Counter[str]]:
    """Every Delta table under the lake as a multiset of JSON rows (checksums left out: they
    change with the rewritten files and are checked on their own)."""
    out = {}
    for log in sorted(lake.rglob("_delta_log")):
        table = log.parent
        if table.name.startswith("_vault") or table.name == "_audit":
            continue
        rows = DeltaTable(str(table)).to_pyarrow_table().to_pylist()
        for row in rows:
            for column in ("_file_sha256", "file_sha256", "sha256"):
                row.pop(column, None)
        out[str(table.relative_to(lake))] = Counter(
            json.dumps(r, sort_keys=True, ensure_ascii=False, default=str) for r in rows
        )
    return out


@pytest.fixture(scope="module")
def delivered(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("erasure")
    landing, lake = root / "landing", root / "lake"
    generate(landing, start=DAY, days=1, scale=0.2, seed=11, progress=False)
    shutil.move(landing / "_truth", root / "truth")  # the simulator's answer key, not a delivery
    for plant in [p.name for p in landing.iterdir() if p.name not in PLANTS]:
        shutil.rmtree(landing / plant)
    ingest_job.run(job_context(spark, lake, landing, "ingest", [DAY], plants=PLANTS))
    ctx = job_context(
        spark, lake, landing, "silver", [DAY], plants=PLANTS, entities=PERSONAL_ENTITIES
    )
    silver_job.run(ctx)
    return {"root": root, "landing": landing, "lake": lake, "ctx": ctx}


def subject(ctx: Any, lake: Path, landing: Path, vault: str, plant: str) -> tuple[str, str]:
    """The vaulted person (token, value) delivered most often in the plant's files."""
    rows = DeltaTable(str(lake / "_system" / vault)).to_pyarrow_table().to_pylist()
    names = [r for r in rows if r["entity_type"] == "PERSON" and len(r["value"]) >= 3]
    texts = []
    for path in sorted((landing / plant).rglob("*")):
        if path.suffix == ".parquet":
            rows = pq.read_table(path).to_pylist()
            texts.append(json.dumps(rows, ensure_ascii=False, default=str))
        elif path.is_file():
            texts.append(path.read_bytes().decode("gb18030" if plant == "SZ" else "utf-8"))
    best = max(names, key=lambda r: (sum(t.count(r["value"]) for t in texts), r["value"]))
    assert sum(t.count(best["value"]) for t in texts) >= 1
    return best["token"], best["value"]


def test_erasure_leaves_no_byte_of_the_subject_and_every_other_row_unchanged(
    spark: SparkSession, delivered: dict[str, Any]
) -> None:
    ctx, lake, landing = delivered["ctx"], delivered["lake"], delivered["landing"]
    subjects = [
        subject(ctx, lake, landing, "_vault_cn", "SZ"),
        subject(ctx, lake, landing, "_vault_us", "MN"),
    ]
    for _token, value in subjects:  # the copies exist before: the scan can find them
        held = files_holding([lake, landing], value)
        assert any("/bronze/" in f for f in held), held
        assert any(str(landing) in f for f in held), held
    before = table_rows(spark, lake)

    # a file that reads neither in the plant's encoding nor as UTF-8: not guessed at, and
    # the vault row stays, so that erase can finish once the file is fixed
    (cn_token, cn_value), _ = subjects
    broken = landing / "SZ" / DAY.isoformat() / "notes.txt"
    broken.write_bytes(b"\x80\xff " + cn_value.encode("gb18030"))
    first = erase(ctx.settings, who=as_role("data_steward"), token=cn_token, purpose=PURPOSE)
    assert first.unreadable == (f"SZ/{DAY.isoformat()}/notes.txt",) and first.vault_rows == 0
    assert first.landing_files and "NOT finished" in first.summary()
    kept = reidentify(ctx.settings, who=as_role("data_steward"), token=cn_token, purpose=PURPOSE)
    assert kept.value == cn_value
    broken.write_bytes(f"备注 {cn_value}\n".encode("gb18030"))  # re-delivered readable

    results = [
        erase(ctx.settings, who=as_role("data_steward"), token=token, purpose=PURPOSE)
        for token, _value in subjects
    ]
    assert f"SZ/{DAY.isoformat()}/notes.txt" in {r.relative for r in results[0].landing_files}
    # the files the first, unfinished run rewrote are still known (journal): their new
    # checksums reach the manifest below
    assert {r.relative for r in first.landing_files} <= {
        r.relative for r in results[0].landing_files
    }

    for (token, value), result in zip(subjects, results, strict=True):
        assert result.vault_rows == 1 and result.landing_files
        # the tables of the Chinese subject were swept by the first, unfinished run
        assert result.tables or (token == cn_token and first.tables)
        assert files_holding([lake, landing], value) == [], value
        after = reidentify(ctx.settings, who=as_role("data_steward"), token=token, purpose=PURPOSE)
        assert after.value is None
    # every other row reconciles: each table holds the same rows, but for the erased values
    after_rows = table_rows(spark, lake)
    assert sorted(after_rows) == sorted(before)
    for table, rows in before.items():
        expected: Counter[str] = Counter()
        for row, n in rows.items():
            erased = row
            for _token, value in subjects:
                erased = erased.replace(json.dumps(value, ensure_ascii=False)[1:-1], TOMBSTONE)
            expected[erased] += n
        assert after_rows[table] == expected, table
    # the rewritten landing files are vouched for by the manifest: a new ingest skips them
    manifest = DeltaTable(str(lake / "_system" / "_bronze_manifest")).to_pyarrow_table()
    shas = {r["source_file"]: r["sha256"] for r in manifest.to_pylist()}
    delivered = [r for result in results for r in result.landing_files if r.relative in shas]
    assert len(delivered) >= 2  # notes.txt came after the ingest: not in the manifest
    for rewritten in delivered:
        now = hashlib.sha256((landing / rewritten.relative).read_bytes()).hexdigest()
        assert shas[rewritten.relative] == now == rewritten.new_sha256
    again = ingest_job.run(job_context(spark, lake, landing, "ingest", [DAY], plants=PLANTS))
    assert (again["files_ingested"], again["rows_ingested"]) == (0, 0)
    # audited: the erasures with what they changed, and each purge with its retention override
    events = AuditTrail(ctx.settings).events()
    erasures = [json.loads(e["details"]) for e in events if e["action"] == "erase"]
    assert [e["token"] for e in erasures] == [cn_token] + [t for t, _ in subjects]
    assert erasures[0]["unreadable_landing_files"] and not erasures[0]["purged_tables"]
    assert erasures[0]["table_rows"] and erasures[2]["table_rows"]
    assert all(e["landing_files"] for e in erasures)
    runs = {e["run_id"] for e in events if e["action"] == "erase"}
    purges = [e for e in events if e["action"] == "vacuum" and e["run_id"] in runs]
    assert {e["table_name"] for e in purges} >= {"_vault_cn", "_vault_us", "_bronze_manifest"}
    assert all(json.loads(e["details"])["retention_hours"] == 0 for e in purges)
    assert AuditTrail(ctx.settings).verify().ok
