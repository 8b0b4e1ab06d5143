"""Access policies: the plan per role and column class, row filters, shared tables, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from medlake.cli.governance import add_views_cli as views_cli
from medlake.config import DEFAULT_CONF_DIR, ConfigError
from medlake.entities import full_registry
from medlake.governance.access import (
    AccessDenied,
    AccessPolicy,
    Role,
    UnknownRoleError,
    load_access,
    load_plants,
)
from medlake.governance.classes import load_classes
from medlake.governance.read import apply_plan
from medlake.governance.views import render_views
from medlake.sources import PlantInfo
from medlake.tables import ColumnSpec, Registry, TableSpec

CONF = DEFAULT_CONF_DIR
ROLES = [
    "group_analyst",
    "analyst_cn",
    "analyst_eu",
    "analyst_us",
    "quality_engineer",
    "data_steward",
    "auditor",
]
PII = [
    "pii.person_name",
    "pii.phone",
    "pii.email",
    "pii.national_id",
    "pii.address",
    "pii.birth_date",
    "pii.postcode",
    "pii.bank_account",
]
C, M, D = "clear", "masked", "denied"
# The configured matrix, written out by hand (the reviewable statement of the policy).
MATRIX: dict[str, dict[str, str]] = {
    "group_analyst": {
        "public": C, "internal": C, "confidential": C, "restricted": D, "free_text": C,
        **dict.fromkeys(PII, M),
    },
    **{
        role: {
            "public": C, "internal": C, "confidential": D, "restricted": D, "free_text": M,
            **dict.fromkeys(PII, D),
        }
        for role in ("analyst_cn", "analyst_eu", "analyst_us")
    },
    "quality_engineer": {
        "public": C, "internal": C, "confidential": M, "restricted": D, "free_text": C,
        "pii.person_name": C, "pii.phone": C, "pii.email": C, "pii.address": C,
        "pii.birth_date": C, "pii.postcode": M, "pii.national_id": M, "pii.bank_account": M,
    },
    "data_steward": {
        "public": C, "internal": C, "confidential": C, "restricted": D, "free_text": C,
        **dict.fromkeys(PII, C),
    },
    "auditor": {
        "public": C, "internal": C, "confidential": M, "restricted": D, "free_text": C,
        **dict.fromkeys(PII, M),
    },
}  # fmt: skip


def _plant(pid: str, country: str, region: str) -> PlantInfo:
    return PlantInfo(
        id=pid,
        name=pid,
        country=country,
        region=region,
        jurisdiction=country,
        timezone="UTC",
        currency="EUR",
    )


PLANTS = {
    "SZ": _plant("SZ", "CN", "APAC"),
    "SU": _plant("SU", "CN", "APAC"),
    "PN": _plant("PN", "MY", "APAC"),
    "GW": _plant("GW", "IE", "EMEA"),
    "TU": _plant("TU", "DE", "EMEA"),
    "MN": _plant("MN", "US", "AMER"),
}


def _col(name: str, type_: str, classification: str) -> ColumnSpec:
    return ColumnSpec(name=name, type=type_, description=name, classification=classification)


def _column_name(classification: str) -> str:
    return "c_" + classification.replace(".", "_")


def _table(name: str, columns: list[ColumnSpec], *, plant: bool = True) -> TableSpec:
    cols = [_col("plant_id", "string", "public")] if plant else []
    return TableSpec(
        name=name,
        layer="gold" if name.startswith("gold.") else "silver",
        description="test table",
        owner="test",
        columns=cols + columns,
    )


@pytest.fixture(scope="module")
def policy() -> AccessPolicy:
    return load_access(CONF)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return full_registry(CONF)


@pytest.fixture(scope="module")
def conf_plants() -> dict[str, PlantInfo]:
    return load_plants(CONF)


@pytest.fixture(scope="module")
def classes() -> list[str]:
    return sorted(load_classes(CONF).classes)


@pytest.fixture(scope="module")
def every_class(classes: list[str]) -> TableSpec:
    """One string column per declared class, plus plant_id."""
    return _table("silver.every_class", [_col(_column_name(c), "string", c) for c in classes])


def test_the_shipped_policy_loads_and_names_only_registered_tables_and_plants(
    policy: AccessPolicy, registry: Registry, conf_plants: dict[str, PlantInfo]
) -> None:
    policy.check(registry, conf_plants)
    assert sorted(policy.roles) == sorted(ROLES)


def test_the_matrix_covers_every_declared_class(classes: list[str]) -> None:
    for role, levels in MATRIX.items():
        assert sorted(levels) == classes, role


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_its_level_per_column_class(
    policy: AccessPolicy, every_class: TableSpec, classes: list[str], role: str
) -> None:
    plan = policy.plan(role, every_class, PLANTS)
    expected = {_column_name(c): MATRIX[role][c] for c in classes}
    assert set(plan.denied) == {col for col, lvl in expected.items() if lvl == D}
    assert set(plan.masked) == {col for col, lvl in expected.items() if lvl == M}
    assert plan.columns == ("plant_id", *(col for col, lvl in expected.items() if lvl != D))
    by_column = dict(zip(plan.columns, plan.select_sql, strict=True))
    for col in plan.columns:
        if col in plan.masked:
            assert by_column[col] == f"'<masked>' AS `{col}`"
        else:
            assert by_column[col] == f"`{col}`"


def test_masked_values_keep_the_column_type(policy: AccessPolicy) -> None:
    table = _table(
        "silver.typed",
        [
            _col("price", "decimal(18,6)", "confidential"),
            _col("born", "date", "confidential"),
            _col("tags", "array<string>", "confidential"),
            _col("raw", "map<string,string>", "confidential"),
            _col("n", "int", "confidential"),
            _col("note", "string", "confidential"),
        ],
    )
    plan = policy.plan("auditor", table, PLANTS)
    assert plan.select_sql[1:] == (
        "CAST(NULL AS DECIMAL(18,6)) AS `price`",
        "CAST(NULL AS DATE) AS `born`",
        "CAST(NULL AS ARRAY<STRING>) AS `tags`",
        "CAST(NULL AS MAP<STRING,STRING>) AS `raw`",
        "CAST(NULL AS INT) AS `n`",
        "'<masked>' AS `note`",
    )


def test_a_class_the_role_does_not_list_is_denied(tmp_path: Path) -> None:
    conf = _conf(tmp_path, {"roles": {"narrow": _role(columns={"public": "clear"})}})
    policy = load_access(conf)
    table = _table("silver.t", [_col("a", "string", "internal"), _col("b", "int", "free_text")])
    plan = policy.plan("narrow", table, PLANTS)
    assert plan.columns == ("plant_id",)
    assert plan.denied == ("a", "b")


@pytest.mark.parametrize(
    ("role", "where"),
    [
        ("analyst_cn", "`plant_id` IN ('SU', 'SZ')"),
        ("analyst_eu", "`plant_id` IN ('GW', 'TU')"),
        ("analyst_us", "`plant_id` IN ('MN')"),
        ("group_analyst", None),
        ("quality_engineer", None),
        ("data_steward", None),
        ("auditor", None),
    ],
)
def test_regional_roles_read_only_their_plants_rows(
    policy: AccessPolicy,
    every_class: TableSpec,
    conf_plants: dict[str, PlantInfo],
    role: str,
    where: str | None,
) -> None:
    assert policy.plan(role, every_class, conf_plants).where_sql == where


def test_row_filters_by_region_and_plant_are_a_union(tmp_path: Path) -> None:
    conf = _conf(
        tmp_path,
        {
            "roles": {
                "apac": _role(rows={"regions": ["APAC"]}),
                "mixed": _role(rows={"plants": ["MN"], "countries": ["DE"]}),
                "nowhere": _role(rows={"countries": ["BR"]}),
            }
        },
    )
    policy = load_access(conf)
    table = _table("silver.t", [_col("a", "string", "public")])
    assert policy.plan("apac", table, PLANTS).where_sql == "`plant_id` IN ('PN', 'SU', 'SZ')"
    assert policy.plan("mixed", table, PLANTS).where_sql == "`plant_id` IN ('MN', 'TU')"
    assert policy.plan("nowhere", table, PLANTS).where_sql == "FALSE"


def test_a_table_without_plant_id_is_refused_to_regional_roles_unless_shared(
    policy: AccessPolicy,
) -> None:
    reference = _table("gold.calendar", [_col("day", "date", "public")], plant=False)
    with pytest.raises(AccessDenied, match=r"no plant_id or scope_plants column.*shared_tables"):
        policy.plan("analyst_cn", reference, PLANTS)
    assert policy.plan("group_analyst", reference, PLANTS).where_sql is None
    shared = AccessPolicy(policy.roles, ["gold.calendar"])
    plan = shared.plan("analyst_cn", reference, PLANTS)
    assert plan.where_sql is None
    assert plan.columns == ("day",)


def test_a_group_level_row_is_read_only_by_roles_that_may_read_every_plant_it_was_computed_over(
    policy: AccessPolicy, spark: SparkSession
) -> None:
    mart = _table(
        "gold.mart",
        [_col("scope_plants", "array<string>", "public"), _col("v", "int", "internal")],
        plant=False,
    )
    rows = [(["SU", "SZ"], 1), (["SZ"], 2), (["SU", "SZ", "PN"], 3), ([], 4), (["MN"], 5)]
    df = spark.createDataFrame(rows, "scope_plants array<string>, v int")

    def seen(role: str) -> list[int]:
        return sorted(r["v"] for r in apply_plan(policy.plan(role, mart, PLANTS), df).collect())

    assert seen("analyst_cn") == [1, 2]  # never the row that also counts Penang
    assert seen("analyst_us") == [5]
    assert seen("analyst_eu") == []
    assert seen("group_analyst") == [1, 2, 3, 4, 5]


def test_marts_are_recomputed_over_each_distinct_plant_set_a_regional_role_reads(
    tmp_path: Path,
) -> None:
    conf = _conf(
        tmp_path,
        {
            "roles": {
                "all": _role(),
                "cn": _role(rows={"countries": ["CN"]}),
                "cn_again": _role(rows={"plants": ["SU", "SZ"]}),
                "apac": _role(rows={"regions": ["APAC"]}),
                "nowhere": _role(rows={"countries": ["BR"]}),
            }
        },
    )
    assert load_access(conf).row_scopes(PLANTS) == {
        "group": ("GW", "MN", "PN", "SU", "SZ", "TU"),
        "SU+SZ": ("SU", "SZ"),
        "PN+SU+SZ": ("PN", "SU", "SZ"),
    }


def test_fx_rates_are_shared_reference_data(
    policy: AccessPolicy, registry: Registry, conf_plants: dict[str, PlantInfo]
) -> None:
    fx = registry.get("silver.fx_rates")
    assert policy.plan("analyst_us", fx, conf_plants).where_sql is None
    customers = registry.get("silver.customers")
    assert policy.plan("analyst_us", customers, conf_plants).where_sql == "`plant_id` IN ('MN')"


@pytest.mark.parametrize(
    ("role", "table", "allowed"),
    [
        ("group_analyst", "silver.complaints", True),
        ("group_analyst", "silver.complaints__quarantine", False),
        ("analyst_cn", "silver.customers", True),
        ("analyst_cn", "_audit", False),
        ("quality_engineer", "_audit", False),
        ("data_steward", "_audit", True),
        ("data_steward", "silver.customers__quarantine", True),
        ("auditor", "_audit", True),
        ("auditor", "_lineage", True),
        ("auditor", "silver.customers__quarantine", True),
        ("data_steward", "_vault_cn", False),
        ("data_steward", "_vault_erasures", False),
        ("data_steward", "_bronze_quarantine", False),
        ("data_steward", "bronze.erp__customers", False),
    ],
)
def test_tables_each_role_may_read(
    policy: AccessPolicy,
    registry: Registry,
    conf_plants: dict[str, PlantInfo],
    role: str,
    table: str,
    allowed: bool,
) -> None:
    spec = registry.get(table)
    if allowed:
        policy.plan(role, spec, conf_plants)
    else:
        with pytest.raises(AccessDenied, match=table.replace(".", r"\.")):
            policy.plan(role, spec, conf_plants)


def test_vaults_are_never_readable_whatever_a_role_grants(registry: Registry) -> None:
    spec = registry.get("_vault_eu")
    everything = AccessPolicy(
        {"all": _role_model(tables={"read": ["_*", "silver.*"]})}, source="test"
    )
    with pytest.raises(AccessDenied, match=r"never readable.*re-identification"):
        everything.plan("all", spec, PLANTS)


def test_unknown_role_lists_the_roles(policy: AccessPolicy, every_class: TableSpec) -> None:
    with pytest.raises(
        UnknownRoleError, match=r"unknown role 'analyst_de'.*analyst_cn, analyst_eu"
    ):
        policy.plan("analyst_de", every_class, PLANTS)


def test_permissions(policy: AccessPolicy) -> None:
    assert policy.may("data_steward", "reidentify")
    assert policy.may("data_steward", "erase")
    assert policy.may("quality_engineer", "reidentify")
    assert not policy.may("quality_engineer", "erase")
    for role in ("group_analyst", "analyst_cn", "analyst_eu", "analyst_us", "auditor"):
        assert not policy.may(role, "reidentify")
        assert not policy.may(role, "erase")
    with pytest.raises(ValueError, match="unknown permission 'delete'"):
        policy.may("data_steward", "delete")
    with pytest.raises(AccessDenied, match="may not erase; roles that may: data_steward"):
        policy.require("quality_engineer", "erase")


def test_readable_lists_what_plan_allows(
    policy: AccessPolicy, registry: Registry, conf_plants: dict[str, PlantInfo]
) -> None:
    readable = policy.readable("analyst_cn", registry, conf_plants)
    assert "silver.complaints" in readable
    assert not [t for t in readable if t.startswith(("_", "bronze.")) or "__quarantine" in t]


# ----------------------------------------------------------------------- bad files


def _role(**overrides: object) -> dict[str, object]:
    role: dict[str, object] = {
        "description": "test role",
        "tables": {"read": ["silver.*"]},
        "columns": {"public": "clear"},
        "rows": "all",
    }
    role.update(overrides)
    return role


def _role_model(**overrides: object) -> Role:
    return Role.model_validate(_role(**overrides))


def _conf(tmp_path: Path, access: dict[str, object] | str) -> Path:
    conf = tmp_path / "conf"
    (conf / "governance").mkdir(parents=True, exist_ok=True)
    shutil.copy(CONF / "governance" / "classes.yaml", conf / "governance" / "classes.yaml")
    text = access if isinstance(access, str) else yaml.safe_dump(access, sort_keys=False)
    (conf / "governance" / "access.yaml").write_text(text, encoding="utf-8")
    return conf


@pytest.mark.parametrize(
    ("access", "message"),
    [
        (
            {"roles": {"a": _role(columns={"pii.mail": "clear"})}},
            r"field 'roles\.a\.columns\.pii\.mail': unknown column class; did you mean 'pii\.email'",
        ),
        (
            {"roles": {"a": _role(columns={"public": "visible"})}},
            r"field 'roles\.a\.columns\.public': Input should be 'clear', 'masked' or 'denied'",
        ),
        (
            {"roles": {"a": {**_role(), "colums": {}}}},
            r"field 'roles\.a\.colums': Extra inputs are not permitted",
        ),
        (
            {"roles": {"a": _role(rows={})}},
            r"roles\.a\.rows.*name countries, regions or plants",
        ),
        (
            {"roles": {"a": _role(rows={"countries": ["China"]})}},
            r"roles\.a\.rows.*countries.*ISO country codes",
        ),
        (
            {"roles": {"a": _role(tables={"read": ["silver.*", "bronze.*"]})}},
            r"field 'roles\.a\.tables\.read'.*'bronze\.\*' can never be granted",
        ),
        (
            {"roles": {"a": _role(tables={"read": ["_vault_cn"]})}},
            r"'_vault_cn' can never be granted: vaults hold clear personal values",
        ),
        (
            {"roles": {"a": _role(permissions=["delete"])}},
            r"field 'roles\.a\.permissions\.0': Input should be 'reidentify', 'erase' or 'read_audit'",
        ),
        (
            {"roles": {"Analyst CN": _role()}},
            r"field 'roles': .*lower_snake_case",
        ),
        (
            {"roles": {"a": {k: v for k, v in _role().items() if k != "description"}}},
            r"field 'roles\.a\.description': Field required",
        ),
        (
            {"shared_tables": ["silver.*"], "roles": {"a": _role()}},
            r"field 'shared_tables'.*exact name",
        ),
        ("roles:\n  a: [unclosed\n", r"line \d+, column \d+: invalid YAML"),
    ],
)
def test_bad_access_files_say_which_file_and_field(
    tmp_path: Path, access: dict[str, object] | str, message: str
) -> None:
    conf = _conf(tmp_path, access)
    with pytest.raises(ConfigError, match=message) as info:
        load_access(conf)
    assert str(conf / "governance" / "access.yaml") in str(info.value)


def test_missing_access_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"access\.yaml: file not found"):
        load_access(tmp_path)


def test_check_names_unregistered_tables_and_unknown_plants(
    tmp_path: Path, registry: Registry, conf_plants: dict[str, PlantInfo]
) -> None:
    conf = _conf(
        tmp_path,
        {
            "shared_tables": ["silver.fx_rate"],
            "roles": {
                "a": _role(tables={"read": ["silver.complaint"]}, rows={"plants": ["XX"]}),
                "b": _role(rows={"regions": ["EMAE"]}),
            },
        },
    )
    with pytest.raises(ConfigError) as info:
        load_access(conf).check(registry, conf_plants)
    text = str(info.value)
    assert (
        "shared_tables: silver.fx_rate is not a registered table (did you mean silver.fx_rates?)"
        in text
    )
    assert "roles.a.tables.read: silver.complaint is not a registered table" in text
    assert "roles.a.rows.plants: XX is not a configured plant" in text
    assert "roles.b.rows.regions: no plant is in region EMAE" in text


# ----------------------------------------------------------------------- SQL views


def test_views_of_a_regional_role_carry_its_columns_and_rows(
    policy: AccessPolicy, registry: Registry, conf_plants: dict[str, PlantInfo]
) -> None:
    script = render_views(policy, registry, conf_plants, "analyst_cn")
    assert "CREATE SCHEMA IF NOT EXISTS analyst_cn;" in script
    complaints = next(
        s for s in script.split("\n\n") if "VIEW analyst_cn.silver_complaints AS" in s
    )
    assert complaints.startswith("-- silver.complaints (masked: narrative)\n")
    assert (
        "CREATE OR REPLACE VIEW analyst_cn.silver_complaints AS\nSELECT\n  `plant_id`,"
        in complaints
    )
    assert "\n  '<masked>' AS `narrative`,\n" in complaints
    assert complaints.endswith("FROM silver.complaints\nWHERE `plant_id` IN ('SU', 'SZ');")
    customers = next(s for s in script.split("\n\n") if "silver_customers AS" in s)
    assert "left out: contact_name, contact_phone, contact_email" in customers
    assert "contact_name`" not in customers.split("\n", 1)[1]
    fx = next(s for s in script.split("\n\n") if "silver_fx_rates AS" in s)
    assert "WHERE" not in fx  # shared reference data
    views = script.split("CREATE SCHEMA", 1)[1]
    assert "_audit" not in views and "__quarantine" not in views and "bronze" not in views


def test_views_cli_writes_one_script_per_role(tmp_path: Path) -> None:
    import argparse

    from medlake.config import load_settings

    parser = argparse.ArgumentParser()
    views_cli(parser.add_subparsers(dest="governance_command"))
    args = parser.parse_args(["views", "--out", str(tmp_path / "views")])
    assert args.func(args, load_settings("test")) == 0
    written = sorted(p.name for p in (tmp_path / "views").glob("*.sql"))
    assert written == sorted(f"{role}.sql" for role in ROLES)
    steward = (tmp_path / "views" / "data_steward.sql").read_text()
    assert "CREATE OR REPLACE VIEW data_steward._audit AS" in steward
    assert "_vault" not in steward.split("\n\n", 1)[1]
    args = parser.parse_args(["views", "--role", "nobody", "--out", str(tmp_path / "x")])
    with pytest.raises(UnknownRoleError, match="unknown role 'nobody'"):
        args.func(args, load_settings("test"))
    assert not (tmp_path / "x").exists()
