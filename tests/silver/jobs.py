"""Job contexts for tests that run the real jobs against a lake and landing folder of their own."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from medlake.config import DEFAULT_CONF_DIR, load_settings
from medlake.jobs import gold as gold_job
from medlake.jobs import ingest as ingest_job
from medlake.jobs import silver as silver_job
from medlake.runtime import JobContext
from medlake.sources import load_sources
from medlake_simulator.generate import generate
from medlake_simulator.plants import PLANTS


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


START = dt.date(2026, 3, 26)  # Europe/Berlin and Europe/Dublin change to summer time on 03-29
DAYS = 5
DATES = [START + dt.timedelta(days=i) for i in range(DAYS)]
SOURCES = load_sources(DEFAULT_CONF_DIR / "sources")
FORMATS = {p.code: p for p in PLANTS}


def build_pipeline(spark: SparkSession, root: Path) -> dict[str, Any]:
    """The simulator's dirty deliveries for DATES, ingested and built into silver once."""
    landing = root / "landing"
    generate(landing, start=START, days=DAYS, scale=0.4, seed=5, progress=False)
    _plant_unit_mismatch(landing)
    ingest_job.run(job_context(spark, root / "lake", landing, "ingest", DATES))
    ctx = job_context(spark, root / "lake", landing, "silver", DATES)
    summary = silver_job.run(ctx)
    gold_job.run(job_context(spark, root / "lake", landing, "gold", DATES))  # for the leak test
    answers = json.loads((landing / "_truth" / "answers.json").read_text(encoding="utf-8"))
    return {"ctx": ctx, "summary": summary, "answers": answers, "root": root, "landing": landing}


def _plant_unit_mismatch(landing: Path) -> None:
    """Book the first Penang receipt in the other unit too (the simulator does it for ~1%
    of receipts, which a dataset this small may not contain)."""
    import csv
    import io

    column = local("PN", "erp__goods_receipts", "uom")
    for day in DATES:
        path = landing / "PN" / day.isoformat() / "erp__goods_receipts.csv"
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
        if rows:
            rows[0][column] = "BOX" if rows[0][column] != "BOX" else "PCS"
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            path.write_text(out.getvalue(), encoding="utf-8")
            return
    raise AssertionError("no Penang receipt to modify")


def local(plant: str, entity: str, column: str) -> str:
    cols = SOURCES[plant].entities[entity].columns
    return next(k for k, v in cols.items() if v == column)
