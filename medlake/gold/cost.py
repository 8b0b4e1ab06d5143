"""Cost transmission: purchase prices rolled through the multi-level BOM to product cost and margin.

Four pure steps, each a DataFrame -> DataFrame function of silver (or of the previous step):

1. `explode_bom` (medlake.gold.bom): every purchased component of every product, with the
   quantity per product unit multiplied along the BOM path.
2. `monthly_unit_costs`: per plant, material and month the unit cost in group currency (EUR)
   per canonical unit: the quantity-weighted mean price of the purchase orders placed in the
   month; a month without orders carries the last known price forward; before the first
   order, the standard cost valid in the month. The standard cost is kept next to it.
3. `cost_contributions` (fact gold.cost_transmission) and `product_costs` (fact
   gold.product_cost): what each component adds to a product's material cost in a month,
   and the product's material cost, standard cost, previous month's cost, sales and margin.
4. `what_if`: a relative price change of one component from a date, and the products whose
   cost it moves, by how much per unit and over the last twelve months' sales.

Given the date each plant's data ends (`cost_facts(ends=...)`), the months after it are not
computed: a price carried forward past the last order is no evidence that prices held.

Conventions: months are `yyyy-MM` strings; a BOM line, path or standard cost applies to a
month when it is in effect on the month's last day (so a change during a month counts for
the whole month); money is `decimal(18,6)` EUR per unit of the product or component; a
product's material cost is null when any of its components has no cost at all (never a
silently low cost), and `components_without_cost` says how many lack one.

>>> exploded = explode_bom(boms, max_depth=10)  # doctest: +SKIP
>>> costs = monthly_unit_costs(  # doctest: +SKIP
...     pos, std, start_month="2026-01", end_month="2026-08")
>>> contributions = cost_contributions(exploded, costs)  # doctest: +SKIP
>>> facts = product_costs(contributions, sales_orders)  # doctest: +SKIP
>>> impact = what_if(  # doctest: +SKIP
...     exploded, costs, sales_orders, component="G-MAT-0042", change=0.08,
...     from_date=dt.date(2026, 9, 1))
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from medlake.gold.bom import (
    DEFAULT_MAX_DEPTH,
    QTY_TYPE,
    BomCycleError,
    BomDepthError,
    BomError,
    explode_bom,
    valid_on,
)

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "MONEY_TYPE",
    "OPTIONAL_INPUTS",
    "QTY_TYPE",
    "REQUIRED_INPUTS",
    "BomCycleError",
    "BomDepthError",
    "BomError",
    "CostFacts",
    "cost_contributions",
    "cost_facts",
    "covered",
    "data_through",
    "explode_bom",
    "monthly_unit_costs",
    "plant_ends",
    "previous_month",
    "product_costs",
    "what_if",
    "without_sales",
]

MONEY_TYPE = "decimal(18,6)"  # EUR, like silver's *_group amounts
_INPUT_QTY = "decimal(18,6)"
_RATIO = "decimal(18,10)"
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
SALES_WINDOW_MONTHS = 12

# The silver tables of the cost-transmission marts (gold.product_cost, gold.cost_transmission):
# without a BOM and purchase prices there is nothing to roll up, so a plant lacking either is
# left out; without standard costs a component without orders has no cost and the standard
# columns are NULL; without sales orders the sales columns are NULL (`without_sales`).
REQUIRED_INPUTS = ("silver.boms", "silver.purchase_orders")
OPTIONAL_INPUTS = ("silver.standard_costs", "silver.sales_orders")


class CostFacts(NamedTuple):
    """The two gold facts of cost transmission (without metric_versions and _run_id)."""

    product_costs: DataFrame  # gold.product_cost
    cost_contributions: DataFrame  # gold.cost_transmission


# --------------------------------------------------------------------------- month helpers


def _check_month(name: str, text: str) -> None:
    if not _MONTH.match(text):
        raise ValueError(f"{name} must be a month as yyyy-MM (e.g. 2026-04), got {text!r}")


def previous_month(month: str) -> str:
    """The month before `month` (both yyyy-MM).

    >>> previous_month("2026-01")
    '2025-12'
    """
    _check_month("month", month)
    year, number = int(month[:4]), int(month[5:])
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def _month_of(day: Column) -> Column:
    return F.date_format(day, "yyyy-MM")


def _month_start(month: Column) -> Column:
    return F.to_date(F.concat(month, F.lit("-01")))


def _month_end(month: Column) -> Column:
    return F.last_day(_month_start(month))


def _next_month(month: Column) -> Column:
    return _month_of(F.add_months(_month_start(month), 1))


def _money(value: Column) -> Column:
    return value.cast(MONEY_TYPE)


def _ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator as a double, null when the denominator is null or zero."""
    return F.when(denominator != 0, numerator.cast("double") / denominator.cast("double"))


