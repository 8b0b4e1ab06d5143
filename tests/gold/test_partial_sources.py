"""Job `gold` on partial sources: a source that delivers procurement data only, a plant that
lacks an input, and a run for a date months after the last silver data.

Silver is written by hand (tests/gold/conftest.py): two plants, Suzhou (SU, APAC) and
Tuttlingen (TU, EMEA), buy M1 (metal, from S1) and M2 (plastic, from S2); a purchase order
every second day from 2026-01-02, alternating M1 and M2, ten units each, due seven days
later, received OFFSETS[i] days from the due date. Every expected number is worked out here
from those rows, never with the code under test.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from pyspark.sql import SparkSession

from medlake.jobs import gold as gold_job
from medlake.runtime import JobResult

pytestmark = pytest.mark.slow

day = dt.date.fromisoformat
START = day("2026-01-02")
OFFSETS = [0, 1, 3, -1, -5, 2, 0, 4]  # receipt - due date; on time within [-3, +2] (otd)
PRICE = {("M1", "2026-01"): 10, ("M1", "2026-02"): 10, ("M1", "2026-03"): 11}  # M2: 5
SUPPLIER = {"M1": "S1", "M2": "S2"}


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def procurement(plant: str, end: dt.date) -> dict[str, list[dict[str, Any]]]:
    """One plant's purchase orders, receipts, suppliers, materials and FX rates until `end`."""
    orders, receipts = [], []
    i = 0
    while (ordered := START + dt.timedelta(days=2 * i)) <= end:
        material = "M1" if i % 2 == 0 else "M2"
        due = ordered + dt.timedelta(days=7)
        orders.append(
            {
                "plant_id": plant,
                "po_number": f"{plant}-PO{i}",
                "po_line": 1,
                "supplier_code": SUPPLIER[material],
                "supplier_group_id": f"G-{SUPPLIER[material]}",
                "material_code": material,
                "material_group_id": f"G-{material}",
                "order_date": ordered,
                "due_date": due,
                "ordered_qty": 10,
                "unit_price_group": PRICE.get((material, f"{ordered:%Y-%m}"), 5),
            }
        )
        received = due + dt.timedelta(days=OFFSETS[i % len(OFFSETS)])
        if received <= end:
            receipts.append(
                {
                    "plant_id": plant,
                    "receipt_id": f"{plant}-GR{i}",
                    "po_number": f"{plant}-PO{i}",
                    "po_line": 1,
                    "receipt_date": received,
                    "received_qty": 10,
                }
            )
        i += 1
    return {
        "purchase_orders": orders,
        "goods_receipts": receipts,
        "suppliers": [
            {
                "plant_id": plant,
                "supplier_code": s,
                "supplier_group_id": f"G-{s}",
                "supplier_name": n,
            }
            for s, n in (("S1", "Alpha"), ("S2", "Beta"))
        ],
        "materials": [
            {
                "plant_id": plant,
                "material_code": m,
                "material_group_id": f"G-{m}",
                "category": c,
                "std_lead_time_days": 7,
            }
            for m, c in (("M1", "metal"), ("M2", "plastic"))
        ],
        "fx_rates": [
            {
                "plant_id": plant,
                "rate_date": d,
                "from_currency": "CNY",
                "to_currency": "EUR",
                "rate": 0.13,
            }
            for d in _days(START, end)[::7]
        ],
    }


def lake_of(
    silver_lake: Callable[[], Any], plants: dict[str, dict[str, list[dict[str, Any]]]]
) -> Callable[..., Any]:
    """A lake whose silver holds the given rows (plant -> entity -> rows); its context maker."""
    _, write, context = silver_lake()
    by_entity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entities in plants.values():
        for entity, rows in entities.items():
            by_entity[entity] += rows
    for entity, rows in sorted(by_entity.items()):
        write(entity, rows)
    return context  # type: ignore[no-any-return]


