"""The tamper-evident audit trail: HMAC-chained events in `_audit`, anchored outside storage."""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import json
import logging
import os
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlake.config import Settings, check_audit_anchor
from medlake.governance.keys import AuditKeys, load_audit_keys
from medlake.io.arrow import ArrowTable, Snapshot, to_rows
from medlake.io.changes import TableChange
from medlake.io.commit import CommitContext
from medlake.io.errors import SchemaMismatchError, TableConflictError, TableIOError
from medlake.io.result import WriteResult
from medlake.tables import Registry

TABLE = "_audit"
GENESIS = "0" * 64
MAX_ATTEMPTS = 5
COMPACT_AFTER = 32  # files beyond one per day trigger a compaction (no data change)
HEAD_WINDOW = 200  # newest commits searched for the head the last append recorded
ANCHOR_TAIL_BYTES = 4096  # an anchor line is about 400 bytes: its last line is in this tail
# Every column but `hash`, as declared in conf/tables/system.yaml. Fixed here rather than read
# from the registry: declaring a new column later must not change the MAC of stored events.
MAC_FIELDS = (
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
    "key_id",
)
ANCHOR_FIELDS = ("seq", "event_id", "mac", "key_id", "event_time", "anchored_at", "trail")
log = logging.getLogger(__name__)


class AuditTrailError(TableIOError):
    """The audit table cannot be read or written; the message names it and says what to do."""


@dataclass(frozen=True)
class AuditEvent:
    """Something a principal did to a table, as the caller knows it; `record` adds the rest
    (id, position, time, key id, MACs).

    >>> AuditEvent(action="read", table_name="silver.complaints", role="analyst_cn",
    ...            columns=("complaint_id",), purpose="monthly KPIs").action
    'read'
    """

    action: str  # "read", "write", "reidentify", "erase", "query", "vacuum", ...
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
    """The outcome of `AuditTrail.verify`: what was checked, and the first problem, if any."""

    ok: bool
    checked: int  # events read, each MAC checked
    first_bad: str | None = None  # event id (None when the bad event is missing)
    position: int | None = None  # its seq
    reason: str | None = None
    head_hash: str | None = None  # MAC of the newest event when intact
    anchored: int = 0  # heads in the anchor, each compared with the trail
    anchor: str | None = None  # the anchor file
    key_ids: tuple[str, ...] = field(default=())  # keys the events were MAC'd with
    unanchored: int = 0  # newest events after the last anchored head (a crash in between)

    def __str__(self) -> str:
        if self.ok:
            return f"intact: {self.checked} events, {self.anchored} anchored heads"
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


def _json(body: Mapping[str, Any]) -> bytes:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def canonical(event: Mapping[str, Any]) -> bytes:
    """The bytes an event's MAC covers: JSON of `MAC_FIELDS` with sorted keys, no spaces,
    UTF-8, timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC), dates as `YYYY-MM-DD`,
    missing values as null.

    >>> canonical({"seq": 0, "event_date": dt.date(2026, 1, 5)})[:42]
    b'{"action":null,"columns":null,"details":n'
    """
    return _json({name: _canonical_value(event.get(name)) for name in MAC_FIELDS})


def event_mac(event: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) of `canonical(event)` under `key`: what the `hash` column holds."""
    return hmac.new(key, canonical(event), hashlib.sha256).hexdigest()


def anchor_mac(line: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) of an anchor line: the canonical JSON of its `ANCHOR_FIELDS`."""
    body = {name: line.get(name) for name in ANCHOR_FIELDS}
    return hmac.new(key, b"medlake audit anchor\n" + _json(body), hashlib.sha256).hexdigest()


def _details(details: Mapping[str, Any] | None) -> str | None:
    if details is None:
        return None
    try:
        return json.dumps(dict(details), sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"AuditEvent.details cannot be written as JSON: {exc}") from None


def _chain(
    batch: Sequence[AuditEvent],
    ids: Sequence[str],
    last: Mapping[str, Any] | None,
    keys: AuditKeys,
) -> list[dict[str, Any]]:
    """The rows of `batch`, linked after `last` (None: the first events of the trail) and
    MAC'd with the current key."""
    now = dt.datetime.now(dt.UTC)
    if last is not None:  # a clock set back must not make the trail look reordered
        now = max(now, _utc(last["event_time"]))
    prev_hash = GENESIS if last is None else str(last["hash"])
    seq = 0 if last is None else int(last["seq"]) + 1
    key = keys[keys.current]
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
            "key_id": keys.current,
        }
        row["hash"] = prev_hash = event_mac(row, key)
        rows.append(row)
        seq += 1
    return rows


