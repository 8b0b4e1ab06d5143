"""The audit trail: MAC chain, one commit per record, tamper detection, concurrency, CLI.

The tamper cases an attacker without the key tries are in tests/integration/test_audit_tamper.py."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import hmac
import itertools
import json
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest
from deltalake import DeltaTable, Schema, write_deltalake

from medlake.cli import build_parser
from medlake.cli.governance import add_audit_cli as add_cli
from medlake.config import DEFAULT_CONF_DIR, Settings, load_settings
from medlake.governance import audit
from medlake.governance.audit import (
    GENESIS,
    AuditEvent,
    AuditTrail,
    AuditTrailError,
    Verification,
    current_principal,
    event_mac,
)
from medlake.governance.identity import AuthError, os_user
from medlake.io import TableConflictError, TableIO
from medlake.io.arrow import ArrowTable, Snapshot, read_table
from medlake.tables import Registry
from tests.identities import TWO_ROLES, Identities

CONF = DEFAULT_CONF_DIR
Row = dict[str, Any]


@pytest.fixture(autouse=True)
def _no_stray_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEHOUSE_PRINCIPAL", raising=False)


# ----------------------------------------------------------------------------- helpers


def _read(n: int, **kw: Any) -> AuditEvent:
    return AuditEvent(
        action="read",
        table_name="silver.complaints",
        role="analyst_cn",
        columns=("complaint_id", "narrative"),
        row_filter="plant_id IN ('SZ')",
        purpose="monthly complaint KPIs",
        row_count=n,
        details={"via": "sql", "n": n},
        **kw,
    )


def _trail_of(settings: Settings, n: int) -> AuditTrail:
    """A trail of `n` events, each recorded on its own (distinct, increasing times)."""
    trail = AuditTrail(settings)
    for i in range(n):
        trail.record(_read(i))
    return trail


KEY = bytes.fromhex(os.environ["LAKEHOUSE_AUDIT_KEY"])  # tests/conftest.py, key id test-1


def event_hash(row: Row) -> str:
    """An insider's re-MAC with the real key (the cases without the key: test_audit_tamper)."""
    return event_mac(row, KEY)


