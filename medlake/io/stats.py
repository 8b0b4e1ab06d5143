"""Delta file statistics (numRecords, minValues, maxValues, nullCount) from Parquet footers.

Spark already wrote the statistics into each file's footer; reading the footer costs one
small read per file, so readers can skip files without the writer scanning the data twice.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq
from pyarrow import fs as pafs

STRING_PREFIX = 32  # as Delta writers do: long strings keep a prefix as min, no max


@dataclass
class FileStats:
    num_records: int
    min_values: dict[str, Any] = field(default_factory=dict)
    max_values: dict[str, Any] = field(default_factory=dict)
    null_count: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "numRecords": self.num_records,
                "minValues": self.min_values,
                "maxValues": self.max_values,
                "nullCount": self.null_count,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )


def _timestamp(value: dt.datetime, *, round_up: bool) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    millis = value.replace(microsecond=value.microsecond // 1000 * 1000)
    if round_up and millis != value:
        millis += dt.timedelta(milliseconds=1)
    return millis.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis.microsecond // 1000:03d}Z"


def _json_bound(value: Any, *, is_max: bool) -> Any:
    """A footer min/max as Delta writes it, or None when it cannot be a safe bound."""
    if isinstance(value, bool) or value is None:
        return None  # Delta keeps no bounds for booleans
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # Parquet leaves NaN out of min/max, but readers sort NaN above every number: an
        # upper bound could make them skip a file holding NaN. Keep lower bounds only.
        if is_max or math.isnan(value) or math.isinf(value):
            return None
        return value
    if isinstance(value, str):
        if len(value) <= STRING_PREFIX:
            return value
        return None if is_max else value[:STRING_PREFIX]
    if isinstance(value, dt.datetime):
        return _timestamp(value, round_up=is_max)
    if isinstance(value, dt.date):
        return value.isoformat()
    return None  # decimals, binary: no bounds rather than imprecise ones


def footer_stats(filesystem: pafs.FileSystem, path: str, columns: list[str]) -> FileStats:
    """Statistics of the top-level primitive `columns` of one Parquet file."""
    with filesystem.open_input_file(path) as handle:
        meta = pq.ParquetFile(handle).metadata
    stats = FileStats(num_records=meta.num_rows)
    wanted = set(columns)
    index = {
        meta.schema.column(i).path: i
        for i in range(meta.num_columns)
        if meta.schema.column(i).path in wanted
    }
    for name, col in index.items():
        nulls: int | None = 0
        low: Any = None
        high: Any = None
        bounded = True
        for rg in range(meta.num_row_groups):
            st = meta.row_group(rg).column(col).statistics
            if st is None:
                nulls, bounded = None, False
                break
            if nulls is not None:
                nulls = nulls + st.null_count if st.has_null_count else None
            if meta.row_group(rg).num_rows == (st.null_count if st.has_null_count else -1):
                continue  # all-null row group: no bounds to merge
            if not st.has_min_max:
                bounded = False
                continue
            low = st.min if low is None else min(low, st.min)
            high = st.max if high is None else max(high, st.max)
        if nulls is not None:
            stats.null_count[name] = nulls
        if bounded and low is not None:
            lo, hi = _json_bound(low, is_max=False), _json_bound(high, is_max=True)
            if lo is not None:
                stats.min_values[name] = lo
            if hi is not None:
                stats.max_values[name] = hi
    return stats
