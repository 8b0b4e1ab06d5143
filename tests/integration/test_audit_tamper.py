"""Tampering with a real `_audit` table on disk, by someone who can rewrite its files and its
Delta log but has no audit key: every case is caught by `lakehouse audit verify`, and stays
caught after later events; plus key rotation, missing keys and the maintenance events.

The attacker knows the published algorithm of the old trail (SHA-256 over the canonical JSON
of every other column) and recomputes the chain with it, or with a key of their own.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import SparkSession

from medlake.cli.governance import add_audit_cli
from medlake.config import Settings, load_settings
from medlake.governance import audit
from medlake.io import CommitContext, TableIO
from medlake.tables import Registry

Row = dict[str, Any]
TEST_KEY = os.environ["LAKEHOUSE_AUDIT_KEY"]  # tests/conftest.py (id test-1)


# ----------------------------------------------------------------------------- helpers


def _event(n: int, action: str = "read") -> audit.AuditEvent:
    return audit.AuditEvent(
        action=action,
        table_name="_vault_eu" if action.startswith("reidentify") else "silver.complaints",
        role="data_steward",
        purpose=f"case {n}",
        row_count=n,
        details={"token": f"PERSON_eu_{n:04x}"},
    )


def _trail_of(settings: Settings, n: int, reidentify_at: int = 2) -> audit.AuditTrail:
    """`n` events, one record call each; the one at `reidentify_at` a re-identification."""
    trail = audit.AuditTrail(settings)
    for i in range(n):
        trail.record(_event(i, "reidentify" if i == reidentify_at else "read"))
    return trail


def _text(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _body(row: Row) -> bytes:
    body = {k: _text(v) for k, v in row.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(row: Row) -> str:
    """The published algorithm of the unkeyed trail."""
    return hashlib.sha256(_body(row)).hexdigest()


def _keyed(key: bytes) -> Callable[[Row], str]:
    return lambda row: hmac.new(key, _body(row), hashlib.sha256).hexdigest()


def _rechain(rows: list[Row], start: int, mac: Callable[[Row], str] = _sha256) -> None:
    """Renumber, re-link and re-hash every row from `start`, times kept in order."""
    for i in range(start, len(rows)):
        rows[i]["seq"] = i
        rows[i]["prev_hash"] = "0" * 64 if i == 0 else rows[i - 1]["hash"]
        if i and rows[i]["event_time"] < rows[i - 1]["event_time"]:
            rows[i]["event_time"] = rows[i - 1]["event_time"]
        rows[i]["hash"] = mac(rows[i])


def _overwrite(trail: audit.AuditTrail, rows: list[Row]) -> None:
    schema = pa.schema(DeltaTable(trail.location).schema().to_arrow())
    write_deltalake(trail.location, pa.Table.from_pylist(rows, schema=schema), mode="overwrite")


def _rewrite_log_heads(trail: audit.AuditTrail, rows: list[Row]) -> int:
    """Edit the commitInfo of every audit append in the Delta log JSON files so that the head
    it recorded is the forged row at that seq (or the forged tail when it is shorter)."""
    edited = 0
    for path in sorted(Path(trail.location, "_delta_log").glob("*.json")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            action = json.loads(line)
            info = action.get("commitInfo")
            if info is None or "audit_head_seq" not in info:
                continue
            seq = min(int(info["audit_head_seq"]), len(rows) - 1)
            info["audit_head_seq"] = str(seq)
            info["audit_head_hash"] = rows[seq]["hash"]
            lines[i] = json.dumps(action)
            edited += 1
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return edited


def _forge(trail: audit.AuditTrail, change: Callable[[list[Row]], int]) -> list[Row]:
    """Apply `change` (returns the first seq it touched), recompute the chain from there with
    SHA-256, rewrite the table and the heads in its Delta log."""
    rows = trail.events()
    start = change(rows)
    _rechain(rows, start)
    _overwrite(trail, rows)
    assert _rewrite_log_heads(trail, rows) > 0
    return rows


def _verify_cli(settings: Settings, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="lakehouse")
    add_audit_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["audit", "verify"])
    code = int(args.func(args, settings))
    out = capsys.readouterr()
    return code, out.out + out.err


def _later_event(settings: Settings) -> None:
    """An ordinary audited command: it appends to the trail (or refuses to, on a forgery)."""
    with contextlib.suppress(audit.AuditTrailError):
        audit.AuditTrail(settings).record(_event(99))


# ----------------------------------------------------------------------------- the finding


def test_a_forged_refusal_rechained_with_sha256_stays_detected_after_an_ordinary_command(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user's finding: reidentify -> reidentify_refused, hashes recomputed; before the
    fix, the next audited command recorded the forged head in the Delta log and verify
    reported the chain intact."""
    trail = _trail_of(settings, 5)

    def refuse(rows: list[Row]) -> int:
        assert rows[2]["action"] == "reidentify"
        rows[2]["action"] = "reidentify_refused"
        return 2

    rows = trail.events()
    refuse(rows)
    _rechain(rows, 2)
    _overwrite(trail, rows)
    assert not trail.verify().ok
    _later_event(settings)  # the command that laundered the forgery before the fix
    _later_event(settings)
    result = audit.AuditTrail(settings).verify()
    assert not result.ok
    assert (result.position, result.first_bad) == (2, rows[2]["event_id"])
    assert "MAC mismatch" in str(result.reason)
    code, out = _verify_cli(settings, capsys)
    assert code == 1 and "event 2" in out and "MAC mismatch" in out
    with pytest.raises(audit.AuditTrailError, match="nothing was appended"):
        audit.AuditTrail(settings).record(_event(100))  # never chained onto a forged head
    assert len(audit.AuditTrail(settings).events()) == 5


