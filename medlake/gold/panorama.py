"""The supply-chain panorama: every active metric at each configured cut, per month.

One long table (gold.supply_chain_panorama): a row is one metric's value for one cut
(`grain`, e.g. `plant_id+supplier_group_id+month`) and its dimension values; dimensions
outside the cut are NULL. BI tools filter by grain and pivot by metric.

It is computed from the facts there are (`FACTS`; any of them may be missing, and with them
their metrics), and a row whose month the data does not cover to its end says the date the
data ends (`data_through`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pyspark.sql import functions as F

from medlake.config import ConfigError, format_validation_error, read_yaml
from medlake.gold.cost import data_through
from medlake.gold.metrics import MetricDictionary, compute_sets, in_scope

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

# the facts the panorama reads, each optional: product_costs comes from the cost marts
FACTS = (
    "inspection_lots",
    "inventory_days",
    "product_costs",
    "purchase_lines",
    "receipt_lines",
    "wip_days",
)
DIMENSIONS = (
    "region",
    "plant_id",
    "supplier_group_id",
    "material_group_id",
    "material_category",
    "supplier_lot",
    "product_group_id",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SafetyStockDays(_Strict):
    default: float = Field(gt=0)
    by_category: dict[str, float] = Field(default_factory=dict)


class PanoramaConfig(_Strict):
    grains: list[list[str]] = Field(min_length=1)
    safety_stock_days: SafetyStockDays
    settle_days: int = Field(default=7, ge=0)

    @field_validator("grains")
    @classmethod
    def _known(cls, value: list[list[str]]) -> list[list[str]]:
        for grain in value:
            unknown = [d for d in grain if d not in (*DIMENSIONS, "month")]
            if unknown:
                raise ValueError(
                    f"unknown dimension {', '.join(unknown)}; known: {', '.join(DIMENSIONS)}, month"
                )
            if "month" not in grain:
                raise ValueError(f"grain {grain} needs month (the panorama is monthly)")
        return value


M = TypeVar("M", bound=BaseModel)


def load_gold_config(conf_dir: Path, name: str, model: type[M]) -> M:
    """conf/gold/<name>.yaml validated as `model`; errors name the file and field."""
    path = conf_dir / "gold" / f"{name}.yaml"
    data = read_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, [(path, data)])) from None


def grain_name(grain: Sequence[str]) -> str:
    return "+".join(grain)


def panorama(
    dictionary: MetricDictionary,
    facts: Mapping[str, DataFrame],
    grains: Sequence[Sequence[str]],
    months: Sequence[str],
    *,
    ends: Mapping[str, Mapping[str, dt.date]] | None = None,
    regions: Mapping[str, str] | None = None,
) -> DataFrame:
    """Metric values for each grain and month in `months`, every fact's active metrics.

    Columns: month, grain, the DIMENSIONS (NULL outside the grain), metric_id,
    metric_version, numerator, denominator, value, status, data_through.

    `ends` (fact -> plant -> the date the plant's data of the fact ends; `regions` maps
    plants to regions) gives `data_through`: for a row the earliest date among the plants it
    covers (its plant, its region's plants, else every plant of the fact), when that is
    before the month's last day; NULL when the data covers the month, or without `ends`.
    """

    parts = []
    for fact_name, fact in sorted(facts.items()):
        metrics = dictionary.for_fact(fact_name)
        cuts = [
            g
            for g in grains
            if all(d in fact.columns for d in g) and any(in_scope(m, g) for m in metrics)
        ]
        if not metrics or not cuts:
            continue
        values = compute_sets(metrics, fact.where(F.col("month").isin(*months)), cuts)
        names = F.create_map(*[F.lit(x) for n, g in enumerate(cuts) for x in (n, grain_name(g))])
        values = values.withColumn("grain", names[F.col("_cut")]).drop("_cut")
        for d in DIMENSIONS:
            if d not in values.columns:
                values = values.withColumn(d, F.lit(None).cast("string"))
        end = _row_end((ends or {}).get(fact_name, {}), regions or {})
        parts.append(values.withColumn("data_through", data_through(end, F.col("month"))))
    if not parts:
        raise ConfigError("the panorama has no metric for any configured grain")
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def _row_end(ends: Mapping[str, dt.date], regions: Mapping[str, str]) -> Column:
    """The date a row's data ends: its plant's, else the earliest of its region's plants,
    else the earliest of every plant (NULL when `ends` is empty)."""

    if not ends:
        return F.lit(None).cast("date")
    by_region: dict[str, dt.date] = {}
    for plant, day in ends.items():
        region = regions.get(plant)
        if region is not None:
            by_region[region] = min(day, by_region.get(region, day))
    plant_map = F.create_map(*[F.lit(x) for kv in sorted(ends.items()) for x in kv])
    end = F.when(F.col("plant_id").isNotNull(), plant_map[F.col("plant_id")])
    if by_region:
        region_map = F.create_map(*[F.lit(x) for kv in sorted(by_region.items()) for x in kv])
        end = end.when(F.col("region").isNotNull(), region_map[F.col("region")])
    return end.otherwise(F.lit(min(ends.values())))


def months_between(first: dt.date, last: dt.date) -> list[str]:
    """Every yyyy-MM from the month of `first` to the month of `last`."""
    out, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def metric_catalogue(dictionary: MetricDictionary) -> list[dict[str, Any]]:
    """One row per metric and variant: names (en, zh), unit, direction, definition, version."""
    rows = []
    for m in dictionary:
        s = m.spec
        variant = next((v for v in s.variants if v.id == m.id), None)
        rows.append(
            {
                "metric_id": m.id,
                "metric_version": m.version,
                "variant_of": m.canonical if variant else None,
                "name_en": variant.name.en if variant else s.name.en,
                "name_zh": variant.name.zh if variant else s.name.zh,
                "definition": (variant.reason + " " if variant else "") + s.definition,
                "fact": s.fact,
                "formula_sql": m.sql(),
                "grain": s.grain,
                "dimensions": list(s.dimensions),
                "unit": s.unit,
                "currency": s.currency,
                "direction": s.direction,
                "warning": s.thresholds.warning,
                "critical": s.thresholds.critical,
                "owner": s.owner,
                "status": s.status,
                "fingerprint": m.fingerprint,
            }
        )
    return rows