def otd(
    receipts: list[dict[str, Any]], orders: list[dict[str, Any]]
) -> dict[tuple[str, str], float]:
    """(plant, month) -> share of receipt lines within [-3, +2] days of the due date."""
    due = {(o["plant_id"], o["po_number"]): o["due_date"] for o in orders}
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in receipts:
        offset = (r["receipt_date"] - due[(r["plant_id"], r["po_number"])]).days
        key = (r["plant_id"], f"{r['receipt_date']:%Y-%m}")
        counts[key][0] += int(-3 <= offset <= 2)
        counts[key][1] += 1
    return {k: hit / n for k, (hit, n) in counts.items()}


def _last(rows: list[dict[str, Any]], column: str) -> dt.date:
    return max(r[column] for r in rows)


def panorama_values(ctx: Any, metric: str, grain: str) -> dict[tuple[Any, ...], Any]:
    rows = (
        ctx.io.read("gold.supply_chain_panorama")
        .where(f"metric_id = '{metric}' AND grain = '{grain}'")
        .collect()
    )
    return {(r["plant_id"], r["month"]): r for r in rows}


# --------------------------------------------------------------------------- procurement only


@pytest.fixture(scope="module")
def procurement_only(silver_lake: Callable[[], Any], spark: SparkSession) -> dict[str, Any]:
    end = day("2026-03-20")
    data = {"SU": procurement("SU", end)}  # one plant: fewer scopes to score, same behaviour
    context = lake_of(silver_lake, data)
    ctx = context("gold", _days(day("2026-02-01"), end))
    return {"ctx": ctx, "result": gold_job.run(ctx), "data": data}


def test_when_silver_holds_only_procurement_then_gold_writes_what_it_can_and_names_the_skipped_marts(
    procurement_only: dict[str, Any],
) -> None:
    result: JobResult = procurement_only["result"]
    ctx, data = procurement_only["ctx"], procurement_only["data"]
    assert result.exit_code == 0
    assert result["marts_skipped"] == ["gold.cost_transmission", "gold.product_cost"]
    assert set(result["marts_written"]) == {
        "gold.supply_chain_panorama", "gold.supplier_scorecard", "gold.metric_catalogue",
    }  # fmt: skip
    notes = "\n".join(result["notes"])
    assert "gold.product_cost, gold.cost_transmission skipped" in notes
    assert "silver.boms" in notes and "not written yet" in notes
    assert "fact inventory_days not computed" in notes and "inventory_turns" in notes
    assert "purchase_lines without silver.standard_costs" in notes
    assert "skipped" in result.render()  # the closing summary prints the notes
    for table in ("gold.product_cost", "gold.cost_transmission"):
        assert ctx.io.version(table) is None

    # the panorama: on-time delivery per plant and month, counted here from the rows written
    orders, receipts = data["SU"]["purchase_orders"], data["SU"]["goods_receipts"]
    expected = otd(receipts, orders)
    got = panorama_values(ctx, "otd", "plant_id+month")
    assert {k: r["value"] for k, r in got.items()} == pytest.approx(expected)
    su = data["SU"]  # its receipts' data end: the earlier of its last receipt and last order
    su_end = min(
        _last(su["goods_receipts"], "receipt_date"), _last(su["purchase_orders"], "order_date")
    )
    assert got[("SU", "2026-03")]["data_through"] == su_end  # March is not over
    assert got[("SU", "2026-02")]["data_through"] is None
    spend = {(o["plant_id"], f"{o['order_date']:%Y-%m}"): 0.0 for o in orders}
    for o in orders:
        spend[(o["plant_id"], f"{o['order_date']:%Y-%m}")] += (
            o["ordered_qty"] * o["unit_price_group"]
        )
    got_spend = panorama_values(ctx, "spend", "plant_id+month")
    assert {k: r["value"] for k, r in got_spend.items()} == pytest.approx(spend)
    metrics = {
        r["metric_id"]
        for r in ctx.io.read("gold.supply_chain_panorama").select("metric_id").distinct().collect()
    }
    assert {"otd", "otif", "lead_time_mean", "spend", "unit_cost_cv"} <= metrics
    absent = {"ppv", "inventory_turns", "wip_turnover", "material_cost_change_pct"}
    assert not metrics & absent, metrics & absent  # no input: absent, not zero

    # the scorecard: S1's February window (December to February)
    cards = {
        r["month"]: r
        for r in ctx.io.read("gold.supplier_scorecard")
        .where("scope = 'group' AND supplier_group_id = 'G-S1'")
        .collect()
    }
    m1 = {(o["plant_id"], o["po_number"]) for o in orders if o["material_code"] == "M1"}
    lines = [
        r
        for r in receipts
        if (r["plant_id"], r["po_number"]) in m1 and f"{r['receipt_date']:%Y-%m}" <= "2026-02"
    ]
    feb = cards["2026-02"]
    assert feb["receipt_lines"] == len(lines) >= 10  # enough to be scored
    assert feb["delivery"] == pytest.approx(on_time_share(lines, orders))
    assert feb["delivery_score"] is not None and feb["composite_score"] is not None
    assert feb["quality"] is None and feb["price"] is None  # no inspections, no standard costs
    assert feb["supplier_name"] == "Alpha"