def _expected_hash(row: Row) -> str:
    """The documented canonical form and HMAC, computed independently of the audit module."""

    def fmt(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    body = {k: fmt(v) for k, v in row.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(KEY, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _rechain(rows: list[Row], start: int) -> None:
    """What an attacker who knows the algorithm does: renumber and re-hash from `start`."""
    for i in range(start, len(rows)):
        rows[i]["seq"] = i
        rows[i]["prev_hash"] = GENESIS if i == 0 else rows[i - 1]["hash"]
        rows[i]["hash"] = event_hash(rows[i])


def _schema(trail: AuditTrail) -> pa.Schema:
    return pa.schema(DeltaTable(trail.location).schema().to_arrow())


def _overwrite(trail: AuditTrail, rows: list[Row]) -> None:
    """Rewrite the table's files with `rows`, as someone with write access to the files could."""
    data = pa.Table.from_pylist(rows, schema=_schema(trail))
    write_deltalake(trail.location, data, mode="overwrite")


def _tamper(trail: AuditTrail, change: Callable[[list[Row]], None]) -> list[Row]:
    rows = trail.events()
    change(rows)
    _overwrite(trail, rows)
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse")
    add_cli(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(settings: Settings, *argv: str) -> int:
    args = _parser().parse_args(list(argv))
    return int(args.func(args, settings))


# ----------------------------------------------------------------------------- recording


def test_when_nothing_was_recorded_then_the_trail_verifies_with_zero_events(
    settings: Settings,
) -> None:
    trail = AuditTrail(settings)
    empty = Verification(ok=True, checked=0, anchor=str(settings.audit_anchor))
    assert trail.verify() == empty
    assert trail.events() == []
    ArrowTable(settings, "_audit").snapshot(create=True)  # created, still empty
    assert trail.verify() == empty


def test_record_chains_events_from_64_zeros_with_seq_and_every_field(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit.getpass, "getuser", lambda: "svc-airflow")  # the OS account
    trail = AuditTrail(settings)
    before = dt.datetime.now(dt.UTC)
    first = trail.record(_read(3, job="silver", run_id="r1", logical_date=dt.date(2026, 1, 5)))
    more = trail.record([_read(4, principal="alice"), _read(5, table_version=7)])
    events = trail.events()

    assert [e["event_id"] for e in events] == first + more
    assert [e["seq"] for e in events] == [0, 1, 2]
    assert events[0]["prev_hash"] == GENESIS
    assert [e["prev_hash"] for e in events[1:]] == [e["hash"] for e in events[:-1]]
    assert [e["hash"] for e in events] == [_expected_hash(e) for e in events]
    e0, e1, e2 = events
    assert before <= e0["event_time"] <= e1["event_time"] == e2["event_time"]  # one commit
    assert e0["event_time"].tzinfo == dt.UTC and e0["event_date"] == e0["event_time"].date()
    assert e0 | {"event_id": "-", "event_time": "-", "event_date": "-", "hash": "-"} == {
        "event_id": "-",
        "seq": 0,
        "event_time": "-",
        "event_date": "-",
        "principal": "svc-airflow",
        "role": "analyst_cn",
        "action": "read",
        "table_name": "silver.complaints",
        "table_version": None,
        "columns": ["complaint_id", "narrative"],
        "row_filter": "plant_id IN ('SZ')",
        "purpose": "monthly complaint KPIs",
        "row_count": 3,
        "job": "silver",
        "run_id": "r1",
        "logical_date": dt.date(2026, 1, 5),
        "details": '{"n": 3, "via": "sql"}',
        "prev_hash": GENESIS,
        "key_id": "test-1",
        "hash": "-",
    }
    assert (e1["principal"], e2["principal"], e2["table_version"]) == ("alice", "svc-airflow", 7)


def test_each_record_call_is_one_delta_commit_with_the_head_in_its_metadata(
    settings: Settings,
) -> None:
    trail = _trail_of(settings, 1)
    before = DeltaTable(trail.location).version()
    trail.record([_read(i) for i in range(5)])
    table = DeltaTable(trail.location)
    assert table.version() == before + 1
    commit = table.history(1)[0]
    head = trail.events()[-1]
    assert commit["audit_first_seq"] == "1" and commit["audit_head_seq"] == "5"
    assert commit["audit_head_hash"] == head["hash"] and commit["audit_key_id"] == "test-1"
    assert trail.record([]) == []
    assert DeltaTable(trail.location).version() == before + 1


def test_the_table_is_where_table_io_finds_it_partitioned_by_event_date(
    settings: Settings,
) -> None:
    trail = _trail_of(settings, 1)
    registry = Registry.load(CONF / "tables")
    io = TableIO(cast(Any, None), settings, registry, engine=cast(Any, object()))
    assert trail.location == io.location("_audit")
    table = DeltaTable(trail.location)
    assert table.metadata().partition_columns == ["event_date"]
    spec = registry.get("_audit")
    declared_schema = Schema.from_json(spec.spark_schema.json())  # as the Spark engine creates it
    assert json.loads(table.schema().to_json()) == json.loads(declared_schema.to_json())
    assert table.metadata().configuration == {
        "delta.checkpointInterval": str(settings.storage.checkpoint_interval)
    }
    declared = [c.name for c in spec.columns]
    assert [f.name for f in _schema(trail)] == declared
    assert list(audit.MAC_FIELDS) == [c for c in declared if c != "hash"]


def test_many_small_appends_are_compacted_and_still_verify(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "COMPACT_AFTER", 4)
    trail = _trail_of(settings, 12)
    files = DeltaTable(trail.location).file_uris()
    assert len(files) < 6  # without compaction: 12
    assert trail.verify().ok and [e["seq"] for e in trail.events()] == list(range(12))
    operations = [c.get("lakehouse_operation") for c in DeltaTable(trail.location).history()]
    assert "compact" in operations


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("action", " ", "AuditEvent.action must be a non-empty string"),
        ("table_name", "", "AuditEvent.table_name must be a non-empty string"),
        ("row_count", -1, "row_count must be 0 or more"),
    ],
)
def test_invalid_events_are_refused_before_anything_is_written(
    settings: Settings, field: str, value: Any, message: str
) -> None:
    kwargs: dict[str, Any] = {"action": "read", "table_name": "t", field: value}
    with pytest.raises(ValueError, match=message):
        AuditEvent(**kwargs)
    assert AuditEvent(action="read", table_name="t", columns=cast(Any, ["a"])).columns == ("a",)
    with pytest.raises(ValueError, match="cannot be written as JSON"):
        AuditTrail(settings).record(AuditEvent("read", "t", details={("a", 1): 1}))
    assert AuditTrail(settings).events() == []


def test_principal_is_the_os_user_and_the_environment_cannot_forge_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit.getpass, "getuser", lambda: "maria")
    monkeypatch.setenv("LAKEHOUSE_PRINCIPAL", "svc-lakehouse")
    assert current_principal() == "maria"


def test_read_table_returns_the_rows_a_filter_selects_without_spark(settings: Settings) -> None:
    assert read_table(settings, "_vault_eu") == []
    trail = _trail_of(settings, 4)
    today = trail.events()[0]["event_date"]
    later = read_table(settings, "_audit", filter=("seq", ">=", 2))
    assert sorted(r["seq"] for r in later) == [2, 3]  # rows come in no particular order
    on_day = read_table(settings, "_audit", filter=("event_date", "=", today))
    assert sorted(r["seq"] for r in on_day) == [0, 1, 2, 3]
    assert read_table(settings, "_audit", filter=("event_date", "<", today)) == []
    picked = read_table(settings, "_audit", filter=("row_count", "in", [1, 3]))
    assert sorted(r["row_count"] for r in picked) == [1, 3]


# ----------------------------------------------------------------------------- tampering


def test_an_untouched_chain_verifies_ok_and_reports_its_head(settings: Settings) -> None:
    trail = _trail_of(settings, 5)
    trail.record([_read(9), _read(10)])
    result = trail.verify()
    assert result == Verification(
        ok=True,
        checked=7,
        head_hash=trail.events()[-1]["hash"],
        anchored=6,  # one head per record call
        anchor=str(settings.audit_anchor),
        key_ids=("test-1",),
    )


def test_when_a_field_is_changed_then_verify_names_that_event(settings: Settings) -> None:
    trail = _trail_of(settings, 6)

    def change(rows: list[Row]) -> None:
        rows[3]["row_count"] = 300  # someone "corrects" the number of rows returned

    rows = _tamper(trail, change)
    result = trail.verify()
    assert (result.ok, result.position, result.first_bad) == (False, 3, rows[3]["event_id"])
    assert result.reason == (
        f"event 3 (id {rows[3]['event_id']}): content changed since it was written, or its "
        "MAC was recomputed without the audit key 'test-1' (MAC mismatch)"
    )
    assert result.checked == 6


def test_when_an_event_is_deleted_then_verify_names_the_gap(settings: Settings) -> None:
    trail = _trail_of(settings, 6)
    rows = _tamper(trail, lambda rows: rows.pop(2))
    result = trail.verify()
    after = rows[2]  # the event with seq 3 now follows seq 1
    assert (result.ok, result.position, result.first_bad) == (False, 3, after["event_id"])
    assert result.reason == f"event 3 (id {after['event_id']}) follows event 1: event 2 is missing"


def test_when_the_first_event_is_deleted_then_verify_says_where_the_trail_starts(
    settings: Settings,
) -> None:
    trail = _trail_of(settings, 3)
    rows = _tamper(trail, lambda rows: rows.pop(0))
    result = trail.verify()
    assert (result.ok, result.position, result.first_bad) == (False, 1, rows[0]["event_id"])
    assert "the trail starts at event 1" in str(result.reason)
    assert "event 0 is missing" in str(result.reason)


def test_when_the_newest_events_are_deleted_then_verify_uses_the_anchored_head(
    settings: Settings,
) -> None:
    trail = _trail_of(settings, 5)
    _tamper(trail, lambda rows: rows.pop())
    result = trail.verify()
    assert (result.ok, result.position, result.first_bad) == (False, 4, None)
    assert "the trail ends at event 3" in str(result.reason)
    assert "event 4 is missing" in str(result.reason)


def test_when_two_events_swap_seq_then_verify_names_the_first_moved_one(
    settings: Settings,
) -> None:
    trail = _trail_of(settings, 6)

    def swap(rows: list[Row]) -> None:
        rows[2]["seq"], rows[3]["seq"] = 3, 2

    rows = _tamper(trail, swap)
    result = trail.verify()
    moved = rows[3]  # sorted by seq it now comes second of the two
    assert (result.ok, result.position, result.first_bad) == (False, 2, moved["event_id"])
    assert "content changed since it was written" in str(result.reason)


def test_when_two_events_are_reordered_and_rechained_then_their_times_give_it_away(
    settings: Settings,
) -> None:
    trail = _trail_of(settings, 6)
    original = trail.events()
    assert original[2]["event_time"] < original[3]["event_time"]

    def reorder(rows: list[Row]) -> None:
        rows[2], rows[3] = rows[3], rows[2]
        _rechain(rows, 2)  # seq, prev_hash and hash all consistent again

    rows = _tamper(trail, reorder)
    result = trail.verify()
    moved = original[2]  # now at seq 3, dated before the event at seq 2
    assert (result.ok, result.position, result.first_bad) == (False, 3, moved["event_id"])
    assert str(result.reason).startswith(f"event 3 (id {moved['event_id']}) is dated ")
    assert str(result.reason).endswith("events were reordered")
    assert rows[3]["hash"] == event_hash(rows[3])


def test_when_an_insider_with_the_key_rewrites_and_re_macs_then_the_anchor_differs(
    settings: Settings,
) -> None:
    trail = _trail_of(settings, 5)

    def rewrite(rows: list[Row]) -> None:
        rows[1]["purpose"] = "nothing to see here"
        _rechain(rows, 1)

    rows = _tamper(trail, rewrite)
    result = trail.verify()
    assert (result.ok, result.position, result.first_bad) == (False, 1, rows[1]["event_id"])
    assert "is not the head line 3 of the anchor" in str(result.reason)  # line 1: genesis
    assert "rewritten at or before this event" in str(result.reason)


def test_when_a_forged_event_is_appended_with_a_wrong_prev_hash_then_verify_names_it(
    settings: Settings,
) -> None:
    trail = _trail_of(settings, 4)
    last = trail.events()[-1]
    forged = dict(last, event_id="forged-1", seq=4, prev_hash="f" * 64, action="erase")
    forged["hash"] = event_hash(forged)  # a well-formed hash of its own content
    write_deltalake(
        trail.location, pa.Table.from_pylist([forged], schema=_schema(trail)), mode="append"
    )
    result = trail.verify()
    assert (result.ok, result.position, result.first_bad) == (False, 4, "forged-1")
    assert result.reason == (
        f"event 4 (id forged-1) does not link to event 3 (id {last['event_id']}): its "
        "prev_hash is not the MAC of that event; an event was removed, inserted or "
        "rewritten before it"
    )


def test_when_an_event_is_copied_then_verify_reports_the_duplicate_seq(
    settings: Settings,
) -> None:
    trail = _trail_of(settings, 3)
    original = trail.events()[1]
    copy = dict(original, event_id="copy-1")
    write_deltalake(
        trail.location, pa.Table.from_pylist([copy], schema=_schema(trail)), mode="append"
    )
    result = trail.verify()
    assert (result.ok, result.position, result.first_bad) == (False, 1, "copy-1")
    assert result.reason == (
        f"event 1 (id copy-1) appears twice (the other copy has id {original['event_id']}): "
        "two writers appended without the lock, or a row was copied"
    )


# ----------------------------------------------------------------------------- concurrency


def _append_worker(root: str, worker: int, count: int, start: Any) -> None:
    """Runs in a spawned process: record `count` events one by one once `start` is set."""
    settings = load_settings("test", overrides={"storage": {"root": root}})
    trail = AuditTrail(settings)
    start.wait(60)  # both processes have imported everything: go
    for i in range(count):
        trail.record(AuditEvent(action="read", table_name="t", details={"w": worker, "i": i}))


def test_two_processes_appending_at_once_never_fork_the_chain(settings: Settings) -> None:
    count = 12
    context = multiprocessing.get_context("spawn")  # deltalake must not be used after fork
    start = context.Barrier(2)
    workers = [
        context.Process(target=_append_worker, args=(settings.storage.root, w, count, start))
        for w in (1, 2)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    assert [p.exitcode for p in workers] == [0, 0]

    trail = AuditTrail(settings)
    assert trail.verify() == Verification(
        ok=True,
        checked=2 * count,
        head_hash=trail.events()[-1]["hash"],
        anchored=2 * count,
        anchor=str(settings.audit_anchor),
        key_ids=("test-1",),
    )
    events = trail.events()
    assert [e["seq"] for e in events] == list(range(2 * count))
    order = [json.loads(e["details"]) for e in events]
    for worker in (1, 2):
        assert [d["i"] for d in order if d["w"] == worker] == list(range(count))
    switches = sum(a["w"] != b["w"] for a, b in itertools.pairwise(order))
    assert switches > 0, "the two writers did not overlap; the test proved nothing"


def test_an_append_on_a_stale_snapshot_is_refused(settings: Settings) -> None:
    table = ArrowTable(settings, "_audit")
    AuditTrail(settings).record(_read(0))
    first, second = table.snapshot(), table.snapshot()
    assert first is not None and second is not None
    row = first.last_row("seq")
    assert row is not None
    first.append([dict(row, event_id="a", seq=1)], metadata={})
    with pytest.raises(TableConflictError, match="another writer committed after version"):
        second.append([dict(row, event_id="b", seq=1)], metadata={})


def test_without_the_lock_a_writer_that_loses_the_race_chains_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Object storage: no file lock; the commit on the version read decides."""
    monkeypatch.setattr(ArrowTable, "lock", lambda self: contextlib.nullcontext())
    rival = AuditTrail(settings)
    rival.record(_read(0))
    append = Snapshot.append
    raced: list[str] = []
    attempts: list[int] = []

    def racing_append(self: Snapshot, rows: Any, *, metadata: Any) -> int:
        attempts.append(rows[0]["seq"])
        if len(attempts) == 1:  # another writer appends between our tail read and our commit
            raced.extend(rival.record(_read(1)))
        return append(self, rows, metadata=metadata)

    monkeypatch.setattr(Snapshot, "append", racing_append)
    ids = AuditTrail(settings).record(_read(2))
    events = AuditTrail(settings).events()
    assert [e["event_id"] for e in events[1:]] == raced + ids
    assert [e["seq"] for e in events] == [0, 1, 2]
    assert attempts == [1, 1, 2]  # ours at seq 1 (lost), the rival's at 1, ours again at 2
    assert AuditTrail(settings).verify().ok


def test_a_lock_held_too_long_is_reported_with_the_lock_file(settings: Settings) -> None:
    table = ArrowTable(settings, "_audit")
    held_elsewhere = table.lock()  # another open file: excludes like another process would
    with (
        held_elsewhere,
        pytest.raises(TableConflictError, match=r"_audit\.lock for over 0 s"),
        table.lock(timeout_s=0.05),
    ):
        pass
    assert Path(f"{table.storage.root}.lock").exists()


# ----------------------------------------------------------------------------- bad tables


def _data_files(trail: AuditTrail) -> list[Path]:
    return sorted(Path(trail.location).glob("event_date=*/*.parquet"))


def test_a_damaged_data_file_gives_an_error_naming_the_table_and_what_to_do(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = _trail_of(settings, 2)
    _data_files(trail)[0].write_bytes(b"not parquet")
    with pytest.raises(AuditTrailError) as caught:
        trail.verify()
    message = str(caught.value)
    assert trail.location in message and "restore the folder from backup" in message
    assert _run(settings, "audit", "verify") == 1
    assert trail.location in capsys.readouterr().err


def test_a_damaged_log_gives_an_error_naming_the_table(settings: Settings) -> None:
    trail = _trail_of(settings, 2)
    log = sorted(Path(trail.location, "_delta_log").glob("*.json"))[-1]
    log.write_text("{broken", encoding="utf-8")
    with pytest.raises(AuditTrailError, match="cannot be read") as caught:
        trail.verify()
    assert trail.location in str(caught.value)


def test_an_audit_table_of_an_older_layout_is_never_rewritten(settings: Settings) -> None:
    trail = AuditTrail(settings)
    legacy = pa.table({"event_id": ["e1"], "actor": ["bob"], "event_date": [dt.date(2026, 1, 5)]})
    write_deltalake(trail.location, legacy, partition_by=["event_date"])
    with pytest.raises(AuditTrailError, match="move the folder aside") as caught:
        trail.record(_read(0))
    assert "stored columns no longer declared: actor" in str(caught.value)
    assert DeltaTable(trail.location).version() == 0


# ----------------------------------------------------------------------------- command line


def test_cli_verify_exits_0_when_intact_and_1_naming_the_first_bad_event(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(settings, "audit", "verify") == 0
    assert "audit trail intact: 0 events" in capsys.readouterr().out
    trail = _trail_of(settings, 4)
    assert _run(settings, "audit", "verify") == 0
    assert f"audit trail intact: 4 events at {trail.location}" in capsys.readouterr().out

    def change(rows: list[Row]) -> None:
        rows[2]["principal"] = "mallory"

    rows = _tamper(trail, change)
    assert _run(settings, "audit", "verify") == 1
    err = capsys.readouterr().err
    assert f"event 2 (id {rows[2]['event_id']}): content changed" in err
    assert trail.location in err


def test_cli_show_prints_the_newest_events_of_a_table(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    identities: Identities,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    identities.sign_in(monkeypatch, TWO_ROLES)  # holds analyst_cn and auditor
    auditor = ("--role", "auditor")  # each show is a read of the trail, audited in it
    assert _run(settings, "audit", "show", *auditor) == 0  # seq 0: this read
    assert "no audit events at" in capsys.readouterr().out
    trail = _trail_of(settings, 3)  # seq 1..3
    trail.record(AuditEvent(action="erase", table_name="_vault_eu", purpose="DSR-17", row_count=1))
    assert _run(settings, "audit", "show", "--last", "2", *auditor) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "SEQ",
        "TIME",
        "(UTC)",
        "PRINCIPAL",
        "ROLE",
        "ACTION",
        "TABLE",
        "VERSION",
        "ROWS",
        "PURPOSE",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["3", "4"]
    assert lines[2].split()[-5:] == ["erase", "_vault_eu", "-", "1", "DSR-17"]
    assert _run(settings, "audit", "show", "--table", "_vault_eu", "--json", *auditor) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [e["seq"] for e in shown] == [4] and shown[0]["purpose"] == "DSR-17"
    assert _run(settings, "audit", "show", "--table", "silver.nothing", *auditor) == 0
    assert "no audit events for silver.nothing" in capsys.readouterr().out
    reads = [e for e in trail.events() if e["table_name"] == "_audit"]
    assert [(e["action"], e["role"], e["row_count"]) for e in reads] == [
        ("read", "auditor", 0), ("read", "auditor", 2), ("read", "auditor", 1),
        ("read", "auditor", 0),
    ]  # fmt: skip
    assert {e["principal"] for e in reads} == {TWO_ROLES}


def test_cli_show_and_vault_history_are_for_roles_holding_read_audit_and_refusals_are_audited(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    identities: Identities,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The trail and the vaults' history show everyone's queries, purposes and tokens."""
    trail = _trail_of(settings, 2)
    with pytest.raises(AuthError, match="not signed in"):
        _run(settings, "audit", "show")
    identities.sign_in(monkeypatch, "analyst_us")
    assert _run(settings, "audit", "show", "--purpose", "curious") == 2
    assert "read_audit" in capsys.readouterr().err
    with pytest.raises(AuthError, match="does not hold role 'auditor'"):  # claiming it
        _run(settings, "audit", "show", "--role", "auditor")
    history = build_parser().parse_args(["table", "history", "_vault_us"])
    assert int(history.func(history, settings)) == 2
    assert "may not read_audit" in capsys.readouterr().err
    refused = [e for e in trail.events() if e["action"] == "refused"]
    assert [(e["principal"], e["role"], e["purpose"], e["table_name"]) for e in refused] == [
        (f"os:{os_user()}", None, None, "(identity)"),
        ("analyst_us", "analyst_us", "curious", "_audit"),
        ("analyst_us", "auditor", None, "(identity)"),
        ("analyst_us", "analyst_us", None, "_audit"),
    ]
    assert "audit show" in refused[0]["details"] and "audit show" in refused[1]["details"]
    assert "table history _vault_us" in refused[3]["details"]
