"""The supplier scorecard: composite score, rank in category, trend and risk flags.

Per supplier (group id: across every plant that buys from it), material category and
month, over the rolling window of the last `window_months` months, once per scope: `group`
(every plant) and each plant set a regional role reads (`scoped_scorecards`), so that a
regional analyst gets scores, ranks and counts computed from her plants' data alone. Each
component is a metric of the dictionary scored 0-100 between the configured worst and best
values; the composite is their weighted mean. Flags carry their reason as text a buyer can act on.

It needs the receipt and purchase lines (`REQUIRED_FACTS`); a component whose fact is not
there (no incoming inspections delivered) is NULL and out of the composite. Given the date
each plant's data ends (`ends`), it writes no window ending after the month the last of them
falls in, and marks a window whose last month is not covered by every plant (`data_through`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from functools import reduce
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pyspark.sql import Window
from pyspark.sql import functions as F

from medlake.config import ConfigError
from medlake.gold.cost import data_through
from medlake.gold.metrics import MetricDictionary, compute
from medlake.governance.access import GROUP_SCOPE

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

KEYS = ["month", "supplier_group_id", "material_category"]
COMPONENTS = ("quality", "delivery", "price", "responsiveness")
REQUIRED_FACTS = ("receipt_lines", "purchase_lines")  # lines per window, single sourcing
OPTIONAL_INPUTS = ("silver.suppliers",)  # supplier names (NULL without)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Component(_Strict):
    metric: str
    weight: float = Field(gt=0, le=1)
    best: float
    worst: float
    # a commercial component (price): left out of the scorecards of regional scopes, whose
    # readers may not see commercial terms; their composite weighs the other components
    central_only: bool = False

    @model_validator(mode="after")
    def _distinct(self) -> Component:
        if self.best == self.worst:
            raise ValueError("best and worst must differ")
        return self


class Flags(_Strict):
    otd_decline_points: float = Field(gt=0)
    reject_rise_points: float = Field(gt=0)
    min_z: float = Field(ge=0)
    composite_below: float = Field(ge=0, le=100)
    single_source_months: int = Field(ge=1)


class ScorecardConfig(_Strict):
    window_months: int = Field(ge=1, le=24)
    min_receipt_lines: int = Field(ge=1)
    components: dict[str, Component] = Field(min_length=1)
    trend_months: int = Field(ge=1, le=24)
    flags: Flags

    def component_facts(self, dictionary: MetricDictionary) -> dict[str, str]:
        """Component -> the fact its metric is computed from."""
        return {n: dictionary.get(c.metric).spec.fact for n, c in self.components.items()}

    @model_validator(mode="after")
    def _weights(self) -> ScorecardConfig:
        total = sum(c.weight for c in self.components.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"component weights add up to {total:g}, not 1")
        if sorted(self.components) != sorted(COMPONENTS):
            raise ValueError(
                f"components must be exactly {', '.join(COMPONENTS)} (the scorecard's columns); "
                f"found {', '.join(sorted(self.components))}"
            )
        return self


def _shift(month: Column, months: int | Column) -> Column:
    """yyyy-MM `month` moved by `months` (negative: earlier)."""

    first = F.to_date(F.concat(month, F.lit("-01")))
    return F.date_format(F.add_months(first, months), "yyyy-MM")


def in_windows(fact: DataFrame, window_months: int) -> DataFrame:
    """Each row once per rolling window it falls in; `month` becomes the window's last month."""

    k = F.explode(F.sequence(F.lit(0), F.lit(window_months - 1)))
    return (
        fact.withColumn("_k", k).withColumn("month", _shift(F.col("month"), F.col("_k"))).drop("_k")
    )


