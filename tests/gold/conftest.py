"""Silver tables written by hand for gold tests: a few rows per table, straight into Delta."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from medlake.config import DEFAULT_CONF_DIR
from medlake.entities import load_specs
from medlake.io.arrow import ArrowTable
from medlake.runtime import JobContext
from medlake.tables import TableSpec
from tests.silver.jobs import job_context

# entity -> the column its rows are dated by (partition_month is its month)
DATED_BY = {
    name: spec.partition_date
    for name, spec in load_specs(DEFAULT_CONF_DIR / "silver").items()
    if spec.partition_date
}
WriteSilver = Callable[[str, Sequence[Mapping[str, Any]]], None]


def silver_rows(
    spec: TableSpec, entity: str, rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """`rows` (only the columns a test cares about) as full rows of the silver table: its
    bookkeeping columns filled (partition month, sequence, delivery = the row's date), every
    other column NULL, numbers of decimal columns as Decimal."""

    dated_by = DATED_BY.get(entity)
    decimals = {c.name for c in spec.columns if c.type.startswith("decimal")}
    out = []
    for n, row in enumerate(rows, start=1):
        day = row.get(dated_by) if dated_by else None
        filled: dict[str, Any] = {
            **dict.fromkeys(spec.column_names),
            "_seq": 1,
            "_delivery_date": day or dt.date(2026, 1, 1),
            "_source_file": f"test/{entity}.csv",
            "_file_row": n,
            "_run_id": "silver-test",
            **({"partition_month": f"{day:%Y-%m}"} if day else {}),
            **row,
        }
        unknown = sorted(set(filled) - set(spec.column_names))
        if unknown:
            raise KeyError(f"silver.{entity} has no column {', '.join(unknown)}")
        for name in decimals & {k for k, v in filled.items() if v is not None}:
            filled[name] = Decimal(str(filled[name]))
        out.append(filled)
    return out


@pytest.fixture(scope="module")
def silver_lake(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], tuple[Path, WriteSilver, Callable[..., JobContext]]]:
    """A factory of empty lakes: each call gives the lake's folder, `write(entity, rows)`
    (creates silver.<entity> holding `rows`, see `silver_rows`) and `context(job, dates)` (a
    job context on that lake)."""

    def make() -> tuple[Path, WriteSilver, Callable[..., JobContext]]:
        root = tmp_path_factory.mktemp("gold-lake")
        lake, landing = root / "lake", root / "landing"
        landing.mkdir()

        def context(job: str, dates: Sequence[dt.date], **kw: Any) -> JobContext:
            return job_context(spark, lake, landing, job, dates, **kw)

        setup = context("silver", [dt.date(2026, 1, 1)])

        def write(entity: str, rows: Sequence[Mapping[str, Any]]) -> None:
            # straight through deltalake: a real Delta table, in a fraction of a Spark write
            table = ArrowTable(setup.settings, f"silver.{entity}", setup.registry)
            snapshot = table.snapshot(create=True)
            assert snapshot is not None and snapshot.version == 0, "write each entity once"
            if rows:  # else the table exists and is empty
                snapshot.append(silver_rows(table.spec, entity, rows), metadata={"job": "test"})

        return lake, write, context

    return make
