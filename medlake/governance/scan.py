"""The governance scan: sample every string column of silver and find personal data in the open.

A column classified as not personal (public, internal, confidential) must not hold personal
data: sampled values are run through the same Presidio analyzer as the free text, each value
read as it would appear in a contact field, so a bare name or phone number is recognised.
A column classified as pseudonymised must hold only tokens. Either finding fails the gate:
the result goes to `_dq` (rule `pii_scan`) and the scan job exits non-zero, which stops
downstream gold. Messages name the column, the entity types and the fix, never a value.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medlake.governance.analyzer import detect, detect_language
from medlake.governance.classes import Classes
from medlake.governance.operators import TOKEN
from medlake.io import TableIO
from medlake.tables import TableSpec

if TYPE_CHECKING:
    from pyspark.sql import Row

SAMPLE = 200  # distinct values per column
SAMPLE_ROWS = 5_000  # rows read per table to find them
MIN_SHARE = 0.05  # share of sampled values with a finding that fails an unclassified column
MIN_HITS = 3  # ... and never fewer than this many values (one odd match is not a column of PII)
# How a bare value is read: the analyzer's recognizers look for context, as in a contact field.
FRAMES = {"zh": "联系人：{}", "de": "Ansprechpartner: {}", "en": "Contact: {}"}


@dataclass(frozen=True)
class ColumnScan:
    table: str
    column: str
    classification: str
    sampled: int
    flagged: int
    entities: dict[str, int]
    passed: bool
    message: str


def scan_values(values: Iterable[str]) -> tuple[int, Counter[str]]:
    """How many values hold personal data, and which entity types were found."""

    flagged, entities = 0, Counter[str]()
    for value in values:
        language = detect_language(value)
        frame = FRAMES[language]
        offset = frame.index("{}")
        found = [f for f in detect(frame.format(value), language) if f.end > offset]
        if found:
            flagged += 1
            entities.update({f.entity_type for f in found})
    return flagged, entities


def scan_table(io: TableIO, spec: TableSpec, classes: Classes) -> list[ColumnScan]:
    """Scan the string columns of one table (nothing when the table does not exist yet).

    One Spark job per table: the first `SAMPLE_ROWS` rows, from which each column keeps up
    to `SAMPLE` distinct values.
    """
    return judge_table(spec, sample_table(io, spec), classes)


def sample_table(io: TableIO, spec: TableSpec) -> list[Row] | None:
    """The rows `scan_table` judges: the string columns it scans of the first `SAMPLE_ROWS`
    rows (the Spark side of a scan; several tables may be sampled at once); None when the
    table does not exist yet or has no column to scan."""
    columns = _scanned(spec)
    if not columns or io.version(spec.name) is None:
        return None
    return io.read(spec.name).select(*[c.name for c in columns]).limit(SAMPLE_ROWS).collect()


def judge_table(spec: TableSpec, rows: list[Row] | None, classes: Classes) -> list[ColumnScan]:
    """Judge the sampled values of each scanned column (no Spark; nothing for no sample)."""
    if rows is None:
        return []
    out = []
    for i, column in enumerate(_scanned(spec)):
        values = list(dict.fromkeys(r[i] for r in rows if r[i] is not None))[:SAMPLE]
        operator = classes.get(column.classification).operator
        out.append(_judge(spec.name, column.name, column.classification, operator, values))
    return out


def _scanned(spec: TableSpec) -> list[Any]:
    return [
        c
        for c in spec.columns
        if c.type == "string" and c.classification not in ("restricted", "free_text")
    ]


def _judge(
    table: str, column: str, classification: str, operator: str | None, values: list[str]
) -> ColumnScan:
    where = f"{table}.{column} ({classification})"
    if operator == "pseudonym":
        clear = sum(1 for v in values if not TOKEN.match(v))
        message = (
            f"{where}: {clear} of {len(values)} sampled values are not pseudonym tokens; "
            "silver must mask this column (see medlake.governance.masking)"
            if clear
            else f"{where}: {len(values)} sampled values, all pseudonym tokens"
        )
        return ColumnScan(table, column, classification, len(values), clear, {}, not clear, message)
    if operator is not None:  # redacted, partially masked or generalised by silver
        masked = f"{where}: masked by silver"
        return ColumnScan(table, column, classification, len(values), 0, {}, True, masked)
    flagged, entities = scan_values(values)
    failed = flagged >= MIN_HITS and flagged >= MIN_SHARE * len(values)
    kinds = ", ".join(f"{k} x{n}" for k, n in sorted(entities.items()))
    if failed:
        message = (
            f"{where}: {flagged} of {len(values)} sampled values hold personal data ({kinds}) but "
            "the column is not classified as personal: set its classification (pii.<kind> or "
            "free_text) in conf/silver or conf/tables so silver masks it, then re-run silver"
        )
    elif flagged:
        message = f"{where}: {flagged} of {len(values)} values matched ({kinds}); below the gate"
    else:
        message = f"{where}: {len(values)} sampled values, no personal data found"
    return ColumnScan(
        table, column, classification, len(values), flagged, dict(entities), not failed, message
    )


def dq_rows(scans: list[ColumnScan], *, run_id: str, logical_date: dt.date) -> list[dict[str, Any]]:
    """`_dq` rows: one per column scanned, rule `pii_scan`, action `fail`."""
    at = dt.datetime.now(dt.UTC)
    return [
        {
            "run_id": run_id,
            "logical_date": logical_date,
            "table_name": s.table,
            "rule_id": f"pii_scan.{s.column}",
            "check": "pii_scan",
            "action": "fail",
            "rows_checked": s.sampled,
            "rows_failed": s.flagged,
            "passed": s.passed,
            "message": s.message,
            "evaluated_at": at,
        }
        for s in scans
    ]