# --------------------------------------------------------------------- checks


def _label(event: Mapping[str, Any]) -> str:
    return f"event {event.get('seq')} (id {event.get('event_id')})"


def _missing(first: int, last: int) -> str:
    return f"event {first} is missing" if first == last else f"events {first}..{last} are missing"


def _missing_key(key_id: str, what: str) -> str:
    return (
        f"{what} was MAC'd with audit key id {key_id!r}, which is not in the secret store: "
        f"put that key back under `audit_keys: keys:` in the file named by "
        "$LAKEHOUSE_SECRETS_FILE (after a rotation the old keys stay there so that older "
        "entries keep verifying)"
    )


def _mac_problem(event: Mapping[str, Any], keys: AuditKeys) -> str | None:
    """What is wrong with `event`'s key id or MAC, or None."""
    key_id = event.get("key_id")
    if key_id is None:
        return (
            f"{_label(event)} has no key id: it was written by the unkeyed (SHA-256) trail "
            "or by someone without the audit key, and cannot be verified"
        )
    if key_id not in keys:
        return _missing_key(str(key_id), _label(event))
    if not hmac.compare_digest(event_mac(event, keys[str(key_id)]), str(event.get("hash"))):
        return (
            f"{_label(event)}: content changed since it was written, or its MAC was "
            f"recomputed without the audit key {key_id!r} (MAC mismatch)"
        )
    return None


def _link_problem(
    event: Mapping[str, Any], prev: Mapping[str, Any] | None, keys: AuditKeys
) -> str | None:
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
    if problem := _mac_problem(event, keys):
        return problem
    if prev is None and event.get("prev_hash") != GENESIS:
        return f"{_label(event)}: prev_hash is not 64 zeros: the start of the trail was replaced"
    if prev is not None and event.get("prev_hash") != prev.get("hash"):
        return (
            f"{_label(event)} does not link to {_label(prev)}: its prev_hash is not the MAC "
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


def _order(event: Mapping[str, Any], keys: AuditKeys) -> tuple[int, bool, str, str]:
    """Chain order: by seq (rows without one last); of two rows with one seq, the one whose
    MAC holds first, so that the other is reported as the duplicate."""
    seq = event.get("seq")
    position = seq if isinstance(seq, int) else sys.maxsize
    altered = _mac_problem(event, keys) is not None
    return (position, altered, str(event.get("event_time")), str(event.get("event_id")))


# --------------------------------------------------------------------- the anchor


class Anchor:
    """The append-only file outside the lakehouse that receives every head of the trail.

    One JSON line per append: `seq`, `event_id`, `mac` (the head event's MAC), `key_id`,
    `event_time`, `anchored_at`, `trail` (the table's location) and `line_mac`, an HMAC of
    the other fields under the same key. The first line is the genesis line (`seq` -1),
    written before the trail's first event, so an anchor emptied or replaced later never
    looks like a new one. Appended with O_APPEND and fsync; in production the file lives on
    WORM / object-lock storage that the jobs may append to but nobody may rewrite.
    """

    def __init__(self, path: Path, keys: AuditKeys, trail: str | None = None) -> None:
        self.path = path
        self.keys = keys
        self.trail = trail  # only this trail's lines count (one anchor may serve several)

    def append(self, line: Mapping[str, Any]) -> None:
        """Append one line, MAC'd with the current key, and fsync it."""
        body = {name: line.get(name) for name in ANCHOR_FIELDS} | {"key_id": self.keys.current}
        body["line_mac"] = anchor_mac(body, self.keys[self.keys.current])
        data = _json(body) + b"\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # an earlier write was cut short: end its line first
                view = memoryview(data)
                while view:  # a short write (a full disk) is continued, never half a line
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise AuditTrailError(
                f"cannot append to the audit anchor {self.path} ({exc.strerror}); the event is "
                "in the trail but its head is not anchored: make the file writable for this "
                "account (audit.anchor in conf), the next append anchors the head again"
            ) from None

    def _parse(self, number: int, text: str) -> dict[str, Any]:
        """One line, its MAC checked, or `AuditTrailError` saying what is wrong with it."""
        where = f"line {number} of the audit anchor {self.path}"
        try:
            line = json.loads(text)
        except ValueError:
            raise AuditTrailError(f"{where} is not JSON: the anchor was edited") from None
        if not isinstance(line, dict) or not isinstance(line.get("seq"), int):
            raise AuditTrailError(f"{where} is not an anchored head: the anchor was edited")
        key_id = str(line.get("key_id"))
        if key_id not in self.keys:
            raise AuditTrailError(_missing_key(key_id, where))
        if not hmac.compare_digest(anchor_mac(line, self.keys[key_id]), str(line.get("line_mac"))):
            raise AuditTrailError(
                f"{where} was altered or written without the audit key (MAC mismatch)"
            )
        return line

    def lines(self) -> list[dict[str, Any]] | None:
        """Every line, checked, in file order; None when the file does not exist."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise AuditTrailError(f"the audit anchor {self.path} cannot be read: {exc}") from None
        return self._mine(
            self._parse(i, t) for i, t in enumerate(self._complete(text), start=1) if t.strip()
        )

    def _complete(self, text: str) -> list[str]:
        """The lines of `text` without those an interrupted write cut short (a full disk):
        the start of a JSON object that never closes. Such a line holds no head (the next
        append ends it and carries on); every other line must be a complete, MAC'd head."""

        def cut(line: str) -> bool:
            if not line.startswith("{") or line.rstrip().endswith("}"):
                return False
            try:
                json.loads(line)
            except ValueError:
                return True
            return False

        return [line for line in text.splitlines() if not cut(line)]

    def _mine(self, lines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.trail is None:
            return list(lines)
        return [line for line in lines if line.get("trail") in (None, self.trail)]

    def last(self) -> dict[str, Any] | None:
        """The newest line, checked (None: no file, or an empty one); reads only the tail."""
        try:
            with self.path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - ANCHOR_TAIL_BYTES))
                tail = handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditTrailError(f"the audit anchor {self.path} cannot be read: {exc}") from None
        found = [t for t in self._complete(tail) if t.strip()]
        if size > ANCHOR_TAIL_BYTES and found:
            found = found[1:]  # the tail's first line may start mid-line
        mine = self._mine(self._parse(0, t) for t in found[-8:]) if found else []
        if mine:
            return mine[-1]
        if size > ANCHOR_TAIL_BYTES:  # other trails' heads at the end: read the whole file
            every = self.lines()
            return every[-1] if every else None
        return None


