"""Point-in-time features, labels, the time-based split and metrics, on hand-built lines."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from medlake.config import DEFAULT_CONF_DIR
from medlake.ml import late_delivery as ld
from medlake.ml.config import Promotion

D = dt.date.fromisoformat
TOLERANCE = 2  # late: first receipt after due + 2 days
HISTORY = ld.History(windows_days=[30], prior_late_rate=0.1, prior_weight=2)

# line, supplier, material, order date, due date, receipt date(s)
LINES = [
    ("L4", "S1", "M1", "2025-11-01", "2025-11-10", ["2025-11-11"]),  # on time (+1)
    ("L1", "S1", "M1", "2026-01-01", "2026-01-10", ["2026-01-09"]),  # on time (-1)
    ("L2", "S1", "M1", "2026-01-02", "2026-01-12", ["2026-01-25", "2026-01-20"]),  # late (+8)
    ("L7", "S1", "M2", "2026-01-05", "2026-01-08", ["2026-01-15"]),  # late (+7)
    ("L6", "S1", "M1", "2026-01-20", "2026-01-30", ["2026-01-29"]),  # on time
    (
        "L3",
        "S1",
        "M1",
        "2026-02-01",
        "2026-02-20",
        ["2026-02-25"],
    ),  # late, received after L5 ordered
    ("L5", "S1", "M1", "2026-02-10", "2026-03-01", []),  # open
    ("X1", "S2", "M1", "2026-01-01", "2026-01-03", ["2026-01-30"]),  # another supplier, late
    ("L9", "S3", "M1", "2026-01-01", "2026-01-10", ["2026-01-25", "2026-01-11"]),  # first: on time
]


@pytest.fixture(scope="module")
def lines(spark: SparkSession) -> DataFrame:
    pos = spark.createDataFrame(
        [("P1", n, 10, s, m, "C" + m, D(o), D(d)) for n, s, m, o, d, _ in LINES],
        "plant_id string, po_number string, po_line int, supplier_group_id string, "
        "material_group_id string, material_code string, order_date date, due_date date",
    )
    receipts = spark.createDataFrame(
        [("P1", n, 10, D(r)) for n, _, _, _, _, rs in LINES for r in rs],
        T.StructType(
            [
                T.StructField("plant_id", T.StringType()),
                T.StructField("po_number", T.StringType()),
                T.StructField("po_line", T.IntegerType()),
                T.StructField("receipt_date", T.DateType()),
            ]
        ),
    )
    materials = spark.createDataFrame(
        [("P1", "CM1", "metal", 9), ("P1", "CM2", "plastic", 3)],
        "plant_id string, material_code string, category string, std_lead_time_days int",
    )
    return ld.order_lines(pos, receipts, materials)


@pytest.fixture(scope="module")
def features(lines: DataFrame) -> dict[str, dict[str, object]]:
    frame = ld.add_features(lines, history=HISTORY, late_tolerance_days=TOLERANCE)
    return {row["po_number"]: row.asDict() for row in frame.collect()}


def smoothed(late: int, n: int) -> float:
    return (late + 0.1 * 2) / (n + 2)


def test_when_a_line_was_received_after_the_order_date_then_it_is_not_in_the_history(
    features: dict[str, dict[str, object]],
) -> None:
    l5 = features["L5"]  # ordered 2026-02-10; L3 was ordered before but received 02-25
    # received before 02-10: L4 on time, L1 on time, L2 late, L7 late, L6 on time
    assert l5["supplier_lines_all"] == 5
    assert l5["supplier_late_rate_all"] == pytest.approx(smoothed(2, 5))
    # last 30 days (2026-01-11 .. 2026-02-09): L7 (01-15, late), L2 (01-20, late), L6 (01-29)
    assert l5["supplier_lines_30d"] == 3
    assert l5["supplier_late_rate_30d"] == pytest.approx(smoothed(2, 3))
    # same supplier and material M1: L4, L1, L2, L6 (L7 is M2)
    assert l5["supplier_material_lines_all"] == 4
    assert l5["supplier_material_late_rate_all"] == pytest.approx(smoothed(1, 4))


def test_when_a_receipt_is_on_the_order_date_then_it_is_not_yet_history(
    features: dict[str, dict[str, object]],
) -> None:
    l6 = features["L6"]  # ordered 2026-01-20, the day L2 first arrived
    # before 01-20: L4 (on time), L1 (on time), L7 (late, 01-15)
    assert l6["supplier_lines_all"] == 3
    assert l6["supplier_late_rate_all"] == pytest.approx(smoothed(1, 3))
    # 2025-12-21 .. 2026-01-19: L1, L7
    assert l6["supplier_lines_30d"] == 2
    assert l6["supplier_late_rate_30d"] == pytest.approx(smoothed(1, 2))


def test_when_a_supplier_has_no_history_then_the_prior_rate_is_used(
    features: dict[str, dict[str, object]],
) -> None:
    l4, x1 = features["L4"], features["X1"]
    assert l4["supplier_lines_all"] == 0 and l4["supplier_late_rate_all"] == pytest.approx(0.1)
    # S1's lines never count for S2
    assert x1["supplier_lines_all"] == 0 and x1["supplier_late_rate_30d"] == pytest.approx(0.1)


def test_when_history_is_outside_the_window_then_only_the_overall_rate_sees_it(
    features: dict[str, dict[str, object]],
) -> None:
    l1 = features["L1"]  # ordered 2026-01-01: only L4 (2025-11-11) is older
    assert l1["supplier_lines_all"] == 1
    assert l1["supplier_late_rate_all"] == pytest.approx(smoothed(0, 1))
    assert l1["supplier_lines_30d"] == 0
    assert l1["supplier_late_rate_30d"] == pytest.approx(0.1)


def test_static_features_come_from_dates_and_the_material_master(
    features: dict[str, dict[str, object]],
) -> None:
    l7 = features["L7"]
    assert l7["planned_lead_days"] == 3  # 01-05 -> 01-08
    assert l7["std_lead_time_days"] == 3
    assert l7["lead_time_gap_days"] == 0
    assert l7["category"] == "plastic"
    assert l7["order_month"] == 1 and l7["due_quarter"] == "Q1"
    assert features["L5"]["lead_time_gap_days"] == 19 - 9


def test_when_labelling_then_only_lines_past_their_deadline_count_and_missing_is_late(
    lines: DataFrame,
) -> None:
    on = {
        r["po_number"]: r[ld.LABEL]
        for r in ld.labelled(lines, as_of=D("2026-02-20"), late_tolerance_days=TOLERANCE).collect()
    }
    # L3 (deadline 02-22) and L5 (03-03) are not decided on 02-20; L9 arrived on time first
    assert on == {"L4": 0.0, "L1": 0.0, "L2": 1.0, "L7": 1.0, "L6": 0.0, "X1": 1.0, "L9": 0.0}
    later = {
        r["po_number"]: r[ld.LABEL]
        for r in ld.labelled(lines, as_of=D("2026-03-10"), late_tolerance_days=TOLERANCE).collect()
    }
    assert later["L3"] == 1.0  # arrived 02-25, deadline 02-22
    assert later["L5"] == 1.0  # deadline 03-03 passed, nothing received


def test_when_splitting_then_training_outcomes_were_known_before_the_holdout_window(
    lines: DataFrame,
) -> None:
    train, holdout = ld.split(
        lines, as_of=D("2026-03-10"), holdout_days=30, late_tolerance_days=TOLERANCE
    )  # cutoff 2026-02-08
    assert sorted(r["po_number"] for r in train.collect()) == [
        "L1",
        "L2",
        "L4",
        "L6",
        "L7",
        "L9",
        "X1",
    ]
    # L3 was ordered before the cutoff but decided after it: in neither set
    assert sorted(r["po_number"] for r in holdout.collect()) == ["L5"]


def test_open_lines_are_ordered_by_the_day_and_not_received_by_its_end(lines: DataFrame) -> None:
    got = sorted(r["po_number"] for r in ld.open_lines(lines, D("2026-02-15")).collect())
    assert got == ["L3", "L5"]
    assert sorted(r["po_number"] for r in ld.open_lines(lines, D("2026-01-20")).collect()) == [
        "L6",
        "X1",
    ]  # L2 arrived on 01-20: no longer open at the end of that day


def test_binary_metrics_count_ties_as_half_and_flag_at_the_threshold(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [(0.9, 1.0), (0.8, 0.0), (0.8, 1.0), (0.1, 0.0)], "s double, label double"
    )
    m = ld.binary_metrics(frame, score="s", threshold=0.8)
    # positive/negative pairs: (.9,.8) win, (.9,.1) win, (.8,.8) tie, (.8,.1) win
    assert m.auc == pytest.approx(3.5 / 4)
    assert (m.rows, m.positives) == (4, 2)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(1.0)


def test_promotion_failures_name_every_unmet_threshold() -> None:
    config = ld.load_config(DEFAULT_CONF_DIR)
    rules = Promotion(min_auc=0.7, min_auc_lift=0.02, min_recall=0.5, min_holdout_rows=10)
    config = config.model_copy(update={"promotion": rules})
    good = ld.Evaluation(
        model=ld.BinaryMetrics(rows=100, positives=10, auc=0.8, precision=0.5, recall=0.6),
        baseline=ld.BinaryMetrics(rows=100, positives=10, auc=0.7, precision=0.4, recall=0.5),
    )
    assert ld.promotion_failures(config, good) == []
    weak = ld.Evaluation(
        model=ld.BinaryMetrics(rows=100, positives=10, auc=0.71, precision=0.5, recall=0.2),
        baseline=ld.BinaryMetrics(rows=100, positives=10, auc=0.70, precision=0.4, recall=0.5),
    )
    failures = ld.promotion_failures(config, weak)
    assert len(failures) == 2
    assert "min_auc_lift=0.02" in failures[0] and "min_recall=0.5" in failures[1]