# --------------------------------------------------------------------------- data coverage
# Shared by the monthly marts (panorama, scorecard, the gold job): a plant's months after its
# data ends are not computed, and a month its data does not cover to the end says so.


def covered(df: DataFrame, ends: Mapping[str, dt.date]) -> DataFrame:
    """The rows of `df` (with `plant_id` and a yyyy-MM `month`) of the plants in `ends`, in
    the months up to the one each plant's data ends in: a month after it has no data, and
    must not read as a month without events."""

    if not ends:
        return df.where(F.lit(False))
    last = F.create_map(*[F.lit(x) for p, d in sorted(ends.items()) for x in (p, f"{d:%Y-%m}")])
    return df.where(
        F.col("plant_id").isin(*sorted(ends)) & (F.col("month") <= last[F.col("plant_id")])
    )


def data_through(end: Column, month: Column) -> Column:
    """`end` (a date) when it falls before the last day of `month` (yyyy-MM): the month's data
    ends early (or the month is still running); NULL when its data covers the whole month."""

    return F.when(end < F.last_day(F.to_date(F.concat(month, F.lit("-01")))), end)


def plant_ends(ends: Mapping[str, dt.date]) -> Column:
    """`ends` (plant -> date) as a map column looked up by `plant_id`."""

    pairs = [x for p, d in sorted(ends.items()) for x in (F.lit(p), F.lit(d))]
    return F.create_map(*pairs)[F.col("plant_id")] if pairs else F.lit(None).cast("date")


# --------------------------------------------------------------------------- unit costs


