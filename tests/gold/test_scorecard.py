"""The supplier scorecard on facts small enough to score by hand: rolling windows, component
scores, the weighted composite, rank in category, trends and risk flags with their reasons."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from medlake.config import DEFAULT_CONF_DIR
from medlake.gold.metrics import load_dictionary
from medlake.gold.scorecard import ScorecardConfig, scorecard

# two-month windows, trends against the window one month earlier, four lines make a window
CONFIG = ScorecardConfig.model_validate(
    {
        "window_months": 2,
        "min_receipt_lines": 4,
        "trend_months": 1,
        "components": {
            "quality": {"metric": "incoming_pass_rate", "weight": 0.35, "best": 1.0, "worst": 0.9},
            "delivery": {"metric": "otd", "weight": 0.35, "best": 1.0, "worst": 0.7},
            "price": {"metric": "ppv_pct", "weight": 0.15, "best": 0.0, "worst": 0.1},
            "responsiveness": {
                "metric": "lead_time_ratio",
                "weight": 0.15,
                "best": 1.0,
                "worst": 1.5,
            },
        },
        "flags": {
            "otd_decline_points": 10,
            "reject_rise_points": 3,
            "min_z": 2.0,
            "composite_below": 60,
            "single_source_months": 2,
        },
    }
)

RL = "plant_id string, region string, month string, supplier_group_id string, material_category string, due_date date, arrival_offset_days int, lead_time_days int, std_lead_time_days int"
IL = "plant_id string, region string, month string, supplier_group_id string, material_category string, result string"
PL = "plant_id string, region string, month string, supplier_group_id string, material_group_id string, material_category string, std_unit_cost_group double, ppv_group double, std_value_group double"


def _receipts(supplier: str, month: str, n: int, offset: int, lead: int) -> list[tuple[Any, ...]]:
    import datetime as dt

    due = dt.date.fromisoformat(f"{month}-15")
    return [("SU", "APAC", month, supplier, "metal", due, offset, lead, 10)] * n


@pytest.fixture(scope="module")
def rows(spark: SparkSession) -> dict[tuple[str, str], dict[str, Any]]:
    receipts = [
        # S1: on time in January and February; every March line five days late, lead 15 of 10
        *_receipts("S1", "2026-01", 4, 0, 10),
        *_receipts("S1", "2026-02", 4, 0, 10),
        *_receipts("S1", "2026-03", 4, 5, 15),
        # S3: on time in February and March
        *_receipts("S3", "2026-02", 4, 0, 10),
        *_receipts("S3", "2026-03", 4, 0, 10),
        # S2: one line a month: two in a window, below min_receipt_lines
        *_receipts("S2", "2026-02", 1, 0, 10),
        *_receipts("S2", "2026-03", 1, 0, 10),
    ]
    inspections = [
        *[("SU", "APAC", "2026-02", "S1", "metal", "ACCEPT")] * 4,
        *[("SU", "APAC", "2026-03", "S1", "metal", "ACCEPT")] * 2,
        *[("SU", "APAC", "2026-03", "S1", "metal", "REJECT")] * 2,
    ]
    purchases = [
        # S3 also supplied SU's M1 in January; from February S1 is its only supplier
        ("SU", "APAC", "2026-01", "S3", "M1", "metal", 10.0, 0.0, 100.0),
        ("SU", "APAC", "2026-02", "S1", "M1", "metal", 10.0, 5.0, 100.0),
        ("SU", "APAC", "2026-03", "S1", "M1", "metal", 10.0, 0.0, 100.0),
    ]
    facts: dict[str, DataFrame] = {
        "receipt_lines": spark.createDataFrame(receipts, RL),
        "inspection_lots": spark.createDataFrame(inspections, IL),
        "purchase_lines": spark.createDataFrame(purchases, PL),
    }
    names = spark.createDataFrame(
        [("S1", "Alpha"), ("S2", "Beta"), ("S3", "Gamma")],
        "supplier_group_id string, supplier_name string",
    )
    dictionary = load_dictionary(DEFAULT_CONF_DIR)
    out = scorecard(dictionary, facts, CONFIG, ["2026-02", "2026-03"], names).collect()
    return {(r["supplier_group_id"], r["month"]): r.asDict() for r in out}


def test_each_component_is_scored_between_worst_and_best_over_the_window(
    rows: dict[tuple[str, str], dict[str, Any]],
) -> None:
    feb, mar = rows[("S1", "2026-02")], rows[("S1", "2026-03")]
    # February window = January + February: 8 lines on time, lead 80 of 80, 4 of 4 accepted,
    # PPV 5 on a standard value of 100
    assert feb["receipt_lines"] == 8
    assert (feb["delivery"], feb["quality"], feb["responsiveness"]) == (1.0, 1.0, 1.0)
    assert feb["price"] == pytest.approx(0.05)
    assert feb["price_score"] == pytest.approx(50.0)  # halfway between 0.10 (0) and 0.0 (100)
    assert feb["composite_score"] == pytest.approx(0.35 * 100 + 0.35 * 100 + 0.15 * 50 + 0.15 * 100)
    # March window = February + March: 4 of 8 on time, lead (40 + 60) / 80, 6 of 8 lots
    # accepted, PPV (5 + 0) / 200
    assert mar["delivery"] == pytest.approx(0.5)
    assert mar["delivery_score"] == 0.0  # below the worst value: clamped
    assert mar["responsiveness"] == pytest.approx(1.25)
    assert mar["responsiveness_score"] == pytest.approx(50.0)
    assert mar["quality"] == pytest.approx(0.75)
    assert mar["quality_score"] == 0.0
    assert mar["price_score"] == pytest.approx(75.0)
    assert mar["composite_score"] == pytest.approx(0.15 * 75 + 0.15 * 50)
    assert (mar["window_start"], mar["window_end"]) == ("2026-02", "2026-03")
    assert mar["supplier_name"] == "Alpha"


def test_the_composite_weighs_only_the_components_with_data(
    rows: dict[tuple[str, str], dict[str, Any]],
) -> None:
    # S3 in March: delivery and responsiveness 100, no inspections, no purchases in the window
    s3 = rows[("S3", "2026-03")]
    assert s3["quality_score"] is None and s3["price_score"] is None
    assert s3["composite_score"] == pytest.approx((0.35 * 100 + 0.15 * 100) / (0.35 + 0.15))
    # S3 in February: January's purchase at standard price puts price at 100 too
    assert rows[("S3", "2026-02")]["price_score"] == pytest.approx(100.0)


def test_a_window_with_too_few_lines_gets_no_score_and_no_rank(
    rows: dict[tuple[str, str], dict[str, Any]],
) -> None:
    s2 = rows[("S2", "2026-03")]
    assert s2["receipt_lines"] == 2
    assert s2["delivery"] == 1.0  # the metric is still reported ...
    assert s2["composite_score"] is None and s2["rank_in_category"] is None  # ... not scored
    assert s2["risk_flags"] == []


def test_rank_is_within_the_category_among_scored_suppliers(
    rows: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for month in ("2026-02", "2026-03"):
        assert rows[("S3", month)]["rank_in_category"] == 1
        assert rows[("S1", month)]["rank_in_category"] == 2
        assert rows[("S1", month)]["suppliers_in_category"] == 2


def test_an_otd_decline_beyond_points_and_noise_is_flagged_with_its_reason(
    rows: dict[tuple[str, str], dict[str, Any]],
) -> None:
    mar = rows[("S1", "2026-03")]
    assert mar["otd_trend_points"] == pytest.approx(-50.0)
    # two-proportion z by hand: 4/8 against 8/8, pooled 12/16
    pooled = 12 / 16
    z = (0.5 - 1.0) / math.sqrt(pooled * (1 - pooled) * (1 / 8 + 1 / 8))
    assert z < -2.0
    assert "otd_decline" in mar["risk_flags"]
    reason = mar["risk_reasons"][mar["risk_flags"].index("otd_decline")]
    assert reason.startswith("on-time delivery 50.0% of 8 lines over 2026-02..2026-03, down 50.0")
    assert f"(z = {z:.1f};" in reason
    assert "otd_decline" not in rows[("S1", "2026-02")]["risk_flags"]


def test_a_reject_rise_that_could_be_noise_is_not_flagged(
    rows: dict[tuple[str, str], dict[str, Any]],
) -> None:
    mar = rows[("S1", "2026-03")]
    assert mar["reject_rate_trend_points"] == pytest.approx(25.0)  # 0% -> 25%: above 3 points
    # ... but 2 rejects of 8 against 0 of 4 is z = -1.1 by hand, inside min_z
    pooled = (6 + 4) / 12
    z = (0.75 - 1.0) / math.sqrt(pooled * (1 - pooled) * (1 / 8 + 1 / 4))
    assert -2.0 < z < 0
    assert "reject_rate_rise" not in mar["risk_flags"]


def test_low_composite_and_single_source_are_flagged_with_reasons(
    rows: dict[tuple[str, str], dict[str, Any]],
) -> None:
    mar = rows[("S1", "2026-03")]
    assert "low_composite" in mar["risk_flags"]
    assert "composite score 18.8 below 60" in mar["risk_reasons"]
    # S1 alone supplied SU:M1 over February and March; in January S3 did too
    assert mar["sole_source_materials"] == ["SU:M1"]
    assert "single_source" in mar["risk_flags"]
    feb = rows[("S1", "2026-02")]
    assert "single_source" not in feb["risk_flags"]
    assert feb["otd_trend_points"] == 0.0  # January's window was on time too
    assert feb["risk_flags"] == []  # composite 92.5
