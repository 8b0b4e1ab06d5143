"""The tamper-evident audit trail: hash-chained events in `_audit`, kept without Spark."""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medlake.config import Settings
from medlake.io.arrow import ArrowTable, Snapshot, to_rows
from medlake.io.commit import CommitContext
from medlake.io.errors import SchemaMismatchError, TableConflictError, TableIOError
from medlake.io.result import WriteResult
from medlake.tables import Registry

TABLE = "_audit"
GENESIS = "0" * 64
MAX_ATTEMPTS = 5
COMPACT_AFTER = 32  # files beyond one per day trigger a compaction (no data change)
HEAD_WINDOW = 200  # newest commits searched for the head the last append recorded
# Every column but `hash`, as declared in conf/tables/system.yaml. Fixed here rather than read
# from the registry: declaring a new column later must not change the hash of stored events.
HASHED_FIELDS = (
    "event_id",
    "seq",
    "event_time",
    "event_date",
    "principal",
    "role",
    "action",
    "table_name",
    "table_version",
    "columns",
    "row_filter",
    "purpose",
    "row_count",
    "job",
    "run_id",
    "logical_date",
    "details",
    "prev_hash",
)


class AuditTrailError(TableIOError):
    """The audit table cannot be read or written; the message names it and says what to do."""


@dataclass(frozen=True)
class AuditEvent:
    """Something a principal did to a table, as the caller knows it; `record` adds the rest
    (id, position, time, hashes).

    >>> AuditEvent(action="read", table_name="silver.complaints", role="analyst_cn",
    ...            columns=("complaint_id",), purpose="monthly KPIs").action
    'read'
    """

    action: str  # "read", "write", "reidentify", "erase", "query", ...
    table_name: str
    principal: str | None = None  # default: current_principal()
    role: str | None = None
    table_version: int | None = None
    columns: tuple[str, ...] | None = None
    row_filter: str | None = None
    purpose: str | None = None
    row_count: int | None = None
    job: str | None = None
    run_id: str | None = None
    logical_date: dt.date | None = None
    details: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("action", "table_name"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"AuditEvent.{name} must be a non-empty string, got {value!r}")
        columns: Any = self.columns
        if columns is not None and not isinstance(columns, tuple):  # a list given at run time
            object.__setattr__(self, "columns", tuple(columns))
        if self.row_count is not None and self.row_count < 0:
            raise ValueError(f"AuditEvent.row_count must be 0 or more, got {self.row_count}")
        if isinstance(self.logical_date, dt.datetime):
            raise ValueError("AuditEvent.logical_date must be a date, not a datetime")


def current_principal() -> str:
    """The OS account of this process: who a job's writes are recorded for when no signed-in
    identity is given (jobs run as the service account that owns the storage). Governed
    reads record the signed-in identity (`medlake.governance.identity`); `$LAKEHOUSE_PRINCIPAL`
    is no longer read."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid-{os.getuid()}"


@dataclass(frozen=True)
class Verification:
    """The outcome of `AuditTrail.verify`: `checked` events read; the first bad one, if any."""

    ok: bool
    checked: int
    first_bad: str | None = None  # event id (None when the bad event is missing)
    position: int | None = None  # its seq
    reason: str | None = None
    head_hash: str | None = None  # hash of the newest event when intact: note it elsewhere

    def __str__(self) -> str:
        if self.ok:
            return f"intact: {self.checked} events"
        return f"broken: {self.reason}"


# --------------------------------------------------------------------- canonical form


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _canonical_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):  # before date: a datetime is a date
        return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_canonical_value(v) for v in value]
    return value


def canonical(event: Mapping[str, Any]) -> bytes:
    """The bytes an event's hash covers: JSON of `HASHED_FIELDS` with sorted keys, no spaces,
    UTF-8, timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC), dates as `YYYY-MM-DD`,
    missing values as null.

    >>> canonical({"seq": 0, "event_date": dt.date(2026, 1, 5)})[:42]
    b'{"action":null,"columns":null,"details":n'
    """
    body = {name: _canonical_value(event.get(name)) for name in HASHED_FIELDS}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def event_hash(event: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of `canonical(event)`."""
    return hashlib.sha256(canonical(event)).hexdigest()