def monthly_unit_costs(
    purchase_orders: DataFrame,
    standard_costs: DataFrame,
    *,
    start_month: str,
    end_month: str,
) -> DataFrame:
    """Unit cost per plant, material and month from `start_month` to `end_month` (yyyy-MM).

    Columns: `plant_id, material_code, material_group_id, month`, `po_qty` (canonical units
    ordered in the month), `po_unit_cost_group` (quantity-weighted mean `unit_price_group` of
    the month's orders: sum(qty x price) / sum(qty); null without orders), `unit_cost_group`
    (that mean; else the last earlier month's mean, also from before `start_month`; else the
    standard cost), `unit_cost_source` (`purchase_orders`, `carried_forward`,
    `standard_cost`, or null when nothing is known), `price_month` (month of the orders the
    price comes from), `std_unit_cost_group` (the standard cost in effect on the month's
    last day). Every material with an order or a standard cost has a row for every month.
    Order lines without a price, or with a quantity of zero or less, are left out.
    """
    _check_month("start_month", start_month)
    _check_month("end_month", end_month)
    if end_month < start_month:
        raise ValueError(f"end_month {end_month} is before start_month {start_month}")
    key = ["plant_id", "material_code"]
    qty = F.col("ordered_qty").cast(_INPUT_QTY)
    price = F.col("unit_price_group").cast(MONEY_TYPE)
    orders = (
        purchase_orders.where(
            F.col("material_code").isNotNull()
            & F.col("order_date").isNotNull()
            & price.isNotNull()
            & (qty > 0)
        )
        .groupBy(*key, _month_of(F.col("order_date")).alias("month"))
        .agg(
            F.max("material_group_id").alias("material_group_id"),
            F.sum(qty).alias("po_qty"),
            F.sum(qty * price).alias("_amount"),
        )
        .select(
            *key,
            "month",
            "material_group_id",
            F.col("po_qty").cast(_INPUT_QTY).alias("po_qty"),
            _money(F.col("_amount") / F.col("po_qty")).alias("po_unit_cost_group"),
        )
    )
    standards = standard_costs.where(
        F.col("material_code").isNotNull() & F.col("valid_from").isNotNull()
    ).select(
        F.col("plant_id").alias("_s_plant"),
        F.col("material_code").alias("_s_material"),
        F.col("material_group_id").alias("_s_group"),
        F.col("valid_from").alias("_s_from"),
        F.col("std_unit_cost_group").cast(MONEY_TYPE).alias("_s_cost"),
    )
    materials = (
        orders.select(*key, "material_group_id", "month")
        .unionByName(
            standards.select(
                F.col("_s_plant").alias("plant_id"),
                F.col("_s_material").alias("material_code"),
                F.col("_s_group").alias("material_group_id"),
                F.lit(None).cast("string").alias("month"),
            )
        )
        .groupBy(*key)
        .agg(
            F.max("material_group_id").alias("material_group_id"),
            F.min("month").alias("_first_order_month"),
        )
    )
    first = F.least(F.coalesce(F.col("_first_order_month"), F.lit(start_month)), F.lit(start_month))
    spine = materials.select(
        *key,
        "material_group_id",
        F.explode(
            F.sequence(
                _month_start(first), _month_start(F.lit(end_month)), F.expr("INTERVAL 1 MONTH")
            )
        ).alias("_day"),
    ).select(*key, "material_group_id", _month_of(F.col("_day")).alias("month"))
    history = Window.partitionBy(*key).orderBy("month").rowsBetween(Window.unboundedPreceding, 0)
    carried = (
        spine.join(orders.drop("material_group_id"), [*key, "month"], "left")
        .withColumn("_carried", F.last("po_unit_cost_group", ignorenulls=True).over(history))
        .withColumn(
            "price_month",
            F.last(
                F.when(F.col("po_unit_cost_group").isNotNull(), F.col("month")), ignorenulls=True
            ).over(history),
        )
        .where(F.col("month").between(start_month, end_month))
    )
    std_in_month = (
        carried.select(*key, "month")
        .join(
            standards,
            (F.col("plant_id") == F.col("_s_plant"))
            & (F.col("material_code") == F.col("_s_material"))
            & (F.col("_s_from") <= _month_end(F.col("month"))),
        )
        .groupBy(*key, "month")
        .agg(F.max_by("_s_cost", "_s_from").alias("std_unit_cost_group"))
    )
    out = carried.join(std_in_month, [*key, "month"], "left")
    return out.select(
        *key,
        "material_group_id",
        "month",
        F.coalesce(F.col("po_qty"), F.lit(0).cast(_INPUT_QTY)).alias("po_qty"),
        "po_unit_cost_group",
        F.coalesce(F.col("_carried"), F.col("std_unit_cost_group")).alias("unit_cost_group"),
        F.when(F.col("po_unit_cost_group").isNotNull(), F.lit("purchase_orders"))
        .when(F.col("_carried").isNotNull(), F.lit("carried_forward"))
        .when(F.col("std_unit_cost_group").isNotNull(), F.lit("standard_cost"))
        .alias("unit_cost_source"),
        "price_month",
        "std_unit_cost_group",
    )


# --------------------------------------------------------------------------- the facts


