"""Governed reads on real Spark + Delta: the access matrix per role, SQL, views and the audit."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from pyspark.errors import AnalysisException
from pyspark.sql import Row, SparkSession

from medlake.cli.governance import add_read_cli as add_cli
from medlake.config import DEFAULT_CONF_DIR, Settings
from medlake.entities import full_registry
from medlake.governance.access import AccessDenied, load_access, load_plants
from medlake.governance.audit import AuditTrail
from medlake.governance.identity import AuthError
from medlake.governance.read import Lakehouse, QueryError
from medlake.governance.views import render_views, view_statements
from medlake.io import CommitContext, TableIO
from medlake.tables import Registry
from tests.conftest import make_settings
from tests.identities import Identities, as_role

CONF = DEFAULT_CONF_DIR
ALL = {"SZ", "SU", "PN", "GW", "TU", "MN"}
# Which plants each role sees, by hand from medlake/conf/sources (country) and access.yaml (rows).
PLANTS_SEEN = {
    "group_analyst": ALL,
    "analyst_cn": {"SZ", "SU"},
    "analyst_eu": {"GW", "TU"},
    "analyst_us": {"MN"},
    "quality_engineer": ALL,
    "data_steward": ALL,
    "auditor": ALL,
}
CONTACT = ("contact_name", "contact_phone", "contact_email")
# How each role sees the contact columns (pii.*) and the complaint narrative (free_text).
CONTACTS_AS = {
    "group_analyst": "masked",
    "analyst_cn": "denied",
    "analyst_eu": "denied",
    "analyst_us": "denied",
    "quality_engineer": "clear",
    "data_steward": "clear",
    "auditor": "masked",
}
NARRATIVE_AS = {
    "group_analyst": "clear",
    "analyst_cn": "masked",
    "analyst_eu": "masked",
    "analyst_us": "masked",
    "quality_engineer": "clear",
    "data_steward": "clear",
    "auditor": "clear",
}
COUNTRY = {"SZ": "cn", "SU": "cn", "PN": "my", "GW": "eu", "TU": "eu", "MN": "us"}
DAY = dt.date(2026, 3, 2)


@dataclass
class FakeTrail:
    """Collects the audit events the read path records."""

    events: list[Any] = field(default_factory=list)

    def record(self, events: list[Any]) -> None:
        self.events.extend(events)


@dataclass(frozen=True)
class Lake:
    settings: Settings
    registry: Registry
    io: TableIO
    customers: list[dict[str, Any]]
    complaints: list[dict[str, Any]]
    fx: list[dict[str, Any]]


def _lineage(plant: str, i: int) -> dict[str, Any]:
    return {
        "_seq": 1,
        "_flags": [],
        "_dq_warnings": [],
        "_delivery_date": DAY,
        "_source_file": f"{plant}/2026-03-02/x.csv",
        "_file_row": i,
        "_run_id": "test-run",
    }


def _customers() -> list[dict[str, Any]]:
    rows = []
    for i, plant in enumerate(sorted(ALL)):
        j = COUNTRY[plant]
        rows.append(
            {
                "plant_id": plant,
                "customer_code": f"C{i}",
                "customer_name": f"Hospital {plant}",
                "customer_type": "HOSPITAL",
                "customer_type_local": "Hospital",
                "country": plant,
                "contact_name": f"PERSON_{j}_{i:016x}",
                "contact_phone": f"PHONE_NUMBER_{j}_{i:016x}",
                "contact_email": f"EMAIL_ADDRESS_{j}_{i:016x}",
                "updated_at": dt.datetime(2026, 3, 1, 8, 0),
                "updated_at_local_date": dt.date(2026, 3, 1),
                **_lineage(plant, i),
            }
        )
    return rows


def _complaints() -> list[dict[str, Any]]:
    rows = []
    for i, plant in enumerate(sorted(ALL)):
        for k in range(2):
            rows.append(
                {
                    "plant_id": plant,
                    "partition_month": "2026-03",
                    "complaint_id": f"Q-{plant}-{k}",
                    "received_date": dt.date(2026, 3, 1 + k),
                    "customer_code": f"C{i}",
                    "product_code": "P1",
                    "product_group_id": "M-1",
                    "udi": None,
                    "lot": f"L{k}",
                    "serial": None,
                    "fault_code": "LEAK" if k else "NOISE",
                    "fault_code_local": "x",
                    "narrative": f"Caller PERSON_{COUNTRY[plant]}_{i:016x} reports a leak",
                    "patient_involved": bool(k),
                    **_lineage(plant, 10 + k),
                }
            )
    return rows


def _fx() -> list[dict[str, Any]]:
    return [
        {
            "plant_id": plant,
            "partition_month": "2026-03",
            "rate_date": DAY,
            "from_currency": "EUR",
            "to_currency": currency,
            "rate": rate,
            **_lineage(plant, 1),
        }
        for plant, currency, rate in [
            ("SZ", "CNY", "7.812300"),
            ("GW", "EUR", "1.000000"),
            ("MN", "USD", "1.081200"),
        ]
    ]


@pytest.fixture(scope="module")
def lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """silver.customers, silver.complaints and silver.fx_rates, hand-made, in a fresh lake."""
    from decimal import Decimal

    settings = make_settings(tmp_path_factory.mktemp("governed") / "lake")
    registry = full_registry(CONF)
    io = TableIO(spark, settings, registry)
    ctx = CommitContext(job="test_governed_read", run_id="test-run")
    data = {
        "silver.customers": _customers(),
        "silver.complaints": _complaints(),
        "silver.fx_rates": [{**r, "rate": Decimal(r["rate"])} for r in _fx()],
    }
    for name, rows in data.items():
        schema = registry.get(name).spark_schema
        frame = spark.createDataFrame([Row(**r) for r in rows], schema)
        io.append(name, frame.select(*schema.fieldNames()), ctx=ctx)
    return Lake(
        settings,
        registry,
        io,
        data["silver.customers"],
        data["silver.complaints"],
        data["silver.fx_rates"],
    )


def _open(lake: Lake, spark: SparkSession, role: str, trail: FakeTrail | None = None) -> Lakehouse:
    return Lakehouse(
        who=as_role(role, "tester"),
        settings=lake.settings,
        spark=spark,
        registry=lake.registry,
        policy=load_access(CONF),
        plants=load_plants(CONF),
        purpose="integration test",
        trail=trail or FakeTrail(),
    )


def _key(row: Row | dict[str, Any]) -> str:
    return repr(sorted((row if isinstance(row, dict) else row.asDict()).items()))


@pytest.mark.parametrize("role", sorted(PLANTS_SEEN))
def test_access_matrix(lake: Lake, spark: SparkSession, role: str) -> None:
    lh = _open(lake, spark, role)
    seen = PLANTS_SEEN[role]

    customers = lh.table("silver.customers")
    rows = customers.collect()
    assert {r.plant_id for r in rows} == seen
    assert len(rows) == len([c for c in lake.customers if c["plant_id"] in seen])
    level = CONTACTS_AS[role]
    if level == "denied":
        assert not set(CONTACT) & set(customers.columns)
    else:
        assert customers.columns == [c.name for c in lake.registry.get("silver.customers").columns]
    expected = {c["customer_code"]: c for c in lake.customers}
    for row in rows:
        raw = expected[row.customer_code]
        assert row.customer_name == raw["customer_name"]  # internal: clear for every role
        for col in CONTACT if level != "denied" else ():
            assert row[col] == (raw[col] if level == "clear" else "<masked>")

    complaints = lh.table("silver.complaints").collect()
    assert {r.plant_id for r in complaints} == seen
    narratives = {c["complaint_id"]: c["narrative"] for c in lake.complaints}
    for row in complaints:
        clear = NARRATIVE_AS[role] == "clear"
        assert row.narrative == (narratives[row.complaint_id] if clear else "<masked>")

    # exchange rates are shared reference data: every role reads every plant's rates
    fx = lh.table("silver.fx_rates").collect()
    assert {(r.plant_id, r.to_currency) for r in fx} == {
        ("SZ", "CNY"),
        ("GW", "EUR"),
        ("MN", "USD"),
    }


def test_a_regional_analyst_never_sees_another_regions_rows(
    lake: Lake, spark: SparkSession
) -> None:
    lh = _open(lake, spark, "analyst_eu")
    got = lh.table("silver.complaints").select("complaint_id").collect()
    assert sorted(r.complaint_id for r in got) == ["Q-GW-0", "Q-GW-1", "Q-TU-0", "Q-TU-1"]
    # not even by naming another plant explicitly
    assert lh.sql("SELECT * FROM silver.complaints WHERE plant_id = 'SZ'").count() == 0


def test_sql_joins_obey_the_same_policies(lake: Lake, spark: SparkSession) -> None:
    query = """
        SELECT c.complaint_id, k.customer_name, c.narrative
        FROM silver.complaints AS c
        JOIN `silver`.`customers` k ON k.plant_id = c.plant_id AND k.customer_code = c.customer_code
        WHERE c.fault_code = 'LEAK' -- a comment naming silver.customers stays a comment
        ORDER BY 1
    """
    cn = _open(lake, spark, "analyst_cn").sql(query).collect()
    assert [(r.complaint_id, r.customer_name, r.narrative) for r in cn] == [
        ("Q-SU-1", "Hospital SU", "<masked>"),
        ("Q-SZ-1", "Hospital SZ", "<masked>"),
    ]
    group = _open(lake, spark, "group_analyst").sql(query).collect()
    assert [r.complaint_id for r in group] == [f"Q-{p}-1" for p in sorted(ALL)]
    # a denied column does not exist for the role, in SQL as in table()
    with pytest.raises(AnalysisException, match="contact_name"):
        _open(lake, spark, "analyst_cn").sql("SELECT contact_name FROM silver.customers")
    masked = _open(lake, spark, "group_analyst").sql(
        "SELECT DISTINCT silver.customers.contact_name FROM silver.customers"
    )
    assert [r.contact_name for r in masked.collect()] == ["<masked>"]


def test_sql_with_subqueries_ctes_and_literals(lake: Lake, spark: SparkSession) -> None:
    lh = _open(lake, spark, "analyst_us")
    rows = lh.sql(
        """
        WITH leaks AS (SELECT * FROM silver.complaints WHERE fault_code = 'LEAK')
        SELECT complaint_id, 'silver.customers' AS label FROM leaks
        WHERE customer_code IN (SELECT customer_code FROM silver.customers)
        """
    ).collect()
    assert [(r.complaint_id, r.label) for r in rows] == [("Q-MN-1", "silver.customers")]


@pytest.mark.parametrize(
    ("role", "query", "error", "message"),
    [
        ("analyst_cn", "SELECT * FROM _audit", AccessDenied, "may not read _audit"),
        (
            "analyst_cn",
            "SELECT * FROM silver.complaints WHERE complaint_id IN "
            "(SELECT complaint_id FROM silver.complaints__quarantine)",
            AccessDenied,
            "may not read silver.complaints__quarantine",
        ),
        ("data_steward", "SELECT * FROM _vault_cn", AccessDenied, "never readable"),
        ("data_steward", "SELECT * FROM bronze.erp__customers", AccessDenied, "never readable"),
        (
            "analyst_cn",
            "SELECT * FROM silver.complaint",
            QueryError,
            "did you mean silver.complaints",
        ),
        ("analyst_cn", "SELECT * FROM parquet.`/tmp/x`", QueryError, "unknown table"),
        ("analyst_cn", "SET spark.sql.runSQLOnFiles=true", QueryError, "only SELECT"),
        ("analyst_cn", "DROP VIEW x", QueryError, "only SELECT"),
        ("analyst_cn", "INSERT INTO silver.complaints SELECT 1", QueryError, "writes"),
        ("analyst_cn", "SELECT reflect('java.lang.System', 'getenv')", QueryError, "reflect"),
        ("analyst_cn", "SELECT * FROM silver.complaints VERSION AS OF 0", QueryError, "version="),
        ("analyst_cn", "SELEC 1", QueryError, "does not parse"),
        # EXECUTE IMMEDIATE ran any statement unchecked before the plan allow-list
        ("analyst_cn", "EXECUTE IMMEDIATE 'SELECT * FROM _vault_cn'", QueryError, "EXECUTE"),
        (
            "analyst_cn",
            "EXECUTE IMMEDIATE 'SET spark.sql.runSQLOnFiles=true'",
            QueryError,
            "EXECUTE IMMEDIATE is not allowed",
        ),
        (
            "analyst_cn",
            "EXECUTE IMMEDIATE 'INSERT OVERWRITE DIRECTORY ''/tmp/x'' SELECT 1'",
            QueryError,
            "EXECUTE IMMEDIATE is not allowed",
        ),
        (
            "analyst_cn",
            "SELECT input_file_name() FROM silver.complaints",
            QueryError,
            "function input_file_name()",
        ),
        ("analyst_cn", "SELECT * FROM read_files('/etc/passwd')", QueryError, "table-valued"),
        (
            "analyst_cn",
            "SELECT * FROM silver.complaints WHERE "
            "java_method('java.lang.System', 'getenv', 'HOME') IS NOT NULL",
            QueryError,
            "function java_method()",
        ),
    ],
)
def test_sql_refuses_what_the_role_may_not_read_and_audits_the_refusal(
    lake: Lake, spark: SparkSession, role: str, query: str, error: type[Exception], message: str
) -> None:
    trail = FakeTrail()
    with pytest.raises(error, match=re.escape(message)):
        _open(lake, spark, role, trail).sql(query)
    (event,) = trail.events  # refused reads were not audited before
    assert (event.action, event.role, event.principal) == ("refused", role, "tester")
    assert event.purpose == "integration test" and event.row_count == 0
    assert message in event.details["reason"] and event.details["query"] == query


def test_execute_immediate_leaves_the_governed_session_as_it_was(
    lake: Lake, spark: SparkSession
) -> None:
    lh = _open(lake, spark, "analyst_cn")
    for statement in (
        "SET spark.sql.runSQLOnFiles=true",
        "CREATE TEMPORARY VIEW leak AS SELECT * FROM _vault_cn",
        "CREATE TEMPORARY VIEW keys USING text OPTIONS (path '/etc/hostname')",
    ):
        with pytest.raises(QueryError, match="EXECUTE IMMEDIATE is not allowed"):
            lh.fetch("EXECUTE IMMEDIATE '" + statement.replace("'", "''") + "'")
    assert lh.spark.conf.get("spark.sql.runSQLOnFiles") == "false"
    assert lh.spark.catalog.listTables() == []


def test_sql_cannot_reach_the_callers_temp_views(lake: Lake, spark: SparkSession) -> None:
    lake.io.read("silver.customers").createOrReplaceTempView("raw_customers")
    try:
        with pytest.raises(QueryError, match="unknown table 'raw_customers'"):
            _open(lake, spark, "analyst_cn").sql("SELECT * FROM raw_customers")
    finally:
        spark.catalog.dropTempView("raw_customers")


@pytest.mark.parametrize("role", ["analyst_cn", "group_analyst", "auditor"])
def test_generated_views_return_what_table_returns(
    lake: Lake, spark: SparkSession, role: str
) -> None:
    policy, plants = load_access(CONF), load_plants(CONF)
    script = render_views(policy, lake.registry, plants, role)
    lh = _open(lake, spark, role)
    for statement in view_statements(policy, lake.registry, plants, role):
        table = statement.plan.table
        if lake.io.version(table) is None:
            continue
        assert statement.sql in script
        # run the view's body with the raw table registered under a temp name
        raw = "raw__" + table.replace(".", "__")
        lake.io.read(table).createOrReplaceTempView(raw)
        body = statement.sql.split(" AS\n", 1)[1].rstrip(";")
        body = body.replace(f"FROM {table}", f"FROM {raw}")
        from_view = spark.sql(body)
        direct = lh.table(table)
        assert from_view.columns == direct.columns
        assert sorted(map(_key, from_view.collect())) == sorted(map(_key, direct.collect()))
        spark.catalog.dropTempView(raw)


def test_time_travel_reads_the_version_asked_for(lake: Lake, spark: SparkSession) -> None:
    trail = FakeTrail()
    lh = _open(lake, spark, "analyst_cn", trail)
    version = lake.io.version("silver.fx_rates")
    assert version is not None
    assert lh.table("silver.fx_rates", version=version).count() == 3
    assert trail.events[-1].table_version == version


def test_every_read_is_audited_once_per_table(lake: Lake, spark: SparkSession) -> None:
    trail = FakeTrail()
    lh = _open(lake, spark, "analyst_cn", trail)
    lh.table("silver.customers")
    (event,) = trail.events
    assert event.action == "read"
    assert event.table_name == "silver.customers"
    assert (event.principal, event.role, event.purpose) == (
        "tester",
        "analyst_cn",
        "integration test",
    )
    assert event.table_version == lake.io.version("silver.customers")
    assert event.row_filter == "`plant_id` IN ('SU', 'SZ')"
    assert "contact_name" not in event.columns and "customer_name" in event.columns
    assert event.row_count is None  # lazy DataFrame: nothing counted yet
    assert event.details["denied"] == list(CONTACT)

    trail.events.clear()
    query = (
        "SELECT * FROM silver.complaints c JOIN silver.customers k USING (plant_id, customer_code)"
        " JOIN silver.complaints d USING (plant_id, complaint_id)"
    )
    lh.sql(query)
    assert sorted(e.table_name for e in trail.events) == ["silver.complaints", "silver.customers"]
    assert {e.row_count for e in trail.events} == {None}
    assert {e.details["query"] for e in trail.events} == {query}

    trail.events.clear()
    result = lh.fetch("SELECT complaint_id FROM silver.complaints", limit=3)
    assert len(result.rows) == 3
    (event,) = trail.events
    assert event.row_count == 3


def test_tables_lists_what_the_role_may_read(lake: Lake, spark: SparkSession) -> None:
    tables = _open(lake, spark, "analyst_us").tables()
    assert "silver.complaints" in tables and "silver.fx_rates" in tables
    assert "_audit" not in tables and "silver.customers__quarantine" not in tables
    assert "_audit" in _open(lake, spark, "auditor").tables()


# ----------------------------------------------------------------------- the real audit trail


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse")
    add_cli(parser.add_subparsers(dest="command"))
    return parser


def test_query_cli_prints_rows_and_audits_the_count(
    lake: Lake,
    spark: SparkSession,
    capsys: pytest.CaptureFixture[str],
    identities: Identities,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    identities.sign_in(monkeypatch, "analyst_cn")
    args = _parser().parse_args(
        [
            "query",
            "SELECT complaint_id, narrative FROM silver.complaints ORDER BY 1",
            "--role",
            "analyst_cn",
            "--purpose",
            "KPI review",
            "--limit",
            "3",
            "--format",
            "json",
        ]
    )
    assert args.func(args, lake.settings) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {"complaint_id": "Q-SU-0", "narrative": "<masked>"},
        {"complaint_id": "Q-SU-1", "narrative": "<masked>"},
        {"complaint_id": "Q-SZ-0", "narrative": "<masked>"},
    ]
    audit = Lakehouse.open(who=as_role("auditor"), settings=lake.settings, spark=spark)
    events = (
        audit.table("_audit")
        .where("action = 'read' AND table_name = 'silver.complaints'")
        .collect()
    )
    assert [(e.row_count, e.principal, e.role, e.purpose) for e in events] == [
        (3, "analyst_cn", "analyst_cn", "KPI review")
    ]
    (event,) = events
    assert event.row_filter == "`plant_id` IN ('SU', 'SZ')"
    # the columns the role's view of the table offers (narrative masked, still present)
    assert event.columns == [c.name for c in lake.registry.get("silver.complaints").columns]
    assert json.loads(event.details)["result_columns"] == ["complaint_id", "narrative"]
    assert AuditTrail(lake.settings).verify().ok


def test_query_cli_exits_2_with_the_reason_when_denied(
    lake: Lake,
    capsys: pytest.CaptureFixture[str],
    identities: Identities,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    identities.sign_in(monkeypatch, "analyst_eu")
    args = _parser().parse_args(["query", "SELECT * FROM _audit", "--role", "analyst_eu"])
    assert args.func(args, lake.settings) == 2
    assert "role 'analyst_eu' may not read _audit" in capsys.readouterr().err


def test_open_signs_in_and_checks_the_role_before_starting_spark(
    lake: Lake, identities: Identities, monkeypatch: pytest.MonkeyPatch
) -> None:
    identities.sign_in(monkeypatch, "analyst_cn")
    with pytest.raises(AuthError, match="analyst_cn, analyst_eu, analyst_us"):
        Lakehouse.open(role="nobody", settings=lake.settings)
    events = AuditTrail(lake.settings).events()
    assert [(e["action"], e["principal"]) for e in events if e["role"] == "nobody"] == [
        ("refused", "analyst_cn")
    ]


def test_a_query_that_fails_while_running_is_audited_with_its_error(
    lake: Lake, spark: SparkSession
) -> None:
    """Data can leave in an error message: a failed fetch is recorded like a read."""
    trail = FakeTrail()
    lh = _open(lake, spark, "analyst_cn", trail)
    with pytest.raises(Exception, match="DIVIDE_BY_ZERO"):
        lh.fetch("SELECT complaint_id, 1 / 0 FROM silver.complaints")
    (event,) = trail.events
    assert (event.action, event.table_name, event.row_count) == ("read", "silver.complaints", None)
    assert event.details["error"] and "1 / 0" in event.details["query"]