# --------------------------------------------------------------------- table maintenance


class TableAuditor:
    """The `on_write` (and `on_change`) listener of a `TableIO`: every committed write, and
    every optimize, vacuum, schema change and restore, recorded in the trail by `principal`.
    """

    def __init__(self, trail: AuditTrail, principal: str | None = None) -> None:
        self.trail = trail
        self.principal = principal

    def __call__(self, name: str, result: WriteResult, commit: CommitContext) -> None:
        self.trail.record(
            AuditEvent(
                action="write",
                table_name=name,
                principal=self.principal,
                table_version=result.version,
                row_count=result.rows_written,
                job=commit.job,
                run_id=commit.run_id,
                logical_date=commit.logical_date,
                details={"operation": result.operation, "files_added": result.files_added},
            )
        )

    def on_change(self, change: TableChange, commit: CommitContext | None) -> None:
        self.trail.record(
            AuditEvent(
                action=change.operation,
                table_name=change.table,
                principal=self.principal,
                table_version=change.version,
                job=None if commit is None else commit.job,
                run_id=None if commit is None else commit.run_id,
                logical_date=None if commit is None else commit.logical_date,
                details=change.details,
            )
        )


def write_auditor(trail: AuditTrail, principal: str | None = None) -> TableAuditor:
    """The listener of a `TableIO` that records every committed write and every maintenance
    change (optimize, vacuum, schema change, restore) in `trail`, by `principal` (default:
    the OS account, `current_principal()`): `TableIO(..., on_write=write_auditor(trail))`."""
    return TableAuditor(trail, principal)


# --------------------------------------------------------------------- the trail


