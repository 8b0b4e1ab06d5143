"""Cost transmission: BOM explosion, monthly unit costs, the cost facts and the what-if.

The fixtures are tiny and built by hand; every expected number is written out as arithmetic
here, never computed with the code under test. Plant P1 makes a subassembly SUB (2 X + 0.5 Y)
that goes into products A (1 SUB + Z, 3 until 2026-03-10 then 4) and B (2 SUB + 1 X); product
C (4 Z + 1 W from 2026-02-15) does not contain SUB or X. Plant P2 uses the local code X for
a different material (group id G-X2) in its product D.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medlake.cli.whatif import add_cli, parse_change
from medlake.config import DEFAULT_CONF_DIR
from medlake.gold.cost import (
    BomCycleError,
    BomDepthError,
    cost_contributions,
    cost_facts,
    explode_bom,
    monthly_unit_costs,
    previous_month,
    product_costs,
    what_if,
)
from medlake.io.schema import conform
from medlake.tables import Registry
from tests.identities import Identities

D = Decimal
day = dt.date.fromisoformat
MONTHS = ("2026-01", "2026-02", "2026-03", "2026-04")
TOL = 1e-6

BOM_SCHEMA = (
    "plant_id string, product_code string, product_group_id string, component_code string, "
    "component_group_id string, qty_per decimal(18,6), valid_from date"
)
PO_SCHEMA = (
    "plant_id string, material_code string, material_group_id string, order_date date, "
    "ordered_qty decimal(18,6), unit_price_group decimal(18,6)"
)
STD_SCHEMA = (
    "plant_id string, material_code string, material_group_id string, valid_from date, "
    "std_unit_cost_group decimal(18,6)"
)
SALES_SCHEMA = (
    "plant_id string, product_code string, order_date date, qty decimal(18,6), "
    "unit_price_group decimal(18,6)"
)

# --------------------------------------------------------------------------- fixtures


def _bom_line(plant: str, product: str, component: str, qty: str, since: str) -> tuple[Any, ...]:
    groups = {("P2", "X"): "G-X2"}
    return (
        plant,
        product,
        f"G-{product}",
        component,
        groups.get((plant, component), f"G-{component}"),
        D(qty),
        day(since),
    )


BOM_LINES = [
    _bom_line("P1", "SUB", "X", "2", "2025-09-01"),
    _bom_line("P1", "SUB", "Y", "0.5", "2025-06-01"),
    _bom_line("P1", "A", "SUB", "1", "2025-06-01"),
    _bom_line("P1", "A", "Z", "3", "2025-06-01"),
    _bom_line("P1", "A", "Z", "4", "2026-03-10"),  # a new version of the line
    _bom_line("P1", "B", "SUB", "2", "2025-06-01"),
    _bom_line("P1", "B", "X", "1", "2025-06-01"),  # X also directly
    _bom_line("P1", "C", "Z", "4", "2025-06-01"),
    _bom_line("P1", "C", "W", "1", "2026-02-15"),  # W has no price and no standard cost
    _bom_line("P2", "D", "X", "1", "2025-06-01"),  # another plant's X
]


def _po(material: str, ordered: str, qty: str, price: str | None, plant: str = "P1") -> Any:
    return (
        plant,
        material,
        f"G-{material}",
        day(ordered),
        D(qty),
        None if price is None else D(price),
    )


PURCHASE_ORDERS = [
    _po("X", "2026-02-03", "100", "1.00"),
    _po("X", "2026-02-20", "300", "1.40"),
    _po("X", "2026-02-25", "0", "99.00"),  # no quantity: left out
    _po("X", "2026-02-26", "50", None),  # no price: left out
    _po("X", "2026-04-10", "200", "1.50"),
    _po("Z", "2025-11-15", "10", "2.60"),  # before the first month: carried into January
    _po("Z", "2026-02-05", "10", "2.00"),
    _po("Z", "2026-04-02", "50", "2.20"),
    _po("Z", "2026-04-28", "150", "2.40"),
]
STANDARD_COSTS = [
    ("P1", "X", "G-X", day("2025-12-01"), D("1.20")),
    ("P1", "Y", "G-Y", day("2025-12-01"), D("4.00")),
    ("P1", "Y", "G-Y", day("2026-03-15"), D("4.40")),  # mid-March: counts for March
    ("P1", "Z", "G-Z", day("2025-12-01"), D("2.50")),
    ("P2", "X", "G-X2", day("2025-12-01"), D("7.00")),
]
SALES = [
    ("P1", "A", day("2025-04-30"), D("100"), D("50.00")),  # before the what-if's 12 months
    ("P1", "A", day("2025-05-01"), D("10"), D("23.00")),
    ("P1", "A", day("2026-02-10"), D("10"), D("20.00")),
    ("P1", "A", day("2026-02-20"), D("30"), D("24.00")),
    ("P1", "A", day("2026-05-01"), D("100"), D("30.00")),  # on the from-date: after
]

# unit costs by hand: (material, month) -> (unit cost, source, standard cost)
X_FEB = (100 * 1.00 + 300 * 1.40) / (100 + 300)  # 1.30, quantity-weighted
Z_APR = (50 * 2.20 + 150 * 2.40) / (50 + 150)  # 2.35
UNIT_COSTS = {
    ("X", "2026-01"): (1.20, "standard_cost", 1.20),  # no order yet
    ("X", "2026-02"): (X_FEB, "purchase_orders", 1.20),
    ("X", "2026-03"): (X_FEB, "carried_forward", 1.20),
    ("X", "2026-04"): (1.50, "purchase_orders", 1.20),
    ("Y", "2026-01"): (4.00, "standard_cost", 4.00),  # never ordered
    ("Y", "2026-02"): (4.00, "standard_cost", 4.00),
    ("Y", "2026-03"): (4.40, "standard_cost", 4.40),
    ("Y", "2026-04"): (4.40, "standard_cost", 4.40),
    ("Z", "2026-01"): (2.60, "carried_forward", 2.50),  # the November order
    ("Z", "2026-02"): (2.00, "purchase_orders", 2.50),
    ("Z", "2026-03"): (2.00, "carried_forward", 2.50),
    ("Z", "2026-04"): (Z_APR, "purchase_orders", 2.50),
}
X, Y, Z = (
    {m: UNIT_COSTS[(code, m)][0] for m in MONTHS} for code in ("X", "Y", "Z")
)  # fmt: skip
Y_STD = {m: UNIT_COSTS[("Y", m)][2] for m in MONTHS}

# material cost per unit by hand
SUB_COST = {m: 2 * X[m] + 0.5 * Y[m] for m in MONTHS}
A_Z_QTY = {"2026-01": 3, "2026-02": 3, "2026-03": 4, "2026-04": 4}  # version of 2026-03-10
A_COST = {m: 1 * 2 * X[m] + 1 * 0.5 * Y[m] + A_Z_QTY[m] * Z[m] for m in MONTHS}
A_STD = {m: 1 * 2 * 1.20 + 1 * 0.5 * Y_STD[m] + A_Z_QTY[m] * 2.50 for m in MONTHS}
B_COST = {m: (2 * 2 + 1) * X[m] + 2 * 0.5 * Y[m] for m in MONTHS}


@pytest.fixture(scope="module")
def inputs(spark: SparkSession) -> dict[str, DataFrame]:
    return {
        "boms": spark.createDataFrame(BOM_LINES, BOM_SCHEMA),
        "purchase_orders": spark.createDataFrame(PURCHASE_ORDERS, PO_SCHEMA),
        "standard_costs": spark.createDataFrame(STANDARD_COSTS, STD_SCHEMA),
        "sales_orders": spark.createDataFrame(SALES, SALES_SCHEMA),
    }


@pytest.fixture(scope="module")
def exploded(inputs: dict[str, DataFrame]) -> DataFrame:
    return explode_bom(inputs["boms"], max_depth=5).cache()


@pytest.fixture(scope="module")
def unit_costs(inputs: dict[str, DataFrame]) -> DataFrame:
    return monthly_unit_costs(
        inputs["purchase_orders"],
        inputs["standard_costs"],
        start_month=MONTHS[0],
        end_month=MONTHS[-1],
    ).cache()


@pytest.fixture(scope="module")
def contributions(exploded: DataFrame, unit_costs: DataFrame) -> DataFrame:
    return cost_contributions(exploded, unit_costs).cache()


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def _close(actual: Any, expected: float | None) -> bool:
    if expected is None or actual is None:
        return actual is None and expected is None
    return abs(float(actual) - expected) <= TOL


# --------------------------------------------------------------------------- BOM explosion


def test_when_a_subassembly_is_used_then_quantities_multiply_along_the_path(
    exploded: DataFrame,
) -> None:
    rows = {
        (r["plant_id"], r["product_code"], " > ".join(r["path"]), r["valid_from"]): (
            _f(r["extended_qty"]),
            r["level"],
            r["valid_to"],
            r["is_subassembly"],
            r["component_code"],
        )
        for r in exploded.collect()
    }
    since, sub_x = day("2025-06-01"), day("2025-09-01")
    assert rows == {
        ("P1", "SUB", "SUB > X", sub_x): (2.0, 1, None, True, "X"),
        ("P1", "SUB", "SUB > Y", since): (0.5, 1, None, True, "Y"),
        # A -> SUB (from 06-01) -> X (from 09-01): the path holds from the later date
        ("P1", "A", "A > SUB > X", sub_x): (1 * 2.0, 2, None, False, "X"),
        ("P1", "A", "A > SUB > Y", since): (1 * 0.5, 2, None, False, "Y"),
        ("P1", "A", "A > Z", since): (3.0, 1, day("2026-03-10"), False, "Z"),
        ("P1", "A", "A > Z", day("2026-03-10")): (4.0, 1, None, False, "Z"),
        ("P1", "B", "B > SUB > X", sub_x): (2 * 2.0, 2, None, False, "X"),
        ("P1", "B", "B > X", since): (1.0, 1, None, False, "X"),
        ("P1", "B", "B > SUB > Y", since): (2 * 0.5, 2, None, False, "Y"),
        ("P1", "C", "C > Z", since): (4.0, 1, None, False, "Z"),
        ("P1", "C", "C > W", day("2026-02-15")): (1.0, 1, None, False, "W"),
        ("P2", "D", "D > X", since): (1.0, 1, None, False, "X"),
    }


def test_before_a_subassembly_bom_begins_the_subassembly_itself_is_the_leaf(
    spark: SparkSession,
) -> None:
    lines = [
        _bom_line("P1", "E", "S2", "3", "2025-01-01"),
        _bom_line("P1", "S2", "K", "2", "2026-03-01"),  # S2 is made only from March
    ]
    rows = explode_bom(spark.createDataFrame(lines, BOM_SCHEMA), max_depth=5).where(
        "product_code = 'E'"
    )
    got = {
        (" > ".join(r["path"]), r["valid_from"], r["valid_to"], _f(r["extended_qty"]))
        for r in rows.collect()
    }
    assert got == {
        ("E > S2", day("2025-01-01"), day("2026-03-01"), 3.0),  # bought until S2's BOM begins
        ("E > S2 > K", day("2026-03-01"), None, 3 * 2.0),
    }


def test_when_the_bom_has_a_cycle_then_explosion_stops_and_names_the_path(
    spark: SparkSession,
) -> None:
    lines = [
        _bom_line("P1", "P", "Q", "1", "2025-01-01"),
        _bom_line("P1", "Q", "R", "2", "2025-01-01"),
        _bom_line("P1", "R", "Q", "1", "2025-01-01"),
        _bom_line("P1", "R", "S", "1", "2025-01-01"),
    ]
    with pytest.raises(BomCycleError, match=r"P1: (P > )?(Q > R > Q|R > Q > R)"):
        explode_bom(spark.createDataFrame(lines, BOM_SCHEMA), max_depth=50)


def test_when_a_component_contains_itself_directly_then_the_cycle_is_named(
    spark: SparkSession,
) -> None:
    lines = [_bom_line("P1", "P", "P", "1", "2025-01-01")]
    with pytest.raises(BomCycleError, match=r"P1: P > P"):
        explode_bom(spark.createDataFrame(lines, BOM_SCHEMA), max_depth=5)


def test_when_the_bom_is_deeper_than_max_depth_then_the_error_names_a_path(
    spark: SparkSession,
) -> None:
    chain = ["L0", "L1", "L2", "L3", "L4"]
    lines = [_bom_line("P1", a, b, "1", "2025-01-01") for a, b in itertools.pairwise(chain)]
    boms = spark.createDataFrame(lines, BOM_SCHEMA)
    with pytest.raises(BomDepthError, match=r"max_depth=3.*P1: L0 > L1 > L2 > L3 > L4"):
        explode_bom(boms, max_depth=3)
    deepest = explode_bom(boms, max_depth=4).where("product_code = 'L0'").collect()
    assert [(r["component_code"], r["level"]) for r in deepest] == [("L4", 4)]


# --------------------------------------------------------------------------- unit costs


def test_unit_costs_are_weighted_means_carried_forward_else_standard(unit_costs: DataFrame) -> None:
    rows = {
        (r["material_code"], r["month"]): r for r in unit_costs.where("plant_id = 'P1'").collect()
    }
    assert set(rows) == set(UNIT_COSTS), (
        "every material with an order or a standard cost, every month"
    )
    for key, (cost, source, std) in UNIT_COSTS.items():
        row = rows[key]
        assert _close(row["unit_cost_group"], cost), key
        assert row["unit_cost_source"] == source, key
        assert _close(row["std_unit_cost_group"], std), key
    assert rows[("Z", "2026-01")]["price_month"] == "2025-11"
    assert _close(rows[("X", "2026-02")]["po_qty"], 100 + 300)  # not the 0 and unpriced lines
    assert rows[("X", "2026-03")]["po_unit_cost_group"] is None
    p2 = unit_costs.where("plant_id = 'P2'").collect()
    assert {(r["month"], _f(r["unit_cost_group"])) for r in p2} == {(m, 7.00) for m in MONTHS}


def test_when_months_are_not_yyyy_mm_then_unit_costs_refuse(inputs: dict[str, DataFrame]) -> None:
    with pytest.raises(ValueError, match=r"start_month must be a month as yyyy-MM"):
        monthly_unit_costs(
            inputs["purchase_orders"],
            inputs["standard_costs"],
            start_month="2026-1",
            end_month="2026-04",
        )
    assert previous_month("2026-01") == "2025-12"


# --------------------------------------------------------------------------- the facts


def test_contributions_carry_extended_qty_cost_and_deltas(contributions: DataFrame) -> None:
    rows = {
        (r["product_code"], r["month"], r["component_code"]): r
        for r in contributions.where("plant_id = 'P1'").collect()
    }
    b_x = rows[("B", "2026-04", "X")]
    assert _close(b_x["extended_qty"], 2 * 2 + 1)
    assert b_x["paths"] == ["B > SUB > X", "B > X"]
    assert b_x["level"] == 1
    assert _close(b_x["unit_cost_group"], 1.50)
    assert _close(b_x["prev_unit_cost_group"], X_FEB)
    assert _close(b_x["contribution_group"], 5 * 1.50)
    assert _close(b_x["delta_vs_prev_month_group"], 5 * (1.50 - X_FEB))
    assert _close(b_x["delta_vs_standard_group"], 5 * (1.50 - 1.20))
    assert b_x["unit_cost_source"] == "purchase_orders"
    # the BOM line version in effect on the month's last day
    assert _close(rows[("A", "2026-02", "Z")]["extended_qty"], 3)
    assert _close(rows[("A", "2026-03", "Z")]["extended_qty"], 4)
    assert _close(rows[("A", "2026-03", "Z")]["delta_vs_prev_month_group"], 4 * (2.00 - 2.00))
    assert rows[("A", "2026-01", "X")]["prev_unit_cost_group"] is None  # first month
    assert ("C", "2026-01", "W") not in rows  # W joins C on 2026-02-15
    w = rows[("C", "2026-02", "W")]
    assert w["unit_cost_group"] is None and w["contribution_group"] is None
    # products without X carry no X row
    assert {p for (p, _, c) in rows if c == "X"} == {"SUB", "A", "B"}


def test_product_costs_roll_up_material_standard_previous_and_margin(
    contributions: DataFrame, inputs: dict[str, DataFrame]
) -> None:
    facts = product_costs(contributions, inputs["sales_orders"])
    rows = {(r["plant_id"], r["product_code"], r["month"]): r for r in facts.collect()}
    for m in MONTHS:
        assert _close(rows[("P1", "SUB", m)]["material_cost_group"], SUB_COST[m]), m
        assert _close(rows[("P1", "A", m)]["material_cost_group"], A_COST[m]), m
        assert _close(rows[("P1", "A", m)]["std_material_cost_group"], A_STD[m]), m
        assert _close(rows[("P1", "B", m)]["material_cost_group"], B_COST[m]), m
        assert _close(rows[("P2", "D", m)]["material_cost_group"], 1 * 7.00), m
    assert rows[("P1", "SUB", "2026-01")]["is_subassembly"] is True
    assert rows[("P1", "A", "2026-01")]["prev_material_cost_group"] is None
    assert _close(rows[("P1", "A", "2026-02")]["prev_material_cost_group"], A_COST["2026-01"])
    assert _close(rows[("P1", "A", "2026-04")]["prev_material_cost_group"], A_COST["2026-03"])
    # C: costed in January; from February W has no cost, so neither has C
    assert _close(rows[("P1", "C", "2026-01")]["material_cost_group"], 4 * 2.60)
    c_feb = rows[("P1", "C", "2026-02")]
    assert c_feb["material_cost_group"] is None
    assert c_feb["std_material_cost_group"] is None
    assert (c_feb["components"], c_feb["components_without_cost"]) == (2, 1)
    # sales in February: 10 at 20.00 and 30 at 24.00
    a_feb = rows[("P1", "A", "2026-02")]
    revenue, units = 10 * 20.00 + 30 * 24.00, 10 + 30
    assert _close(a_feb["units_sold"], units)
    assert _close(a_feb["revenue_group"], revenue)
    assert _close(a_feb["avg_price_group"], revenue / units)
    assert _close(a_feb["margin_group"], revenue / units - A_COST["2026-02"])
    assert (
        abs(a_feb["margin_pct"] - (revenue / units - A_COST["2026-02"]) / (revenue / units)) < 1e-6
    )
    a_jan = rows[("P1", "A", "2026-01")]
    assert _close(a_jan["units_sold"], 0)
    assert a_jan["avg_price_group"] is None and a_jan["margin_pct"] is None


def test_facts_match_the_declared_gold_tables(inputs: dict[str, DataFrame]) -> None:
    facts = cost_facts(
        boms=inputs["boms"],
        purchase_orders=inputs["purchase_orders"],
        standard_costs=inputs["standard_costs"],
        sales_orders=inputs["sales_orders"],
        start_month="2026-02",
        end_month="2026-04",
    )
    registry = Registry.load(DEFAULT_CONF_DIR / "tables")
    extra = [
        F.create_map(F.lit("material_cost"), F.lit(1)).alias("metric_versions"),
        F.lit("run-1").alias("_run_id"),
    ]
    for name, frame in (
        ("gold.product_cost", facts.product_costs),
        ("gold.cost_transmission", facts.cost_contributions),
    ):
        conform(frame.select("*", *extra), registry.get(name))  # raises on any mismatch
    months = {r["month"] for r in facts.product_costs.select("month").distinct().collect()}
    assert months == {"2026-02", "2026-03", "2026-04"}
    a_feb = facts.product_costs.where("product_code = 'A' AND month = '2026-02'").first()
    assert a_feb is not None
    # January was computed for the previous-month columns, then dropped
    assert _close(a_feb["prev_material_cost_group"], A_COST["2026-01"])


# --------------------------------------------------------------------------- what-if


def _what_if(
    exploded: DataFrame, unit_costs: DataFrame, sales: DataFrame, **kw: Any
) -> dict[tuple[str, str], Any]:
    rows = what_if(exploded, unit_costs, sales, **kw).collect()
    return {(r["plant_id"], r["product_code"]): r for r in rows}


def test_what_if_impacts_exactly_the_products_containing_the_component(
    exploded: DataFrame, unit_costs: DataFrame, inputs: dict[str, DataFrame]
) -> None:
    rows = _what_if(
        exploded,
        unit_costs,
        inputs["sales_orders"],
        component="X",
        change=D("0.08"),
        from_date=day("2026-05-01"),
        plant="P1",
    )
    assert set(rows) == {("P1", "SUB"), ("P1", "A"), ("P1", "B")}  # not C, not P2's D
    apr = "2026-04"  # the last month before the from-date
    for product, qty, cost in (
        ("SUB", 2, SUB_COST[apr]),
        ("A", 1 * 2, A_COST[apr]),
        ("B", 2 * 2 + 1, B_COST[apr]),
    ):
        r = rows[("P1", product)]
        delta = qty * 1.50 * 0.08
        assert r["cost_month"] == apr
        assert _close(r["extended_qty"], qty), product
        assert _close(r["component_unit_cost_group"], 1.50)
        assert _close(r["new_component_unit_cost_group"], 1.50 * 1.08)
        assert _close(r["material_cost_group"], cost), product
        assert _close(r["cost_delta_group"], delta), product
        assert _close(r["new_material_cost_group"], cost + delta), product
        assert abs(r["cost_delta_pct"] - delta / cost) < 1e-9
    # A sold 10 on 2025-05-01 and 40 in February within the 12 months before 2026-05-01
    a = rows[("P1", "A")]
    units, revenue = 10 + 10 + 30, 10 * 23.00 + 10 * 20.00 + 30 * 24.00
    price, cost, delta = revenue / units, A_COST[apr], 2 * 1.50 * 0.08
    assert _close(a["units_sold_12m"], units)
    assert _close(a["avg_price_group"], price)
    assert _close(a["margin_group"], price - cost)
    assert _close(a["new_margin_group"], price - cost - delta)
    assert abs(a["new_margin_pct"] - (price - cost - delta) / price) < 1e-9
    assert _close(a["annual_exposure_group"], delta * units)
    b = rows[("P1", "B")]  # never sold: no price, no margin, no exposure
    assert b["avg_price_group"] is None and b["margin_group"] is None
    assert _close(b["units_sold_12m"], 0) and _close(b["annual_exposure_group"], 0)


def test_what_if_by_group_id_or_local_code_across_plants(
    exploded: DataFrame, unit_costs: DataFrame, inputs: dict[str, DataFrame]
) -> None:
    args: dict[str, Any] = {"change": 0.08, "from_date": day("2026-05-01")}
    by_group = _what_if(exploded, unit_costs, inputs["sales_orders"], component="G-X", **args)
    assert set(by_group) == {("P1", "SUB"), ("P1", "A"), ("P1", "B")}
    by_code = _what_if(exploded, unit_costs, inputs["sales_orders"], component="X", **args)
    assert set(by_code) == {("P1", "SUB"), ("P1", "A"), ("P1", "B"), ("P2", "D")}
    assert _close(by_code[("P2", "D")]["cost_delta_group"], 1 * 7.00 * 0.08)
    nothing = _what_if(exploded, unit_costs, inputs["sales_orders"], component="NOPE", **args)
    assert nothing == {}


def test_what_if_uses_the_bom_on_the_from_date_and_keeps_uncosted_products_visible(
    exploded: DataFrame, unit_costs: DataFrame, inputs: dict[str, DataFrame]
) -> None:
    rows = _what_if(
        exploded,
        unit_costs,
        inputs["sales_orders"],
        component="Z",
        change=D("-0.10"),
        from_date=day("2026-03-05"),  # before A's line version of 03-10; W is in C since 02-15
    )
    assert set(rows) == {("P1", "A"), ("P1", "C")}
    a, c = rows[("P1", "A")], rows[("P1", "C")]
    assert a["cost_month"] == "2026-02"
    assert _close(a["extended_qty"], 3)
    assert _close(a["cost_delta_group"], 3 * 2.00 * -0.10)
    assert _close(a["material_cost_group"], 1 * 2 * X_FEB + 1 * 0.5 * 4.00 + 3 * 2.00)
    assert _close(c["cost_delta_group"], 4 * 2.00 * -0.10)
    assert c["material_cost_group"] is None and c["components_without_cost"] == 1


# --------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+8%", D("0.08")),
        ("8%", D("0.08")),
        ("-2.5%", D("-0.025")),
        ("+0%", D("0")),
        ("150%", D("1.5")),
    ],
)
def test_parse_change_reads_percent_text(text: str, expected: Decimal) -> None:
    assert parse_change(text) == expected


@pytest.mark.parametrize(
    "text", ["8", "0.08", "+8%%", "8 %", "abc", "", "+-8%", "nan%", "8.%", "-100%", "-150%"]
)
def test_parse_change_refuses_anything_but_a_percentage(text: str) -> None:
    with pytest.raises(
        argparse.ArgumentTypeError, match=r"relative change in percent|zero or negative"
    ):
        parse_change(text)


def test_when_change_is_not_a_percentage_then_the_cli_says_how_to_write_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser(prog="lakehouse gold")
    add_cli(parser.add_subparsers())
    argv = ["what-if", "--component", "X", "--from", "2026-05-01", "--role", "group_analyst"]
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([*argv, "--change", "8"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --change: expected a relative change in percent such as +8%" in err
    assert "got '8'" in err
    args = parser.parse_args([*argv, "--change=-5%"])
    assert args.change == D("-0.05")
    assert args.from_date == day("2026-05-01")


# --------------------------------------------------------------------------- simulator history

BEFORE, AFTER = "2026-03", "2026-06"  # wholly before and wholly after the price date 2026-04-19
ORDER_NOISE = 0.01  # the simulator's relative price noise per order (engine._unit_price)


@pytest.fixture(scope="module")
def history_costs(history: dict[str, Any], spark: SparkSession) -> dict[str, Any]:
    from tests.history import context

    ctx = context(history, spark, "gold", [day("2026-08-28")])
    silver = {
        name: ctx.io.read(f"silver.{name}")
        for name in ("boms", "purchase_orders", "standard_costs", "sales_orders")
    }
    facts = cost_facts(
        boms=silver["boms"],
        purchase_orders=silver["purchase_orders"],
        standard_costs=silver["standard_costs"],
        sales_orders=silver["sales_orders"],
        start_month=BEFORE,
        end_month=AFTER,
    )
    return {
        "settings": ctx.settings,
        "silver": silver,
        "products": facts.product_costs.where(F.col("month").isin(BEFORE, AFTER)).collect(),
        "contributions": facts.cost_contributions.where(F.col("month").isin(BEFORE, AFTER))
        .select("plant_id", "product_code", "month", "component_code", "contribution_group")
        .collect(),
    }


def _expected_eur(answers: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The answers' increase per unit (plant-local currency) in EUR at the simulator's base
    rates (FX_PER_EUR, plant currency from medlake/conf/sources)."""
    from medlake.config import DEFAULT_CONF_DIR
    from medlake.sources import load_sources
    from medlake_simulator.engine import FX_PER_EUR

    sources = load_sources(DEFAULT_CONF_DIR / "sources")
    return {
        plant: {
            product: local / FX_PER_EUR[sources[plant].plant.currency]
            for product, local in products.items()
        }
        for plant, products in answers["price_product_cost_increase"].items()
        if plant in ("SU", "TU")
    }


