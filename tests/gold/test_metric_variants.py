"""Metric variants scoped to suppliers and purchase orders: the variant's parameters count for
the rows it applies to, and only those; the canonical metric is unchanged beside it."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medlake.config import DEFAULT_CONF_DIR, ConfigError
from medlake.gold.metrics import (
    MetricDictionary,
    compute,
    compute_sets,
    load_dictionary,
    read_lock,
)
from medlake.gold.panorama import metric_catalogue

SUP_A, SUP_B = "SUP-00000000aa", "SUP-00000000bb"
DUE = dt.date(2026, 3, 10)

# A hand-made receipt_lines fact: (plant, region, supplier group, PO, receipt - due date in days)
Line = tuple[str, str, str, str, int | None]
LINES: list[Line] = [
    ("SU", "APAC", SUP_A, "P1", 0),  # on time
    ("SU", "APAC", SUP_A, "P2", 5),  # 5 days late: a miss at 2 days, on time at 7
    ("SU", "APAC", SUP_A, "P3", 8),  # 8 days late: a miss at 7 too
    ("SU", "APAC", SUP_B, "P4", 5),  # SUP_B: 5 late is a miss, the variant does not apply
    ("SU", "APAC", SUP_B, "P5", 1),  # on time
    ("TU", "EMEA", SUP_A, "P6", 6),  # on time at 7 only
    ("TU", "EMEA", SUP_A, "P7", -4),  # 4 days early: a miss (3 days early accepted)
    ("TU", "EMEA", SUP_B, "P8", -4),
    ("SU", "APAC", SUP_A, "P9", None),  # no due date: not counted by otd
]

VARIANTS = f"""
      - id: otd.sup_a
        version: 1
        name: {{en: "On-time delivery (supplier A: 7 days late accepted)", zh: 准时交货率（供应商A）}}
        reason: Supplier A's agreement accepts deliveries up to seven days late.
        applies_to: {{suppliers: [{SUP_A}]}}
        params: {{late_tolerance_days: 7}}
      - id: otd.sup_a_su
        version: 1
        name: {{en: "On-time delivery (supplier A at Suzhou)", zh: 准时交货率（苏州供应商A）}}
        reason: Supplier A's agreement with Suzhou accepts deliveries up to seven days late.
        applies_to: {{plants: [SU], suppliers: [{SUP_A}]}}
        params: {{late_tolerance_days: 7}}
      - id: otd.po_tu
        version: 1
        name: {{en: "On-time delivery (two Tuttlingen orders)", zh: 准时交货率（两个订单）}}
        reason: Two Tuttlingen orders were agreed with five days early accepted.
        applies_to: {{purchase_orders: {{TU: [P6, P7]}}}}
        params: {{early_tolerance_days: 5}}