def on_time_share(lines: list[dict[str, Any]], orders: list[dict[str, Any]]) -> float:
    due = {(o["plant_id"], o["po_number"]): o["due_date"] for o in orders}
    ok = [-3 <= (r["receipt_date"] - due[(r["plant_id"], r["po_number"])]).days <= 2 for r in lines]
    return sum(ok) / len(ok)


# --------------------------------------------------------------------------- a plant lacks an input


SU_END, TU_END = day("2026-03-20"), day("2026-02-14")
EMPTY = ("incoming_inspections", "on_hand", "stock_movements", "work_orders", "production_lots")


def costs(plant: str, end: dt.date) -> dict[str, list[dict[str, Any]]]:
    """P1 = 2 x M1 + 1 x M2; standard costs 9 and 5; one P1 sold a day at 50 until `end`."""
    return {
        "boms": [
            {"plant_id": plant, "product_code": "P1", "product_group_id": "G-P1",
             "component_code": m, "component_group_id": f"G-{m}", "qty_per": q,
             "valid_from": day("2025-01-01")}
            for m, q in (("M1", 2), ("M2", 1))
        ],
        "standard_costs": [
            {"plant_id": plant, "material_code": m, "material_group_id": f"G-{m}",
             "valid_from": day("2025-01-01"), "std_unit_cost_group": c}
            for m, c in (("M1", 9), ("M2", 5))
        ],
        "sales_orders": [
            {"plant_id": plant, "so_number": f"{plant}-SO{n}", "so_line": 1, "product_code": "P1",
             "product_group_id": "G-P1", "order_date": d, "qty": 1, "unit_price_group": 50}
            for n, d in enumerate(_days(day("2026-01-01"), end))
        ],
    }  # fmt: skip


@pytest.fixture(scope="module")
def late_run(silver_lake: Callable[[], Any], spark: SparkSession) -> dict[str, Any]:
    """SU delivers procurement and cost data until 2026-03-20, TU procurement only until
    2026-02-14, the other silver inputs of gold exist but are empty; gold runs for
    2026-03-01..2026-06-15 (months 2026-02..2026-06)."""
    data = {
        "SU": {**procurement("SU", SU_END), **costs("SU", SU_END)},
        "TU": procurement("TU", TU_END),
        "none": {e: [] for e in EMPTY},
    }
    context = lake_of(silver_lake, data)
    ctx = context("gold", _days(day("2026-03-01"), day("2026-06-15")))
    return {"ctx": ctx, "result": gold_job.run(ctx), "data": data}


