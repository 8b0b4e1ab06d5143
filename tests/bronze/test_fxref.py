"""The ECB reference-rate reader: the wide CSV melted into one record per date and currency."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from medlake.bronze import fxref, readers
from medlake.bronze.readers import FileSpec, read_file

SAMPLE = Path(__file__).parent.parent / "fixtures" / "fx" / "eurofxref-sample.csv"
SPEC = FileSpec("reference-rates-csv", "utf-8", ",", ("Date", "Currency", "Rate"))


def _record(day: str, currency: str, rate: str, inverse: str) -> dict[str, str | None]:
    return {"Date": day, "Currency": currency, "Rate": rate, "Base": "EUR", "InverseRate": inverse}


def test_the_reader_is_registered_under_its_format_name() -> None:
    assert readers.READERS["reference-rates-csv"] is fxref.read_reference_rates


def test_a_small_file_melts_into_the_records_computed_by_hand() -> None:
    content = b"Date,USD,CNY,GBP,\n2019-01-03,1.25,8,N/A,\n2019-01-02,0.5,7.7891,0.90153,\n"
    parsed = read_file(content, SPEC)
    # record number = data line x 1000 + currency column (USD 1, CNY 2, GBP 3)
    assert parsed.rows == [
        (1001, _record("2019-01-03", "USD", "1.25", "0.8")),
        (1002, _record("2019-01-03", "CNY", "8", "0.125")),
        (2001, _record("2019-01-02", "USD", "0.5", "2")),
        (
            2002,
            _record("2019-01-02", "CNY", "7.7891", "0.1283845374"),
        ),  # 1/7.7891 = 0.12838453736...
        (
            2003,
            _record("2019-01-02", "GBP", "0.90153", "1.109225428"),
        ),  # 1/0.90153 = 1.10922542788...
    ]
    assert parsed.errors == [] and parsed.file_error is None
    assert parsed.header == ["Date", "Currency", "Rate"]  # the record columns mapped
    for _, record in parsed.rows:
        inverse, rate = Decimal(str(record["InverseRate"])), Decimal(str(record["Rate"]))
        assert abs(inverse * rate - 1) < Decimal("1e-9")


def test_the_sample_file_gives_every_date_and_currency_with_a_rate() -> None:
    out = fxref.melt(SAMPLE.read_bytes(), SPEC)
    parsed = out.parsed
    assert out.currencies == ["USD", "JPY", "GBP", "CHF", "CNY", "MYR"]
    # 12 dates x 6 currencies, less MYR on 2019-01-10 (N/A)
    assert (out.cells, out.no_rate, out.bad_cells) == (72, 1, 0)
    assert len(parsed.rows) == 71 and parsed.errors == []
    got = {(r["Date"], r["Currency"]): r["Rate"] for _, r in parsed.rows}
    assert ("2019-01-10", "MYR") not in got
    assert got[("2019-01-17", "USD")] == "1.1406"  # first data line, first column
    assert got[("2019-01-02", "CNY")] == "7.7891"  # last line (12), fifth column
    assert got[("2019-01-02", "GBP")] == "0.90153"  # as published, trailing zero kept
    assert dict(parsed.rows)[12005]["Rate"] == "7.7891"
    assert len({n for n, _ in parsed.rows}) == 71  # a record number names one cell


def test_na_and_empty_cells_are_no_record_and_no_quarantine_but_are_counted() -> None:
    content = b"Date,USD,CYP,JPY,\n2019-01-03,1.1348,N/A,,\n2019-01-02,N/A,N/A,125.95,\n"
    out = fxref.melt(content, SPEC)
    assert [(n, r["Currency"]) for n, r in out.parsed.rows] == [(1001, "USD"), (2003, "JPY")]
    assert out.parsed.errors == []
    assert (out.cells, out.no_rate) == (6, 4)
    assert out.cells == len(out.parsed.rows) + out.no_rate + out.bad_cells


@pytest.mark.parametrize("cell", ["abc", "1,13", "-1.13", "0", "0.0", "1.1e3", "n/a"])
def test_a_cell_that_is_not_a_rate_is_quarantined_with_its_line_and_the_rest_kept(
    cell: str,
) -> None:
    line = (
        f"2019-01-02,1.1309,{cell},0.90153"
        if "," not in cell
        else f'2019-01-02,1.1309,"{cell}",0.90153'
    )
    content = f"Date,USD,CNY,GBP\n2019-01-03,1.1348,7.8035,0.90263\n{line}\n".encode()
    out = fxref.melt(content, SPEC)
    parsed = out.parsed
    assert [n for n, _ in parsed.rows] == [1001, 1002, 1003, 2001, 2003]
    assert len(parsed.errors) == 1
    number, raw, reason = parsed.errors[0]
    assert (number, raw) == (2002, line)
    assert reason.startswith(f"CNY on 2019-01-02: {cell!r} is not a rate")
    assert (out.cells, out.no_rate, out.bad_cells) == (6, 0, 1)


def test_a_bad_date_or_a_cut_line_quarantines_the_whole_line() -> None:
    content = (
        b"Date,USD,CNY,\n"
        b"2019-02-30,1.1348,7.8035,\n"  # no such day
        b"02/01/2019,1.1309,7.7891,\n"  # not this layout's spelling
        b"2019-01-04,1.1395\n"  # cut short
        b"2019-01-03,1.1348,7.8035,,9\n"  # a value past the header
        b"2019-01-02,1.1309,7.7891,\n"
    )
    parsed = read_file(content, SPEC)
    assert [n for n, _ in parsed.rows] == [5001, 5002]
    assert [(n, raw) for n, raw, _ in parsed.errors] == [
        (1000, "2019-02-30,1.1348,7.8035,"),
        (2000, "02/01/2019,1.1309,7.7891,"),
        (3000, "2019-01-04,1.1395"),
        (4000, "2019-01-03,1.1348,7.8035,,9"),
    ]
    reasons = [reason for _, _, reason in parsed.errors]
    assert "is not a date" in reasons[0] and "is not a date" in reasons[1]
    assert "cut short" in reasons[2]
    assert "5 fields, the header names 3" in reasons[3]


def test_a_last_line_without_its_line_end_or_closing_comma_is_quarantined_as_cut() -> None:
    head = b"Date,USD,CNY,\n2019-01-03,1.1348,7.8035,\n"
    cut = read_file(head + b"2019-01-02,1.1309,7.78", SPEC)  # cut inside 7.7891
    assert [n for n, _ in cut.rows] == [1001, 1002]
    assert [(n, raw) for n, raw, _ in cut.errors] == [(2000, "2019-01-02,1.1309,7.78")]
    assert cut.errors[0][2].startswith("possibly truncated")
    closed = read_file(head + b"2019-01-02,1.1309,7.7891,", SPEC)  # complete, no final newline
    assert [n for n, _ in closed.rows] == [1001, 1002, 2001, 2002] and closed.errors == []


def test_the_trailing_empty_column_of_the_ecb_header_is_not_a_currency() -> None:
    with_comma = read_file(b"Date,USD,CNY,\n2019-01-02,1.1309,7.7891,\n", SPEC)
    without = read_file(b"Date,USD,CNY\n2019-01-02,1.1309,7.7891\n", SPEC)
    assert with_comma.file_error is None and with_comma.errors == []
    assert with_comma.rows == without.rows
    assert [r["Currency"] for _, r in with_comma.rows] == ["USD", "CNY"]


def test_the_daily_file_spelling_with_spaces_and_long_dates_is_read() -> None:
    content = b"Date, USD, JPY, \n17 January 2019, 1.1406, 124.05, \n"
    parsed = read_file(content, SPEC)
    assert parsed.rows == [
        (1001, _record("2019-01-17", "USD", "1.1406", "0.8767315448")),
        (1002, _record("2019-01-17", "JPY", "124.05", "0.008061265619")),
    ]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("rate_date,from_currency,to_currency,rate", "header has no Date column"),
        ("Datum,USD,CNY", "header has no Date column"),
        ("Date,", "header has no currency column"),
        ("Date,USD,Dollar", "not ISO currency codes: Dollar"),
        ("Date,USD,usd", "not ISO currency codes: usd"),
        ("Date,USD,CNY,USD", "names a currency twice: USD"),
    ],
)
def test_a_header_of_another_layout_refuses_the_file_and_keeps_every_line(
    header: str, message: str
) -> None:
    content = f"{header}\n2019-01-03,1.1348,7.8035\n2019-01-02,1.1309,7.7891\n".encode()
    parsed = read_file(content, SPEC)
    assert parsed.rows == []
    assert parsed.file_error is not None and message in parsed.file_error
    assert [(n, raw) for n, raw, _ in parsed.errors] == [
        (1000, "2019-01-03,1.1348,7.8035"),
        (2000, "2019-01-02,1.1309,7.7891"),
    ]


def test_a_mapping_naming_a_column_the_reader_does_not_produce_refuses_the_file() -> None:
    spec = FileSpec("reference-rates-csv", "utf-8", ",", ("Date", "USD"))
    parsed = read_file(SAMPLE.read_bytes(), spec)
    assert parsed.rows == [] and len(parsed.errors) == 12
    assert parsed.file_error is not None and "does not produce: USD" in parsed.file_error


def test_a_file_of_blank_lines_or_a_header_only_has_no_rows_and_no_error() -> None:
    for content in (b"\n \n", b"Date,USD,CNY,\n"):
        parsed = read_file(content, SPEC)
        assert (parsed.rows, parsed.errors, parsed.file_error) == ([], [], None)


def test_the_declared_encoding_is_used() -> None:
    gb = FileSpec("reference-rates-csv", "gb18030", ",", ("Date", "Currency", "Rate"))
    assert read_file(SAMPLE.read_bytes(), gb).rows == read_file(SAMPLE.read_bytes(), SPEC).rows
    parsed = read_file(b"Date,USD\n2019-01-02,1.13\xff09\n", SPEC)
    assert parsed.rows == [] and parsed.file_error is not None
    assert "not valid utf-8" in parsed.file_error
    assert [n for n, _, _ in parsed.errors] == [1000]
