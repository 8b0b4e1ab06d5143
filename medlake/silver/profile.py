"""Profile one delivered file against its plant's mapping, writing nothing (`lakehouse sources
check`): what the ingest and the silver conformance would do with it.

The file is read by the same reader the ingest uses and conformed by the same code the
silver build runs (`conform.py`), on an in-memory frame: the columns found and missing, the
values per canonical column and how many would not parse, which date format read each date
and how many numeric dates rested on the declared day/month order, the missing-value
markers met, keys repeated as exact duplicates or as conflicts, and every reason a row
would be quarantined, counted, with an example. FX rates are not looked up (the profile
reads no table): rows whose amounts need a rate are counted apart.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from medlake.bronze.ingest import file_spec, read_columns
from medlake.bronze.readers import TRUNCATED, Parsed, read_file
from medlake.config import ConfigError
from medlake.entities import EntitySpec
from medlake.silver.build import conflicts
from medlake.silver.conform import Refs, conform
from medlake.sources import PlantSource, day_month_order

__all__ = ["EntityProfile", "FileProfile", "profile_file"]

_FX = re.compile(r"^no FX rate ")
_VALUE = re.compile(r"'[^']*'")  # quoted values in a reason: counted together


@dataclass
class EntityProfile:
    entity: str
    table: str
    rows: int = 0
    usable: int = 0
    quarantined: int = 0
    needs_fx: int = 0  # usable but for a missing FX rate (the profile reads no rates)
    filled: dict[str, int] = field(default_factory=dict)  # canonical column -> non-null values
    reasons: list[tuple[str, int, str]] = field(default_factory=list)  # pattern, count, example
    flags: dict[str, int] = field(default_factory=dict)
    date_formats: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> format -> n
    duplicates: int = 0  # rows removed as duplicates or older versions of their key
    conflicts: int = 0  # rows of a key's latest version that differ in content
    conflict_examples: list[str] = field(default_factory=list)


@dataclass
class FileProfile:
    plant: str
    path: Path
    format: str
    header: list[str]
    missing_columns: list[str]
    extra_columns: list[str]
    rows: int
    file_error: str | None
    read_errors: list[tuple[str, int, str]]  # reason pattern, count, example
    truncated: bool
    entities: list[EntityProfile]


def _patterns(pairs: list[tuple[str, str]]) -> list[tuple[str, int, str]]:
    """Reasons counted by pattern (quoted values elided), with one example each."""
    counts: Counter[str] = Counter()
    example: dict[str, str] = {}
    for reason, sample in pairs:
        key = _VALUE.sub("'…'", reason)
        counts[key] += 1
        example.setdefault(key, sample)
    return [(k, n, example[k]) for k, n in counts.most_common()]


def profile_file(
    spark: SparkSession,
    path: Path,
    plant: str,
    source: PlantSource,
    specs: dict[str, EntitySpec],
    group_currency: str,
    *,
    delivery_date: dt.date | None = None,
) -> FileProfile:
    """What ingest and silver would make of `path` delivered by `plant` (nothing written)."""
    fed = sorted(e for e, cfg in source.entities.items() if cfg.file == path.name)
    if not fed:
        files = sorted({cfg.file for cfg in source.entities.values()})
        raise ConfigError(
            f"{path.name}: conf/sources/{plant}.yaml maps no entity to this file name; its "
            f"files: {', '.join(files)} (rename the file, or add it to the mapping)"
        )
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    spec = file_spec(source, fed[0])
    parsed = read_file(content, spec)
    read = read_columns(source, path.name)
    by_source = {s.source: s for s in specs.values()}
    profiles = [
        _entity(spark, parsed, path, plant, source, by_source[e], group_currency, delivery_date)
        for e in fed
        if e in by_source
    ]
    return FileProfile(
        plant=plant,
        path=path,
        format=spec.format,
        header=parsed.header,
        missing_columns=[c for c in read if parsed.header and c not in parsed.header],
        extra_columns=[c for c in parsed.header if c not in read],
        rows=len(parsed.rows) + len(parsed.errors),
        file_error=parsed.file_error,
        read_errors=_patterns([(reason, raw[:120]) for _, raw, reason in parsed.errors]),
        truncated=any(reason == TRUNCATED for *_, reason in parsed.errors),
        entities=profiles,
    )


_BRONZE = T.StructType(
    [
        T.StructField("_plant_id", T.StringType(), False),
        T.StructField("_delivery_date", T.DateType(), False),
        T.StructField("_source_file", T.StringType(), False),
        T.StructField("_file_row", T.IntegerType(), False),
        T.StructField("_file_version", T.IntegerType(), False),
        T.StructField("_record", T.MapType(T.StringType(), T.StringType()), True),
    ]
)


def _entity(
    spark: SparkSession,
    parsed: Parsed,
    path: Path,
    plant: str,
    source: PlantSource,
    spec: EntitySpec,
    group_currency: str,
    delivery_date: dt.date | None,
) -> EntityProfile:
    out = EntityProfile(spec.source, spec.table)
    day = delivery_date or dt.date.today()
    bronze = spark.createDataFrame(
        [(plant, day, path.name, n, 1, record) for n, record in parsed.rows], _BRONZE
    )
    rows = conform(bronze, spec, {plant: source}, Refs(group_currency), run_id="profile")
    names = [c.name for c in spec.columns]
    fx_only = F.size(F.filter("_errors", lambda e: ~e.rlike(_FX.pattern))) == 0
    usable = F.size("_errors") == 0
    rows = rows.withColumn("__fx_only", ~usable & fx_only).withColumn("__usable", usable | fx_only)
    # ranked and marked exactly as the silver build does (`build._conflicts`): a key's older
    # versions are superseded, rows of its latest version that differ are a conflict
    key = ["__usable", "plant_id", *spec.keys]
    latest_first = Window.partitionBy(*key).orderBy(F.col("_seq").desc(), F.col("_file_row"))
    rows = conflicts(rows.withColumn("__rank", F.row_number().over(latest_first)), spec, key)
    rows = rows.localCheckpoint()
    try:
        totals = rows.agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("__usable").cast("int")).alias("usable"),
            F.sum(F.col("__fx_only").cast("int")).alias("fx"),
            F.sum(F.when(F.col("__conflict").isNotNull(), 1)).alias("conflicts"),
            F.sum(
                F.when(F.col("__usable") & (F.col("__rank") > 1) & F.col("__conflict").isNull(), 1)
            ).alias("duplicates"),
            *[F.count(F.col(n)).alias(f"filled_{n}") for n in names],
        ).first()
        assert totals is not None
        out.rows, out.usable, out.needs_fx = (
            totals["rows"],
            totals["usable"] or 0,
            totals["fx"] or 0,
        )
        out.quarantined = out.rows - out.usable
        out.conflicts = totals["conflicts"] or 0
        out.duplicates = totals["duplicates"] or 0
        out.filled = {n: totals[f"filled_{n}"] for n in names}
        errors = (
            rows.where(~F.col("__usable"))
            .select(F.explode("_errors").alias("e"))
            .groupBy("e")
            .count()
            .collect()
        )
        out.reasons = _patterns([(r["e"], r["e"]) for r in errors for _ in range(r["count"])])
        flags = rows.select(F.explode("_flags").alias("f")).groupBy("f").count().collect()
        out.flags = dict(sorted((r["f"], r["count"]) for r in flags))
        out.conflict_examples = [
            ", ".join(f"{k}={r[k]}" for k in spec.keys)
            for r in rows.where(F.col("__conflict").isNotNull())
            .select(*spec.keys)
            .distinct()
            .limit(5)
            .collect()
        ]
        out.date_formats = _formats_seen(rows, spec, source)
    finally:
        rows.unpersist()
    return out


def _formats_seen(rows: Any, spec: EntitySpec, source: PlantSource) -> dict[str, dict[str, int]]:
    """Per date column with declared formats: how many values each format read first."""
    seen: dict[str, dict[str, int]] = {}
    mapped = source.entities[spec.source]
    for c in spec.columns:
        rule = mapped.fields.get(c.name)
        if c.type not in ("date", "datetime") or rule is None or not rule.formats:
            continue
        raw = F.col("_text").getItem(c.name)
        tried: list[Any] = []
        sums = []
        for f in rule.formats:
            hit = F.try_to_timestamp(raw, F.lit(f)).isNotNull()
            earlier = F.lit(False)
            for t in tried:
                earlier = earlier | t
            sums.append(F.sum(F.when(hit & ~earlier, 1).otherwise(0)).alias(f))
            tried.append(hit)
        row = rows.agg(*sums).first()
        seen[c.name] = {
            f"{f} ({day_month_order(f) or 'unambiguous'})": int(row[f] or 0) for f in rule.formats
        }
    return seen
