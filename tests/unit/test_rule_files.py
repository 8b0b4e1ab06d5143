"""The packaged rule files: one per silver entity, every rule checkable against the entity's
table, and docs/quality-rules.md generated from them and current."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medlake.config import DEFAULT_CONF_DIR, ConfigError
from medlake.entities import full_registry, load_specs
from medlake.silver import rulebook
from medlake.silver.quality import REFERENCING, RuleSet, evaluate, load_rule_dir
from tests import REPO

SPECS = load_specs(DEFAULT_CONF_DIR / "silver")
RULES = load_rule_dir(DEFAULT_CONF_DIR / "quality")
REGISTRY = full_registry(DEFAULT_CONF_DIR)


def test_every_silver_entity_has_one_rule_file_and_every_file_an_entity() -> None:
    assert sorted(RULES) == sorted(spec.table for spec in SPECS.values())
    for spec in SPECS.values():
        assert RULES[spec.table].source == DEFAULT_CONF_DIR / "quality" / f"{spec.entity}.yaml"


def test_every_entity_has_a_key_rule_and_a_row_rule() -> None:
    for table, rules in RULES.items():
        checks = [r.check for r in rules.rules]
        assert "unique" in checks, table
        assert set(checks) - {"unique", "freshness", "volume"}, f"{table} has no row rule"


def test_every_rule_checks_columns_the_tables_have(spark: SparkSession) -> None:
    """Evaluating every rule set on an empty frame of its table checks each column, each
    reference and that each expression is valid, boolean Spark SQL there."""
    empty = {t.name: spark.createDataFrame([], t.spark_schema) for t in REGISTRY}
    for table, rules in RULES.items():
        refs = {r.ref_table: empty[r.ref_table] for r in rules.rules if isinstance(r, REFERENCING)}
        frame = empty[table].drop("_dq_warnings")  # what the build checks: before the rules
        with evaluate(frame, rules, logical_date=dt.date(2026, 1, 1), refs=refs) as outcome:
            assert outcome.rows_in == 0, table


def _check_digit(first: str) -> str:
    """GS1 check digit, by the GS1 General Specifications: weights 3, 1, 3, … from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(first)))
    return str((10 - total % 10) % 10)


def test_the_gtin_rule_accepts_valid_check_digits_only(spark: SparkSession) -> None:
    gtin = next(r for r in RULES["silver.products"].rules if r.id == "gtin_valid")
    valid = ["400638133393" + _check_digit("400638133393")]  # GTIN-13
    valid.append("0691234510010" + _check_digit("0691234510010"))  # GTIN-14
    valid.append("9638507" + _check_digit("9638507"))  # GTIN-8
    wrong = [v[:-1] + str((int(v[-1]) + 1) % 10) for v in valid]
    wrong += ["12345", "ABCDEFGHIJKLM", None]
    frame = spark.createDataFrame([(v,) for v in valid + wrong], "gtin string")
    rules = RuleSet.model_validate({"table": "silver.products", "rules": [gtin]})
    with evaluate(frame, rules, logical_date=dt.date(2026, 1, 1)) as outcome:
        warned = {r.gtin for r in outcome.kept.collect() if r._dq_warnings}
    assert valid[0] == "4006381333931"  # the example GS1 publishes
    assert warned == set(wrong)


def test_docs_quality_rules_md_is_the_rendered_rule_files() -> None:
    current = (REPO / "docs" / "quality-rules.md").read_text(encoding="utf-8")
    assert current == rulebook.render(SPECS, RULES), "run `make docs` and commit"


def test_every_rule_and_every_entity_is_on_the_page() -> None:
    text = (REPO / "docs" / "quality-rules.md").read_text(encoding="utf-8")
    for spec in SPECS.values():
        section = text.split(f"### `{spec.table}`")[1].split("### ")[0]
        for rule in RULES[spec.table].rules:
            assert f"| `{rule.id}` | {rule.check} |" in section


@pytest.mark.parametrize("key", ["anomalies", "cross_checks"])
def test_anomalies_in_an_entity_spec_say_where_they_moved(tmp_path: Path, key: str) -> None:
    spec = (DEFAULT_CONF_DIR / "silver" / "purchase_orders.yaml").read_text(encoding="utf-8")
    (tmp_path / "purchase_orders.yaml").write_text(f"{spec}\n{key}: []\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_specs(tmp_path)
    assert "purchase_orders.yaml" in str(err.value)
    assert "declare each in conf/quality/<entity>.yaml" in str(err.value)
