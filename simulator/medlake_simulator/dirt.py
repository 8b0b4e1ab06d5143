"""Realistic dirt, each kind at a documented rate, injected into the plants' daily files.

Rates apply per row of the daily transactional extracts (master snapshots stay clean, as
they usually are). Typed Parquet files cannot hold unparseable text, so those two kinds
skip the Parquet plant. Every injection is counted in `_truth/dirt.json`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlake_simulator.contracts import Entity
from medlake_simulator.plants import Plant

Record = dict[str, Any]

RATES: dict[str, float] = {
    "exact_duplicate": 0.005,
    "near_duplicate": 0.003,
    "missing_mandatory": 0.005,
    "unparseable_date": 0.003,
    "unparseable_number": 0.003,
    "bad_quantity": 0.002,
    "unit_mismatch": 0.01,  # goods receipts only
    "outlier": 0.005,  # process measurements only
}
DESCRIPTIONS: dict[str, str] = {
    "exact_duplicate": "the same row delivered twice, byte for byte",
    "near_duplicate": "the same row again with padded or re-cased text in one field",
    "missing_mandatory": "the last key column of the entity left empty",
    "unparseable_date": "a date that is not a date (31.02., 2026-13-45, n/a)",
    "unparseable_number": "a number that is not a number (1,2,3 / abc / --)",
    "bad_quantity": "the first quantity column negative or 1000 times too large",
    "unit_mismatch": (
        "receipt recorded in the base unit while the order is in BOX (or the reverse), "
        "quantity unconverted"
    ),
    "outlier": "a process measurement 10 times its normal value",
    "late_correction": (
        "a purchase-order line re-sent days later with a higher record_version (about 2% of lines)"
    ),
    "schema_drift": "Galway adds a column to goods receipts from the middle of the period on",
    "truncated_line": "one Penang stock-movements file ends in the middle of its last line",
    "wrong_encoding": "one Suzhou material-master file is UTF-8 instead of GB18030",
    "supplier_spelling": (
        "the same supplier is spelled differently at each plant (language, case, legal form)"
    ),
}
_BAD_DATES = ("31/02/2026", "2026-13-45", "n/a", "00.00.0000")
_BAD_NUMBERS = ("1,2,3", "abc", "--", "12..5")
QTY_FIELDS = ("ordered_qty", "received_qty", "qty", "qty_consumed", "inspected_qty", "planned_qty")


@dataclass
class DirtLog:
    counts: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)  # clean rows seen, per entity key

    def to_json(self) -> dict[str, Any]:
        return {
            "rates": RATES,
            "descriptions": DESCRIPTIONS,
            "injected": dict(sorted(self.counts.items())),
            "rows_before_dirt": dict(sorted(self.rows.items())),
        }


def apply(
    rows: list[Record], entity: Entity, plant: Plant, rng: np.random.Generator, log: DirtLog
) -> list[Record]:
    """Return the rows to deliver: dirt injected, duplicates placed after their original."""
    if entity.cadence == "snapshot" or not rows:
        return rows
    log.rows[entity.key] += len(rows)
    text_file = plant.file_format != "parquet"
    dates = [f.name for f in entity.fields if f.type in ("date", "datetime")]
    numbers = [
        f.name for f in entity.fields if f.type in ("decimal", "int") and f.name not in entity.keys
    ]
    pii = {f.name for f in entity.fields if f.pii}
    strings = [
        f.name
        for f in entity.fields
        if f.type == "string" and f.name not in pii and f.name not in entity.keys
    ]
    quantities = [f for f in QTY_FIELDS if f in {x.name for x in entity.fields}]
    out: list[Record] = []
    draws = rng.random((len(rows), 8))
    for original, draw in zip(rows, draws, strict=True):
        row = dict(original)
        if draw[0] < RATES["missing_mandatory"]:
            row[entity.keys[-1]] = None
            log.counts["missing_mandatory"] += 1
        if text_file and dates and draw[1] < RATES["unparseable_date"]:
            row[dates[int(rng.integers(len(dates)))]] = _BAD_DATES[
                int(rng.integers(len(_BAD_DATES)))
            ]
            log.counts["unparseable_date"] += 1
        if text_file and numbers and draw[2] < RATES["unparseable_number"]:
            row[numbers[int(rng.integers(len(numbers)))]] = _BAD_NUMBERS[
                int(rng.integers(len(_BAD_NUMBERS)))
            ]
            log.counts["unparseable_number"] += 1
        if quantities and draw[3] < RATES["bad_quantity"]:
            name = quantities[0]
            if isinstance(row.get(name), int | float):
                row[name] = -abs(row[name]) if rng.random() < 0.5 else row[name] * 1000
                log.counts["bad_quantity"] += 1
        if entity.key == "erp__goods_receipts" and draw[4] < RATES["unit_mismatch"]:
            row["uom"] = plant.unit_style if row["uom"] == "BOX" else "BOX"
            log.counts["unit_mismatch"] += 1
        measured = isinstance(row.get("value"), float)
        if entity.key == "mes__process_measurements" and draw[5] < RATES["outlier"] and measured:
            row["value"] = round(row["value"] * 10, 3)
            log.counts["outlier"] += 1
        out.append(row)
        if draw[6] < RATES["exact_duplicate"]:
            out.append(dict(row))
            log.counts["exact_duplicate"] += 1
        elif strings and draw[7] < RATES["near_duplicate"]:
            twin = dict(row)
            name = strings[int(rng.integers(len(strings)))]
            if isinstance(twin.get(name), str) and twin[name]:
                twin[name] = (
                    f" {twin[name].upper()} "
                    if twin[name] != twin[name].upper()
                    else f" {twin[name]}  "
                )
                out.append(twin)
                log.counts["near_duplicate"] += 1
    return out


def special_cases(plant: Plant, entity: Entity, day_index: int, days: int) -> set[str]:
    """One-off dirt for this file: schema drift, a truncated last line, a wrong encoding."""
    cases = set()
    middle = days // 2
    if plant.code == "GW" and entity.key == "erp__goods_receipts" and day_index >= middle:
        cases.add("schema_drift")
    if plant.code == "PN" and entity.key == "wms__stock_movements" and day_index == middle:
        cases.add("truncated_line")
    if plant.code == "SU" and entity.key == "erp__materials" and day_index == min(1, days - 1):
        cases.add("wrong_encoding")
    return cases


def drift_value(row: Record, day: dt.date) -> str:
    return f"TL-{day:%y%m%d}-{abs(hash_str(str(row.get('receipt_id')))) % 10000:04d}"


def hash_str(text: str) -> int:
    """A stable string hash (Python's hash() is salted per process)."""
    value = 0
    for char in text:
        value = (value * 131 + ord(char)) % 2_147_483_647
    return value