def test_when_a_plant_lacks_the_bom_then_cost_marts_cover_the_others_and_name_it(
    late_run: dict[str, Any],
) -> None:
    result, ctx = late_run["result"], late_run["ctx"]
    for mart in ("gold.product_cost", "gold.cost_transmission", "gold.supply_chain_panorama"):
        assert result.get("plants_missing", {}).get(mart) == {"TU": ["silver.boms"]}, mart
    assert result["marts_skipped"] == []
    notes = "\n".join(result["notes"])
    assert "gold.product_cost and gold.cost_transmission computed for SU; left out: TU" in notes
    assert "silver.on_hand, silver.stock_movements empty" in notes  # inventory_days: none
    # SU's product cost: 2 x M1 + M2 at the month's order prices
    cost = {r["month"]: r for r in ctx.io.read("gold.product_cost").collect()}
    assert {r["plant_id"] for r in cost.values()} == {"SU"}
    assert float(cost["2026-02"]["material_cost_group"]) == 2 * 10 + 5
    assert float(cost["2026-03"]["material_cost_group"]) == 2 * 11 + 5
    assert float(cost["2026-03"]["prev_material_cost_group"]) == 2 * 10 + 5
    assert float(cost["2026-02"]["std_material_cost_group"]) == 2 * 9 + 5
    assert float(cost["2026-02"]["units_sold"]) == 28  # one a day
    assert float(cost["2026-02"]["revenue_group"]) == 28 * 50
    change = panorama_values(ctx, "material_cost_change_pct", "plant_id+month")
    assert {k: r["value"] for k, r in change.items()} == pytest.approx(
        {("SU", "2026-02"): 0.0, ("SU", "2026-03"): (27 - 25) / 25}
    )
    # TU still has its procurement KPIs
    assert ("TU", "2026-02") in panorama_values(ctx, "otd", "plant_id+month")


MARTS = (
    "gold.supply_chain_panorama",
    "gold.supplier_scorecard",
    "gold.product_cost",
    "gold.cost_transmission",
)


def test_when_gold_runs_months_after_the_last_silver_data_then_those_months_are_not_written(
    late_run: dict[str, Any],
) -> None:
    result, ctx, data = late_run["result"], late_run["ctx"], late_run["data"]
    for mart in MARTS:
        months = {r["month"] for r in ctx.io.read(mart).select("month").distinct().collect()}
        assert months == {"2026-02", "2026-03"}, mart  # nothing after the data, ok or not
    assert result["months"] == ["2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
    assert result.get("months_without_data") == ["2026-04", "2026-05", "2026-06"]

    # a plant's data ends on the earliest last date of the fact's dated inputs
    su, tu = data["SU"], data["TU"]
    su_receipts = min(
        _last(su["goods_receipts"], "receipt_date"), _last(su["purchase_orders"], "order_date")
    )
    tu_receipts = min(
        _last(tu["goods_receipts"], "receipt_date"), _last(tu["purchase_orders"], "order_date")
    )
    su_costs = min(
        _last(su["purchase_orders"], "order_date"), _last(su["sales_orders"], "order_date")
    )
    assert tu_receipts < day("2026-02-28") and su_receipts < day("2026-03-31")

    otd_rows = panorama_values(ctx, "otd", "plant_id+month")
    assert set(otd_rows) == {("SU", "2026-02"), ("SU", "2026-03"), ("TU", "2026-02")}
    assert otd_rows[("SU", "2026-02")]["data_through"] is None  # a whole month
    assert otd_rows[("SU", "2026-03")]["data_through"] == su_receipts
    assert otd_rows[("TU", "2026-02")]["data_through"] == tu_receipts
    group = panorama_values(ctx, "otd", "month")
    assert group[(None, "2026-03")]["data_through"] == tu_receipts  # TU's data ends before March

    cost = {r["month"]: r["data_through"] for r in ctx.io.read("gold.product_cost").collect()}
    assert cost == {"2026-02": None, "2026-03": su_costs}
    cards = ctx.io.read("gold.supplier_scorecard").collect()
    assert {r["month"] for r in cards if r["scope"] == "GW+TU"} == {"2026-02"}
    assert {
        r["data_through"] for r in cards if r["scope"] == "group" and r["month"] == "2026-03"
    } == {tu_receipts}
