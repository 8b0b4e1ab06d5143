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


@dataclass
class Parsed:
    """One file's outcome: good rows, quarantined rows, and file-level facts."""

    rows: list[tuple[int, dict[str, str | None]]] = field(default_factory=list)
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # row, raw, reason
    header: list[str] = field(default_factory=list)
    file_error: str | None = None  # set when the whole file was refused


Reader = Callable[[bytes, FileSpec], Parsed]
READERS: dict[str, Reader] = {}


def reader(name: str) -> Callable[[Reader], Reader]:
    def register(fn: Reader) -> Reader:
        READERS[name] = fn
        return fn

    return register


def read_file(content: bytes, spec: FileSpec) -> Parsed:
    try:
        return READERS[spec.format](content, spec)
    except Exception as exc:  # a reader bug or an unreadable file must not lose the file
        reason = f"could not read the file as {spec.format}: {exc}"
        raw = content[:10_000].decode("utf-8", "backslashreplace")
        return Parsed(file_error=reason, errors=[(1, raw, reason)])


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
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=spec.delimiter, strict=True)
    try:
        header = next(rows)
    except (StopIteration, csv.Error):
        return Parsed(file_error="empty file: no header line")
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
    for number, line in enumerate((ln for ln in text.splitlines() if ln.strip()), start=1):
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
    if parsed.rows:
        problem = _header_problem(parsed.header, spec, b"")
        if problem:
            return _refuse_lines(text, problem, skip_header=False)
    return parsed


@reader("parquet")
def read_parquet(content: bytes, spec: FileSpec) -> Parsed:

    table = pq.read_table(io.BytesIO(content))
    parsed = Parsed(header=list(table.column_names))
    problem = _header_problem(parsed.header, spec, b"")
    if problem:
        raw = ",".join(parsed.header)
        return Parsed(file_error=problem, errors=[(1, f"columns: {raw}", problem)])
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