class AuditTrail:
    """The `_audit` table as an append-only, HMAC-chained trail (21 CFR Part 11 style),
    anchored outside the lakehouse.

    >>> trail = AuditTrail(settings)                                           # doctest: +SKIP
    >>> trail.record(AuditEvent(action="read", table_name="silver.complaints",
    ...                         role="analyst_cn", purpose="monthly KPIs"))    # doctest: +SKIP
    ['0b7e…']
    >>> trail.verify().ok                                                      # doctest: +SKIP
    True

    Each event gets `seq` (0, 1, 2, ...), a UTC `event_time` never earlier than the previous
    event's, `prev_hash` (the previous event's MAC; 64 zeros for the first), `key_id` and
    `hash`: HMAC-SHA256 of `canonical(event)` under the audit key `key_id` from the secret
    store (`medlake.governance.keys.load_audit_keys`). Without the key nobody can rewrite an
    event and recompute the MACs after it. Every append also writes the new head to the
    anchor (`audit.anchor`, outside storage.root), so a trail cut short or rebuilt from an
    earlier copy is caught too, and records it in its Delta commit.

    Appends are serialised: on the local file system by an exclusive `flock` next to the
    table; on object storage by the orchestrator (one writer per table), and in both cases an
    append commits only on top of the table version whose last event it chained to. An
    append refuses to chain onto a head whose MAC does not verify, whose key is not in the
    store, or that the anchor contradicts (a forged or truncated trail): nothing is written
    on top of a forgery, and `verify`, which checks every event and every anchored head,
    keeps reporting it. When the current key id differs from the head's, the append first
    records a `key_rotation` event naming both ids.
    """

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self._table = ArrowTable(settings, TABLE, registry)
        self.keys = load_audit_keys(settings.home)  # a missing key stops here, before writes
        self.anchor = Anchor(check_audit_anchor(settings), self.keys, self.location)

    @property
    def location(self) -> str:
        return self._table.location

    def record(self, events: AuditEvent | Sequence[AuditEvent]) -> list[str]:
        """Append `events` in order, in one Delta commit, and anchor the new head; return
        their event ids."""
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
                    self._anchor_head(last)  # an earlier attempt landed, its call failed
                    return ids
                self._check_tail(last)
                first = self._system_events(snapshot, last)
                rows = _chain(
                    [*first, *batch], [str(uuid.uuid4()) for _ in first] + ids, last, self.keys
                )
                try:
                    snapshot.append(
                        rows,
                        metadata={
                            "lakehouse_operation": "audit append",
                            "audit_first_seq": str(rows[0]["seq"]),
                            "audit_head_seq": str(rows[-1]["seq"]),
                            "audit_head_hash": rows[-1]["hash"],
                            "audit_key_id": self.keys.current,
                        },
                    )
                except TableConflictError:
                    continue  # another writer appended first (object storage): chain again
                self._anchor_head(rows[-1])
                snapshot.compact(min_extra_files=COMPACT_AFTER)  # arrow-level: not audited
                return ids
        raise AuditTrailError(
            f"{TABLE}: {MAX_ATTEMPTS} attempts to append at {self.location} lost to other "
            "writers; serialise the writers of the audit table (one Airflow pool)"
        )

    def events(self) -> list[dict[str, Any]]:
        """Every event as stored (`details` is JSON text, times are UTC), in chain order."""
        return self._read()[1]

    def verify(self) -> Verification:
        """Check every event, every anchored head and the head in the Delta log; name the
        first problem.

        Events are sorted by seq; each must have the next seq (none removed or duplicated),
        a key id whose key is in the store, a MAC that verifies under it (not changed, not
        re-MAC'd without the key), the previous event's MAC as prev_hash (none removed,
        inserted or rewritten before it) and a time not before the previous one (not
        reordered). Every line of the anchor must verify and each head it recorded must be
        the event at that seq (the trail was not cut short or rebuilt); an anchor missing or
        emptied while the trail holds events is reported too. Finally the newest head
        recorded in the Delta log must still be there. An empty or missing table with an
        anchor holding no head verifies ok with `checked=0`.
        """
        snapshot, events = self._read()
        result = self._verify_chain(events)
        heads: list[dict[str, Any]] = []
        if result is None:
            result, heads = self._verify_anchor(events)
        if result is None and snapshot is not None:
            result = self._check_head(snapshot, events)
        return result or self._intact(events, heads)

    # ----------------------------------------------------------------- internals

    def _system_events(
        self, snapshot: Snapshot, last: Mapping[str, Any] | None
    ) -> list[AuditEvent]:
        """Events the trail records about itself before `record`'s own: columns the append
        added to `_audit`, and a change of the current key."""
        found = []
        if snapshot.added_columns:
            found.append(
                AuditEvent(
                    action="schema_change",
                    table_name=TABLE,
                    table_version=snapshot.version,
                    details={"columns_added": snapshot.added_columns},
                )
            )
        if last is not None and last.get("key_id") != self.keys.current:
            found.append(
                AuditEvent(
                    action="key_rotation",
                    table_name=TABLE,
                    details={"from_key_id": last.get("key_id"), "to_key_id": self.keys.current},
                )
            )
        return found

    def _anchor_head(self, head: Mapping[str, Any]) -> None:
        self.anchor.append(
            {
                "seq": int(head["seq"]),
                "event_id": str(head["event_id"]),
                "mac": str(head["hash"]),
                "key_id": head.get("key_id"),
                "event_time": _canonical_value(head["event_time"]),
                "anchored_at": _canonical_value(dt.datetime.now(dt.UTC)),
                "trail": self.location,
            }
        )

    def _refuse(self, problem: str) -> AuditTrailError:
        return AuditTrailError(
            f"{TABLE}: nothing was appended to the audit trail at {self.location}: {problem}. "
            "Events are never chained onto a trail that does not verify; run `lakehouse audit "
            "verify`, investigate, and restore the trail (and the anchor) from a trusted copy"
        )

    def _check_tail(self, last: Mapping[str, Any] | None) -> None:
        """Refuse to append on top of a head that is forged, unverifiable, or contradicted by
        the anchor; write the anchor's genesis line before the trail's first event."""
        anchored = self.anchor.last()
        if last is None:
            if anchored is not None and anchored["seq"] >= 0:
                raise self._refuse(
                    f"the trail is empty but the anchor {self.anchor.path} recorded event "
                    f"{anchored['seq']} as its head: the trail was deleted or replaced"
                )
            if anchored is None:
                self._genesis()
            return
        if problem := _mac_problem(last, self.keys):
            if last.get("key_id") is None:
                raise self._refuse(
                    f"{problem}. A trail written before audit keys is kept as a record: move "
                    f"its folder aside (e.g. to {self.location}.legacy) and note its "
                    "head; the next event starts a keyed trail"
                )
            raise self._refuse(f"its head {problem}")
        if anchored is None:
            raise self._refuse(
                f"the anchor {self.anchor.path} is missing or empty but the trail holds "
                f"{int(last['seq']) + 1} events: restore the anchor from its WORM copy, or set "
                "audit.anchor to where it is"
            )
        if anchored["seq"] > last["seq"]:
            raise self._refuse(
                f"the trail ends at event {last['seq']} but the anchor recorded event "
                f"{anchored['seq']} as its head: {_missing(int(last['seq']) + 1, anchored['seq'])}"
                " (removed from the end)"
            )
        if anchored["seq"] == last["seq"] and anchored.get("mac") != last["hash"]:
            raise self._refuse(
                f"{_label(last)} is not the head the anchor recorded for seq {last['seq']}: "
                "the trail was rewritten"
            )

    def _genesis(self) -> None:
        now = _canonical_value(dt.datetime.now(dt.UTC))
        self.anchor.append(
            {"seq": -1, "event_id": None, "mac": GENESIS, "key_id": None, "event_time": None,
             "anchored_at": now, "trail": self.location}
        )  # fmt: skip

    def _verify_chain(self, events: Sequence[Mapping[str, Any]]) -> Verification | None:
        prev: Mapping[str, Any] | None = None
        for event in events:
            problem = _link_problem(event, prev, self.keys)
            if problem is not None:
                return self._broken(
                    events, problem, first_bad=event.get("event_id"), position=event.get("seq")
                )
            prev = event
        return None

    def _verify_anchor(
        self, events: Sequence[Mapping[str, Any]]
    ) -> tuple[Verification | None, list[dict[str, Any]]]:
        """Every anchored head must be the event at its seq; the anchor must exist, start
        with its genesis line and hold a head when the trail has events. Also returns the
        anchored heads."""
        heads: list[dict[str, Any]] = []
        try:
            lines = self.anchor.lines()
        except AuditTrailError as exc:
            return self._broken(events, str(exc)), heads
        heads = [line for line in lines or [] if line["seq"] >= 0]
        return self._anchor_problem(events, lines, heads), heads

    def _anchor_problem(
        self,
        events: Sequence[Mapping[str, Any]],
        lines: list[dict[str, Any]] | None,
        heads: list[dict[str, Any]],
    ) -> Verification | None:
        where = str(self.anchor.path)
        if events and not heads:
            state = "does not exist" if lines is None else "holds no head"
            return self._broken(
                events,
                f"the anchor {where} {state} but the trail holds {len(events)} events: the "
                "anchor was removed, emptied or replaced (or audit.anchor points elsewhere); "
                "the trail cannot be checked against it",
            )
        if lines and lines[0]["seq"] != -1:
            return self._broken(
                events,
                f"the anchor {where} does not start with its genesis line: lines were removed "
                "from its start, or it was replaced",
            )
        numbered = [(n, line) for n, line in enumerate(lines or [], start=1) if line["seq"] >= 0]
        number, newest = max(numbered, key=lambda item: item[1]["seq"], default=(0, None))
        if newest is not None and newest["seq"] >= len(events):
            ends = f"ends at event {len(events) - 1}" if events else "is empty"
            return self._broken(
                events,
                f"the trail {ends} but line {number} of the anchor {where} recorded event "
                f"{newest['seq']} as its head at {newest.get('anchored_at')}: "
                f"{_missing(len(events), newest['seq'])} (removed from the end, or the trail "
                "was replaced)",
                position=len(events),
            )
        for number, head in numbered:
            seq = head["seq"]
            event = events[seq]
            if head.get("mac") != event.get("hash") or head.get("event_id") != event.get(
                "event_id"
            ):
                return self._broken(
                    events,
                    f"{_label(event)} is not the head line {number} of the anchor {where} "
                    f"recorded (id {head.get('event_id')}, MAC {str(head.get('mac'))[:16]}…): "
                    "the trail was rewritten at or before this event",
                    first_bad=event.get("event_id"),
                    position=seq,
                )
        return None

    def _intact(
        self, events: Sequence[Mapping[str, Any]], heads: Sequence[Mapping[str, Any]]
    ) -> Verification:
        newest = max((h["seq"] for h in heads), default=-1)
        return Verification(
            ok=True,
            checked=len(events),
            head_hash=str(events[-1]["hash"]) if events else None,
            anchored=len(heads),
            anchor=str(self.anchor.path),
            key_ids=tuple(sorted({str(e["key_id"]) for e in events})),
            unanchored=len(events) - 1 - newest if events else 0,
        )

    def _broken(
        self,
        events: Sequence[Mapping[str, Any]],
        reason: str,
        *,
        first_bad: str | None = None,
        position: int | None = None,
    ) -> Verification:
        return Verification(
            ok=False,
            checked=len(events),
            first_bad=first_bad,
            position=position,
            reason=reason,
            anchor=str(self.anchor.path),
        )

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
        rows.sort(key=lambda row: _order(row, self.keys))
        return snapshot, rows

    def _check_head(
        self, snapshot: Snapshot, events: Sequence[Mapping[str, Any]]
    ) -> Verification | None:
        """The newest head an append recorded in the Delta log must be in the (intact) chain."""
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
            return self._broken(
                events,
                f"version {version} of the table records an unreadable head "
                f"{recorded['audit_head_seq']!r}: its commit information was edited",
            )
        if seq >= len(events):  # seq is contiguous from 0 here, so it is the list index
            ends = f"ends at event {len(events) - 1}" if events else "is empty"
            return self._broken(
                events,
                f"the trail {ends} but version {version} of the table recorded event "
                f"{seq} as the newest: {_missing(len(events), seq)} (removed from the end)",
                position=len(events),
            )
        event = events[seq]
        if event["hash"] != recorded.get("audit_head_hash"):
            return self._broken(
                events,
                f"{_label(event)} is not the event version {version} of the table "
                f"recorded (MAC {str(recorded.get('audit_head_hash'))[:16]}…): its commit "
                "information was edited, or the trail rewritten at or before this event",
                first_bad=event.get("event_id"),
                position=seq,
            )
        return None


__all__ = [
    "MAC_FIELDS",
    "Anchor",
    "AuditEvent",
    "AuditTrail",
    "AuditTrailError",
    "TableAuditor",
    "Verification",
    "canonical",
    "current_principal",
    "event_mac",
    "write_auditor",
]
