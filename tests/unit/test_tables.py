"""The table registry: declarations validate at load; broken ones say file, table and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pyspark.sql import types as T

from medlake.config import DEFAULT_CONF_DIR, ConfigError
from medlake.tables import Registry, parse_type

BROKEN = Path(__file__).parent.parent / "fixtures" / "broken" / "tables"


def test_the_shipped_registry_loads_and_names_follow_the_layer_convention() -> None:
    registry = Registry.load(DEFAULT_CONF_DIR / "tables")
    assert {"_audit", "_lineage"} <= {t.name for t in registry}
    audit = registry.get("_audit")
    assert audit.path == "_system/_audit"
    assert audit.partition_by == ["event_date"]
    assert all(c.description for t in registry for c in t.columns)


def test_layer_paths_follow_the_table_name() -> None:
    registry = Registry.load(Path(__file__).parent.parent / "fixtures" / "tables")
    assert registry.get("silver.orders").path == "silver/orders"
    assert registry.get("bronze.erp__receipts").path == "bronze/erp__receipts"


def test_when_a_table_is_unknown_then_the_error_suggests_close_names() -> None:
    registry = Registry.load(DEFAULT_CONF_DIR / "tables")
    count = len(list(registry))
    with pytest.raises(
        KeyError, match=rf"unknown table .silver\.nope.; {count} tables are declared"
    ):
        registry.get("silver.nope")
    with pytest.raises(KeyError, match=r"did you mean silver\.supplier_xref[,?]"):
        registry.get("silver.supplier_xrefs")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("string", T.StringType()),
        ("BIGINT", T.LongType()),
        ("decimal(18, 4)", T.DecimalType(18, 4)),
        ("array<string>", T.ArrayType(T.StringType())),
        ("map<string,double>", T.MapType(T.StringType(), T.DoubleType())),
        ("timestamp", T.TimestampType()),
    ],
)
def test_parse_type_understands_the_declared_type_names(text: str, expected: T.DataType) -> None:
    assert parse_type(text) == expected


@pytest.mark.parametrize("text", ["money", "decimal(40,2)", "decimal(4,6)", "array<money>"])
def test_parse_type_rejects_unknown_or_impossible_types(text: str) -> None:
    with pytest.raises(ValueError, match=r"decimal|unknown type"):
        parse_type(text)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad_name", "does not follow silver.<entity>"),
        ("layer_mismatch", "does not follow silver.<entity> for layer silver"),
        ("unknown_partition", "partition_by names unknown columns: plant"),
        ("unknown_type", "field 'tables.0.columns.1.type': Value error, unknown type 'money'"),
        ("duplicate_column", "duplicate columns: id"),
        ("bad_classification", "field 'tables.0.columns.1.classification'"),
        ("timestamp_partition", "partition column 'loaded_at' has type timestamp"),
        ("hidden_partition", "partition column '_delivery_date' starts with '_'"),
        ("sequence_without_keys", "sequence_column needs business_keys"),
        ("missing_owner", "field 'tables.0.owner': Field required"),
    ],
)
def test_when_a_table_declaration_is_broken_then_loading_names_file_and_problem(
    tmp_path: Path, case: str, expected: str
) -> None:
    folder = tmp_path / "tables"
    folder.mkdir()
    shutil.copy(BROKEN / f"{case}.yaml", folder / f"{case}.yaml")
    with pytest.raises(ConfigError) as err:
        Registry.load(folder)
    assert f"{case}.yaml" in str(err.value)
    assert expected in str(err.value)


def test_when_a_table_is_declared_in_two_files_then_both_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "tables"
    folder.mkdir()
    shutil.copy(DEFAULT_CONF_DIR / "tables" / "system.yaml", folder / "a.yaml")
    shutil.copy(DEFAULT_CONF_DIR / "tables" / "system.yaml", folder / "b.yaml")
    with pytest.raises(
        ConfigError, match=r"b\.yaml: table '_audit' is already declared in .*a\.yaml"
    ):
        Registry.load(folder)


def test_when_the_folder_is_empty_then_it_says_no_declarations(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no table declarations"):
        Registry.load(tmp_path)