def scorecard(
    dictionary: MetricDictionary,
    facts: Mapping[str, DataFrame],
    config: ScorecardConfig,
    months: Sequence[str],
    supplier_names: DataFrame,
    *,
    central: bool = True,
    ends: Mapping[str, dt.date] | None = None,
) -> DataFrame:
    """The scorecard rows of `months` (window metrics, scores, rank, trend, flags); with
    `central=False` the `central_only` components are NULL and out of the composite, and so
    is a component whose fact is not in `facts`.

    `ends` (plant -> the date its data ends) leaves out the windows ending after the month
    of the latest, and sets `data_through` to the earliest where it falls before the
    window's last month ends (NULL: every plant's data covers it); without `ends`
    `data_through` is NULL.
    """

    missing = sorted(set(REQUIRED_FACTS) - set(facts))
    if missing:
        raise ConfigError(f"the scorecard needs the facts {', '.join(missing)}")
    metrics = {
        name: dictionary.get(c.metric)
        for name, c in config.components.items()
        if (central or not c.central_only) and dictionary.get(c.metric).spec.fact in facts
    }
    windowed = {n: in_windows(f, config.window_months) for n, f in facts.items()}
    rl = windowed["receipt_lines"]
    base = (
        rl.where(F.col("supplier_group_id").isNotNull())
        .groupBy(*KEYS)
        .agg(
            F.count("*").alias("receipt_lines"),
            F.collect_set("plant_id").alias("plants"),
        )
    )
    for name, metric in metrics.items():
        values = compute([metric], windowed[metric.spec.fact], KEYS).select(
            *KEYS, F.col("value").alias(name), F.col("denominator").alias(f"{name}_n")
        )
        base = base.join(values, KEYS, "left")
    for name in config.components:
        if name not in metrics:  # left out of this scope
            base = base.withColumn(name, F.lit(None).cast("double"))
            base = base.withColumn(f"{name}_n", F.lit(None).cast("double"))
    enough = F.col("receipt_lines") >= config.min_receipt_lines
    weighted, weights = F.lit(0.0), F.lit(0.0)
    for name, c in config.components.items():
        score = (
            F.greatest(
                F.lit(0.0), F.least(F.lit(1.0), (F.col(name) - c.worst) / (c.best - c.worst))
            )
            * 100
        )
        # greatest / least skip NULLs: a component without data must stay NULL, not 100
        base = base.withColumn(f"{name}_score", F.when(enough & F.col(name).isNotNull(), score))
        has = F.col(f"{name}_score").isNotNull()
        weighted = weighted + F.when(has, F.col(f"{name}_score") * c.weight).otherwise(0.0)
        weights = weights + F.when(has, F.lit(c.weight)).otherwise(0.0)
    # not cached: the self-join below shares base's exchanges within its one job, while a
    # cached plan stays registered until unpersisted (it would outlive the run on a shared driver)
    base = base.withColumn("composite_score", F.when(weights > 0, weighted / weights))

    prev = base.select(
        _shift(F.col("month"), config.trend_months).alias("month"),
        "supplier_group_id",
        "material_category",
        F.col("receipt_lines").alias("prev_receipt_lines"),
        F.col("delivery").alias("prev_delivery"),
        F.col("delivery_n").alias("prev_delivery_n"),
        F.col("quality").alias("prev_quality"),
        F.col("quality_n").alias("prev_quality_n"),
        F.col("composite_score").alias("prev_composite_score"),
    )
    df = base.join(prev, KEYS, "left")
    comparable = enough & (F.col("prev_receipt_lines") >= config.min_receipt_lines)
    df = (
        df.withColumn(
            "otd_trend_points",
            F.when(comparable, (F.col("delivery") - F.col("prev_delivery")) * 100),
        )
        .withColumn(
            "reject_rate_trend_points",
            F.when(comparable, (F.col("prev_quality") - F.col("quality")) * 100),
        )
        .withColumn(
            "composite_trend",
            F.when(comparable, F.col("composite_score") - F.col("prev_composite_score")),
        )
    )
    df = df.join(
        _single_source(facts["purchase_lines"], config.flags.single_source_months), KEYS, "left"
    )
    df = _flags(df, config)
    ranked = Window.partitionBy("month", "material_category").orderBy(
        F.col("composite_score").desc_nulls_last(), "supplier_group_id"
    )
    in_category = Window.partitionBy("month", "material_category")
    df = (
        df.withColumn(
            "rank_in_category", F.when(F.col("composite_score").isNotNull(), F.rank().over(ranked))
        )
        .withColumn("suppliers_in_category", F.count(F.col("composite_score")).over(in_category))
        .withColumn("window_start", _shift(F.col("month"), 1 - config.window_months))
        .withColumn("window_end", F.col("month"))
        .withColumn(
            "metric_versions",
            F.create_map(
                *[
                    x
                    for m in sorted({m.id: m.version for m in metrics.values()}.items())
                    for x in (F.lit(m[0]), F.lit(m[1]))
                ]
            ),
        )
    )
    names = supplier_names.groupBy("supplier_group_id").agg(
        F.min("supplier_name").alias("supplier_name")
    )
    df = df.where(F.col("month").isin(*months))
    if ends is None:
        df = df.withColumn("data_through", F.lit(None).cast("date"))
    elif not ends:
        df = df.where(F.lit(False)).withColumn("data_through", F.lit(None).cast("date"))
    else:
        last = f"{max(ends.values()):%Y-%m}"
        df = df.where(F.col("month") <= last).withColumn(
            "data_through", data_through(F.lit(min(ends.values())), F.col("month"))
        )
    return df.join(names, "supplier_group_id", "left")


