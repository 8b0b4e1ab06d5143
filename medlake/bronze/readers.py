"""Source readers: turn one delivered file's bytes into rows of text values, or reasons why not.

Readers are registered by format name (`csv`, `jsonl`, `parquet`) and run inside Spark
tasks, so they are plain Python over bytes. Every data row comes out either as a record
(local column -> text, None when empty) or as a quarantine row with its raw text and a
reason; a whole file is refused only when its header breaks the contract (for example a
wrong encoding), and then every line is quarantined so nothing is lost.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

__all__ = ["READERS", "FileSpec", "Parsed", "read_file"]


@dataclass(frozen=True)
class FileSpec:
    """What the contract says about one file: format, encoding and the expected columns."""

    format: str
    encoding: str
    delimiter: str
    columns: tuple[str, ...]  # local column names configured for the entity
    expected_rows: int | None = None  # data rows per the delivery's control totals
    control_problem: str | None = None  # the control totals refuse the file (checksum)
    vouched: bool = False  # the control totals' checksum matches: the file arrived whole


@dataclass
class Parsed:
    """One file's outcome: good rows, quarantined rows, and file-level facts."""

    rows: list[tuple[int, dict[str, str | None]]] = field(default_factory=list)
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # row, raw, reason
    header: list[str] = field(default_factory=list)
    file_error: str | None = None  # set when the whole file was refused
    lines: int | None = None  # data lines, where a reader gives several records per line

    @property
    def empty(self) -> bool:
        """No data row at all (0 bytes, a header only, blank lines): the delivery's empty
        policy decides (conf/sources `empty`), whatever the format."""
        return not self.rows and not self.errors and not self.file_error


Reader = Callable[[bytes, FileSpec], Parsed]
READERS: dict[str, Reader] = {}


def reader(name: str) -> Callable[[Reader], Reader]:
    def register(fn: Reader) -> Reader:
        READERS[name] = fn
        return fn

    return register


def read_file(content: bytes, spec: FileSpec) -> Parsed:
    """The file's rows, checked against the delivery's control totals when it has them."""
    if spec.control_problem:
        return _refuse_all(content, spec.control_problem)
    if not content:
        return Parsed()  # 0 bytes: empty in every format (the empty policy decides)
    try:
        parsed = READERS[spec.format](content, spec)
    except Exception as exc:  # a reader bug or an unreadable file must not lose the file
        reason = f"could not read the file as {spec.format}: {exc}"
        raw = content[:10_000].decode("utf-8", "backslashreplace")
        return Parsed(file_error=reason, errors=[(1, raw, reason)])
    found = parsed.lines if parsed.lines is not None else len(parsed.rows) + len(parsed.errors)
    if spec.expected_rows is not None and not parsed.file_error and found != spec.expected_rows:
        reason = (
            f"the file has {found} data rows, its control total says {spec.expected_rows}: "
            "rows were lost or added in transfer; ask the plant to re-deliver it"
        )
        parsed.file_error = reason
        parsed.errors = [
            (n, json.dumps(record, ensure_ascii=False), reason) for n, record in parsed.rows
        ] + [(n, raw, f"{reason}; {why}") for n, raw, why in parsed.errors]
        parsed.rows = []
    return parsed


def _refuse_all(content: bytes, reason: str) -> Parsed:
    text = content.decode("utf-8", "backslashreplace")
    lines = [line for line in text.splitlines() if line] or [""]
    return Parsed(file_error=reason, errors=[(i, ln, reason) for i, ln in enumerate(lines, 1)])


TRUNCATED = (
    "possibly truncated: the file's last line has no line terminator, so it may have been cut "
    "inside this row; deliver files with a final newline, or with control totals that give "
    "their sha256 (_control.csv, docs/onboarding.md)"
)


def _unterminated(text: str, spec: FileSpec) -> bool:
    """A text file whose last line lacks its terminator (in the decoded text: UTF-16 ends in
    two bytes), unless a control checksum vouches that the file arrived whole."""
    return not spec.vouched and not text.endswith(("\n", "\r"))


# ----------------------------------------------------------------------------- text decoding


def _decode(content: bytes, spec: FileSpec) -> tuple[str, str | None]:
    """The text, and a reason when it is not valid in the declared encoding."""
    try:
        return content.decode(spec.encoding), None
    except UnicodeDecodeError as exc:
        reason = (
            f"not valid {spec.encoding}: byte 0x{content[exc.start]:02x} at offset {exc.start} "
            f"({exc.reason})"
        )
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            return content.decode(spec.encoding, "backslashreplace"), reason
        reason += (
            f"; the file is valid UTF-8, so it was exported in the wrong encoding: ask the plant "
            f"to re-deliver it in {spec.encoding} (rows kept here as UTF-8 text)"
        )
        return text, reason


def _header_problem(header: list[str], spec: FileSpec, content: bytes) -> str | None:
    missing = [c for c in spec.columns if c not in header]
    if not missing:
        return None
    reason = f"header lacks configured columns {missing}"
    if spec.encoding.replace("-", "").lower() != "utf8":
        try:
            utf8_header = content.decode("utf-8").splitlines()[0]
        except (UnicodeDecodeError, IndexError):
            utf8_header = ""
        if all(c in utf8_header for c in spec.columns):
            reason = (
                f"the file is UTF-8, not the declared {spec.encoding} (its header only "
                "matches the contract when read as UTF-8); ask the plant to re-deliver it "
                f"in {spec.encoding} or fix delivery.encoding in conf/sources"
            )
    return reason


