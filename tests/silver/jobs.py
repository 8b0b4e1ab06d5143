"""Job contexts for tests that run the real jobs against a lake and landing folder of their own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from jobs import JobContext
from lakehouse.config import load_settings


def job_context(
    spark: SparkSession,
    lake: Path,
    landing: Path,
    job: str,
    dates: Sequence[dt.date],
    conf: Path | None = None,
    **kw: Any,
) -> JobContext:
    """A context for `job` on `dates`, run id `<job>-1`, no lineage events, the given Spark."""
    settings = load_settings(
        "test",
        conf_dir=conf,
        overrides={
            "storage": {"root": str(lake)},
            "landing": {"root": str(landing)},
            "lineage": {"transport": "none"},
        },
    )
    ctx = JobContext(settings=settings, job=job, dates=list(dates), run_id=f"{job}-1", **kw)
    ctx._spark = spark
    return ctx
