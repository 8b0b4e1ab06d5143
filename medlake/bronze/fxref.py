"""The `reference-rates-csv` reader: the European Central Bank's euro reference rates as CSV.

The ECB publishes its euro foreign exchange reference rates as a wide CSV file
(`eurofxref-hist.csv` for the history, `eurofxref.csv` for the latest day): a header
`Date,USD,JPY,...` (often with a trailing empty column), one line per date, newest first, and
in each currency column the units of that currency per 1 EUR, `N/A` (or empty) where there is
no rate (a currency not yet or no longer quoted). The daily file writes `Date, USD, ...` and
dates as `2 January 2019`; both spellings are read. docs/fx-reference-rates.md shows how a
plant maps it onto silver.fx_rates.

The reader melts the wide file into long records, one per (date, currency) that has a rate:

- `Date`: the date as yyyy-MM-dd (whatever spelling the file used);
- `Currency`: the column's ISO code;
- `Rate`: the published figure, units of `Currency` per 1 EUR, as written;
- `Base`: `EUR`, the currency the rates are quoted against;
- `InverseRate`: 1 / `Rate` to 10 significant digits, EUR per 1 unit of `Currency` (the
  direction silver.fx_rates keys by: one row per rate date and from_currency).

Nothing is lost: a line whose date is not a date, or whose fields do not match the header, is
quarantined whole, and so is a last line without a line end that does not close with the
layout's trailing comma (it may have been cut inside a rate); a cell that is neither a
positive number nor `N/A`/empty is quarantined with its line and the column named, and the
line's other cells are still read. `N/A` and empty cells are not data points: they become no
record and no quarantine row, and are only counted (`Melt.no_rate`), so for a file's good
lines `currency columns x lines = records + no_rate + bad cells`.

Record numbers: a record stands for one cell, not one line, and the lakehouse needs
(file, row) to name one record, so the number of a cell is `line x 1000 + column`, where
`line` counts the data lines from 1 (the header and blank lines excluded, as the csv reader
counts) and `column` counts the currency columns of the header from 1; a quarantined whole
line is `line x 1000`. Record 12003 is the third currency of the twelfth data line.

The layout is comma-separated by definition, so the plant's delivery delimiter is not used;
the plant's declared encoding is (the ECB files are ASCII, which every supported encoding
reads alike). The `header` the reader reports is the record columns the mapping uses: the
record layout is fixed, so a currency column the file gains is data, never schema drift.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from medlake.bronze.readers import FileSpec, Parsed, _decode, reader

__all__ = ["COLUMNS", "FORMAT", "Melt", "inverse", "melt", "parse_date", "read_reference_rates"]

FORMAT = "reference-rates-csv"
COLUMNS = ("Date", "Currency", "Rate", "Base", "InverseRate")  # every record's keys
BASE = "EUR"
NO_RATE = frozenset({"", "N/A"})
MAX_COLUMNS = 999  # a cell's number is line x 1000 + column
MAX_LINES = 2_000_000  # line x 1000 + column stays a 32-bit int (bronze `_file_row`)
INVERSE_DIGITS = 10
TRUNCATED = (
    "possibly truncated: the file's last line has no line end and no closing comma, so it may "
    "have been cut inside a rate; ask for the file again (the ECB's end every line with a comma)"
)

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?$|^\.[0-9]+$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LONG_DATE = re.compile(r"^(\d{1,2}) ([A-Za-z]+) (\d{4})$")
_MONTHS = {
    name: number
    for number, name in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        start=1,
    )
}


@dataclass
class Melt:
    """One file melted: the reader's outcome and the cells without a rate it skipped."""

    parsed: Parsed
    cells: int = 0  # currency cells on the lines read whole (date and field count good)
    no_rate: int = 0  # of those, N/A or empty: not a data point, no record
    bad_cells: int = 0  # of those, quarantined as not a number
    currencies: list[str] = field(default_factory=list)  # the header's currency columns


def parse_date(text: str) -> dt.date | None:
    """`2019-01-02` (the history file) or `2 January 2019` (the daily file); None otherwise."""
    try:
        if _ISO_DATE.match(text):
            return dt.date.fromisoformat(text)
        long = _LONG_DATE.match(text)
        if long and long[2].lower() in _MONTHS:
            return dt.date(int(long[3]), _MONTHS[long[2].lower()], int(long[1]))
    except ValueError:
        return None
    return None


def inverse(rate: Decimal) -> str:
    """1 / rate to INVERSE_DIGITS significant digits, in plain notation (never 1E-4)."""
    with localcontext() as ctx:
        ctx.prec = INVERSE_DIGITS
        value = Decimal(1) / rate
    return format(value, "f")


def _fields(line: str) -> list[str] | None:
    try:
        values = next(csv.reader([line], delimiter=",", strict=True))
    except (csv.Error, StopIteration):
        return None
    return [v.strip() for v in values]