def cost_contributions(exploded: DataFrame, unit_costs: DataFrame) -> DataFrame:
    """What each purchased component adds to a product's material cost, per month.

    Grain: plant x product x month x component, for the months of `unit_costs` and the BOM
    paths in effect on each month's last day (paths to the same component are summed).
    Columns: `plant_id, product_code, product_group_id, month, component_code,
    component_group_id, level` (the shallowest), `paths` ("P > SUB > C" texts),
    `is_subassembly, extended_qty, unit_cost_group, unit_cost_source, prev_unit_cost_group`
    (the component's unit cost the month before; null in the first month of `unit_costs`),
    `std_unit_cost_group`, `contribution_group` (extended_qty x unit_cost),
    `delta_vs_prev_month_group` (extended_qty x (unit_cost - prev_unit_cost): the price
    change transmitted, at this month's BOM) and `delta_vs_standard_group` (extended_qty x
    (unit_cost - std_unit_cost)). Costs are EUR per unit of the product.
    """
    months = unit_costs.select("month").distinct()
    lines = (
        exploded.crossJoin(F.broadcast(months))
        .where(valid_on(_month_end(F.col("month"))))
        .groupBy("plant_id", "product_code", "month", "component_code")
        .agg(
            F.max("product_group_id").alias("product_group_id"),
            F.max("component_group_id").alias("component_group_id"),
            F.min("level").alias("level"),
            F.array_sort(F.collect_list(F.array_join("path", " > "))).alias("paths"),
            F.max("is_subassembly").alias("is_subassembly"),
            F.sum("extended_qty").cast(QTY_TYPE).alias("extended_qty"),
        )
    )
    current = unit_costs.select(
        F.col("plant_id").alias("_c_plant"),
        F.col("material_code").alias("_c_material"),
        F.col("month").alias("_c_month"),
        "unit_cost_group",
        "unit_cost_source",
        "std_unit_cost_group",
    )
    previous = unit_costs.select(
        F.col("plant_id").alias("_p_plant"),
        F.col("material_code").alias("_p_material"),
        _next_month(F.col("month")).alias("_p_month"),
        F.col("unit_cost_group").alias("prev_unit_cost_group"),
    )
    joined = lines.join(
        current,
        (F.col("plant_id") == F.col("_c_plant"))
        & (F.col("component_code") == F.col("_c_material"))
        & (F.col("month") == F.col("_c_month")),
        "left",
    ).join(
        previous,
        (F.col("plant_id") == F.col("_p_plant"))
        & (F.col("component_code") == F.col("_p_material"))
        & (F.col("month") == F.col("_p_month")),
        "left",
    )
    qty = F.col("extended_qty")
    cost = F.col("unit_cost_group")
    return joined.select(
        "plant_id",
        "product_code",
        "product_group_id",
        "month",
        "component_code",
        "component_group_id",
        "level",
        "paths",
        "is_subassembly",
        "extended_qty",
        "unit_cost_group",
        "unit_cost_source",
        "prev_unit_cost_group",
        "std_unit_cost_group",
        _money(qty * cost).alias("contribution_group"),
        _money(qty * (cost - F.col("prev_unit_cost_group"))).alias("delta_vs_prev_month_group"),
        _money(qty * (cost - F.col("std_unit_cost_group"))).alias("delta_vs_standard_group"),
    )


