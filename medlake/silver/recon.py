"""Reconciliation: every row a silver run read is accounted for, per entity and plant
(inserted + updated + duplicates + conflicts + quarantined + dropped + held = read), and the
rows it could not use go to the entity's quarantine table with their reasons."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medlake.entities import EntitySpec
from medlake.silver.run import SilverRun

RECON = "_reconciliation"


def redelivered(run: SilverRun) -> str:
    """Stored rows from the deliveries this run reads again: a key they no longer contain
    was withdrawn by the plant (a corrected re-delivery) and leaves silver."""
    plants = ", ".join("'" + p.replace("'", "''") + "'" for p in run.plants)
    dates = ", ".join(f"DATE'{d.isoformat()}'" for d in run.dates)
    return f"plant_id IN ({plants}) AND _delivery_date IN ({dates})"


def plant_counts(df: DataFrame, **conditions: SparkColumn) -> dict[str, dict[str, int]]:
    """Rows meeting each condition, per plant, in one Spark job."""
    column = "plant_id" if "plant_id" in df.columns else "_plant_id"
    sums = [F.sum(F.when(c, 1).otherwise(0)).alias(n) for n, c in conditions.items()]
    found: dict[str, dict[str, int]] = {n: {} for n in conditions}
    for row in df.groupBy(column).agg(*sums).collect():
        for name in conditions:
            found[name][row[column]] = int(row[name])
    return found


def quarantine_rows(
    bad: DataFrame,
    rows: DataFrame,
    quality_bad: DataFrame | None,
    run_id: str,
    conflicts: DataFrame | None = None,
) -> DataFrame:
    def kept_out(frame: DataFrame, rule_id: str, reason: SparkColumn) -> DataFrame:
        return frame.select(
            "plant_id",
            "_delivery_date",
            F.date_format("_delivery_date", "yyyy-MM").alias("delivery_month"),
            "_source_file",
            "_file_row",
            F.col("_text").alias("record"),
            F.lit(rule_id).alias("rule_id"),
            reason.alias("reason"),
            F.lit(run_id).alias("_run_id"),
        )

    conformance = kept_out(bad, "conformance", F.array_join("_errors", "; "))
    if conflicts is not None:
        conformance = conformance.unionByName(
            kept_out(conflicts, "key_conflict", F.col("__conflict"))
        )
    if quality_bad is None:
        return conformance
    texts = rows.select(
        F.col("plant_id").alias("__p"),
        F.col("_source_file").alias("__f"),
        F.col("_file_row").alias("__r"),
        F.col("_text").alias("record"),
    )
    ruled = quality_bad.join(
        texts,
        (F.col("plant_id") == F.col("__p"))
        & (F.col("_source_file") == F.col("__f"))
        & (F.col("_file_row") == F.col("__r")),
        "left",
    ).select(
        "plant_id",
        "_delivery_date",
        F.date_format("_delivery_date", "yyyy-MM").alias("delivery_month"),
        "_source_file",
        "_file_row",
        "record",
        F.col("_rule_id").alias("rule_id"),
        F.col("_reason").alias("reason"),
        F.lit(run_id).alias("_run_id"),
    )
    return conformance.unionByName(ruled)


def recon_row(
    run: SilverRun,
    spec: EntitySpec,
    plant: str,
    *,
    read: int,
    inserted: int,
    updated: int,
    duplicates: int,
    conflicts: int,
    quarantined: int,
    dropped: int,
    held: int,
    retracted: int,
    promoted: bool,
) -> dict[str, Any]:
    accounted = inserted + updated + duplicates + conflicts + quarantined + dropped + held
    return {
        "run_id": run.run_id,
        "logical_date": run.logical_date,
        "first_date": min(run.dates),
        "entity": spec.entity,
        "plant_id": plant,
        "rows_read": read,
        "rows_inserted": inserted,
        "rows_updated": updated,
        "duplicates_removed": duplicates,
        "rows_conflicting": conflicts,
        "rows_quarantined": quarantined,
        "rows_dropped": dropped,
        "rows_held": held,
        "rows_retracted": retracted,
        "promoted": promoted,
        "balanced": accounted == read,
        "recorded_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
    }
