"""Facts: the canonical silver tables joined into the grains the metric dictionary counts.

A fact is a pure function of silver DataFrames, registered by name; a metric names the
fact it is computed from (conf/metrics). Every fact carries `plant_id`, `region` and
`month` (yyyy-MM of its business date), and only rows dated on or before the as-of date,
so a gold run for a date computes the same numbers however much later data silver holds.

A fact declares the silver tables it reads: without one of its required `inputs` it is not
built (at a plant, or at all); an `optional` one may be missing (read as empty), leaving
only the columns that come from it NULL. `Holdings` says what silver holds: which plants
have rows in each input and, for a dated input (events, partitioned by month: not master
data), when each plant's data ends, so that a month after it is never reported as a month
of data (`medlake.gold.cost.covered`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import Window
from pyspark.sql import functions as F

from medlake.config import ConfigError
from medlake.gold.cost import OPTIONAL_INPUTS as COST_OPTIONAL
from medlake.gold.cost import REQUIRED_INPUTS as COST_REQUIRED
from medlake.gold.cost import cost_facts
from medlake.sources import load_sources

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


@dataclass(frozen=True)
class FactContext:
    """What a fact builder gets besides its tables: plants, the as-of date, gold settings."""

    spark: SparkSession
    as_of: dt.date
    regions: Mapping[str, str]  # plant id -> region (conf/sources)
    params: Mapping[str, Any] = field(default_factory=dict)


Builder = Callable[[Mapping[str, "DataFrame"], FactContext], "DataFrame"]


@dataclass(frozen=True)
class Fact:
    name: str
    description: str
    grain: str
    inputs: tuple[str, ...]  # every silver table the builder reads
    build: Builder
    optional: tuple[str, ...] = ()  # those of `inputs` it can do without (read as empty)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(t for t in self.inputs if t not in self.optional)


FACTS: dict[str, Fact] = {}


def fact(
    name: str, *, grain: str, inputs: tuple[str, ...], optional: tuple[str, ...] = ()
) -> Callable[[Builder], Builder]:
    """Register a fact builder under `name` (its docstring is the fact's description).
    `inputs` are the silver tables it reads; `optional` those of them it can do without."""

    unknown = [t for t in optional if t not in inputs]
    if unknown:
        raise ValueError(f"fact {name}: optional inputs {unknown} are not among its inputs")

    def register(fn: Builder) -> Builder:
        FACTS[name] = Fact(name, (fn.__doc__ or "").strip(), grain, inputs, fn, optional)
        return fn

    return register


def get(name: str) -> Fact:
    try:
        return FACTS[name]
    except KeyError:
        raise ConfigError(
            f"unknown fact {name!r}; facts: {', '.join(sorted(FACTS))} (medlake/gold/facts.py)"
        ) from None


def build_facts(
    names: set[str], tables: Mapping[str, DataFrame], ctx: FactContext
) -> dict[str, DataFrame]:
    """The named facts, each built once from `tables` (silver, by registry name)."""
    return {n: get(n).build(tables, ctx) for n in sorted(names)}


def inputs_of(names: set[str]) -> list[str]:
    """Every silver table the named facts read, required or optional."""
    return sorted({t for n in names for t in get(n).inputs})


# --------------------------------------------------------------------------- holdings


@dataclass(frozen=True)
class Holdings:
    """What silver holds for gold: per input table the plants with rows in it and, for a dated
    input (one of events, partitioned by month; master data is not dated), the date of each
    plant's last delivery (`_delivery_date`): the date its data ends.

    >>> held = Holdings.of(tables, dated={"silver.purchase_orders"}, as_of=day)  # doctest: +SKIP
    >>> held.ends(["silver.purchase_orders", "silver.materials"], {"SU"})  # doctest: +SKIP
    {'SU': datetime.date(2026, 3, 20)}
    """

    plants: Mapping[str, frozenset[str]]  # table -> plants with rows (only tables read)
    last: Mapping[str, Mapping[str, dt.date]]  # dated table -> plant -> last delivery
    as_of: dt.date

    @classmethod
    def of(cls, tables: Mapping[str, DataFrame], dated: set[str], as_of: dt.date) -> Holdings:
        """From the silver tables read (by registry name), in one Spark job."""

        parts = [
            df.select(F.lit(name).alias("_table"), "plant_id", "_delivery_date")
            for name, df in sorted(tables.items())
        ]
        plants: dict[str, set[str]] = {name: set() for name in tables}
        last: dict[str, dict[str, dt.date]] = {name: {} for name in tables if name in dated}
        if parts:
            union = parts[0]
            for part in parts[1:]:
                union = union.unionByName(part)
            rows = (
                union.groupBy("_table", "plant_id")
                .agg(F.max("_delivery_date").alias("last"))
                .collect()
            )
            for row in rows:
                plants[row["_table"]].add(row["plant_id"])
                if row["_table"] in last and row["last"] is not None:
                    last[row["_table"]][row["plant_id"]] = row["last"]
        return cls(
            plants={t: frozenset(p) for t, p in plants.items()},
            last=last,
            as_of=as_of,
        )

    @property
    def every_plant(self) -> frozenset[str]:
        """The plants with rows in any table read."""
        return frozenset(p for plants in self.plants.values() for p in plants)

    def having(self, required: Iterable[str]) -> frozenset[str]:
        """The plants with rows in every one of `required` (every plant when none)."""
        out = self.every_plant
        for table in required:
            out &= self.plants.get(table, frozenset())
        return out

    def lacking(self, required: Iterable[str], plants: Iterable[str]) -> dict[str, list[str]]:
        """Plant -> the tables of `required` it has no rows in (plants lacking none left out)."""
        out: dict[str, list[str]] = {}
        for plant in sorted(plants):
            gaps = [t for t in required if plant not in self.plants.get(t, frozenset())]
            if gaps:
                out[plant] = gaps
        return out

    def ends(self, inputs: Iterable[str], plants: Iterable[str]) -> dict[str, dt.date]:
        """Plant -> the date its data of `inputs` ends: the earliest last delivery of the
        dated ones it has rows in, and never after the as-of date."""
        dated = [t for t in inputs if t in self.last]
        out = {}
        for plant in sorted(plants):
            dates = [self.last[t][plant] for t in dated if plant in self.last[t]]
            out[plant] = min([*dates, self.as_of])
        return out


# --------------------------------------------------------------------------- helpers


def _region(df: DataFrame, ctx: FactContext) -> DataFrame:

    mapping = F.create_map(*[F.lit(x) for kv in sorted(ctx.regions.items()) for x in kv])
    return df.withColumn("region", mapping[F.col("plant_id")])


def _month(column: str) -> Column:

    return F.date_format(F.col(column), "yyyy-MM")


def _materials(tables: Mapping[str, DataFrame]) -> DataFrame:

    return tables["silver.materials"].select(
        "plant_id",
        "material_code",
        F.col("category").alias("material_category"),
        "std_lead_time_days",
    )


def _purchase_lines(tables: Mapping[str, DataFrame]) -> DataFrame:
    orders = tables["silver.purchase_orders"]
    # Prices are confidential: a role that may not see them (a regional analyst reading through
    # medlake.governance.read) gets the lines without them, so delivery and lead-time metrics
    # still compute, and a metric that needs the price says its column is hidden.
    priced = ["unit_price_group"] if "unit_price_group" in orders.columns else []
    return orders.select(
        "plant_id",
        "po_number",
        "po_line",
        "supplier_group_id",
        "material_group_id",
        "material_code",
        "order_date",
        "due_date",
        "ordered_qty",
        *priced,
    )


def standard_cost_at(std: DataFrame, events: DataFrame, date_column: str) -> DataFrame:
    """`events` with `std_unit_cost_group`: the standard cost valid on each row's date
    (latest valid_from on or before it) for its plant and material; NULL before any."""

    spans = std.select("plant_id", "material_code", "valid_from", "std_unit_cost_group").withColumn(
        "valid_to",
        F.lead("valid_from").over(
            Window.partitionBy("plant_id", "material_code").orderBy("valid_from")
        ),
    )
    cond = (
        (events["plant_id"] == spans["plant_id"])
        & (events["material_code"] == spans["material_code"])
        & (events[date_column] >= spans["valid_from"])
        & (spans["valid_to"].isNull() | (events[date_column] < spans["valid_to"]))
    )
    return events.join(spans.hint("broadcast"), cond, "left").select(
        events["*"], spans["std_unit_cost_group"]
    )


# --------------------------------------------------------------------------- facts


@fact(
    "receipt_lines",
    grain="goods receipt line",
    inputs=("silver.goods_receipts", "silver.purchase_orders", "silver.materials"),
)
def receipt_lines(tables: Mapping[str, DataFrame], ctx: FactContext) -> DataFrame:
    """Goods receipts with their purchase-order line: supplier, material, order, due and
    receipt dates, ordered and received quantity; arrival_offset_days = receipt - due date,
    lead_time_days = receipt - order date. Month of the receipt date."""

    receipts = (
        tables["silver.goods_receipts"]
        .select(
            "plant_id",
            "receipt_id",
            "po_number",
            "po_line",
            "supplier_lot",
            "receipt_date",
            "received_qty",
        )
        .where(F.col("receipt_date") <= F.lit(ctx.as_of))
    )
    df = (
        receipts.join(_purchase_lines(tables), ["plant_id", "po_number", "po_line"], "left")
        .join(_materials(tables), ["plant_id", "material_code"], "left")
        .withColumn("arrival_offset_days", F.datediff("receipt_date", "due_date"))
        .withColumn("lead_time_days", F.datediff("receipt_date", "order_date"))
        .withColumn("month", _month("receipt_date"))
    )
    return _region(df, ctx)


@fact(
    "inspection_lots",
    grain="incoming inspection lot",
    inputs=(
        "silver.incoming_inspections",
        "silver.goods_receipts",
        "silver.purchase_orders",
        "silver.materials",
    ),
)
def inspection_lots(tables: Mapping[str, DataFrame], ctx: FactContext) -> DataFrame:
    """Incoming inspections per supplier lot with the supplier of the receipt inspected:
    result (ACCEPT, ACCEPT_DEVIATION, REJECT), inspected and rejected quantity. Month of the
    inspection's plant-local date."""

    inspections = (
        tables["silver.incoming_inspections"]
        .select(
            "plant_id",
            "inspection_id",
            "receipt_id",
            "material_code",
            "material_group_id",
            "supplier_lot",
            "inspected_qty",
            "rejected_qty",
            "result",
            F.col("inspected_at_local_date").alias("inspection_date"),
        )
        .where(F.col("inspection_date") <= F.lit(ctx.as_of))
    )
    receipts = tables["silver.goods_receipts"].select(
        "plant_id", "receipt_id", "po_number", "po_line"
    )
    suppliers = tables["silver.purchase_orders"].select(
        "plant_id", "po_number", "po_line", "supplier_group_id"
    )
    df = (
        inspections.join(receipts, ["plant_id", "receipt_id"], "left")
        .join(suppliers, ["plant_id", "po_number", "po_line"], "left")
        .join(_materials(tables), ["plant_id", "material_code"], "left")
        .withColumn("month", _month("inspection_date"))
    )
    return _region(df, ctx)


@fact(
    "purchase_lines",
    grain="purchase-order line",
    inputs=("silver.purchase_orders", "silver.standard_costs", "silver.materials"),
    optional=("silver.standard_costs",),  # without it: no PPV, spend and fluctuation still
)
def purchase_lines(tables: Mapping[str, DataFrame], ctx: FactContext) -> DataFrame:
    """Purchase-order lines with the standard cost valid on the order date, all in group
    currency per canonical unit: ppv_group = (unit price - standard cost) x ordered
    quantity, std_value_group = standard cost x ordered quantity. Month of the order date."""

    lines = _purchase_lines(tables).where(F.col("order_date") <= F.lit(ctx.as_of))
    df = (
        standard_cost_at(tables["silver.standard_costs"], lines, "order_date")
        .join(_materials(tables), ["plant_id", "material_code"], "left")
        .withColumn(
            "ppv_group",
            (F.col("unit_price_group") - F.col("std_unit_cost_group")) * F.col("ordered_qty"),
        )
        .withColumn("std_value_group", F.col("std_unit_cost_group") * F.col("ordered_qty"))
        .withColumn("month", _month("order_date"))
    )
    return _region(df, ctx)


ISSUE_TYPES = ("ISSUE", "SHIPMENT")


@fact(
    "inventory_days",
    grain="plant x material x day",
    inputs=(
        "silver.on_hand",
        "silver.stock_movements",
        "silver.standard_costs",
        "silver.materials",
    ),
)
def inventory_days(tables: Mapping[str, DataFrame], ctx: FactContext) -> DataFrame:
    """Per plant, material and day: quantity on hand at the end of the day, quantity issued
    (to production or shipped to customers), both valued at the standard cost valid that
    day (group currency; NULL where no standard cost exists, e.g. finished devices), and the
    stated safety stock = safety_stock_days (conf/gold, by material category) x the average
    daily issue of the trailing 90 days."""

    on_hand = (
        tables["silver.on_hand"]
        .where(F.col("snapshot_date") <= F.lit(ctx.as_of))
        .groupBy("plant_id", "material_code", F.col("snapshot_date").alias("day"))
        .agg(F.sum("qty").alias("on_hand_qty"))
    )
    issued = (
        tables["silver.stock_movements"]
        .where(
            F.col("movement_type").isin(*ISSUE_TYPES)
            & (F.col("moved_at_local_date") <= F.lit(ctx.as_of))
        )
        .groupBy("plant_id", "material_code", F.col("moved_at_local_date").alias("day"))
        .agg(F.sum(F.abs("qty")).alias("issued_qty"))
    )
    days = on_hand.join(issued, ["plant_id", "material_code", "day"], "full").fillna(
        0, subset=["on_hand_qty", "issued_qty"]
    )
    days = standard_cost_at(tables["silver.standard_costs"], days, "day")
    trailing = (
        Window.partitionBy("plant_id", "material_code")
        .orderBy(F.unix_date("day"))
        .rangeBetween(-89, 0)
    )
    stated = ctx.params.get("safety_stock_days", {})
    default_days = float(stated.get("default", 14))
    by_category = stated.get("by_category", {})
    days_col = F.lit(default_days)
    for category, value in sorted(by_category.items()):
        days_col = F.when(F.col("material_category") == category, F.lit(float(value))).otherwise(
            days_col
        )
    df = (
        days.join(_materials(tables), ["plant_id", "material_code"], "left")
        .join(
            tables["silver.materials"].select("plant_id", "material_code", "material_group_id"),
            ["plant_id", "material_code"],
            "left",
        )
        .withColumn("avg_daily_issue_90d", F.sum("issued_qty").over(trailing) / 90.0)
        .withColumn("safety_stock_qty", days_col * F.col("avg_daily_issue_90d"))
        .withColumn("on_hand_value_group", F.col("on_hand_qty") * F.col("std_unit_cost_group"))
        .withColumn("issued_value_group", F.col("issued_qty") * F.col("std_unit_cost_group"))
        .withColumn("month", _month("day"))
    )
    return _region(df, ctx)


@fact(
    "wip_days",
    grain="plant x product x day",
    inputs=("silver.work_orders", "silver.production_lots"),
)
def wip_days(tables: Mapping[str, DataFrame], ctx: FactContext) -> DataFrame:
    """Per plant, finished product and day: units in work in progress (planned units of the
    work orders started on or before the day and not finished before it) and units
    completed good that day (production lots)."""

    as_of = F.lit(ctx.as_of)
    orders = tables["silver.work_orders"].where(F.col("started_at_local_date") <= as_of)
    last_open = F.least(F.coalesce(F.date_sub("finished_at_local_date", 1), as_of), as_of)
    start = F.col("started_at_local_date")
    open_days = orders.select(
        "plant_id",
        "product_group_id",
        "planned_qty",
        F.explode(  # end-of-day WIP: started on or before the day, not finished by its end
            F.when(last_open >= start, F.sequence(start, last_open)).otherwise(
                F.array().cast("array<date>")
            )
        ).alias("day"),
    )
    wip = open_days.groupBy("plant_id", "product_group_id", "day").agg(
        F.sum("planned_qty").alias("wip_units")
    )
    done = (
        tables["silver.production_lots"]
        .where(F.col("production_date") <= as_of)
        .groupBy("plant_id", "product_group_id", F.col("production_date").alias("day"))
        .agg(F.sum("qty_good").alias("completed_units"))
    )
    df = (
        wip.join(done, ["plant_id", "product_group_id", "day"], "full")
        .fillna(0, subset=["wip_units", "completed_units"])
        .withColumn("month", _month("day"))
    )
    return _region(df, ctx)


@fact(
    "product_costs",
    grain="plant x product x month",
    inputs=(*COST_REQUIRED, *COST_OPTIONAL),
    optional=COST_OPTIONAL,
)
def product_costs(tables: Mapping[str, DataFrame], ctx: FactContext) -> DataFrame:
    """Per plant, product and month: material cost per unit at the month's purchase prices
    rolled through the multi-level BOM (medlake/gold/cost.py), the previous month's, the
    standard material cost, units sold and revenue, from the first order month to the
    as-of month."""

    as_of = F.lit(ctx.as_of)
    orders = tables["silver.purchase_orders"].where(F.col("order_date") <= as_of)
    first = orders.agg(F.min("order_date")).first()
    start = first[0] if first and first[0] else ctx.as_of
    costs = cost_facts(
        boms=tables["silver.boms"],
        purchase_orders=orders,
        standard_costs=tables["silver.standard_costs"],
        sales_orders=tables["silver.sales_orders"].where(F.col("order_date") <= as_of),
        start_month=f"{start:%Y-%m}",
        end_month=f"{ctx.as_of:%Y-%m}",
    )
    return _region(costs.product_costs, ctx)


def plant_regions(conf_dir: Any) -> dict[str, str]:
    """Plant id -> region from conf/sources."""

    return {p: s.plant.region for p, s in load_sources(conf_dir / "sources").items()}