def product_costs(contributions: DataFrame, sales_orders: DataFrame) -> DataFrame:
    """Material cost, standard cost, sales and margin per plant x product x month.

    Columns: `plant_id, product_code, product_group_id, month, is_subassembly, components,
    components_without_cost, components_without_standard`, `material_cost_group` (sum of the
    contributions; null when a component has no cost), `std_material_cost_group` (sum of
    extended_qty x standard cost; null when a component has none),
    `prev_material_cost_group` (the product's material cost the month before; null in the
    first month), `units_sold` (sales-order quantity ordered in the month, 0 when none),
    `revenue_group` (sum of qty x unit_price_group), `avg_price_group` (revenue / units with
    a price; null when nothing priced was sold), `margin_group` (avg price - material cost)
    and `margin_pct` (margin / avg price, a fraction). Money is EUR per product unit except
    revenue (EUR). Only products with a BOM in the month appear.
    """
    # a component whose share cannot be computed (no unit cost, or no BOM quantity)
    missing_cost = F.col("contribution_group").isNull()
    missing_std = (F.col("extended_qty") * F.col("std_unit_cost_group")).isNull()
    costs = contributions.groupBy("plant_id", "product_code", "month").agg(
        F.max("product_group_id").alias("product_group_id"),
        F.max("is_subassembly").alias("is_subassembly"),
        F.count(F.lit(1)).alias("components"),
        F.count(F.when(missing_cost, 1)).alias("components_without_cost"),
        F.count(F.when(missing_std, 1)).alias("components_without_standard"),
        F.sum("contribution_group").alias("_cost"),
        F.sum(F.col("extended_qty") * F.col("std_unit_cost_group")).alias("_std"),
    )
    costs = costs.select(
        "plant_id",
        "product_code",
        "product_group_id",
        "month",
        "is_subassembly",
        F.col("components").cast("int").alias("components"),
        F.col("components_without_cost").cast("int").alias("components_without_cost"),
        F.col("components_without_standard").cast("int").alias("components_without_standard"),
        _money(F.when(F.col("components_without_cost") == 0, F.col("_cost"))).alias(
            "material_cost_group"
        ),
        _money(F.when(F.col("components_without_standard") == 0, F.col("_std"))).alias(
            "std_material_cost_group"
        ),
    )
    previous = costs.select(
        F.col("plant_id").alias("_p_plant"),
        F.col("product_code").alias("_p_product"),
        _next_month(F.col("month")).alias("_p_month"),
        F.col("material_cost_group").alias("prev_material_cost_group"),
    )
    sales = _sales(sales_orders, "month").select(
        F.col("plant_id").alias("_s_plant"),
        F.col("product_code").alias("_s_product"),
        F.col("month").alias("_s_month"),
        "units_sold",
        "revenue_group",
        "avg_price_group",
    )
    joined = costs.join(
        previous,
        (F.col("plant_id") == F.col("_p_plant"))
        & (F.col("product_code") == F.col("_p_product"))
        & (F.col("month") == F.col("_p_month")),
        "left",
    ).join(
        sales,
        (F.col("plant_id") == F.col("_s_plant"))
        & (F.col("product_code") == F.col("_s_product"))
        & (F.col("month") == F.col("_s_month")),
        "left",
    )
    margin = F.col("avg_price_group") - F.col("material_cost_group")
    return joined.select(
        "plant_id",
        "product_code",
        "product_group_id",
        "month",
        "is_subassembly",
        "components",
        "components_without_cost",
        "components_without_standard",
        "material_cost_group",
        "std_material_cost_group",
        "prev_material_cost_group",
        F.coalesce(F.col("units_sold"), F.lit(0).cast(_INPUT_QTY)).alias("units_sold"),
        F.coalesce(F.col("revenue_group"), F.lit(0).cast(MONEY_TYPE)).alias("revenue_group"),
        "avg_price_group",
        _money(margin).alias("margin_group"),
        _ratio(margin, F.col("avg_price_group")).alias("margin_pct"),
    )


def _sales(sales_orders: DataFrame, *group: str) -> DataFrame:
    """Units, revenue and average price per plant and product (and `group` columns; "month"
    is derived from order_date)."""
    qty = F.col("qty").cast(_INPUT_QTY)
    price = F.col("unit_price_group").cast(MONEY_TYPE)
    frame = sales_orders.where(F.col("product_code").isNotNull() & qty.isNotNull())
    if "month" in group:
        frame = frame.withColumn("month", _month_of(F.col("order_date")))
    sums = frame.groupBy("plant_id", "product_code", *group).agg(
        F.sum(qty).alias("_units"),
        F.sum(qty * price).alias("_revenue"),
        F.sum(F.when(price.isNotNull(), qty)).alias("_priced_units"),
    )
    return sums.select(
        "plant_id",
        "product_code",
        *group,
        F.col("_units").cast(_INPUT_QTY).alias("units_sold"),
        _money(F.coalesce(F.col("_revenue"), F.lit(0))).alias("revenue_group"),
        _money(
            F.when(F.col("_priced_units") > 0, F.col("_revenue") / F.col("_priced_units"))
        ).alias("avg_price_group"),
    )


