"""Silver quality rules: files load or fail naming file and rule; every check and action behaves."""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from medlake.config import ConfigError
from medlake.silver.quality import (
    QualityOutcome,
    RuleResult,
    RuleSet,
    evaluate,
    load_rule_dir,
    load_rules,
    results_rows,
)

BROKEN = Path(__file__).parent.parent / "fixtures" / "broken"
DAY = dt.date(2024, 3, 10)
SCHEMA = (
    "po_number string, po_line int, ordered_qty int, uom string, unit_price double, "
    "group_supplier_id string, order_date date"
)
EXAMPLE = """
table: silver.purchase_order_lines
rules:
  - id: po_key_present
    check: not_null
    columns: [po_number, po_line]
    action: quarantine
    description: optional text
  - {id: qty_range, check: range, column: ordered_qty, min: 0, max: 100000, min_inclusive: false, action: quarantine}
  - {id: uom_known, check: allowed_values, column: uom, values: [EA], action: quarantine}
  - {id: key_unique, check: unique, columns: [po_number, po_line], action: fail}
  - {id: supplier_known, check: referential, column: group_supplier_id, ref_table: silver.suppliers, ref_column: group_supplier_id, action: warn}
  - {id: fresh, check: freshness, column: order_date, max_age_days: 3, action: warn}
  - {id: volume, check: volume, min_ratio: 0.5, max_ratio: 2.0, trailing_runs: 7, action: warn}
  - {id: price_positive, check: expression, expr: "unit_price > 0", action: quarantine}
"""

Run = Callable[..., QualityOutcome]


def line(
    po: str | None = "P1",
    ln: int | None = 1,
    *,
    qty: int | None = 10,
    uom: str | None = "EA",
    price: float | None = 2.5,
    supplier: str | None = "S1",
    day: dt.date | None = DAY,
) -> tuple[Any, ...]:
    return (po, ln, qty, uom, price, supplier, day)


def rule(rule_id: str, check: str, action: str, **fields: Any) -> dict[str, Any]:
    return {"id": rule_id, "check": check, "action": action, **fields}


QTY_RANGE = rule("qty_range", "range", "quarantine", column="ordered_qty", min=0, max=100000)
UOM_KNOWN = rule("uom_known", "allowed_values", "quarantine", column="uom", values=["EA", "PCS"])
PRICE_POSITIVE = rule("price_positive", "expression", "quarantine", expr="unit_price > 0")


@pytest.fixture
def lines(spark: SparkSession) -> Callable[..., DataFrame]:
    def make(*rows: tuple[Any, ...]) -> DataFrame:
        return spark.createDataFrame(list(rows), SCHEMA)

    return make


@pytest.fixture
def run() -> Iterator[Run]:
    """Evaluate rules given as dicts (logical date DAY unless given); release every outcome."""
    outcomes: list[QualityOutcome] = []

    def evaluate_rules(df: DataFrame, *rules: dict[str, Any], **options: Any) -> QualityOutcome:
        options.setdefault("logical_date", DAY)
        ruleset = RuleSet.model_validate({"table": "silver.po_lines", "rules": list(rules)})
        outcomes.append(evaluate(df, ruleset, **options))
        return outcomes[-1]

    yield evaluate_rules
    for outcome in outcomes:
        outcome.release()


def keys(df: DataFrame) -> list[tuple[str, int]]:
    return sorted((r.po_number, r.po_line) for r in df.collect())


def quarantine_of(outcome: QualityOutcome) -> dict[tuple[str, int], tuple[str, str]]:
    rows = outcome.quarantined.collect()
    return {(r.po_number, r.po_line): (r._rule_id, r._reason) for r in rows}


def warnings_of(outcome: QualityOutcome) -> dict[tuple[str, int], list[str]]:
    return {(r.po_number, r.po_line): r._dq_warnings for r in outcome.kept.collect()}


def result_of(outcome: QualityOutcome, rule_id: str) -> RuleResult:
    return next(r for r in outcome.results if r.rule_id == rule_id)


# --- loading ---------------------------------------------------------------------------------