def _concentration(purchase_orders: DataFrame, plant: str, code: str, month: str) -> float:
    """sum(q^2) / sum(q)^2 over the month's orders of a material: the variance factor of a
    quantity-weighted mean of prices with independent noise (1/n for n equal orders)."""
    row = (
        purchase_orders.where(
            (F.col("plant_id") == plant)
            & (F.col("material_code") == code)
            & (F.date_format("order_date", "yyyy-MM") == month)
            & (F.col("ordered_qty") > 0)
        )
        .agg(F.sum(F.col("ordered_qty") ** 2).alias("q2"), F.sum("ordered_qty").alias("q"))
        .first()
    )
    assert row is not None and row["q"], f"no orders of {plant}/{code} in {month}"
    return float(row["q2"]) / float(row["q"]) ** 2


@pytest.mark.slow
def test_planted_price_increase_reaches_exactly_the_products_containing_it(
    history: dict[str, Any], history_costs: dict[str, Any]
) -> None:
    answers = history["answers"]
    codes, increase = answers["price_material_codes"], answers["price_increase"]
    assert answers["price_date"] == "2026-04-19"
    expected = _expected_eur(answers)
    cost = {(r["plant_id"], r["product_code"], r["month"]): r for r in history_costs["products"]}
    share = {
        (r["plant_id"], r["product_code"], r["month"]): float(r["contribution_group"])
        for r in history_costs["contributions"]
        if r["component_code"] == codes[r["plant_id"]]
    }
    products = sorted({(p, c) for p, c, _ in cost})
    assert {p for p, _ in products} == {"SU", "TU"}
    impacted, measured = set(), {}
    for plant, product in products:
        before = float(cost[(plant, product, BEFORE)]["material_cost_group"])
        after = float(cost[(plant, product, AFTER)]["material_cost_group"])
        rise = share.get((plant, product, AFTER), 0.0) - share.get((plant, product, BEFORE), 0.0)
        if rise > 0.01 * before:  # the component alone raised the cost by more than 1 %
            impacted.add((plant, product))
            measured[(plant, product)] = rise
            assert after - before > 0.5 * rise, "the product's cost rises with the component"
        else:  # products without the component: only the other components' price noise
            assert abs(after - before) < 0.01 * before, (plant, product, before, after)
    assert impacted == {(p, c) for p, cs in expected.items() for c in cs}
    assert expected["TU"] == {} and len(expected["SU"]) == 1
    for (plant, product), rise in measured.items():
        # Tolerance: every order's price carries independent noise of sd ORDER_NOISE; a month's
        # unit cost is the quantity-weighted mean (variance factor k = sum q^2 / (sum q)^2),
        # so after - before has sd ORDER_NOISE x qty x price x sqrt((1+inc)^2 k_after +
        # k_before), with qty x price = expected / inc. Four of those sd: a bound a correct
        # roll-up misses with probability below 1e-4 (the data are seeded, so it never flakes).
        po = history_costs["silver"]["purchase_orders"]
        k_before = _concentration(po, plant, codes[plant], BEFORE)
        k_after = _concentration(po, plant, codes[plant], AFTER)
        want = expected[plant][product]
        sd = ORDER_NOISE * want / increase * ((1 + increase) ** 2 * k_after + k_before) ** 0.5
        assert abs(rise - want) <= 4 * sd, (plant, product, rise, want, sd)