def cost_facts(
    *,
    boms: DataFrame,
    purchase_orders: DataFrame,
    standard_costs: DataFrame,
    sales_orders: DataFrame,
    start_month: str,
    end_month: str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    ends: Mapping[str, dt.date] | None = None,
) -> CostFacts:
    """Both facts for the months `start_month`..`end_month` from the silver tables.

    `prev_*` columns need the month before `start_month`: it is computed and dropped, so
    every returned month has its previous month (when the data has it).

    `ends` (plant -> the date its purchase-order and sales data ends) keeps only those plants
    and, for each, the months up to the one its data ends in: the months after are not
    computed (a carried-forward price is no evidence of a price, and no sales data is not
    zero sales); `data_through` is the plant's date where it falls before the month's last
    day. Without `ends` every plant and month is kept and `data_through` is NULL.
    """
    exploded = explode_bom(boms, max_depth=max_depth)
    costs = monthly_unit_costs(
        purchase_orders,
        standard_costs,
        start_month=previous_month(start_month),
        end_month=end_month,
    )
    contributions = cost_contributions(exploded, costs)
    products = product_costs(contributions, sales_orders)
    first = F.col("month") >= start_month
    products, contributions = products.where(first), contributions.where(first)
    if ends is None:
        through = F.lit(None).cast("date")
    else:
        products, contributions = covered(products, ends), covered(contributions, ends)
        through = data_through(plant_ends(ends), F.col("month"))
    return CostFacts(
        products.withColumn("data_through", through),
        contributions.withColumn("data_through", through),
    )


SALES_COLUMNS = ("units_sold", "revenue_group", "avg_price_group", "margin_group", "margin_pct")


def without_sales(products: DataFrame, plants: list[str]) -> DataFrame:
    """`product_costs` rows with the sales columns NULL at `plants`, which deliver no sales
    orders: nothing known about their sales is not zero sales."""
    if not plants:
        return products
    lacking = F.col("plant_id").isin(*plants)
    return products.select(
        *[
            F.when(~lacking, F.col(c)).alias(c) if c in SALES_COLUMNS else F.col(c)
            for c in products.columns
        ]
    )


# --------------------------------------------------------------------------- what-if


