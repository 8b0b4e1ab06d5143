"""Reference data every silver entity converts or looks up by: group-currency FX rates and
the supplier and material cross-references (matched from every plant's master snapshot)."""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from medlake.bronze.ingest import months_of
from medlake.entities import EntitySpec
from medlake.io import TableIO
from medlake.silver.conform import Refs, conform
from medlake.silver.masterdata import PartyRecord, XrefRow, match_parties, stabilise
from medlake.silver.run import SilverRun

log = logging.getLogger("medlake.silver")

XREF = {"supplier": "silver.supplier_xref", "material": "silver.material_xref"}
CANDIDATES = "silver.masterdata_candidates"


def fx_table(run: SilverRun) -> DataFrame | None:
    """Group-currency rate per (date, currency) from every plant's ERP rates: the quoted
    rates to the group currency where a plant quotes them, else inverses of rates from it."""
    if run.io.version("silver.fx_rates") is None:
        return None
    g = run.group_currency
    fx = run.io.read("silver.fx_rates")
    direct = fx.where(F.col("to_currency") == g).select(
        "rate_date",
        F.col("from_currency").alias("currency"),
        F.col("rate").cast("double").alias("r"),
        F.lit(0).alias("inverse"),
    )
    inverse = fx.where((F.col("from_currency") == g) & (F.col("rate") > 0)).select(
        "rate_date",
        F.col("to_currency").alias("currency"),
        (1 / F.col("rate").cast("double")).alias("r"),
        F.lit(1).alias("inverse"),
    )
    # a quoted rate to the group currency beats the inverse of a rate from it (rounding)
    best = Window.partitionBy("rate_date", "currency")
    return (
        direct.unionByName(inverse)
        .withColumn("__best", F.min("inverse").over(best))
        .where(F.col("inverse") == F.col("__best"))
        .groupBy("rate_date", "currency")
        .agg(F.avg("r").cast("decimal(18,8)").alias("rate_to_group"))
    ).persist()


def xrefs(run: SilverRun) -> dict[str, DataFrame]:
    return {
        lookup: run.io.read(name).select("plant_id", "local_code", "group_id")
        for lookup, name in XREF.items()
        if run.io.version(name) is not None
    }


def months_upto(io: TableIO, bronze_name: str, day: dt.date) -> list[str]:
    """The bronze table's month partitions up to the month of `day`, oldest first."""
    upto = f"{day:%Y-%m}"
    found = {p["delivery_month"] for p in io.partition_values(bronze_name)}
    return sorted(m for m in found if m is not None and m <= upto)


def _newest_snapshots(io: TableIO, bronze_name: str, as_of: dt.date) -> DataFrame:
    """Each plant's newest delivery of a master-data snapshot up to `as_of`: one scan of
    the two delivery columns finds the days, then only their months are read."""
    months = months_upto(io, bronze_name, as_of)
    if not months:
        return io.read(bronze_name, partitions={"delivery_month": []})
    newest = (
        io.read(bronze_name, partitions={"delivery_month": months})
        .where(F.col("_delivery_date") <= F.lit(as_of))
        .groupBy("_plant_id")
        .agg(F.max("_delivery_date").alias("day"))
        .collect()
    )
    days = {r["_plant_id"]: r["day"] for r in newest}
    frame = io.read(bronze_name, partitions={"delivery_month": months_of(list(days.values()))})
    picked = F.lit(False)
    for plant, day in sorted(days.items()):
        picked = picked | ((F.col("_plant_id") == plant) & (F.col("_delivery_date") == F.lit(day)))
    return frame.where(picked)


_MATCH_FIELDS = {
    "suppliers": ("supplier", "supplier_code", "supplier_name", "tax_id", "country", None, "SUP"),
    "materials": ("material", "material_code", "description", None, None, "global_ref", "MAT"),
}


def match(run: SilverRun, spec: EntitySpec) -> dict[str, DataFrame]:
    """Match every plant's latest master snapshot into group ids; write xref and candidates."""
    lookup, code, name, reg, country, ref, prefix = _MATCH_FIELDS[spec.entity]
    io = run.io
    bronze_name = f"bronze.{spec.source}"
    if io.version(bronze_name) is None:
        return {}
    bronze = _newest_snapshots(io, bronze_name, run.logical_date)
    delivering = {p: s for p, s in run.sources.items() if spec.source in s.entities}
    rows = conform(
        bronze,
        spec,
        delivering,
        Refs(run.group_currency, date_window=run.date_window),
        run_id=run.run_id,
    )
    picked = [c for c in (code, name, reg, country, ref) if c]
    records = []
    newest_first = rows.where(F.size("_errors") == 0).orderBy(
        "plant_id", code, F.col("_seq").desc(), "_file_row"
    )
    seen: set[tuple[str, str]] = set()
    for r in newest_first.select("plant_id", *picked).collect():
        if (r["plant_id"], r[code]) in seen:
            continue  # one record per local code: its newest version
        seen.add((r["plant_id"], r[code]))
        records.append(
            PartyRecord(
                plant_id=r["plant_id"],
                local_code=r[code],
                name=r[name],
                registration_id=r[reg] if reg else None,
                country=r[country] if country else None,
                extra_ref=r[ref] if ref else None,
            )
        )
    steward = {
        (p, local): group
        for p, s in run.sources.items()
        for local, group in s.code_map(lookup).items()
    }
    result = match_parties(records, prefix=prefix, steward=steward)
    previous = (
        [XrefRow(**r.asDict()) for r in io.read(XREF[lookup]).collect()]
        if io.version(XREF[lookup]) is not None
        else []
    )
    spark = io.spark
    xref = spark.createDataFrame(
        [
            (x.plant_id, x.local_code, x.group_id, x.method, x.match_key, x.name)
            for x in stabilise(result.xref, previous)
        ],
        io.registry.get(XREF[lookup]).spark_schema,
    )
    io.overwrite(XREF[lookup], xref, ctx=run.ctx())
    candidates = spark.createDataFrame(
        [
            (lookup, c.plant_id, c.local_code, c.status, list(c.candidates), c.reason)
            for c in result.candidates
        ],
        io.registry.get(CANDIDATES).spark_schema,
    )
    io.replace_partitions(CANDIDATES, candidates, partition={"domain": lookup}, ctx=run.ctx())
    if result.candidates:  # one line per status, examples; every case is in the table
        by_status: dict[str, list[str]] = {}
        for c in result.candidates:
            by_status.setdefault(c.status, []).append(f"{c.plant_id}/{c.local_code}")
        for status, codes in sorted(by_status.items()):
            log.warning(
                "master data %s: %d %s codes (%s%s); see %s for each with its candidates",
                status,
                len(codes),
                lookup,
                ", ".join(codes[:5]),
                ", ..." if len(codes) > 5 else "",
                CANDIDATES,
            )
    return {lookup: io.read(XREF[lookup]).select("plant_id", "local_code", "group_id")}