def test_when_the_documented_example_is_loaded_then_every_check_kind_is_parsed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "purchase_order_lines.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    rules = load_rules(path)
    assert rules.table == "silver.purchase_order_lines"
    assert rules.source == path
    assert [r.check for r in rules.rules] == [
        "not_null",
        "range",
        "allowed_values",
        "unique",
        "referential",
        "freshness",
        "volume",
        "expression",
    ]
    qty = rules.rules[1]
    assert qty.model_dump(include={"min", "max", "min_inclusive", "max_inclusive"}) == {
        "min": 0,
        "max": 100000,
        "min_inclusive": False,
        "max_inclusive": True,
    }


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_check", "rule 'qty_pattern' (rules[1]): unknown check 'regex'; use one of: "),
        ("missing_column", "rule 'qty_range' (rules[0]): field 'column': Field required"),
        ("missing_column", "hint: a 'range' rule needs id, action, column; optional: "),
        ("duplicate_id", "rule id 'qty_range' is used by rules[0] and rules[2]; give every"),
        (
            "bad_action",
            "rule 'uom_known' (rules[0]): field 'action': Input should be 'warn', 'flag', 'drop', "
            "'quarantine' or 'fail'; found 'quarentine'",
        ),
        (
            "table_level_drop",
            "rule 'fresh' (rules[0]): field 'action': Input should be 'warn' or 'fail'",
        ),
        ("unknown_field", "rule 'uom_known' (rules[0]): field 'colum': Extra inputs are not"),
        ("missing_check", "rule 'qty_range' (rules[0]): field 'check' is missing; set it to"),
        ("range_without_bounds", "rule 'qty_range' (rules[0]): field '(top level)'"),
        ("range_without_bounds", "give min, max or both"),
        ("bad_rule_id", "rules[0]): field 'id': String should match pattern"),
        ("not_silver", "field 'table': String should match pattern"),
    ],
)
def test_when_a_rule_file_is_broken_then_the_error_names_file_rule_and_fix(
    case: str, expected: str
) -> None:
    path = BROKEN / f"quality_{case}.yaml"
    with pytest.raises(ConfigError) as err:
        load_rules(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_when_a_folder_is_loaded_then_rule_sets_are_keyed_by_table(tmp_path: Path) -> None:
    (tmp_path / "purchase_order_lines.yaml").write_text(EXAMPLE, encoding="utf-8")
    shutil.copy(BROKEN / "quality_range_without_bounds.yaml", tmp_path / "notes.txt")
    (tmp_path / "suppliers.yaml").write_text(
        "table: silver.suppliers\nrules:\n"
        "  - {id: id_present, check: not_null, columns: [group_supplier_id], action: fail}\n",
        encoding="utf-8",
    )
    loaded = load_rule_dir(tmp_path)
    assert sorted(loaded) == ["silver.purchase_order_lines", "silver.suppliers"]
    assert [r.id for r in loaded["silver.suppliers"].rules] == ["id_present"]


def test_when_two_files_declare_one_table_then_both_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(EXAMPLE, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(EXAMPLE, encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=r"b\.yaml: table 'silver\.purchase_order_lines' already has rules in .*a\.yaml",
    ):
        load_rule_dir(tmp_path)


def test_when_the_folder_has_no_rule_files_then_it_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no quality rule files"):
        load_rule_dir(tmp_path)


# --- row-level checks and actions ------------------------------------------------------------


def test_when_quantity_negative_then_row_is_quarantined_with_reason(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(
        line("P1", 1, qty=10),
        line("P1", 2, qty=-5),
        line("P1", 3, qty=0),
        line("P1", 4, qty=100000),
        line("P1", 5, qty=100001),
    )
    outcome = run(df, {**QTY_RANGE, "min_inclusive": False})
    assert quarantine_of(outcome) == {
        ("P1", 2): ("qty_range", "ordered_qty=-5 is below the minimum 0 (rule qty_range)"),
        ("P1", 3): ("qty_range", "ordered_qty=0 equals the excluded minimum 0 (rule qty_range)"),
        ("P1", 5): ("qty_range", "ordered_qty=100001 is above the maximum 100000 (rule qty_range)"),
    }
    assert warnings_of(outcome) == {("P1", 1): [], ("P1", 4): []}
    assert outcome.kept.schema["_dq_warnings"].dataType == T.ArrayType(T.StringType(), False)
    result = result_of(outcome, "qty_range")
    assert (result.rows_checked, result.rows_failed, result.passed) == (5, 3, False)
    assert result.message == (
        "3 of 5 rows failed (quarantined), e.g. ordered_qty=-5 is below the minimum 0"
    )


def test_when_a_key_column_is_null_then_the_reason_names_each_null_column(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(
        line("P1", 1, qty=1), line(None, 2, qty=2), line("P1", None, qty=3), line(None, None, qty=4)
    )
    outcome = run(
        df, rule("key_present", "not_null", "quarantine", columns=["po_number", "po_line"])
    )
    reasons = {r.ordered_qty: r._reason for r in outcome.quarantined.collect()}
    assert reasons == {
        2: "po_number is null (rule key_present)",
        3: "po_line is null (rule key_present)",
        4: "po_number is null, po_line is null (rule key_present)",
    }
    assert [r.ordered_qty for r in outcome.kept.collect()] == [1]


def test_when_a_row_fails_several_quarantine_rules_then_it_is_quarantined_once_with_all_reasons(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(
        line("P1", 1, qty=-5, uom="KG"),
        line("P1", 2, qty=-1, price=-3.0),
        line("P1", 3),
    )
    outcome = run(df, UOM_KNOWN, QTY_RANGE, PRICE_POSITIVE)
    assert quarantine_of(outcome) == {
        ("P1", 1): (
            "uom_known",
            "uom='KG' is not one of the allowed values EA, PCS (rule uom_known); "
            "ordered_qty=-5 is below the minimum 0 (rule qty_range)",
        ),
        ("P1", 2): (
            "qty_range",
            "ordered_qty=-1 is below the minimum 0 (rule qty_range); "
            "`unit_price > 0` is false for unit_price=-3.0 (rule price_positive)",
        ),
    }
    assert outcome.quarantined.count() == outcome.quarantined_count == 2
    assert keys(outcome.kept) == [("P1", 3)]
    failed = {r.rule_id: r.rows_failed for r in outcome.results}
    assert failed == {"uom_known": 1, "qty_range": 2, "price_positive": 1}


def test_when_values_are_null_then_only_not_null_fails_them(
    spark: SparkSession, lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(
        line("P1", 1, qty=None, uom=None, price=None, supplier=None),
        line("P1", 2),
    )
    suppliers = spark.createDataFrame([("S1",)], "group_supplier_id string")
    outcome = run(
        df,
        QTY_RANGE,
        UOM_KNOWN,
        PRICE_POSITIVE,
        rule(
            "supplier_known",
            "referential",
            "quarantine",
            column="group_supplier_id",
            ref_table="silver.suppliers",
            ref_column="group_supplier_id",
        ),
        rule("qty_present", "not_null", "warn", columns=["ordered_qty"]),
        refs={"silver.suppliers": suppliers},
    )
    assert outcome.quarantined_count == 0
    assert warnings_of(outcome) == {("P1", 1): ["qty_present"], ("P1", 2): []}
    assert {r.rule_id: r.rows_failed for r in outcome.results} == {
        "qty_range": 0,
        "uom_known": 0,
        "price_positive": 0,
        "supplier_known": 0,
        "qty_present": 1,
    }


def test_when_an_expression_says_null_fails_then_a_null_result_is_quarantined(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(line("P1", 1, price=None), line("P1", 2, price=0.0), line("P1", 3))
    outcome = run(df, {**PRICE_POSITIVE, "null_fails": True})
    assert quarantine_of(outcome) == {
        ("P1", 1): (
            "price_positive",
            "`unit_price > 0` is null for unit_price=NULL (rule price_positive)",
        ),
        ("P1", 2): (
            "price_positive",
            "`unit_price > 0` is false for unit_price=0.0 (rule price_positive)",
        ),
    }


def test_when_rows_fail_warn_rules_then_they_stay_with_the_rule_ids_in_file_order(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(
        line("P1", 1),
        line("P1", 2, uom="KG"),
        line("P1", 3, uom="KG", price=-1.0),
        line("P1", 4, uom="KG", qty=-1),
    )
    outcome = run(
        df,
        {**UOM_KNOWN, "action": "warn"},
        {**PRICE_POSITIVE, "action": "warn"},
        QTY_RANGE,
    )
    assert warnings_of(outcome) == {
        ("P1", 1): [],
        ("P1", 2): ["uom_known"],
        ("P1", 3): ["uom_known", "price_positive"],
    }
    assert outcome.kept.schema["_dq_warnings"].dataType == T.ArrayType(T.StringType(), False)
    assert outcome.kept.columns == [*df.columns, "_dq_warnings"]
    assert keys(outcome.quarantined) == [("P1", 4)]
    assert result_of(outcome, "uom_known").message.startswith(
        "3 of 4 rows failed (kept with a warning), e.g. uom='KG'"
    )


def test_when_a_drop_rule_fails_then_rows_are_counted_and_quarantine_wins_over_drop(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(
        line("P1", 1),
        line("P1", 2, uom="KG"),
        line("P1", 3, uom="KG", qty=-1),
        line("P1", 4, uom="KG"),
    )
    outcome = run(df, {**UOM_KNOWN, "action": "drop"}, QTY_RANGE)
    assert outcome.dropped_count == 2
    assert keys(outcome.kept) == [("P1", 1)]
    assert quarantine_of(outcome) == {
        ("P1", 3): ("qty_range", "ordered_qty=-1 is below the minimum 0 (rule qty_range)")
    }
    assert (outcome.rows_in, outcome.kept_count, outcome.quarantined_count) == (4, 1, 1)
    assert result_of(outcome, "uom_known").rows_failed == 3


def test_when_a_fail_rule_finds_bad_rows_then_rows_stay_and_the_gate_fails(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(line("P1", 1), line("P1", 2, price=-1.0))
    outcome = run(
        df,
        {**PRICE_POSITIVE, "action": "fail"},
        {**QTY_RANGE, "action": "fail"},
    )
    assert keys(outcome.kept) == [("P1", 1), ("P1", 2)]
    assert outcome.quarantined_count == outcome.dropped_count == 0
    assert [(g.rule_id, g.rows_failed) for g in outcome.failed_gates] == [("price_positive", 1)]
    assert result_of(outcome, "qty_range").passed


# --- unique and referential --------------------------------------------------------------------


def test_when_a_key_repeats_under_a_fail_rule_then_the_gate_fails_and_null_keys_are_ignored(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(line("P1", 1), line("P1", 1), line("P1", 2), line(None, 3), line(None, 3))
    outcome = run(df, rule("key_unique", "unique", "fail", columns=["po_number", "po_line"]))
    assert outcome.kept.count() == 5
    [gate] = outcome.failed_gates
    assert (gate.rule_id, gate.rows_checked, gate.rows_failed) == ("key_unique", 5, 2)
    assert gate.message == (
        "2 of 5 rows failed (the quality gate fails), e.g. po_number='P1', po_line=1 appears 2 times"
    )


def test_when_a_key_repeats_under_a_quarantine_rule_then_every_row_of_that_key_is_quarantined(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(
        line("P1", 1, qty=1),
        line("P1", 1, qty=2),
        line("P1", 1, qty=3),
        line("P1", 2),
        line("P2", 1),
    )
    outcome = run(df, rule("key_unique", "unique", "quarantine", columns=["po_number", "po_line"]))
    rows = outcome.quarantined.collect()
    assert sorted(r.ordered_qty for r in rows) == [1, 2, 3]
    assert {r._reason for r in rows} == {
        "po_number='P1', po_line=1 appears 3 times (rule key_unique)"
    }
    assert keys(outcome.kept) == [("P1", 2), ("P2", 1)]


SUPPLIER_KNOWN = rule(
    "supplier_known",
    "referential",
    "warn",
    column="group_supplier_id",
    ref_table="silver.suppliers",
    ref_column="supplier_id",
)


def test_when_a_supplier_is_not_in_the_reference_then_the_row_fails_and_null_passes(
    spark: SparkSession, lines: Callable[..., DataFrame], run: Run
) -> None:
    suppliers = spark.createDataFrame([("S1",), ("S1",), ("S2",), (None,)], "supplier_id string")
    df = lines(line("P1", 1), line("P1", 2, supplier="S3"), line("P1", 3, supplier=None))
    outcome = run(df, SUPPLIER_KNOWN, refs={"silver.suppliers": suppliers})
    assert warnings_of(outcome) == {
        ("P1", 1): [],
        ("P1", 2): ["supplier_known"],
        ("P1", 3): [],
    }
    result = result_of(outcome, "supplier_known")
    assert (result.rows_checked, result.rows_failed) == (3, 1)
    assert result.message.endswith("group_supplier_id='S3' is not in silver.suppliers.supplier_id")


def test_when_a_referential_rule_quarantines_then_the_reason_names_the_reference(
    spark: SparkSession, lines: Callable[..., DataFrame], run: Run
) -> None:
    suppliers = spark.createDataFrame([("S1",)], "supplier_id string")
    df = lines(line("P1", 1), line("P1", 2, supplier="S3"))
    outcome = run(
        df, {**SUPPLIER_KNOWN, "action": "quarantine"}, refs={"silver.suppliers": suppliers}
    )
    assert quarantine_of(outcome) == {
        ("P1", 2): (
            "supplier_known",
            "group_supplier_id='S3' is not in silver.suppliers.supplier_id (rule supplier_known)",
        )
    }


def test_when_the_reference_table_is_not_supplied_then_the_rule_reports_it_without_crashing(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(line("P1", 1), line("P1", 2, supplier="S3"))
    outcome = run(df, {**SUPPLIER_KNOWN, "action": "fail"}, QTY_RANGE)
    [gate] = outcome.failed_gates
    assert (gate.rule_id, gate.passed, gate.rows_checked, gate.rows_failed) == (
        "supplier_known",
        False,
        0,
        0,
    )
    assert "silver.suppliers was not supplied" in gate.message
    assert "refs={'silver.suppliers': <DataFrame>}" in gate.message
    assert keys(outcome.kept) == [("P1", 1), ("P1", 2)]


# --- table-level checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("newest", "passed", "message"),
    [
        (
            dt.date(2024, 3, 7),
            True,
            "newest order_date is 2024-03-07, 3 days before 2024-03-10; within the limit of 3 days",
        ),
        (
            dt.date(2024, 3, 6),
            False,
            "newest order_date is 2024-03-06, 4 days before 2024-03-10; over the limit of 3 days",
        ),
    ],
)
def test_when_the_newest_date_is_older_than_allowed_before_the_logical_date_then_freshness_fails(
    lines: Callable[..., DataFrame], run: Run, newest: dt.date, passed: bool, message: str
) -> None:
    df = lines(
        line("P1", 1, day=dt.date(2024, 2, 1)), line("P1", 2, day=newest), line("P1", 3, day=None)
    )
    outcome = run(df, rule("fresh", "freshness", "fail", column="order_date", max_age_days=3))
    result = result_of(outcome, "fresh")
    assert (result.passed, result.message, result.rows_failed) == (passed, message, 0)
    assert outcome.kept.count() == 3
    assert len(outcome.failed_gates) == (0 if passed else 1)


def test_when_freshness_checks_a_timestamp_then_its_day_is_compared_with_the_logical_date(
    spark: SparkSession, run: Run
) -> None:
    df = spark.createDataFrame([(dt.datetime(2024, 3, 9, 23, 30),)], "loaded_at timestamp")
    outcome = run(
        df,
        rule("same_day", "freshness", "warn", column="loaded_at", max_age_days=0),
        rule("one_day", "freshness", "warn", column="loaded_at", max_age_days=1),
    )
    assert [(r.rule_id, r.passed) for r in outcome.results] == [
        ("same_day", False),
        ("one_day", True),
    ]


def test_when_no_date_is_present_then_freshness_fails_and_says_why(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    outcome = run(
        lines(line("P1", 1, day=None)),
        rule("fresh", "freshness", "warn", column="order_date", max_age_days=3),
    )
    result = result_of(outcome, "fresh")
    assert not result.passed
    assert result.message == "no non-null order_date value, so nothing shows the data is fresh"


VOLUME = rule("volume", "volume", "warn", min_ratio=0.5, max_ratio=2.0, trailing_runs=2)


@pytest.mark.parametrize(
    ("history", "passed", "message"),
    [
        ((), True, "no history yet: 3 rows this run"),
        ((4, 2), True, "3 rows is 1.00x the average 3.0 of the last 2 runs; expected 0.5x to 2.0x"),
        (
            (10, 10),
            False,
            "3 rows is 0.30x the average 10.0 of the last 2 runs; expected 0.5x to 2.0x",
        ),
        (
            (1, 1),
            False,
            "3 rows is 3.00x the average 1.0 of the last 2 runs; expected 0.5x to 2.0x",
        ),
        (
            (100, 100, 2, 4),
            True,
            "3 rows is 1.00x the average 3.0 of the last 2 runs; expected 0.5x to 2.0x",
        ),
    ],
)
def test_when_rows_stray_from_the_trailing_average_then_volume_fails(
    lines: Callable[..., DataFrame], run: Run, history: tuple[int, ...], passed: bool, message: str
) -> None:
    df = lines(line("P1", 1), line("P1", 2), line("P1", 3))
    outcome = run(df, VOLUME, volume_history=history)
    result = result_of(outcome, "volume")
    assert (result.passed, result.message, result.rows_checked) == (passed, message, 3)


# --- every check at once, inputs that cannot be checked, and the _dq rows ------------------------


def test_when_every_check_runs_together_then_each_rule_has_one_result_in_file_order(
    spark: SparkSession, lines: Callable[..., DataFrame], tmp_path: Path
) -> None:
    path = tmp_path / "purchase_order_lines.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    suppliers = spark.createDataFrame([("S1",)], "group_supplier_id string")
    df = lines(
        line("P1", 1),
        line("P1", 2, qty=0),
        line("P1", 2, uom="PCS"),
        line("P1", 3, supplier="S9", day=dt.date(2024, 3, 1)),
        line(None, 4, price=-2.0),
    )
    with evaluate(
        df,
        load_rules(path),
        logical_date=DAY,
        refs={"silver.suppliers": suppliers},
        volume_history=[4, 6],
    ) as outcome:
        summary = [(r.rule_id, r.rows_checked, r.rows_failed, r.passed) for r in outcome.results]
        assert summary == [
            ("po_key_present", 5, 1, False),
            ("qty_range", 5, 1, False),
            ("uom_known", 5, 1, False),
            ("key_unique", 5, 2, False),
            ("supplier_known", 5, 1, False),
            ("fresh", 5, 0, True),
            ("volume", 5, 0, True),
            ("price_positive", 5, 1, False),
        ]
        assert keys(outcome.kept) == [("P1", 1), ("P1", 3)]
        assert outcome.quarantined_count == 3
        assert [g.rule_id for g in outcome.failed_gates] == ["key_unique"]


def test_evaluation_is_cached_for_the_writes_until_released(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    outcome = run(lines(line("P1", 1), line("P1", 2, qty=-1)), QTY_RANGE)
    for view in (outcome.kept, outcome.quarantined):
        assert "InMemoryRelation" in view._jdf.queryExecution().withCachedData().toString()
    assert outcome._persisted is not None
    assert outcome._persisted.storageLevel.useMemory
    outcome.release()
    assert not outcome._persisted.storageLevel.useMemory
    assert not outcome._persisted.storageLevel.useDisk


@pytest.mark.parametrize(
    ("bad_rule", "expected"),
    [
        (
            rule("qty_range", "range", "warn", column="qty", min=0),
            "silver.po_lines: rule 'qty_range': column 'qty' is not in the data; columns are: po_number",
        ),
        (
            rule("price_positive", "expression", "warn", expr="unit_price >"),
            "rule 'price_positive': expr 'unit_price >' is not valid here",
        ),
        (
            rule("price_positive", "expression", "warn", expr="price > 0"),
            "rule 'price_positive': expr 'price > 0' is not valid here",
        ),
        (
            rule("price_positive", "expression", "warn", expr="unit_price + 1"),
            "rule 'price_positive': expr 'unit_price + 1' must be boolean, it gives DoubleType()",
        ),
        (
            rule("fresh", "freshness", "warn", column="uom", max_age_days=1),
            "rule 'fresh': freshness needs a date or timestamp column, not StringType()",
        ),
    ],
)
def test_when_the_data_cannot_be_checked_as_declared_then_the_error_names_the_rule(
    lines: Callable[..., DataFrame], run: Run, bad_rule: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        run(lines(line()), bad_rule)
    assert expected in str(err.value)


def test_results_rows_give_one_dq_row_per_rule(lines: Callable[..., DataFrame], run: Run) -> None:
    outcome = run(lines(line("P1", 1), line("P1", 2, qty=-1)), QTY_RANGE, VOLUME)
    at = dt.datetime(2024, 3, 11, 2, 0, tzinfo=dt.UTC)
    rows = results_rows(
        outcome, table="silver.po_lines", run_id="r1", logical_date=DAY, evaluated_at=at
    )
    assert rows[0] == {
        "run_id": "r1",
        "logical_date": DAY,
        "first_date": DAY,  # a run of one date: its logical date
        "table_name": "silver.po_lines",
        "rule_id": "qty_range",
        "check": "range",
        "action": "quarantine",
        "rows_checked": 2,
        "rows_failed": 1,
        "passed": False,
        "message": "1 of 2 rows failed (quarantined), e.g. ordered_qty=-1 is below the minimum 0",
        "evaluated_at": at,
    }
    assert [r["rule_id"] for r in rows] == ["qty_range", "volume"]
    now = results_rows(outcome, table="silver.po_lines", run_id="r1", logical_date=DAY)
    assert now[0]["evaluated_at"].tzinfo == dt.UTC


def test_when_a_run_covers_several_days_then_each_day_is_judged_against_the_days_before_it(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    df = lines(line("P1", 1), line("P1", 2), line("P1", 3))
    # history 2, 2 (trailing 2); day 1: 2 rows (1.0x); day 2: 1 row (1 / mean(2, 2) = 0.5x,
    # passes); day 3: 0 rows (0 / mean(2, 1) = 0x): that day alone would fail
    outcome = run(df, VOLUME, volume_history=[2, 2], volume_days=[2, 1, 0])
    result = result_of(outcome, "volume")
    assert not result.passed
    assert result.message == (
        "day 3 of 3: 0 rows is 0.00x the average 1.5 of the last 2 runs; expected 0.5x to 2.0x"
    )
    passing = run(df, VOLUME, volume_history=[2, 2], volume_days=[2, 1])
    assert result_of(passing, "volume").passed
    # a run of one day is judged by that day's delivered rows too, not by its 3 kept rows:
    # the same count a range run uses for that day
    one = result_of(run(df, VOLUME, volume_history=[2, 2], volume_days=[5]), "volume")
    assert (one.passed, one.rows_checked) == (False, 3)
    assert one.message.startswith("5 rows is 2.50x the average 2.0")


# --- anomalies, cross-checks and the flag action -----------------------------------------------


def flags_of(outcome: QualityOutcome) -> dict[tuple[str, int], list[str]]:
    return {(r.po_number, r.po_line): r._flags for r in outcome.kept.collect()}


def test_when_a_value_is_far_from_its_group_median_then_it_is_flagged_and_kept(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    s1 = [10, 11, 9, 10, 12, 10, 100]  # median 10; |x - 10| = 0,1,1,0,2,0,90: MAD 1
    s2 = [5, 5, 5, 5, 50]  # MAD 0: a group with no spread flags nothing
    rows = [line("A", i, qty=q, supplier="S1") for i, q in enumerate(s1)]
    rows += [line("B", i, qty=q, supplier="S2") for i, q in enumerate(s2)]
    threshold = 5.0
    median, mad = statistics.median(s1), statistics.median(abs(q - 10) for q in s1)
    expected = {("A", i) for i, q in enumerate(s1) if abs(q - median) / (1.4826 * mad) > threshold}
    assert expected == {("A", 6)}  # the hand computation: only the 100
    outcome = run(
        lines(*rows),
        rule(
            "qty_outlier",
            "anomaly",
            "flag",
            column="ordered_qty",
            by=["group_supplier_id"],
            threshold=threshold,
        ),
    )
    flags = flags_of(outcome)
    assert len(flags) == len(rows) and outcome.quarantined.count() == 0
    assert {k for k, f in flags.items() if f} == expected
    assert flags[("A", 6)] == ["anomaly:ordered_qty:robust_z"]
    result = result_of(outcome, "qty_outlier")
    assert (result.rows_failed, result.action) == (1, "flag")
    assert "(kept and flagged)" in result.message and "ordered_qty=100 is 60.7" in result.message


def test_when_an_anomaly_rule_quarantines_then_the_reason_gives_the_score_and_group(
    lines: Callable[..., DataFrame], run: Run
) -> None:
    rows = [line("A", i, qty=q) for i, q in enumerate([10, 11, 9, 10, 12, 10, 100])]
    outcome = run(
        lines(*rows),
        rule("qty_outlier", "anomaly", "quarantine", column="ordered_qty", threshold=5),
    )
    (rule_id, reason) = quarantine_of(outcome)[("A", 6)]
    assert rule_id == "qty_outlier" and len(quarantine_of(outcome)) == 1
    # |100 - 10| / (1.4826 * 1) = 60.7
    assert reason.startswith("ordered_qty=100 is 60.7 robust z-scores from the median 10")


def test_when_a_row_disagrees_with_its_partner_then_the_cross_check_flags_it(
    spark: SparkSession, lines: Callable[..., DataFrame], run: Run
) -> None:
    orders = spark.createDataFrame(
        [("P1", 1, "EA"), ("P1", 2, "BOX"), ("P1", 2, "BOX"), ("P1", 4, "EA")],
        "po string, line int, unit string",
    )
    df = lines(line("P1", 1), line("P1", 2), line("P1", 3), line("P1", 4, uom=None))
    df = df.withColumn("_flags", F.array(F.lit("earlier")))
    outcome = run(
        df,
        rule(
            "unit_differs",
            "cross_check",
            "flag",
            flag="uom_differs_from_order",
            ref_table="silver.orders",
            keys={"po_number": "po", "po_line": "line"},
            expr="uom <> ref_unit",
        ),
        refs={"silver.orders": orders},
    )
    # P1/1 agrees, P1/3 has no partner, P1/4's unit is NULL so the check says nothing
    assert flags_of(outcome) == {
        ("P1", 1): ["earlier"],
        ("P1", 2): ["earlier", "uom_differs_from_order"],
        ("P1", 3): ["earlier"],
        ("P1", 4): ["earlier"],
    }
    assert outcome.kept.columns == [*df.columns, "_dq_warnings"]
    result = result_of(outcome, "unit_differs")
    assert (result.rows_checked, result.rows_failed) == (4, 1)
    assert "po_number='P1', po_line=2 disagrees with its partner in silver.orders" in result.message


def test_when_the_cross_check_reference_is_missing_then_it_reports_and_flags_nothing(
    spark: SparkSession, lines: Callable[..., DataFrame], run: Run
) -> None:
    check = rule(
        "unit_differs",
        "cross_check",
        "flag",
        ref_table="silver.orders",
        keys={"po_number": "po"},
        expr="uom <> ref_unit",
    )
    outcome = run(lines(line("P1", 1)), check)
    assert outcome.kept.count() == 1 and "_flags" not in outcome.kept.columns
    assert "not checked: reference table silver.orders was not supplied" in (
        result_of(outcome, "unit_differs").message
    )
    orders = spark.createDataFrame([("P1", "EA")], "po string, uom string")
    with pytest.raises(
        ConfigError, match=r"rule 'unit_differs': silver.orders has no column 'unit'"
    ):
        run(lines(line("P1", 1)), check, refs={"silver.orders": orders})


def test_when_a_flag_is_given_without_the_flag_action_then_the_file_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text(
        "table: silver.orders\nrules:\n"
        "  - {id: qty_outlier, check: anomaly, column: qty, threshold: 5, action: warn,"
        " flag: odd}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_rules(path)
    assert str(path) in str(err.value)
    assert "flag 'odd' is given, so action must be 'flag'" in str(err.value)


def test_when_a_referential_rule_names_same_columns_then_a_code_of_another_plant_fails(
    spark: SparkSession, lines: Callable[..., DataFrame], run: Run
) -> None:
    suppliers = spark.createDataFrame(
        [("P1", "S1"), ("P2", "S2"), ("P2", "S2")], "plant_id string, supplier_id string"
    )
    df = lines(
        line("A", 1, supplier="S1"), line("A", 2, supplier="S2"), line("B", 1, supplier="S2")
    )
    df = df.withColumn("plant_id", F.when(F.col("po_number") == "A", "P1").otherwise("P2"))
    known = {**SUPPLIER_KNOWN, "same": ["plant_id"]}
    outcome = run(df, known, refs={"silver.suppliers": suppliers})
    # S2 exists, but at plant P2 only: plant P1's S2 is unknown there
    assert warnings_of(outcome) == {("A", 1): [], ("A", 2): ["supplier_known"], ("B", 1): []}
    assert result_of(outcome, "supplier_known").message.endswith(
        "group_supplier_id='S2', plant_id='P1' is not in silver.suppliers.supplier_id of the "
        "same plant_id"
    )
    with pytest.raises(ConfigError, match=r"silver\.suppliers has no column 'plant_id'"):
        run(df, known, refs={"silver.suppliers": suppliers.drop("plant_id")})