def what_if(
    exploded: DataFrame,
    unit_costs: DataFrame,
    sales_orders: DataFrame,
    *,
    component: str,
    change: float | Decimal,
    from_date: dt.date,
    plant: str | None = None,
) -> DataFrame:
    """The products whose material cost moves when `component` costs `change` more from
    `from_date` (change 0.08 = +8 %, -0.05 = -5 %).

    `component` is a plant-local material code (matched at every plant that uses that code,
    unless `plant` is given) or a group material id. The BOM is the one in effect on
    `from_date`; the current unit costs are those of the last month of `unit_costs` before
    `from_date`'s month (`cost_month`). One row per impacted plant x product x component code,
    with `extended_qty` (component units per product unit, all paths), `paths`,
    `component_unit_cost_group` and `new_component_unit_cost_group`, `material_cost_group`
    (the product's whole current material cost per unit; null when a component has no cost)
    and `new_material_cost_group`, `cost_delta_group` (extended_qty x unit cost x change, per
    product unit) and `cost_delta_pct`, the last 12 months' sales before `from_date`
    (`units_sold_12m`, `avg_price_group`), `margin_group` / `new_margin_group` and
    `margin_pct` / `new_margin_pct` (null without a known price) and
    `annual_exposure_group` (cost delta x units sold in those 12 months). Products whose BOM
    does not contain the component do not appear; an unknown component gives no rows.
    """
    if change <= -1:
        raise ValueError(f"a change of {change} would make the price zero or negative")
    factor = F.lit(format(Decimal(str(change)), "f")).cast(_RATIO)
    from_month = from_date.strftime("%Y-%m")
    costs = unit_costs.where(F.col("month") < from_month)
    bom = exploded.where(valid_on(from_date))
    if plant is not None:
        costs = costs.where(F.col("plant_id") == plant)
        bom = bom.where(F.col("plant_id") == plant)
    cost_month = costs.groupBy(F.col("plant_id").alias("_m_plant")).agg(
        F.max("month").alias("cost_month")
    )
    lines = (
        bom.groupBy("plant_id", "product_code", "component_code")
        .agg(
            F.max("product_group_id").alias("product_group_id"),
            F.max("component_group_id").alias("component_group_id"),
            F.array_sort(F.collect_list(F.array_join("path", " > "))).alias("paths"),
            F.max("is_subassembly").alias("is_subassembly"),
            F.sum("extended_qty").cast(QTY_TYPE).alias("extended_qty"),
        )
        .join(F.broadcast(cost_month), F.col("plant_id") == F.col("_m_plant"), "left")
        .drop("_m_plant")
    )
    priced = lines.join(
        costs.select(
            F.col("plant_id").alias("_c_plant"),
            F.col("material_code").alias("_c_material"),
            F.col("month").alias("_c_month"),
            F.col("unit_cost_group").alias("component_unit_cost_group"),
        ),
        (F.col("plant_id") == F.col("_c_plant"))
        & (F.col("component_code") == F.col("_c_material"))
        & (F.col("cost_month") == F.col("_c_month")),
        "left",
    ).drop("_c_plant", "_c_material", "_c_month")
    totals = priced.groupBy(
        F.col("plant_id").alias("_t_plant"), F.col("product_code").alias("_t_product")
    ).agg(
        F.count(F.when((F.col("extended_qty") * F.col("component_unit_cost_group")).isNull(), 1))
        .cast("int")
        .alias("components_without_cost"),
        F.sum(F.col("extended_qty") * F.col("component_unit_cost_group")).alias("_cost"),
    )
    target = priced.where(
        (F.col("component_code") == component) | (F.col("component_group_id") == component)
    )
    window_start = F.add_months(F.lit(from_date), -SALES_WINDOW_MONTHS)
    sales = _sales(
        sales_orders.where(
            (F.col("order_date") >= window_start) & (F.col("order_date") < F.lit(from_date))
        )
    ).select(
        F.col("plant_id").alias("_s_plant"),
        F.col("product_code").alias("_s_product"),
        F.col("units_sold").alias("units_sold_12m"),
        "avg_price_group",
    )
    impacted = target.join(
        totals,
        (F.col("plant_id") == F.col("_t_plant")) & (F.col("product_code") == F.col("_t_product")),
    ).join(
        sales,
        (F.col("plant_id") == F.col("_s_plant")) & (F.col("product_code") == F.col("_s_product")),
        "left",
    )
    unit_cost = F.col("component_unit_cost_group")
    material = F.when(F.col("components_without_cost") == 0, F.col("_cost"))
    delta = F.col("extended_qty") * unit_cost * factor
    price = F.col("avg_price_group")
    units = F.coalesce(F.col("units_sold_12m"), F.lit(0).cast(_INPUT_QTY))
    return impacted.select(
        "plant_id",
        "product_code",
        "product_group_id",
        "component_code",
        "component_group_id",
        "is_subassembly",
        "paths",
        "extended_qty",
        F.lit(from_date).alias("from_date"),
        F.lit(float(change)).alias("change"),
        "cost_month",
        "component_unit_cost_group",
        _money(unit_cost * (F.lit(1) + factor)).alias("new_component_unit_cost_group"),
        "components_without_cost",
        _money(material).alias("material_cost_group"),
        _money(material + delta).alias("new_material_cost_group"),
        _money(delta).alias("cost_delta_group"),
        _ratio(delta, material).alias("cost_delta_pct"),
        units.alias("units_sold_12m"),
        "avg_price_group",
        _money(price - material).alias("margin_group"),
        _money(price - material - delta).alias("new_margin_group"),
        _ratio(price - material, price).alias("margin_pct"),
        _ratio(price - material - delta, price).alias("new_margin_pct"),
        _money(delta * units).alias("annual_exposure_group"),
    )