def test_rewriting_the_head_hash_in_the_delta_log_json_does_not_hide_a_forgery(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = _trail_of(settings, 5)

    def edit(rows: list[Row]) -> int:
        rows[1]["purpose"] = "routine check"
        return 1

    rows = _forge(trail, edit)
    log_heads = [c for c in DeltaTable(trail.location).history() if "audit_head_seq" in c]
    assert log_heads[0]["audit_head_hash"] == rows[int(log_heads[0]["audit_head_seq"])]["hash"]
    result = trail.verify()
    assert not result.ok and result.position == 1 and "MAC mismatch" in str(result.reason)
    _later_event(settings)
    code, out = _verify_cli(settings, capsys)
    assert code == 1 and "event 1" in out


@pytest.mark.parametrize(
    "case",
    ["edited", "deleted", "reordered", "inserted"],
)
def test_an_edited_deleted_reordered_or_inserted_entry_rechained_with_sha256_is_caught(
    settings: Settings, case: str
) -> None:
    trail = _trail_of(settings, 6)
    original = trail.events()

    def change(rows: list[Row]) -> int:
        if case == "edited":
            rows[3]["row_count"] = 0
        elif case == "deleted":
            del rows[3]
        elif case == "reordered":
            rows[3], rows[4] = rows[4], rows[3]
            rows[3]["event_time"], rows[4]["event_time"] = (
                rows[4]["event_time"],
                rows[3]["event_time"],
            )
        else:  # an invented event between 2 and 3
            rows.insert(3, dict(rows[2], event_id="invented", action="erase", purpose="DSR-1"))
        return 3

    _forge(trail, change)
    _later_event(settings)
    result = audit.AuditTrail(settings).verify()
    assert not result.ok
    assert result.position == 3 and "MAC mismatch" in str(result.reason)
    if case != "inserted":
        assert result.first_bad != original[3]["event_id"] or case == "edited"


def test_a_truncated_tail_is_caught_through_the_anchor(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last two events are removed and the Delta log's heads edited to the new end: the
    remaining events all verify, only the anchor outside the lakehouse knows better."""
    trail = _trail_of(settings, 6)
    rows = trail.events()[:4]
    _overwrite(trail, rows)
    _rewrite_log_heads(trail, rows)
    _later_event(settings)  # refused: the anchor recorded a later head
    result = audit.AuditTrail(settings).verify()
    assert not result.ok and result.position == 4 and result.first_bad is None
    assert "the trail ends at event 3" in str(result.reason)
    assert "events 4..5 are missing" in str(result.reason)
    assert str(settings.audit_anchor) in str(result.reason)
    code, out = _verify_cli(settings, capsys)
    assert code == 1 and "removed from the end" in out


def test_two_trails_may_share_one_anchor_file(tmp_path: Path) -> None:
    """Two lakehouses (say test and production on one host) anchoring in the same file: each
    checks only its own heads, so neither refuses to append because of the other's."""
    shared = {"audit": {"anchor": str(tmp_path / "worm" / "anchor.jsonl")}}
    first, second = (
        load_settings("test", overrides={"storage": {"root": str(tmp_path / n)}, **shared})
        for n in ("lake-a", "lake-b")
    )
    _trail_of(first, 2)
    _trail_of(second, 3)
    audit.AuditTrail(first).record(_event(9))
    for settings in (first, second):
        result = audit.AuditTrail(settings).verify()
        assert result.ok, result.reason
    assert audit.AuditTrail(first).verify().checked == 3


def test_a_line_cut_short_by_an_interrupted_write_does_not_block_the_trail(
    settings: Settings,
) -> None:
    """A full disk stopped an anchor write half-way: that line holds no head, the next append
    ends it and carries on, and verify still checks every complete line."""
    trail = _trail_of(settings, 2)
    with settings.audit_anchor.open("ab") as handle:
        handle.write(b'{"seq": 2, "event_id": "cut')
    audit.AuditTrail(settings).record(_event(5))
    result = audit.AuditTrail(settings).verify()
    assert result.ok and result.checked == 3, result.reason
    assert trail.anchor.last() is not None
    assert settings.audit_anchor.read_bytes().count(b"\n") == 5  # genesis, 3 heads, the cut


def test_a_chain_rebuilt_with_a_wrong_key_is_caught(settings: Settings) -> None:
    trail = _trail_of(settings, 4)
    rows = trail.events()
    rows[2]["action"] = "reidentify_refused"
    _rechain(rows, 0, _keyed(hashlib.sha256(b"a key of the attacker's own").digest()))
    _overwrite(trail, rows)
    _rewrite_log_heads(trail, rows)
    result = trail.verify()
    assert not result.ok and result.position == 0
    assert "recomputed without the audit key 'test-1' (MAC mismatch)" in str(result.reason)


def test_an_anchor_missing_emptied_or_edited_is_reported(settings: Settings) -> None:
    trail = _trail_of(settings, 3)
    anchor = settings.audit_anchor
    assert not anchor.is_relative_to(Path(settings.storage_root))
    lines = anchor.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4  # genesis + one head per record call
    assert [json.loads(line)["seq"] for line in lines] == [-1, 0, 1, 2]

    edited = json.loads(lines[2])
    edited["mac"] = trail.events()[1]["hash"][::-1]
    anchor.write_text("\n".join([*lines[:2], json.dumps(edited), *lines[3:]]) + "\n")
    result = trail.verify()
    assert not result.ok and "line 3 of the audit anchor" in str(result.reason)
    assert "MAC mismatch" in str(result.reason)

    anchor.write_text("", encoding="utf-8")
    result = trail.verify()
    assert not result.ok and "holds no head but the trail holds 3 events" in str(result.reason)
    anchor.unlink()
    result = trail.verify()
    assert not result.ok and "does not exist but the trail holds 3 events" in str(result.reason)
    with pytest.raises(audit.AuditTrailError, match="missing or empty"):
        trail.record(_event(9))


def test_an_intact_trail_says_what_verify_checked(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = _trail_of(settings, 3)
    result = trail.verify()
    assert (result.ok, result.checked, result.anchored, result.key_ids) == (
        True,
        3,
        3,
        ("test-1",),
    )
    code, out = _verify_cli(settings, capsys)
    assert code == 0
    assert f"audit trail intact: 3 events at {trail.location}" in out
    assert (
        "key ids: test-1" in out and f"3 anchored heads checked in {settings.audit_anchor}" in out
    )
    assert TEST_KEY not in out


# ----------------------------------------------------------------------------- keys


def _secrets(tmp_path: Path, current: str, keys: dict[str, str]) -> Path:
    path = tmp_path / "secrets.yaml"
    path.write_text(yaml.safe_dump({"audit_keys": {"current": current, "keys": keys}}))
    return path


def test_key_rotation_is_recorded_and_old_entries_keep_verifying(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _trail_of(settings, 2)
    new_key = hashlib.sha256(b"the next audit key").hexdigest()
    monkeypatch.delenv("LAKEHOUSE_AUDIT_KEY")
    monkeypatch.delenv("LAKEHOUSE_AUDIT_KEY_ID")
    secrets = _secrets(tmp_path, "2026-07", {"test-1": TEST_KEY, "2026-07": new_key})
    monkeypatch.setenv("LAKEHOUSE_SECRETS_FILE", str(secrets))
    trail = audit.AuditTrail(settings)
    trail.record(_event(7))
    events = trail.events()
    assert [(e["action"], e["key_id"]) for e in events[2:]] == [
        ("key_rotation", "2026-07"),
        ("read", "2026-07"),
    ]
    assert json.loads(events[2]["details"]) == {"from_key_id": "test-1", "to_key_id": "2026-07"}
    result = trail.verify()
    assert result.ok and result.key_ids == ("2026-07", "test-1") and result.checked == 4
    trail.record(_event(8))  # no second rotation event
    assert [e["action"] for e in trail.events()].count("key_rotation") == 1

    _secrets(tmp_path, "2026-07", {"2026-07": new_key})  # the old key was dropped
    result = audit.AuditTrail(settings).verify()
    assert not result.ok and result.position == 0
    assert "audit key id 'test-1', which is not in the secret store" in str(result.reason)
    assert "audit_keys: keys:" in str(result.reason)


def test_without_an_audit_key_nothing_is_written_and_the_error_says_where_to_put_one(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LAKEHOUSE_AUDIT_KEY")
    monkeypatch.delenv("LAKEHOUSE_SECRETS_FILE", raising=False)
    from medlake.governance.keys import SecretError

    with pytest.raises(SecretError) as caught:
        audit.AuditTrail(settings)
    message = str(caught.value)
    assert "no audit key" in message and "$LAKEHOUSE_AUDIT_KEY" in message
    assert "audit_keys:" in message and "token_hex(32)" in message
    assert not Path(settings.storage_root, "system").exists()
    monkeypatch.setenv("LAKEHOUSE_AUDIT_KEY", "0x" + "ab" * 32)
    with pytest.raises(SecretError, match="drop the 0x prefix") as bad:
        audit.AuditTrail(settings)
    assert "ab" * 32 not in str(bad.value)
    monkeypatch.setenv("LAKEHOUSE_AUDIT_KEY", "ab" * 8)
    with pytest.raises(SecretError, match="has 8 bytes; at least 32"):
        audit.AuditTrail(settings)


# ----------------------------------------------------------------------------- maintenance


def _lake(tmp_path: Path) -> Registry:
    folder = tmp_path / "tables"
    folder.mkdir()
    columns = [
        {"name": "plant_id", "type": "string", "nullable": False, "description": "Plant"},
        {"name": "n", "type": "bigint", "description": "A number"},
    ]
    table = {
        "name": "silver.things",
        "layer": "silver",
        "description": "Things, for the maintenance events.",
        "owner": "tests",
        "partition_by": ["plant_id"],
        "schema_evolution": "additive",
        "columns": columns,
    }
    (folder / "t.yaml").write_text(yaml.safe_dump({"tables": [table]}))
    return Registry.load(folder)


def _widened(tmp_path: Path) -> Registry:
    path = tmp_path / "tables" / "t.yaml"
    data = yaml.safe_load(path.read_text())
    data["tables"][0]["columns"].append({"name": "note", "type": "string", "description": "x"})
    path.write_text(yaml.safe_dump(data))
    return Registry.load(tmp_path / "tables")


def test_optimize_vacuum_schema_change_and_restore_are_audited_with_their_details(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    registry = _lake(tmp_path)
    trail = audit.AuditTrail(settings)
    auditor = audit.write_auditor(trail, "svc-maintenance")
    io = TableIO(spark, settings, registry, on_write=auditor)
    ctx = CommitContext(job="maintenance", run_id="r1", logical_date=dt.date(2026, 1, 5))
    schema = registry.get("silver.things").spark_schema
    for n in range(3):
        io.append("silver.things", spark.createDataFrame([("SZ", n)], schema), ctx=ctx)

    optimized = io.optimize("silver.things", ctx=ctx)
    restored = io.restore("silver.things", version=1, ctx=ctx)  # the first append's file
    io.vacuum("silver.things", retention_hours=0, ctx=ctx)
    io.vacuum("silver.things", retention_hours=0, dry_run=True, ctx=ctx)  # not audited
    wide = _widened(tmp_path)
    io2 = TableIO(spark, settings, wide, on_write=audit.write_auditor(trail, "svc-maintenance"))
    row = spark.createDataFrame([("SZ", 9, "x")], wide.get("silver.things").spark_schema)
    io2.append("silver.things", row, ctx=ctx)

    events = [e for e in trail.events() if e["table_name"] == "silver.things"]
    actions = [e["action"] for e in events]
    assert actions == [*["write"] * 3, "optimize", "restore", "vacuum", "schema_change", "write"]
    assert {e["principal"] for e in events} == {"svc-maintenance"}
    assert {e["run_id"] for e in events} == {"r1"}
    found = {e["action"]: (e["table_version"], json.loads(e["details"])) for e in events[3:7]}
    assert found["optimize"] == (
        optimized.version,
        {"files_removed": 3, "files_added": optimized.files_added, "target_mb": 128},
    )
    _, vacuum = found["vacuum"]
    assert vacuum["retention_hours"] == 0 and vacuum["configured_retention_hours"] == 168
    assert vacuum["below_configured_retention"] is True
    # the files of appends 2 and 3 and the optimized file: none is in the restored version
    assert vacuum["files_removed"] == 3 == len(vacuum["removed"])
    version, details = found["restore"]
    assert version == restored.version == optimized.version + 1
    assert details["restored_version"] == 1 and details["previous_version"] == version - 1
    assert found["schema_change"][1] == {"columns_added": ["note string"]}
    final = DeltaTable(io.location("silver.things")).version()
    assert found["schema_change"][0] == final - 1 and events[-1]["table_version"] == final
    assert trail.verify().ok


def test_the_table_restore_command_restores_and_audits_and_refuses_the_audit_trail(
    conf: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlake.cli import main
    from medlake.config import load_settings
    from medlake.io.arrow import ArrowTable

    settings = load_settings()
    table = ArrowTable(settings, "_bronze_manifest")
    snapshot = table.snapshot(create=True)
    assert snapshot is not None
    row = {
        "plant_id": "SZ",
        "delivery_date": dt.date(2026, 1, 5),
        "entity": "erp__orders",
        "source_file": "SZ/2026-01-05/orders.csv",
        "status": "missing",
        "run_id": "r1",
        "recorded_at": dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
    }
    snapshot.append([row], metadata={})
    assert main(["table", "restore", "_bronze_manifest", "--version", "0"]) == 0
    assert "restored version 0 as version 2 (was 1); audited" in capsys.readouterr().out
    restores = [e for e in audit.AuditTrail(settings).events() if e["action"] == "restore"]
    assert [(e["table_name"], e["table_version"]) for e in restores] == [("_bronze_manifest", 2)]
    assert main(["table", "restore", "_audit", "--version", "0"]) == 2
    assert "would cut it short" in capsys.readouterr().err
