"""Write one plant's records as that plant's systems deliver them: format, encoding, names."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from medlake_simulator.contracts import Entity, SourceField, local_name
from medlake_simulator.dirt import drift_value
from medlake_simulator.plants import Plant

Record = dict[str, Any]
DRIFT_COLUMN = "temperatureLoggerId"
_BOOL = {"zh": ("是", "否"), "de": ("ja", "nein"), "en": ("Y", "N")}
_ARROW = {
    "string": pa.string(),
    "int": pa.int64(),
    "decimal": pa.float64(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us"),
    "bool": pa.bool_(),
}


def file_name(entity: Entity, plant: Plant) -> str:
    ext = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}[plant.file_format]
    return f"{entity.key}.{ext}"


@functools.cache
def _pii_fields(entity: Entity) -> tuple[SourceField, ...]:
    return tuple(f for f in entity.fields if f.pii)


@functools.lru_cache(maxsize=4096)
def _date_text(value: dt.date, pattern: str) -> str:
    return value.strftime(pattern)


def _number(value: float, plant: Plant) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text.replace(".", ",") if plant.decimal_comma else text


def text_value(value: Any, f: SourceField, plant: Plant) -> str:
    """A value as it appears in the plant's text files ('' for missing)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value  # includes deliberately unparseable dirt
    if f.type == "bool":
        yes, no = _BOOL[plant.lang]
        return yes if value else no
    if f.type == "datetime":
        return str(value.strftime(plant.datetime_format))
    if f.type == "date":
        return _date_text(value, plant.date_format)
    if f.type == "decimal":
        return _number(float(value), plant)
    return str(value)


def _json_value(value: Any, f: SourceField, plant: Plant) -> Any:
    if value is None or isinstance(value, str):
        return value
    if f.type in ("date", "datetime"):
        return text_value(value, f, plant)
    if f.type == "decimal":
        return round(float(value), 6)
    return value


class Labels:
    """Every planted personal value: file, row, column, offsets (the masking answer key)."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.count = 0

    def add(
        self, file: str, row: int, column: str, value: str, entity_type: str, start: int, end: int
    ) -> None:
        record = {
            "file": file,
            "row": row,
            "column": column,
            "value": value,
            "entity_type": entity_type,
            "start": start,
            "end": end,
        }
        self.handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self.count += 1

    def record(self, file: str, row_number: int, row: Record, entity: Entity, plant: Plant) -> None:
        spans = row.get("_spans") or {}
        for f in _pii_fields(entity):
            value = row.get(f.name)
            if not isinstance(value, str) or not value:
                continue
            column = local_name(plant, f)
            if f.pii == "FREE_TEXT":
                for span in spans.get(f.name, ()):
                    self.add(
                        file, row_number, column, span.value, span.entity_type, span.start, span.end
                    )
            else:
                self.add(file, row_number, column, value, str(f.pii), 0, len(value))


def write_file(
    out_dir: Path,
    relative: str,
    rows: list[Record],
    entity: Entity,
    plant: Plant,
    day: dt.date,
    cases: set[str],
    labels: Labels,
) -> int:
    """Write one delivery file; return the number of data rows written."""
    path = out_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(entity.fields)
    names = [local_name(plant, f) for f in fields]
    drift = "schema_drift" in cases
    if drift:
        names.append(DRIFT_COLUMN)
    truncated = "truncated_line" in cases and plant.file_format != "parquet" and rows
    for i, row in enumerate(rows[:-1] if truncated else rows, start=1):
        labels.record(relative, i, row, entity, plant)
    if plant.file_format == "parquet":
        columns = {
            name: pa.array([_typed(r.get(f.name), f) for r in rows], type=_ARROW[f.type])
            for name, f in zip(names, fields, strict=False)
        }
        pq.write_table(pa.table(columns), path, compression="snappy")
        return len(rows)
    if plant.file_format == "jsonl":
        lines = []
        for row in rows:
            data = {
                n: _json_value(row.get(f.name), f, plant)
                for n, f in zip(names, fields, strict=False)
            }
            if drift:
                data[DRIFT_COLUMN] = drift_value(row, day)
            lines.append(json.dumps(data, ensure_ascii=False))
        text = "".join(line + "\n" for line in lines)
    else:
        buffer = io.StringIO()
        writer = csv.writer(
            buffer, delimiter=plant.delimiter, lineterminator="\r\n" if plant.lang == "zh" else "\n"
        )
        writer.writerow(names)
        for row in rows:
            values = [text_value(row.get(f.name), f, plant) for f in fields]
            if drift:
                values.append(drift_value(row, day))
            writer.writerow(values)
        text = buffer.getvalue()
    if truncated:
        body = text.rstrip("\r\n")
        last = body.rfind("\n") + 1
        text = body[: last + max(1, (len(body) - last) // 2)]
    encoding = "utf-8" if "wrong_encoding" in cases else plant.encoding
    path.write_bytes(text.encode(encoding))
    return len(rows)


def _typed(value: Any, f: SourceField) -> Any:
    if isinstance(value, str) and f.type != "string":
        return None  # typed columns cannot carry unparseable text
    if f.type == "decimal" and value is not None:
        return float(value)
    return value