def _header_problem(header: list[str], spec: FileSpec) -> str | None:
    unknown = [c for c in spec.columns if c not in COLUMNS]
    if unknown:
        return (
            f"the mapping names columns the {FORMAT} reader does not produce: "
            f"{', '.join(unknown)} (it produces {', '.join(COLUMNS)})"
        )
    if "Date" not in header:
        return f"header has no Date column (found {', '.join(header) or 'nothing'})"
    others = [c for c in header if c != "Date"]
    if not others:
        return "header has no currency column next to Date"
    if header.count("Date") > 1:
        return "header names Date twice"
    bad = [c for c in others if not _CURRENCY.match(c)]
    if bad:
        return (
            f"header columns that are not ISO currency codes: {', '.join(bad)} (this layout is "
            "Date and one column per 3-letter currency)"
        )
    twice = sorted({c for c in others if others.count(c) > 1})
    if twice:
        return f"header names a currency twice: {', '.join(twice)}"
    if len(others) > MAX_COLUMNS:
        return f"header has {len(others)} currency columns, more than {MAX_COLUMNS}"
    return None


def _refuse(lines: list[str], reason: str) -> Parsed:
    """The whole file quarantined, each data line with its number (line x 1000)."""
    parsed = Parsed(file_error=reason)
    parsed.errors = [(n * 1000, line, reason) for n, line in enumerate(lines, start=1)]
    return parsed


def melt(content: bytes, spec: FileSpec) -> Melt:
    """The file's records, quarantined lines and cells, and the count of cells without a rate."""
    text, bad_bytes = _decode(content, spec)
    lines = [line for line in text.splitlines() if line.strip()]
    if bad_bytes:
        return Melt(_refuse(lines[1:], bad_bytes))
    if not lines:
        return Melt(
            Parsed()
        )  # blank space only: empty, as the csv reader (the empty policy decides)
    header = _fields(lines[0].lstrip("\ufeff"))
    if header is None:
        return Melt(_refuse(lines[1:], "the header line is not CSV"))
    while header and header[-1] == "":
        header.pop()  # the ECB files end every line with a comma
    problem = _header_problem(header, spec)
    if problem:
        return Melt(_refuse(lines[1:], problem))
    if len(lines) - 1 > MAX_LINES:
        return Melt(_refuse(lines[1:], f"more than {MAX_LINES} data lines"))
    at = header.index("Date")
    currencies = [(k, c) for k, c in enumerate(header) if k != at]
    out = Melt(Parsed(header=[c for c in COLUMNS if c in spec.columns]))
    out.currencies = [c for _, c in currencies]
    parsed = out.parsed
    # a last line without its line end may have been cut inside a number: unless it ends
    # with the layout's closing comma (its last field is the empty one), it is not read
    cut_last = not content.endswith((b"\n", b"\r")) and not lines[-1].rstrip().endswith(",")
    for n, line in enumerate(lines[1:], start=1):
        if cut_last and n == len(lines) - 1:
            parsed.errors.append((n * 1000, line, TRUNCATED))
            continue
        values = _fields(line)
        if values is None:
            parsed.errors.append((n * 1000, line, "not a CSV line (unbalanced quote)"))
            continue
        extra = values[len(header) :]
        if len(values) < len(header) or any(extra):
            cut = " (the line is cut short: truncated file?)" if len(values) < len(header) else ""
            reason = f"line has {len(values)} fields, the header names {len(header)}{cut}"
            parsed.errors.append((n * 1000, line, reason))
            continue
        day = parse_date(values[at])
        if day is None:
            reason = f"Date {values[at]!r} is not a date (yyyy-MM-dd or '2 January 2019')"
            parsed.errors.append((n * 1000, line, reason))
            continue
        for column, (k, currency) in enumerate(currencies, start=1):
            cell = values[k]
            out.cells += 1
            if cell in NO_RATE:
                out.no_rate += 1
                continue
            number = n * 1000 + column
            rate = Decimal(cell) if _NUMBER.match(cell) else None
            if rate is None or rate == 0:
                reason = (
                    f"{currency} on {day.isoformat()}: {cell!r} is not a rate (a positive "
                    "number with a dot, or N/A)"
                )
                parsed.errors.append((number, line, reason))
                out.bad_cells += 1
                continue
            record: dict[str, str | None] = {
                "Date": day.isoformat(),
                "Currency": currency,
                "Rate": cell,
                "Base": BASE,
                "InverseRate": inverse(rate),
            }
            parsed.rows.append((number, record))
    return out


@reader(FORMAT)
def read_reference_rates(content: bytes, spec: FileSpec) -> Parsed:
    """The ECB reference-rate CSV melted into Date/Currency/Rate/Base/InverseRate records."""
    parsed = melt(content, spec).parsed
    # control totals count the file's data lines; one line gives a record per currency
    parsed.lines = len({n // 1000 for n, _ in parsed.rows} | {n // 1000 for n, *_ in parsed.errors})
    return parsed