def _details(details: Mapping[str, Any] | None) -> str | None:
    if details is None:
        return None
    try:
        return json.dumps(dict(details), sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"AuditEvent.details cannot be written as JSON: {exc}") from None


def _chain(
    batch: Sequence[AuditEvent], ids: Sequence[str], last: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """The rows of `batch`, linked after `last` (None: the first events of the trail)."""
    now = dt.datetime.now(dt.UTC)
    if last is not None:  # a clock set back must not make the trail look reordered
        now = max(now, _utc(last["event_time"]))
    prev_hash = GENESIS if last is None else str(last["hash"])
    seq = 0 if last is None else int(last["seq"]) + 1
    rows = []
    for event, event_id in zip(batch, ids, strict=True):
        row: dict[str, Any] = {
            "event_id": event_id,
            "seq": seq,
            "event_time": now,
            "event_date": now.date(),
            "principal": event.principal or current_principal(),
            "role": event.role,
            "action": event.action,
            "table_name": event.table_name,
            "table_version": event.table_version,
            "columns": None if event.columns is None else list(event.columns),
            "row_filter": event.row_filter,
            "purpose": event.purpose,
            "row_count": event.row_count,
            "job": event.job,
            "run_id": event.run_id,
            "logical_date": event.logical_date,
            "details": _details(event.details),
            "prev_hash": prev_hash,
        }
        row["hash"] = prev_hash = event_hash(row)
        rows.append(row)
        seq += 1
    return rows


# --------------------------------------------------------------------- the trail


def _label(event: Mapping[str, Any]) -> str:
    return f"event {event.get('seq')} (id {event.get('event_id')})"


def _missing(first: int, last: int) -> str:
    return f"event {first} is missing" if first == last else f"events {first}..{last} are missing"


def _link_problem(event: Mapping[str, Any], prev: Mapping[str, Any] | None) -> str | None:
    """What is wrong with `event` given the event before it in seq order, or None."""
    seq = event.get("seq")
    if not isinstance(seq, int):
        return f"event id {event.get('event_id')} has no seq: it was not written by the trail"
    if prev is None and seq != 0:
        return f"the trail starts at {_label(event)}: {_missing(0, seq - 1)}"
    if prev is not None and seq == prev["seq"]:
        return (
            f"{_label(event)} appears twice (the other copy has id {prev.get('event_id')}): "
            "two writers appended without the lock, or a row was copied"
        )
    if prev is not None and seq != prev["seq"] + 1:
        return f"{_label(event)} follows event {prev['seq']}: {_missing(prev['seq'] + 1, seq - 1)}"
    if event_hash(event) != event.get("hash"):
        return f"{_label(event)}: content changed since it was written (hash mismatch)"
    if prev is None and event.get("prev_hash") != GENESIS:
        return f"{_label(event)}: prev_hash is not 64 zeros: the start of the trail was replaced"
    if prev is not None and event.get("prev_hash") != prev.get("hash"):
        return (
            f"{_label(event)} does not link to {_label(prev)}: its prev_hash is not the hash "
            "of that event; an event was removed, inserted or rewritten before it"
        )
    time = event.get("event_time")
    if not isinstance(time, dt.datetime):
        return f"{_label(event)} has no event_time"
    prev_time = None if prev is None else prev.get("event_time")
    if prev is not None and isinstance(prev_time, dt.datetime) and time < prev_time:
        return (
            f"{_label(event)} is dated {time:%Y-%m-%d %H:%M:%S.%f} UTC, before "
            f"event {prev['seq']} ({prev_time:%Y-%m-%d %H:%M:%S.%f} UTC): "
            "events were reordered"
        )
    return None


def _order(event: Mapping[str, Any]) -> tuple[int, bool, str, str]:
    """Chain order: by seq (rows without one last); of two rows with one seq, the one whose
    hash holds first, so that the other is reported as the duplicate."""
    seq = event.get("seq")
    position = seq if isinstance(seq, int) else sys.maxsize
    altered = event_hash(event) != event.get("hash")
    return (position, altered, str(event.get("event_time")), str(event.get("event_id")))


def write_auditor(
    trail: AuditTrail, principal: str | None = None
) -> Callable[[str, WriteResult, CommitContext], None]:
    """The `on_write` hook of a `TableIO` that records every committed write in `trail`, by
    `principal` (default: the OS account, `current_principal()`)."""

    def audit(name: str, result: WriteResult, commit: CommitContext) -> None:
        trail.record(
            AuditEvent(
                action="write",
                table_name=name,
                principal=principal,
                table_version=result.version,
                row_count=result.rows_written,
                job=commit.job,
                run_id=commit.run_id,
                logical_date=commit.logical_date,
                details={"operation": result.operation, "files_added": result.files_added},
            )
        )

    return audit


class AuditTrail:
    """The `_audit` table as an append-only, hash-chained trail (21 CFR Part 11 style).

    >>> trail = AuditTrail(settings)                                           # doctest: +SKIP
    >>> trail.record(AuditEvent(action="read", table_name="silver.complaints",
    ...                         role="analyst_cn", purpose="monthly KPIs"))    # doctest: +SKIP
    ['0b7e…']
    >>> trail.verify().ok                                                      # doctest: +SKIP
    True

    Each event gets `seq` (0, 1, 2, ...), a UTC `event_time` never earlier than the previous
    event's, `prev_hash` (the previous event's hash; 64 zeros for the first) and `hash`, the
    SHA-256 of `canonical(event)`. Changing, removing, inserting or reordering an event breaks
    the chain at that point and `verify` names it. Appends are serialised: on the local file
    system by an exclusive `flock` on `<storage root>/_system/_audit.lock`; on object storage
    by the orchestrator (one writer per table), and in both cases an append commits only on
    top of the table version whose last event it chained to, else it re-reads and retries.
    Each append also records the new head (seq and hash) in its Delta commit, which lets
    `verify` notice events removed from the end of the trail.

    Limits: anyone who can rewrite the table's files can also recompute every hash after
    the event they change; `verify` then still sees the reordered times and a head that
    differs from the one the log recorded, but a full rewrite of files and log is only
    caught by comparing `Verification.head_hash` with a copy kept elsewhere.
    """

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self._table = ArrowTable(settings, TABLE, registry)

    @property
    def location(self) -> str:
        return self._table.location

    def record(self, events: AuditEvent | Sequence[AuditEvent]) -> list[str]:
        """Append `events` in order, in one Delta commit; return their event ids."""
        batch = [events] if isinstance(events, AuditEvent) else list(events)
        if not batch:
            return []
        ids = [str(uuid.uuid4()) for _ in batch]
        with self._table.lock():
            for _attempt in range(MAX_ATTEMPTS):
                snapshot = self._snapshot(create=True)
                assert snapshot is not None
                last = snapshot.last_row("seq")
                if last is not None and last["event_id"] == ids[-1]:
                    return ids  # an earlier attempt landed although its commit call failed
                rows = _chain(batch, ids, last)
                try:
                    snapshot.append(
                        rows,
                        metadata={
                            "lakehouse_operation": "audit append",
                            "audit_first_seq": str(rows[0]["seq"]),
                            "audit_head_seq": str(rows[-1]["seq"]),
                            "audit_head_hash": rows[-1]["hash"],
                        },
                    )
                except TableConflictError:
                    continue  # another writer appended first (object storage): chain again
                snapshot.compact(min_extra_files=COMPACT_AFTER)
                return ids
        raise AuditTrailError(
            f"{TABLE}: {MAX_ATTEMPTS} attempts to append at {self.location} lost to other "
            "writers; serialise the writers of the audit table (one Airflow pool)"
        )

    def events(self) -> list[dict[str, Any]]:
        """Every event as stored (`details` is JSON text, times are UTC), in chain order."""
        return self._read()[1]

    def verify(self) -> Verification:
        """Check the whole chain and name the first event that breaks it.

        Events are sorted by seq; each must have the next seq (none removed or duplicated),
        its own hash (not changed), the previous event's hash as prev_hash (none removed,
        inserted or rewritten before it) and a time not before the previous one (not
        reordered). Finally the newest head recorded in the Delta log must still be there.
        An empty or missing table verifies ok with `checked=0`.
        """
        snapshot, events = self._read()
        prev: dict[str, Any] | None = None
        for event in events:
            problem = _link_problem(event, prev)
            if problem is not None:
                return Verification(
                    ok=False,
                    checked=len(events),
                    first_bad=event.get("event_id"),
                    position=event.get("seq"),
                    reason=problem,
                )
            prev = event
        if snapshot is not None and (broken := self._check_head(snapshot, events)):
            return broken
        return Verification(
            ok=True, checked=len(events), head_hash=None if prev is None else prev["hash"]
        )

    # ----------------------------------------------------------------- internals

    def _snapshot(self, *, create: bool = False) -> Snapshot | None:
        try:
            return self._table.snapshot(create=create)
        except SchemaMismatchError as exc:
            raise AuditTrailError(
                f"{exc}. The audit table at {self.location} has another layout (written "
                "before the hash-chained trail?). An audit trail is never rewritten "
                f"automatically: move the folder aside (e.g. to {self.location}.legacy) and "
                "keep it as a record; the next event starts a new trail"
            ) from None
        except TableIOError as exc:
            raise AuditTrailError(str(exc)) from None

    def _read(self) -> tuple[Snapshot | None, list[dict[str, Any]]]:
        snapshot = self._snapshot()
        if snapshot is None:
            return None, []
        try:
            rows = to_rows(snapshot.read())
        except TableIOError as exc:
            raise AuditTrailError(str(exc)) from None
        rows.sort(key=_order)
        return snapshot, rows

    def _check_head(
        self, snapshot: Snapshot, events: Sequence[Mapping[str, Any]]
    ) -> Verification | None:
        """The newest head an append recorded in the log must be in the (intact) chain."""
        try:
            commits = snapshot.commits(HEAD_WINDOW)
        except TableIOError as exc:
            raise AuditTrailError(str(exc)) from None
        recorded = next(
            (
                c
                for c in commits
                if "audit_head_seq" in c and int(c.get("version", -1)) <= snapshot.version
            ),
            None,
        )
        if recorded is None:
            return None
        version = recorded.get("version")
        try:
            seq = int(recorded["audit_head_seq"])
        except (TypeError, ValueError):
            return Verification(
                ok=False,
                checked=len(events),
                reason=f"version {version} of the table records an unreadable head "
                f"{recorded['audit_head_seq']!r}: its commit information was edited",
            )
        if seq >= len(events):  # seq is contiguous from 0 here, so it is the list index
            ends = f"ends at event {len(events) - 1}" if events else "is empty"
            return Verification(
                ok=False,
                checked=len(events),
                position=len(events),
                reason=(
                    f"the trail {ends} but version {version} of the table recorded event "
                    f"{seq} as the newest: {_missing(len(events), seq)} (removed from the end)"
                ),
            )
        event = events[seq]
        if event["hash"] != recorded.get("audit_head_hash"):
            return Verification(
                ok=False,
                checked=len(events),
                first_bad=event.get("event_id"),
                position=seq,
                reason=(
                    f"{_label(event)} is not the event version {version} of the table "
                    f"recorded (hash {str(recorded.get('audit_head_hash'))[:16]}…): the trail "
                    "was rewritten and re-hashed at or before this event"
                ),
            )
        return None