def _refuse_lines(text: str, reason: str, skip_header: bool) -> Parsed:
    lines = text.splitlines()[1 if skip_header else 0 :]
    parsed = Parsed(file_error=reason)
    parsed.errors = [(i, line, reason) for i, line in enumerate(lines, start=1) if line]
    return parsed


# ----------------------------------------------------------------------------- formats


@reader("csv")
def read_csv(content: bytes, spec: FileSpec) -> Parsed:
    text, bad_bytes = _decode(content, spec)
    if bad_bytes:
        return _refuse_lines(text, bad_bytes, skip_header=True)
    if not text.strip():
        return Parsed()  # nothing but blank space: empty (the empty policy decides)
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=spec.delimiter, strict=True)
    try:
        header = next(rows)
    except StopIteration:
        return Parsed()  # nothing but blank space: empty (the empty policy decides)
    except csv.Error as exc:
        return _refuse_lines(text, f"the header line is not valid CSV ({exc})", skip_header=False)
    header = [h.lstrip("\ufeff") if i == 0 else h for i, h in enumerate(header)]
    problem = _header_problem(header, spec, content)
    if problem:
        return _refuse_lines(text, problem, skip_header=True)
    parsed = Parsed(header=header)
    number = 0
    consumed = rows.line_num  # physical lines read so far
    while True:
        number += 1
        try:
            values = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            # an unbalanced quote swallows the lines after it: quarantine each of them
            rest = [line for line in text.splitlines()[consumed:] if line]
            reason = (
                f"broken CSV quoting from this row on ({exc}); the rest of the file is kept here"
            )
            parsed.errors += [(number + i, line, reason) for i, line in enumerate(rest)]
            break
        consumed = rows.line_num
        if not values:
            number -= 1  # a blank line is not a row
            continue
        if len(values) != len(header):
            raw = spec.delimiter.join(values)
            cut = " (the line is cut short: truncated file?)" if len(values) < len(header) else ""
            reason = f"row has {len(values)} fields, the header has {len(header)}{cut}"
            parsed.errors.append((number, raw, reason))
            continue
        parsed.rows.append(
            (number, {h: (v if v != "" else None) for h, v in zip(header, values, strict=True)})
        )
    if _unterminated(text, spec) and parsed.rows and parsed.rows[-1][0] == number - 1:
        last, _ = parsed.rows.pop()
        parsed.errors.append((last, text.splitlines()[-1], TRUNCATED))
    return parsed


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    return text if text != "" else None


@reader("jsonl")
def read_jsonl(content: bytes, spec: FileSpec) -> Parsed:
    text, bad_bytes = _decode(content, spec)
    if bad_bytes:
        return _refuse_lines(text, bad_bytes, skip_header=False)
    parsed = Parsed()
    seen: dict[str, None] = {}
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines and _unterminated(text, spec) and text.splitlines()[-1].strip():
        parsed.errors.append((len(lines), lines.pop(), TRUNCATED))
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            parsed.errors.append(
                (number, line, f"not a JSON object: {exc.msg} at column {exc.colno}")
            )
            continue
        if not isinstance(record, dict):
            parsed.errors.append((number, line, "not a JSON object"))
            continue
        seen.update(dict.fromkeys(record))
        parsed.rows.append((number, {str(k): _text(v) for k, v in record.items()}))
    parsed.header = list(seen)
    parsed.errors.sort()
    if parsed.rows:
        problem = _header_problem(parsed.header, spec, b"")
        if problem:
            return _refuse_lines(text, problem, skip_header=False)
    return parsed


@reader("parquet")
def read_parquet(content: bytes, spec: FileSpec) -> Parsed:

    table = pq.read_table(io.BytesIO(content))
    if table.num_rows == 0:
        return Parsed()  # no rows, whatever the schema: empty (the empty policy decides)
    parsed = Parsed(header=list(table.column_names))
    problem = _header_problem(parsed.header, spec, b"")
    if problem:
        # every row is quarantined (as JSON), so the manifest counts what the file held
        refused = Parsed(file_error=problem, header=parsed.header)
        for i, row in enumerate(table.to_pylist(), start=1):
            raw = json.dumps({k: _text(v) for k, v in row.items()}, ensure_ascii=False)
            refused.errors.append((i, raw, problem))
        return refused
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for i in range(table.num_rows):
        parsed.rows.append((i + 1, {name: _text(values[i]) for name, values in columns.items()}))
    return parsed


def iter_rows(
    parsed: Parsed,
) -> Iterator[tuple[int, dict[str, str | None] | None, str | None, str | None]]:
    """(row, record, raw, reason) for good rows then quarantined rows."""
    for number, record in parsed.rows:
        yield number, record, None, None
    for number, raw, reason in parsed.errors:
        yield number, None, raw, reason


# formats registered in modules of their own (imported for their @reader registration)
from medlake.bronze import fxref  # noqa: E402, F401
