"""What the plants delivered, read without medlake's readers (the tests' independent count)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow.parquet as pq

from medlake.sources import PlantSource


def data_rows(path: Path, source: PlantSource) -> int:
    """Data rows in a delivered file: Parquet metadata, non-blank JSON lines, CSV records
    less the header, in the plant's declared encoding and delimiter."""
    d = source.delivery
    if d.format == "parquet":
        return int(pq.read_metadata(path).num_rows)
    text = path.read_bytes().decode(d.encoding, "replace")
    if d.format == "jsonl":
        return sum(1 for line in text.splitlines() if line.strip())
    return sum(1 for row in csv.reader(io.StringIO(text), delimiter=d.delimiter) if row) - 1