def scoped_scorecards(
    dictionary: MetricDictionary,
    facts: Mapping[str, DataFrame],
    config: ScorecardConfig,
    months: Sequence[str],
    supplier_names: DataFrame,
    scopes: Mapping[str, Sequence[str]],
    *,
    ends: Mapping[str, dt.date] | None = None,
) -> DataFrame:
    """`scorecard` once per scope (name -> plant ids), each over the facts of its plants
    only, with the columns `scope` and `scope_plants` (the plants it was computed over).
    Scopes other than `group` are read by regional roles: their scorecards leave out the
    `central_only` (commercial) components. `ends` (plant -> the date its data ends; a
    plant not in it has none) bounds each scope's months by its own plants' dates."""

    parts = []
    for name, plants in scopes.items():
        scoped = {n: f.where(F.col("plant_id").isin(*plants)) for n, f in facts.items()}
        names = supplier_names.where(F.col("plant_id").isin(*plants))  # the scope's spelling
        central = name == GROUP_SCOPE
        own = None if ends is None else {p: d for p, d in ends.items() if p in plants}
        if own == {}:  # no plant of the scope has data: no rows, not even a plan to run
            continue
        card = scorecard(dictionary, scoped, config, months, names, central=central, ends=own)
        parts.append(
            card.withColumn("scope", F.lit(name)).withColumn(
                "scope_plants", F.array(*[F.lit(p) for p in sorted(plants)])
            )
        )
    if not parts:
        raise ConfigError("no scope of the scorecard has a plant with data (ends)")
    return reduce(lambda a, b: a.unionByName(b), parts)


def _single_source(purchases: DataFrame, months: int) -> DataFrame:
    """Per supplier, category and month: the plant materials it alone supplied in the last
    `months` months (by purchase-order lines)."""

    lines = in_windows(purchases.where(F.col("supplier_group_id").isNotNull()), months)
    sole = (
        lines.groupBy("month", "plant_id", "material_group_id", "material_category")
        .agg(
            F.countDistinct("supplier_group_id").alias("n"),
            F.min("supplier_group_id").alias("supplier_group_id"),
        )
        .where(F.col("n") == 1)
    )
    return sole.groupBy(*KEYS).agg(
        F.sort_array(F.collect_set(F.concat_ws(":", "plant_id", "material_group_id"))).alias(
            "sole_source_materials"
        )
    )


def _z(p1: Column, n1: Column, p0: Column, n0: Column) -> Column:
    """Two-proportion z statistic of p1 (n1 trials) against p0 (n0 trials), pooled."""

    pooled = (p1 * n1 + p0 * n0) / (n1 + n0)
    se = F.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    return F.when(se > 0, (p1 - p0) / se)


def _flags(df: DataFrame, config: ScorecardConfig) -> DataFrame:

    f = config.flags
    pct = "%.1f%%"
    otd_z = _z(
        F.col("delivery"), F.col("delivery_n"), F.col("prev_delivery"), F.col("prev_delivery_n")
    )
    pass_z = _z(
        F.col("quality"), F.col("quality_n"), F.col("prev_quality"), F.col("prev_quality_n")
    )
    checks: list[tuple[str, Column, Column]] = [
        (
            "otd_decline",
            (F.col("otd_trend_points") < -f.otd_decline_points) & (otd_z < -f.min_z),
            F.format_string(
                f"on-time delivery {pct} of %d lines over %s..%s, down %.1f points from {pct} "
                f"of %d lines {config.trend_months} months earlier (z = %.1f; limits "
                f"{f.otd_decline_points:g} points, z {f.min_z:g})",
                F.col("delivery") * 100,
                F.col("delivery_n").cast("int"),
                F.col("window_start_tmp"),
                F.col("month"),
                -F.col("otd_trend_points"),
                F.col("prev_delivery") * 100,
                F.col("prev_delivery_n").cast("int"),
                otd_z,
            ),
        ),
        (
            "reject_rate_rise",
            (F.col("reject_rate_trend_points") > f.reject_rise_points) & (pass_z < -f.min_z),
            F.format_string(
                f"incoming reject rate {pct} of %d lots, up %.1f points from {pct} "
                f"{config.trend_months} months earlier (z = %.1f; limits "
                f"{f.reject_rise_points:g} points, z {f.min_z:g})",
                (1 - F.col("quality")) * 100,
                F.col("quality_n").cast("int"),
                F.col("reject_rate_trend_points"),
                (1 - F.col("prev_quality")) * 100,
                -pass_z,
            ),
        ),
        (
            "low_composite",
            F.col("composite_score") < f.composite_below,
            F.format_string(
                f"composite score %.1f below {f.composite_below:g}", F.col("composite_score")
            ),
        ),
        (
            "single_source",
            F.size(F.coalesce(F.col("sole_source_materials"), F.array())) > 0,
            F.format_string(
                f"only supplier over {f.single_source_months} months of %d plant material(s): %s",
                F.size("sole_source_materials"),
                F.array_join(F.slice("sole_source_materials", 1, 5), ", "),
            ),
        ),
    ]
    df = df.withColumn("window_start_tmp", _shift(F.col("month"), 1 - config.window_months))
    flags = F.filter(
        F.array(
            *[
                F.when(
                    F.coalesce(cond, F.lit(False)),
                    F.struct(F.lit(n).alias("flag"), r.alias("reason")),
                )
                for n, cond, r in checks
            ]
        ),
        lambda x: x.isNotNull(),
    )
    return (
        df.withColumn("_flags", flags)
        .withColumn("risk_flags", F.transform("_flags", lambda x: x["flag"]))
        .withColumn("risk_reasons", F.transform("_flags", lambda x: x["reason"]))
        .drop("_flags", "window_start_tmp")
    )
