"""Delta statistics from Parquet footers, checked against values computed by hand."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from medlake.io.stats import footer_stats


def write(path: Path, table: pa.Table, row_group_size: int | None = None) -> str:
    pq.write_table(table, path, row_group_size=row_group_size)
    return str(path)


def test_bounds_and_null_counts_merge_across_row_groups(tmp_path: Path) -> None:
    table = pa.table({"n": [5, None, -3, 9, None, 2], "x": [0.5, 1.5, None, None, None, -2.0]})
    path = write(tmp_path / "f.parquet", table, row_group_size=2)
    stats = footer_stats(pafs.LocalFileSystem(), path, ["n", "x"])
    assert stats.num_records == 6
    assert (stats.min_values["n"], stats.max_values["n"]) == (-3, 9)
    assert stats.min_values["x"] == -2.0
    assert "x" not in stats.max_values  # floats keep no upper bound (NaN sorts above all)
    assert stats.null_count == {"n": 2, "x": 3}


def test_all_null_column_has_a_null_count_and_no_bounds(tmp_path: Path) -> None:
    path = write(tmp_path / "f.parquet", pa.table({"s": pa.array([None, None], pa.string())}))
    stats = footer_stats(pafs.LocalFileSystem(), path, ["s"])
    assert stats.null_count == {"s": 2}
    assert "s" not in stats.min_values and "s" not in stats.max_values


def test_timestamps_are_widened_to_whole_milliseconds(tmp_path: Path) -> None:
    stamps = pa.array(
        [dt.datetime(2026, 1, 1, 0, 0, 0, 999999), dt.datetime(2026, 1, 2, 12, 0, 0, 1)],
        pa.timestamp("us", tz="UTC"),
    )
    path = write(tmp_path / "f.parquet", pa.table({"t": stamps}))
    stats = footer_stats(pafs.LocalFileSystem(), path, ["t"])
    assert stats.min_values["t"] == "2026-01-01T00:00:00.999Z"  # floor
    assert stats.max_values["t"] == "2026-01-02T12:00:00.001Z"  # ceil


def test_long_strings_keep_a_prefix_lower_bound_and_no_upper_bound(tmp_path: Path) -> None:
    long_value = "Z" * 50
    path = write(tmp_path / "f.parquet", pa.table({"s": ["Bb", long_value, "苏州"]}))
    stats = footer_stats(pafs.LocalFileSystem(), path, ["s"])
    assert stats.min_values["s"] == "Bb"
    assert stats.max_values["s"] == "苏州"  # UTF-8 byte order puts CJK above Latin
    path2 = write(tmp_path / "g.parquet", pa.table({"s": ["a" * 40, "b"]}))
    stats2 = footer_stats(pafs.LocalFileSystem(), path2, ["s"])
    assert stats2.min_values["s"] == "a" * 32
    assert stats2.max_values["s"] == "b"
    path3 = write(tmp_path / "h.parquet", pa.table({"s": ["b" * 40, "a"]}))
    stats3 = footer_stats(pafs.LocalFileSystem(), path3, ["s"])
    assert stats3.min_values["s"] == "a"
    assert "s" not in stats3.max_values  # a truncated max would be below the real one


def test_booleans_and_decimals_get_null_counts_only(tmp_path: Path) -> None:
    table = pa.table(
        {"b": [True, None], "d": pa.array([Decimal("1.50"), Decimal("-2.25")], pa.decimal128(9, 2))}
    )
    path = write(tmp_path / "f.parquet", table)
    stats = footer_stats(pafs.LocalFileSystem(), path, ["b", "d"])
    assert stats.null_count == {"b": 1, "d": 0}
    assert stats.min_values == {} and stats.max_values == {}
    assert json.loads(stats.to_json())["numRecords"] == 2