@pytest.mark.slow
def test_what_if_of_the_planted_increase_predicts_the_answer(
    history: dict[str, Any], history_costs: dict[str, Any]
) -> None:
    answers = history["answers"]
    codes, increase = answers["price_material_codes"], answers["price_increase"]
    from_date = day(answers["price_date"])
    silver = history_costs["silver"]
    exploded = explode_bom(silver["boms"], max_depth=10)
    costs = monthly_unit_costs(
        silver["purchase_orders"],
        silver["standard_costs"],
        start_month=BEFORE,
        end_month=BEFORE,
    )
    expected = _expected_eur(answers)
    for plant in ("SU", "TU"):
        rows = what_if(
            exploded,
            costs,
            silver["sales_orders"],
            component=codes[plant],
            change=increase,
            from_date=from_date,
            plant=plant,
        ).collect()
        assert {r["product_code"] for r in rows} == set(expected[plant]), plant
        for r in rows:
            want = expected[plant][r["product_code"]]
            # the March unit cost is one weighted mean: sd ORDER_NOISE x sqrt(k) of the price
            k = _concentration(silver["purchase_orders"], plant, codes[plant], BEFORE)
            sd = ORDER_NOISE * want * k**0.5
            assert r["cost_month"] == BEFORE
            assert abs(float(r["cost_delta_group"]) - want) <= 4 * sd, (r, want, sd)
            units = float(r["units_sold_12m"])
            assert units > 0 and r["avg_price_group"] is not None
            assert _close(r["annual_exposure_group"], float(r["cost_delta_group"]) * units)


