"""A long simulated history (eight months, two plants) built into silver once, for gold and ML.

The planted signals are fractions of the simulated period (medlake_simulator.signals): with
240 days from 2026-01-01 the supplier's on-time delivery degrades from 2026-05-01 and the
component price rises on 2026-04-19, so whole months lie on both sides of each. Suzhou (SU)
builds one device with the price-raised component and one without; Tuttlingen (TU) builds
none with it; the degrading supplier serves both. Only the deliveries gold and the models
read are ingested (the others are removed from the landing folder before ingestion), which
keeps the build to a few minutes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from medlake.jobs import ingest as ingest_job
from medlake.jobs import silver as silver_job
from medlake.runtime import JobContext
from medlake_simulator.generate import generate
from tests.silver.jobs import job_context

START = dt.date(2026, 1, 1)
DAYS = 240
DATES = [START + dt.timedelta(days=i) for i in range(DAYS)]
PLANTS = ["SU", "TU"]
ENTITIES = {  # source entity -> silver entity
    "erp__purchase_orders": "purchase_orders",
    "erp__goods_receipts": "goods_receipts",
    "qc__incoming_inspections": "incoming_inspections",
    "erp__suppliers": "suppliers",
    "erp__materials": "materials",
    "erp__boms": "boms",
    "erp__standard_costs": "standard_costs",
    "erp__fx_rates": "fx_rates",
    "erp__sales_orders": "sales_orders",
    "wms__stock_movements": "stock_movements",
    "wms__on_hand": "on_hand",
    "mes__work_orders": "work_orders",
    "mes__production_lots": "production_lots",
    "plm__products": "products",
}


def build_history(spark: SparkSession, root: Path) -> dict[str, Any]:
    """Generate, trim to PLANTS and ENTITIES, ingest and build silver; return the contexts."""
    landing = root / "landing"
    generate(landing, start=START, days=DAYS, scale=0.2, seed=11, progress=False, workers=2)
    for plant_dir in landing.iterdir():
        if plant_dir.name.startswith("_"):
            continue
        if plant_dir.name not in PLANTS:
            _remove_tree(plant_dir)
            continue
        for path in plant_dir.glob("*/*"):
            if path.name.split(".")[0] not in ENTITIES:
                path.unlink()
    lake = root / "lake"
    ingest_job.run(job_context(spark, lake, landing, "ingest", DATES, plants=PLANTS))
    silver_job.run(
        job_context(
            spark, lake, landing, "silver", DATES, plants=PLANTS, entities=list(ENTITIES.values())
        )
    )
    answers = json.loads((landing / "_truth" / "answers.json").read_text(encoding="utf-8"))
    return {"lake": lake, "landing": landing, "answers": answers}


def context(
    history: dict[str, Any], spark: SparkSession, job: str, dates: list[dt.date], **kw: Any
) -> JobContext:
    """A job context on the history's lake, run id `<job>-1`, no lineage events."""
    return job_context(spark, history["lake"], history["landing"], job, dates, **kw)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)