"""
ANCHOR = "        params: {early_tolerance_days: 5}\n"  # the end of otd.emea, otd's last variant


def _conf(tmp_path: Path, variants: str = VARIANTS) -> Path:
    shutil.copytree(DEFAULT_CONF_DIR / "metrics", tmp_path / "metrics")
    path = tmp_path / "metrics" / "supply_chain.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(ANCHOR) == 1
    path.write_text(text.replace(ANCHOR, ANCHOR + variants.lstrip("\n")), encoding="utf-8")
    return tmp_path


@pytest.fixture(scope="module")
def dictionary(tmp_path_factory: pytest.TempPathFactory) -> MetricDictionary:
    return load_dictionary(_conf(tmp_path_factory.mktemp("conf")))


@pytest.fixture(scope="module")
def fact(spark: SparkSession):  # type: ignore[no-untyped-def]
    rows = [
        (plant, region, supplier, po, None if off is None else DUE, off, "2026-03")
        for plant, region, supplier, po, off in LINES
    ]
    return spark.createDataFrame(
        rows,
        "plant_id string, region string, supplier_group_id string, po_number string, "
        "due_date date, arrival_offset_days int, month string",
    )


def _everywhere(line: Line) -> bool:
    return True


def _expected(
    by: tuple[str, ...],
    *,
    early: int = 3,
    late: int = 2,
    where: Callable[[Line], bool] = _everywhere,
) -> dict[tuple[str, ...], float]:
    """OTD computed in plain Python: the share of lines with a due date in [-early, late]."""
    position = {"plant_id": 0, "region": 1, "supplier_group_id": 2, "po_number": 3}
    groups: dict[tuple[str, ...], list[bool]] = {}
    for line in LINES:
        offset = line[4]
        if offset is None or not where(line):
            continue
        key = tuple(line[position[d]] for d in by)
        groups.setdefault(key, []).append(-early <= offset <= late)
    return {k: sum(hits) / len(hits) for k, hits in groups.items()}


CUTS = [("plant_id",), ("plant_id", "supplier_group_id"), ("month",)]


@pytest.fixture(scope="module")
def values(dictionary: MetricDictionary, fact) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """Every metric below at every cut, as the gold job computes them: one Spark job."""
    metrics = dictionary.resolve_many(["otd", "otd.sup_a", "otd.sup_a_su", "otd.po_tu"])
    return [r.asDict() for r in compute_sets(metrics, fact, [list(c) for c in CUTS]).collect()]


def _got(values: list[dict[str, object]], metric_id: str, by: tuple[str, ...]) -> dict:  # type: ignore[type-arg]
    cut = CUTS.index(by)
    return {
        tuple(r[d] for d in by): r["value"]
        for r in values
        if r["metric_id"] == metric_id and r["_cut"] == cut
    }


def test_a_supplier_variant_uses_its_tolerance_for_that_suppliers_rows_only(
    values: list[dict[str, object]],
) -> None:
    for by in CUTS[:2]:
        variant = _got(values, "otd.sup_a", by)
        assert variant == pytest.approx(_expected(by, late=7, where=lambda line: line[2] == SUP_A))
        assert _got(values, "otd", by) == pytest.approx(_expected(by))  # canonical: all rows
    # by hand: SU has P1, P2 on time of P1-P3 (7 days late accepted); TU P6 of P6, P7
    assert _got(values, "otd.sup_a", ("plant_id",)) == pytest.approx(
        {("SU",): 2 / 3, ("TU",): 1 / 2}
    )
    # the canonical otd beside it: SU P1 and P5 of P1-P5, TU none of P6-P8
    assert _got(values, "otd", ("plant_id",)) == pytest.approx({("SU",): 2 / 5, ("TU",): 0.0})
    # no variant row for the supplier it does not apply to
    cut = ("plant_id", "supplier_group_id")
    assert {k[1] for k in _got(values, "otd.sup_a", cut)} == {SUP_A}


def test_plants_and_suppliers_together_mean_that_supplier_at_those_plants(
    values: list[dict[str, object]],
) -> None:
    by = ("plant_id",)
    got = _got(values, "otd.sup_a_su", by)
    assert got == pytest.approx(
        _expected(by, late=7, where=lambda line: line[0] == "SU" and line[2] == SUP_A)
    )
    assert got == pytest.approx({("SU",): 2 / 3})


def test_a_purchase_order_variant_applies_to_those_orders_of_that_plant(
    values: list[dict[str, object]],
) -> None:
    by = ("plant_id", "supplier_group_id")
    got = _got(values, "otd.po_tu", by)
    expected = _expected(
        by, early=5, where=lambda line: line[0] == "TU" and line[3] in {"P6", "P7"}
    )
    assert got == pytest.approx(expected)
    # by hand: P7 (4 days early) is on time with 5 days early accepted; P6 (6 late) is not
    assert got == pytest.approx({("TU", SUP_A): 1 / 2})


def test_the_variant_id_and_its_scope_reach_the_gold_rows_and_the_catalogue(
    values: list[dict[str, object]], dictionary: MetricDictionary
) -> None:
    month = [r for r in values if r["metric_id"] == "otd.sup_a" and r["_cut"] == 2]
    assert [(r["month"], r["metric_version"]) for r in month] == [("2026-03", 1)]
    assert month[0]["value"] == pytest.approx(3 / 5)  # P1, P2, P6 of P1-P3, P6, P7
    entry = next(e for e in metric_catalogue(dictionary) if e["metric_id"] == "otd.sup_a")
    assert entry["variant_of"] == "otd"
    assert f"supplier_group_id IN ('{SUP_A}')" in entry["formula_sql"]
    assert "(plant_id = 'TU' AND po_number IN ('P6', 'P7'))" in dictionary.get("otd.po_tu").sql()


def test_a_region_only_variant_keeps_its_released_fingerprint(
    dictionary: MetricDictionary,
) -> None:
    released = read_lock(DEFAULT_CONF_DIR / "metrics" / "versions.lock")
    assert dictionary.get("otd.emea").fingerprint == released["otd.emea@1"]


@pytest.mark.parametrize(
    ("applies_to", "message"),
    [
        ("{supplier: [X]}", "applies_to has unknown key supplier; it takes regions, plants"),
        ("{contracts: [C1]}", "contracts: the facts carry no contract column"),
        ("{supplier_codes: [LIEF-0052]}", "the facts carry the group supplier id"),
        ("{}", "applies_to needs at least one of regions, plants, suppliers, purchase_orders"),
        ("{suppliers: ['']}", "applies_to.suppliers has an empty value"),
        ("{purchase_orders: {TU: []}}", "applies_to.purchase_orders.TU lists no order"),
        (
            "{plants: [SU], purchase_orders: {TU: [P6]}}",
            "purchase_orders names plants outside applies_to.plants: TU",
        ),
    ],
)
def test_a_bad_applies_to_is_an_error_naming_the_metric_variant_and_field(
    tmp_path: Path, applies_to: str, message: str
) -> None:
    variant = VARIANTS.split("      - id: otd.sup_a_su", maxsplit=1)[0].replace(
        f"applies_to: {{suppliers: [{SUP_A}]}}", f"applies_to: {applies_to}"
    )
    with pytest.raises(ConfigError) as info:
        load_dictionary(_conf(tmp_path, variant), check_lock=False)
    text = str(info.value)
    assert "supply_chain.yaml" in text and message in text
    assert "field 'metrics.0.variants.1.applies_to" in text
    assert "(metric otd, variant otd.sup_a)" in text


def test_a_supplier_variant_of_a_metric_without_suppliers_is_refused(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "")
    path = conf / "metrics" / "supply_chain.yaml"
    anchor = '      - {version: 1, date: "2026-11-25", note: First group definition.}\n'
    text = path.read_text(encoding="utf-8")
    head, wip = text.split("  - id: wip_turnover", 1)
    wip = wip.replace(
        anchor,
        anchor
        + "    variants:\n"
        + "      - id: wip_turnover.sup\n"
        + "        version: 1\n"
        + "        name: {en: x, zh: x}\n"
        + "        reason: x\n"
        + f"        applies_to: {{suppliers: [{SUP_A}]}}\n",
    )
    path.write_text(head + "  - id: wip_turnover" + wip, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"metric wip_turnover\)") as info:
        load_dictionary(conf, check_lock=False)
    assert "applies_to.suppliers needs supplier_group_id" in str(info.value)


def test_a_purchase_order_variant_on_a_fact_without_po_number_is_an_error(
    spark: SparkSession, dictionary: MetricDictionary
) -> None:
    no_po = spark.createDataFrame(
        [("TU", "EMEA", SUP_A, DUE, 0, "2026-03")],
        "plant_id string, region string, supplier_group_id string, due_date date, "
        "arrival_offset_days int, month string",
    )
    with pytest.raises(ConfigError, match=r"metric otd\.po_tu: applies_to reads po_number"):
        compute([dictionary.get("otd.po_tu")], no_po, ["plant_id"])