@pytest.mark.slow
def test_what_if_cli_reads_silver_as_a_role_and_explains_a_component_it_cannot_find(
    history: dict[str, Any],
    history_costs: dict[str, Any],
    spark: SparkSession,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    identities: Identities,
) -> None:
    import json

    identities.sign_in(monkeypatch, "group_analyst")
    monkeypatch.setattr("medlake.spark.build_spark", lambda *a, **k: spark)  # the test session
    answers = history["answers"]
    code = answers["price_material_codes"]["SU"]
    parser = argparse.ArgumentParser(prog="lakehouse gold")
    add_cli(parser.add_subparsers())
    settings = history_costs["settings"]

    def run(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args(["what-if", "--role", "group_analyst", *argv])
        status = args.func(args, settings)
        out, err = capsys.readouterr()
        return status, out, err

    status, out, _ = run(
        "--component", code, "--change", "+25%", "--from", answers["price_date"], "--format", "json"
    )
    assert status == 0
    rows = json.loads(out)
    assert {(r["plant_id"], r["product_code"]) for r in rows} == {
        ("SU", p) for p in answers["price_product_cost_increase"]["SU"]
    }
    status, out, _ = run(
        "--component", code, "--change", "+25%", "--from", answers["price_date"], "--plant", "SU"
    )
    assert status == 0
    assert out.splitlines()[0].split()[:3] == ["plant_id", "product_code", "component_code"]
    assert out.rstrip().endswith(f"({len(rows)} rows)")
    status, _, err = run(
        "--component", code, "--change", "+8%", "--from", "2026-06-01", "--plant", "XX"
    )
    assert status == 2 and "unknown plant 'XX'; configured plants: " in err
    typo = code[:-2] + code[-1]  # one character short
    status, _, err = run("--component", typo, "--change", "+8%", "--from", "2026-06-01")
    assert status == 2
    assert f"component {typo!r} matches no plant-local material code" in err
    assert "close codes: " in err and code in err
    tu_code = answers["price_material_codes"]["TU"]  # a TU material that no TU BOM contains
    status, out, err = run(
        "--component", tu_code, "--change", "+8%", "--from", "2026-06-01", "--plant", "TU"
    )
    assert status == 0
    assert f"{tu_code} is a material of TU but no BOM at plant TU contains it" in err
