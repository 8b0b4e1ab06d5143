"""Conformance of hand-made bronze rows: numbers, units, currency and time at one plant."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pyspark.sql import SparkSession

from medlake.config import DEFAULT_CONF_DIR
from medlake.entities import load_specs
from medlake.silver.conform import Refs, conform
from medlake.sources import load_sources

SPEC = load_specs(DEFAULT_CONF_DIR / "silver")["purchase_orders"]
TU = {"TU": load_sources(DEFAULT_CONF_DIR / "sources")["TU"]}


def po(
    row: int, qty: str, uom: str | None, price: str = "2,50", changed: str = "28.03.2026 12:00:00"
) -> dict[str, Any]:
    record = {
        "Bestellnummer": f"PO{row}",
        "Position": "1",
        "Lieferantennummer": "LIEF-0010",
        "Materialnummer": "MAT-01027",
        "Bestelldatum": "27.03.2026",
        "Liefertermin": "10.04.2026",
        "Bestellmenge": qty,
        "Mengeneinheit": uom,
        "Preis": price,
        "Währung": "EUR",
        "Version": "1",
        "Geändert am": changed,
    }
    return {
        "_plant_id": "TU",
        "_delivery_date": dt.date(2026, 3, 28),
        "_source_file": "f",
        "_file_row": row,
        "_file_version": 1,
        "_record": record,
    }


def run(spark: SparkSession, rows: list[dict[str, Any]]) -> dict[int, Any]:
    bronze = spark.createDataFrame(
        rows,
        "_plant_id string, _delivery_date date, _source_file string, _file_row int, "
        "_file_version int, _record map<string,string>",
    )
    out = conform(bronze, SPEC, TU, Refs("EUR"), run_id="r")
    return {r["_file_row"]: r for r in out.collect()}


def test_decimal_comma_units_and_prices_convert_and_bad_numbers_are_reasons(
    spark: SparkSession,
) -> None:
    got = run(
        spark,
        [
            po(1, "12,5", "ST"),
            po(2, "3", "BOX"),
            po(3, "1.234,5", "ST"),
            po(4, "12..5", "ST"),
            po(5, "4", None),
        ],
    )
    assert got[1]["_errors"] == [] and got[1]["ordered_qty"] == Decimal("12.5")
    assert got[1]["uom"] == "EA" and got[1]["uom_source"] == "ST"
    assert got[2]["ordered_qty"] == Decimal("30") and got[2]["ordered_qty_source"] == Decimal("3")
    assert got[2]["unit_price"] == Decimal("0.25")  # 2.50 per box of 10
    assert got[2]["unit_price_group"] == Decimal("0.25") and got[2]["fx_rate_to_group"] == 1
    assert got[3]["_errors"] == ["ordered_qty: '1.234,5' is not a number in the plant's format"]
    assert got[4]["_errors"] == ["ordered_qty: '12..5' is not a number in the plant's format"]
    assert got[5]["_errors"] == [
        "uom is missing, so ordered_qty cannot be converted",
        "uom is missing, so unit_price cannot be converted",
    ]


def test_berlin_wall_clock_becomes_utc_on_both_sides_of_the_spring_change(
    spark: SparkSession,
) -> None:
    got = run(
        spark,
        [
            po(1, "1", "ST", changed="28.03.2026 12:00:00"),
            po(2, "1", "ST", changed="30.03.2026 12:00:00"),
            po(3, "1", "ST", changed="29.03.2026 00:30:00"),
        ],
    )
    assert got[1]["updated_at"] == dt.datetime(2026, 3, 28, 11, 0)  # CET, UTC+1
    assert got[2]["updated_at"] == dt.datetime(2026, 3, 30, 10, 0)  # CEST, UTC+2
    assert got[3]["updated_at"] == dt.datetime(2026, 3, 28, 23, 30)
    assert got[3]["updated_at_local_date"] == dt.date(2026, 3, 29)  # local day, not the UTC one
