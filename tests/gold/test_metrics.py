"""The metric dictionary: loading, version lock, and each KPI on fixtures computed by hand."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medlake.config import DEFAULT_CONF_DIR, ConfigError
from medlake.entities import full_registry
from medlake.gold import facts as gold_facts
from medlake.gold.metrics import compute, load_dictionary, write_lock

CONF = DEFAULT_CONF_DIR
D = dt.date
AS_OF = D(2026, 3, 31)
REGIONS = {"SU": "APAC", "TU": "EMEA"}


@pytest.fixture(scope="module")
def dictionary():  # type: ignore[no-untyped-def]
    return load_dictionary(CONF)


def _ctx(spark: SparkSession, **params: object) -> gold_facts.FactContext:
    return gold_facts.FactContext(spark=spark, as_of=AS_OF, regions=REGIONS, params=params)


def _values(df) -> dict[tuple, float | None]:  # type: ignore[no-untyped-def]
    key = [
        c
        for c in df.columns
        if c not in ("numerator", "denominator", "value", "status", "metric_version")
    ]
    return {tuple(r[c] for c in key): r["value"] for r in df.collect()}


# --------------------------------------------------------------------------- dictionary


def test_every_active_metric_compiles_against_its_fact(spark: SparkSession, dictionary) -> None:  # type: ignore[no-untyped-def]
    registry = full_registry(CONF)
    for name, fact in gold_facts.FACTS.items():
        tables = {t: spark.createDataFrame([], registry.get(t).spark_schema) for t in fact.inputs}
        rows = fact.build(tables, _ctx(spark, safety_stock_days={"default": 14}))
        for metric in dictionary.for_fact(name):
            by = [*metric.spec.requires, "month"]
            assert compute([metric], rows, by).collect() == [], metric.id


def test_the_lock_holds_every_current_version(dictionary) -> None:  # type: ignore[no-untyped-def]
    from medlake.gold.metrics import read_lock

    released = read_lock(CONF / "metrics" / "versions.lock")
    assert released == {**released, **dictionary.fingerprints()}, (
        "a metric version is not locked: run `lakehouse metrics lock`"
    )


def _conf_copy(tmp_path: Path) -> Path:
    shutil.copytree(CONF / "metrics", tmp_path / "metrics")
    return tmp_path


def test_when_a_released_formula_changes_without_a_new_version_then_loading_refuses(
    tmp_path: Path,
) -> None:
    conf = _conf_copy(tmp_path)
    path = conf / "metrics" / "supply_chain.yaml"
    path.write_text(path.read_text().replace("late_tolerance_days: 2", "late_tolerance_days: 4", 1))
    with pytest.raises(ConfigError, match=r"otd version 1 was released with another formula"):
        load_dictionary(conf)


def test_when_the_version_is_raised_then_the_new_formula_loads_and_locks(tmp_path: Path) -> None:
    conf = _conf_copy(tmp_path)
    path = conf / "metrics" / "supply_chain.yaml"
    text = path.read_text()
    head, rest = text.split("  - id: otif", 1)
    head = head.replace("late_tolerance_days: 2", "late_tolerance_days: 4").replace(
        "  - id: otd\n    version: 1", "  - id: otd\n    version: 2"
    )
    head = head.replace(
        '      - {version: 1, date: "2026-11-25", note: First group definition.}\n    variants',
        '      - {version: 1, date: "2026-11-25", note: First group definition.}\n'
        '      - {version: 2, date: "2026-12-01", note: Four days late accepted.}\n    variants',
    )
    # the variant inherits the changed parameter, so it needs a new version too
    head = head.replace("- id: otd.emea\n        version: 1", "- id: otd.emea\n        version: 2")
    path.write_text(head + "  - id: otif" + rest)
    d = load_dictionary(conf)
    assert d.get("otd").version == 2
    assert d.get("otd.emea").version == 2
    _, added = write_lock(d)
    assert {"otd@2", "otd.emea@2"} <= set(added)
    lock = (conf / "metrics" / "versions.lock").read_text()
    assert "otd@1:" in lock and "otd@2:" in lock  # the released version stays recorded


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "params: {early_tolerance_days: 5}",
            "params: {early_days: 5}",
            "sets parameters the metric does not have: early_days",
        ),
        (
            "denominator: count(*)\n    filters: [due_date IS NOT NULL]\n    params: {early",
            "filters: [due_date IS NOT NULL]\n    params: {early",
            "give numerator and denominator",
        ),
        ("- id: otd.emea", "- id: emea", "metrics.0.variants.0.id"),
        (
            "direction: higher_is_better\n    thresholds: {warning: 0.90",
            "direction: up\n    thresholds: {warning: 0.90",
            "metrics.0.direction",
        ),
    ],
)
def test_when_a_definition_is_broken_then_the_error_names_file_and_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    conf = _conf_copy(tmp_path)
    path = conf / "metrics" / "supply_chain.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=r"supply_chain\.yaml") as info:
        load_dictionary(conf, check_lock=False)
    assert message in str(info.value)


def test_when_a_cut_is_outside_the_dimensions_then_the_error_lists_them(spark, dictionary) -> None:  # type: ignore[no-untyped-def]
    rows = spark.createDataFrame(
        [("SU", "2026-01", 1.0)], "plant_id string, month string, unit_price_group double"
    )
    with pytest.raises(ConfigError, match="only meaningful per material_group_id"):
        compute([dictionary.get("unit_cost_cv")], rows, ["plant_id"])
    with pytest.raises(ConfigError, match="cannot be cut by customer"):
        compute([dictionary.get("unit_cost_cv")], rows, ["customer"])


# --------------------------------------------------------------------------- KPIs by hand

PO = "plant_id string, po_number string, po_line int, supplier_group_id string, material_group_id string, material_code string, order_date date, due_date date, ordered_qty decimal(18,6), unit_price_group decimal(18,6)"
GR = "plant_id string, receipt_id string, po_number string, po_line int, supplier_lot string, receipt_date date, received_qty decimal(18,6)"
MAT = "plant_id string, material_code string, material_group_id string, category string, std_lead_time_days int"


def _receipts(spark: SparkSession):  # type: ignore[no-untyped-def]
    from decimal import Decimal as Dec

    due = D(2026, 3, 10)
    # (po, plant, receipt date, ordered, received, order date)
    lines = [
        ("P1", "SU", D(2026, 3, 10), 100, 100, D(2026, 2, 10)),  # on time, in full: lead 28
        ("P2", "SU", D(2026, 3, 12), 100, 99, D(2026, 2, 10)),  # +2 days: on time; 99 >= 98 in full
        ("P3", "SU", D(2026, 3, 13), 100, 100, D(2026, 2, 10)),  # +3 days: late; lead 31
        ("P4", "SU", D(2026, 3, 6), 100, 100, D(2026, 2, 10)),  # -4 days: early beyond 3: a miss
        ("P5", "TU", D(2026, 3, 6), 100, 90, D(2026, 2, 10)),  # -4 days at EMEA; 90 < 98 short
        ("P6", "TU", D(2026, 3, 9), 100, 100, D(2026, 2, 10)),  # -1 day: on time
        ("P7", "TU", D(2026, 4, 2), 100, 100, D(2026, 2, 10)),  # after the as-of date: not counted
    ]
    po = spark.createDataFrame(
        [
            (plant, p, 10, "S1", "M1", "m1", od, due, Dec(o), Dec("2.0"))
            for p, plant, _, o, _, od in lines
        ],
        PO,
    )
    gr = spark.createDataFrame(
        [(plant, f"R{p}", p, 10, f"L{p}", rd, Dec(r)) for p, plant, rd, _, r, _ in lines], GR
    )
    mat = spark.createDataFrame(
        [("SU", "m1", "M1", "metal", 28), ("TU", "m1", "M1", "metal", 28)], MAT
    )
    tables = {"silver.purchase_orders": po, "silver.goods_receipts": gr, "silver.materials": mat}
    return gold_facts.receipt_lines(tables, _ctx(spark))


def test_when_late_or_too_early_then_otd_counts_a_miss(spark, dictionary) -> None:  # type: ignore[no-untyped-def]
    rows = _receipts(spark)
    got = _values(compute(dictionary.resolve_many(["otd", "otd.emea", "otif"]), rows, ["plant_id"]))
    # SU: P1, P2 on time of P1-P4 -> 2/4; TU: P6 only of P5, P6 (P7 after the as-of date) -> 1/2
    assert got[("SU", "otd")] == pytest.approx(2 / 4)
    assert got[("TU", "otd")] == pytest.approx(1 / 2)
    # the EMEA variant accepts 5 days early: P5 and P6 on time at TU; SU is outside its scope
    assert got[("TU", "otd.emea")] == pytest.approx(2 / 2)
    assert ("SU", "otd.emea") not in got
    # OTIF: SU P1, P2 (99 >= 100 x 0.98); TU P6 (P5 short and early)
    assert got[("SU", "otif")] == pytest.approx(2 / 4)
    assert got[("TU", "otif")] == pytest.approx(1 / 2)


def test_lead_time_mean_std_and_p90_by_hand(spark, dictionary) -> None:  # type: ignore[no-untyped-def]
    import statistics

    rows = _receipts(spark)
    got = _values(
        compute(
            dictionary.resolve_many(
                ["lead_time_mean", "lead_time_std", "lead_time_p90", "lead_time_ratio"]
            ),
            rows,
            ["plant_id"],
        )
    )
    su = [28, 30, 31, 24]  # receipt - order date of P1..P4
    assert got[("SU", "lead_time_mean")] == pytest.approx(sum(su) / 4)
    assert got[("SU", "lead_time_std")] == pytest.approx(statistics.stdev(su))
    # exact percentile, linear: sorted 24, 28, 30, 31; rank 0.9 x 3 = 2.7 -> 30 + 0.7 x (31 - 30)
    assert got[("SU", "lead_time_p90")] == pytest.approx(30.7)
    assert got[("SU", "lead_time_ratio")] == pytest.approx(sum(su) / (4 * 28))


def test_incoming_pass_rate_by_lots_and_quantity(spark, dictionary) -> None:  # type: ignore[no-untyped-def]
    from decimal import Decimal as Dec

    ii = spark.createDataFrame(
        [
            ("SU", "I1", "R1", "m1", "M1", "L1", Dec(50), Dec(0), "ACCEPT", D(2026, 3, 2)),
            ("SU", "I2", "R2", "m1", "M1", "L2", Dec(50), Dec(5), "REJECT", D(2026, 3, 3)),
            (
                "SU",
                "I3",
                "R3",
                "m1",
                "M1",
                "L3",
                Dec(100),
                Dec(1),
                "ACCEPT_DEVIATION",
                D(2026, 3, 4),
            ),
            ("SU", "I4", "R4", "m1", "M1", "L4", Dec(100), Dec(0), "ACCEPT", D(2026, 3, 5)),
        ],
        "plant_id string, inspection_id string, receipt_id string, material_code string, material_group_id string, supplier_lot string, inspected_qty decimal(18,6), rejected_qty decimal(18,6), result string, inspected_at_local_date date",
    )
    gr = spark.createDataFrame(
        [("SU", f"R{i}", "P1", 10, None, None, None) for i in range(1, 5)], GR
    )
    po = spark.createDataFrame([("SU", "P1", 10, "S1", "M1", "m1", None, None, None, None)], PO)
    mat = spark.createDataFrame([("SU", "m1", "M1", "metal", 28)], MAT)
    rows = gold_facts.inspection_lots(
        {
            "silver.incoming_inspections": ii,
            "silver.goods_receipts": gr,
            "silver.purchase_orders": po,
            "silver.materials": mat,
        },
        _ctx(spark),
    )
    got = _values(
        compute(
            dictionary.resolve_many(["incoming_pass_rate", "incoming_pass_rate_qty"]),
            rows,
            ["supplier_group_id"],
        )
    )
    assert got[("S1", "incoming_pass_rate")] == pytest.approx(2 / 4)  # a concession is no pass
    assert got[("S1", "incoming_pass_rate_qty")] == pytest.approx((300 - 6) / 300)


def test_ppv_and_unit_cost_fluctuation_in_group_currency(spark, dictionary) -> None:  # type: ignore[no-untyped-def]
    import statistics
    from decimal import Decimal as Dec

    po = spark.createDataFrame(
        [
            (
                "SU",
                "P1",
                10,
                "S1",
                "M1",
                "m1",
                D(2026, 1, 20),
                None,
                Dec(10),
                Dec("2.0"),
            ),  # std 1.8
            (
                "SU",
                "P2",
                10,
                "S1",
                "M1",
                "m1",
                D(2026, 2, 20),
                None,
                Dec(20),
                Dec("2.5"),
            ),  # std 2.0
            (
                "SU",
                "P3",
                10,
                "S1",
                "M1",
                "m1",
                D(2026, 3, 20),
                None,
                Dec(10),
                Dec("1.5"),
            ),  # std 2.0
        ],
        PO,
    )
    std = spark.createDataFrame(
        [("SU", "m1", D(2026, 1, 1), Dec("1.8")), ("SU", "m1", D(2026, 2, 1), Dec("2.0"))],
        "plant_id string, material_code string, valid_from date, std_unit_cost_group decimal(18,6)",
    )
    mat = spark.createDataFrame([("SU", "m1", "M1", "metal", 28)], MAT)
    rows = gold_facts.purchase_lines(
        {"silver.purchase_orders": po, "silver.standard_costs": std, "silver.materials": mat},
        _ctx(spark),
    )
    got = _values(
        compute(
            dictionary.resolve_many(["ppv", "ppv_pct", "unit_cost_cv", "spend"]),
            rows,
            ["material_group_id"],
        )
    )
    ppv = (2.0 - 1.8) * 10 + (2.5 - 2.0) * 20 + (1.5 - 2.0) * 10
    assert got[("M1", "ppv")] == pytest.approx(ppv)
    assert got[("M1", "ppv_pct")] == pytest.approx(ppv / (1.8 * 10 + 2.0 * 20 + 2.0 * 10))
    prices = [2.0, 2.5, 1.5]
    assert got[("M1", "unit_cost_cv")] == pytest.approx(
        statistics.stdev(prices) / statistics.mean(prices)
    )
    assert got[("M1", "spend")] == pytest.approx(20 + 50 + 15)


def test_inventory_turns_days_of_supply_and_safety_stock_coverage(spark, dictionary) -> None:  # type: ignore[no-untyped-def]
    from decimal import Decimal as Dec

    days = [D(2026, 3, 1) + dt.timedelta(days=i) for i in range(4)]
    on_hand = spark.createDataFrame(
        [("SU", d, "m1", "LOT", Dec(q)) for d, q in zip(days, [100, 80, 60, 100], strict=True)],
        "plant_id string, snapshot_date date, material_code string, lot string, qty decimal(18,6)",
    )
    moves = spark.createDataFrame(
        [
            ("SU", "ISSUE", "m1", Dec(-20), days[1]),
            ("SU", "ISSUE", "m1", Dec(-20), days[2]),
            ("SU", "RECEIPT", "m1", Dec(60), days[3]),
        ],
        "plant_id string, movement_type string, material_code string, qty decimal(18,6), moved_at_local_date date",
    )
    std = spark.createDataFrame(
        [("SU", "m1", D(2026, 1, 1), Dec("2.0"))],
        "plant_id string, material_code string, valid_from date, std_unit_cost_group decimal(18,6)",
    )
    mat = spark.createDataFrame([("SU", "m1", "M1", "metal", 28)], MAT)
    rows = gold_facts.inventory_days(
        {
            "silver.on_hand": on_hand,
            "silver.stock_movements": moves,
            "silver.standard_costs": std,
            "silver.materials": mat,
        },
        _ctx(spark, safety_stock_days={"default": 9}),
    )
    got = _values(
        compute(
            dictionary.resolve_many(["inventory_turns", "days_of_supply", "safety_stock_coverage"]),
            rows,
            ["plant_id"],
        )
    )
    on_hand_value = (100 + 80 + 60 + 100) * 2.0
    issued_value = 40 * 2.0
    assert got[("SU", "inventory_turns")] == pytest.approx(365 * issued_value / on_hand_value)
    assert got[("SU", "days_of_supply")] == pytest.approx(on_hand_value / issued_value)
    # safety stock each day = 9 days x (issues of the trailing 90 days / 90)
    trailing = [0, 20, 40, 40]
    safety_value = sum(9 * t / 90 * 2.0 for t in trailing)
    assert got[("SU", "safety_stock_coverage")] == pytest.approx(on_hand_value / safety_value)


def test_wip_turnover_counts_end_of_day_work_in_progress(spark, dictionary) -> None:  # type: ignore[no-untyped-def]
    import datetime as dtm

    wo = spark.createDataFrame(
        [
            ("SU", "W1", "P", 10, D(2026, 3, 1), D(2026, 3, 3)),  # WIP at the end of 03-01, 03-02
            ("SU", "W2", "P", 5, D(2026, 3, 2), D(2026, 3, 2)),  # started and finished the same day
            ("SU", "W3", "P", 4, D(2026, 3, 30), None),  # open: 03-30, 03-31 (as-of)
        ],
        "plant_id string, wo_number string, product_group_id string, planned_qty int, started_at_local_date date, finished_at_local_date date",
    )
    lots = spark.createDataFrame(
        [("SU", "P", 9, D(2026, 3, 3)), ("SU", "P", 5, D(2026, 3, 2))],
        "plant_id string, product_group_id string, qty_good int, production_date date",
    )
    assert dtm
    rows = gold_facts.wip_days(
        {"silver.work_orders": wo, "silver.production_lots": lots}, _ctx(spark)
    )
    got = _values(compute([dictionary.get("wip_turnover")], rows, ["plant_id"]))
    wip_unit_days = 10 + 10 + 4 + 4
    assert got[("SU", "wip_turnover")] == pytest.approx(365 * (9 + 5) / wip_unit_days)
