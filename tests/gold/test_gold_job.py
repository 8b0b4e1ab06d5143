"""Job `gold` on eight simulated months: the planted degrading supplier, versions, idempotency,
and the self-service metric query through the governed read path."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medlake.config import DEFAULT_CONF_DIR
from medlake.gold.metrics import load_dictionary
from medlake.governance.access import load_access, load_plants
from medlake.governance.read import Lakehouse
from medlake.jobs import gold as gold_job
from tests.history import DATES, PLANTS, context
from tests.identities import Identities, as_role

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gold(history: dict[str, Any], spark: SparkSession) -> dict[str, Any]:
    ctx = context(history, spark, "gold", DATES)
    summary = gold_job.run(ctx)
    return {"ctx": ctx, "summary": summary, "history": history}


def _planted_group_ids(gold: dict[str, Any]) -> set[str]:
    answers, io = gold["history"]["answers"], gold["ctx"].io
    codes = answers["otd_supplier_codes"]
    rows = (
        io.read("silver.suppliers")
        .select("plant_id", "supplier_code", "supplier_group_id")
        .collect()
    )
    return {r["supplier_group_id"] for r in rows if codes.get(r["plant_id"]) == r["supplier_code"]}


def test_the_degrading_supplier_is_flagged_after_the_planted_date_and_not_before(
    gold: dict[str, Any],
) -> None:
    degrade = dt.date.fromisoformat(gold["history"]["answers"]["otd_degrade_date"])
    assert degrade == dt.date(2026, 5, 1)
    planted = _planted_group_ids(gold)
    assert planted
    rows = gold["ctx"].io.read("gold.supplier_scorecard").where("scope = 'group'").collect()
    flagged = {
        r["month"]
        for r in rows
        if r["supplier_group_id"] in planted and "otd_decline" in r["risk_flags"]
    }
    before = {r["month"] for r in rows if r["month"] < f"{degrade:%Y-%m}"}
    assert before >= {"2026-01", "2026-02", "2026-03", "2026-04"}  # evaluated, not flagged
    assert not {m for m in flagged if m < f"{degrade:%Y-%m}"}, flagged
    # two months into the degradation the window holds enough late lines to be evidence
    assert {"2026-07", "2026-08"} <= flagged, flagged
    reasons = [
        reason
        for r in rows
        if r["supplier_group_id"] in planted and r["month"] == "2026-07"
        for reason in r["risk_reasons"]
        if reason.startswith("on-time delivery")
    ]
    assert reasons and "down" in reasons[0]
    # its delivery score fell: the window after against the window before
    by_month = {
        r["month"]: r["delivery"]
        for r in rows
        if r["supplier_group_id"] in planted and r["material_category"] == "plastic"
    }
    assert by_month["2026-07"] < by_month["2026-04"] - 0.15


def test_every_gold_row_records_the_metric_version_it_was_computed_with(
    gold: dict[str, Any],
) -> None:
    dictionary = load_dictionary(DEFAULT_CONF_DIR)
    io = gold["ctx"].io
    pairs = (
        io.read("gold.supply_chain_panorama")
        .select("metric_id", "metric_version")
        .distinct()
        .collect()
    )
    assert {r["metric_id"] for r in pairs} >= {
        "otd",
        "otif",
        "incoming_pass_rate",
        "ppv",
        "inventory_turns",
        "material_margin_pct",
    }
    for r in pairs:
        assert r["metric_version"] == dictionary.get(r["metric_id"]).version
    versions = io.read("gold.supplier_scorecard").select("metric_versions").first()[0]
    assert versions == {"otd": 1, "incoming_pass_rate": 1, "ppv_pct": 1, "lead_time_ratio": 1}
    assert io.read("gold.product_cost").where(F.col("metric_versions").isNull()).count() == 0


def test_panorama_otd_per_plant_equals_a_count_over_silver(gold: dict[str, Any]) -> None:
    io = gold["ctx"].io
    po = (
        io.read("silver.purchase_orders")
        .select("plant_id", "po_number", "po_line", "due_date")
        .toPandas()
    )
    gr = (
        io.read("silver.goods_receipts")
        .select("plant_id", "po_number", "po_line", "receipt_date")
        .toPandas()
    )
    lines = gr.merge(po, on=["plant_id", "po_number", "po_line"])
    lines = lines[lines["due_date"].notna()]
    offset = (lines["receipt_date"] - lines["due_date"]).map(lambda d: d.days)
    lines = lines.assign(
        ok=(offset >= -3) & (offset <= 2), month=lines["receipt_date"].map(lambda d: f"{d:%Y-%m}")
    )
    expected = lines[lines["month"] == "2026-06"].groupby("plant_id")["ok"].mean().to_dict()
    got = {
        r["plant_id"]: r["value"]
        for r in io.read("gold.supply_chain_panorama")
        .where("grain = 'plant_id+month' AND metric_id = 'otd' AND month = '2026-06'")
        .collect()
    }
    assert got == pytest.approx(expected)


def test_a_second_run_for_the_same_date_leaves_the_same_tables(
    gold: dict[str, Any], spark: SparkSession
) -> None:
    io = gold["ctx"].io
    last = DATES[-1:]
    gold_job.run(context(gold["history"], spark, "gold", last))

    def snapshot() -> dict[str, list[str]]:
        return {
            t: sorted(
                json.dumps(r.asDict(recursive=True), default=str, sort_keys=True)
                for r in io.read(t).collect()
            )
            for t in ("gold.supply_chain_panorama", "gold.supplier_scorecard", "gold.product_cost")
        }

    first = snapshot()
    gold_job.run(context(gold["history"], spark, "gold", last))
    assert snapshot() == first


def test_metrics_query_as_a_regional_role_sees_its_plants_only(
    gold: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    identities: Identities,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from medlake.cli import metrics as metrics_cli

    identities.sign_in(monkeypatch, "analyst_cn")

    ctx = gold["ctx"]
    args = type("Args", (), {})()
    args.metric, args.by, args.role, args.purpose, args.format = (
        "otd",
        "plant_id,month",
        "analyst_cn",
        "test",
        "json",
    )
    args.where, args.as_of = "month = '2026-06'", dt.date(2026, 8, 28)
    assert metrics_cli.cmd_query(args, ctx.settings) == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out
    rows = json.loads(out[out.index("[") :])
    assert {r["plant_id"] for r in rows} == {"SU"}  # the Chinese plant only
    panorama = (
        ctx.io.read("gold.supply_chain_panorama")
        .where(
            "grain = 'plant_id+month' AND metric_id = 'otd' AND month = '2026-06' AND plant_id = 'SU'"
        )
        .first()
    )
    assert rows[0]["value"] == pytest.approx(panorama["value"])
    audit = ctx.io.read("_audit").where("role = 'analyst_cn' AND purpose = 'test'").collect()
    assert {r["table_name"] for r in audit} >= {"silver.goods_receipts", "silver.purchase_orders"}


def test_metrics_query_where_is_checked_like_governed_sql_and_a_refusal_is_audited(
    gold: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    identities: Identities,
) -> None:
    """--where once skipped the function checks: java_method() printed an environment
    variable through raise_error(). Now it is refused before anything is read, and audited
    with the text the analyst wrote."""
    from medlake.cli import metrics as metrics_cli

    ctx = gold["ctx"]
    identities.sign_in(monkeypatch, "analyst_cn")
    monkeypatch.setenv("MEDLAKE_TEST_SECRET", "s3cr3t-value")
    where = "raise_error(java_method('java.lang.System', 'getenv', 'MEDLAKE_TEST_SECRET')) IS NULL"
    args = type("Args", (), {})()
    args.metric, args.by, args.role, args.purpose, args.format = (
        "otd", "plant_id", "analyst_cn", "where-attack", "json",
    )  # fmt: skip
    args.where, args.as_of = where, dt.date(2026, 8, 28)
    assert metrics_cli.cmd_query(args, ctx.settings) == 2  # type: ignore[arg-type]
    captured = capsys.readouterr()
    assert "s3cr3t-value" not in captured.out + captured.err
    assert "--where: function raise_error() is not allowed" in captured.err
    events = ctx.io.read("_audit").where("purpose = 'where-attack'").collect()
    assert [(e["action"], e["role"]) for e in events] == [("refused", "analyst_cn")]
    details = json.loads(events[0]["details"])
    assert details["where"] == where and details["metric"] == "otd"
    assert "raise_error() is not allowed" in details["reason"]


# the plants each regional role reads, worked out by hand from access.yaml (countries) and
# conf/sources (each plant's country); every other role reads every plant
REGIONAL = {"analyst_cn": {"SU", "SZ"}, "analyst_eu": {"GW", "TU"}, "analyst_us": {"MN"}}


class _Events(list[Any]):
    def record(self, events: list[Any]) -> None:
        self.extend(events)


def test_every_role_reads_every_gold_table_and_a_regional_role_only_its_plants_figures(
    gold: dict[str, Any], spark: SparkSession
) -> None:
    """A regional analyst is never refused a gold table her plants have data in, never sees
    another plant's rows, and never a figure computed over the group."""
    ctx = gold["ctx"]
    policy = load_access(ctx.settings.conf_dir)
    plants = load_plants(ctx.settings.conf_dir)
    written = [t.name for t in ctx.registry if t.layer == "gold" and ctx.io.version(t.name)]
    assert {
        "gold.supply_chain_panorama", "gold.supplier_scorecard", "gold.product_cost",
        "gold.cost_transmission", "gold.metric_catalogue",
    } <= set(written)  # fmt: skip
    for role in policy.roles:
        lh = Lakehouse(
            who=as_role(role),
            settings=ctx.settings,
            spark=spark,
            registry=ctx.registry,
            policy=policy,
            plants=plants,
            trail=_Events(),
        )
        visible = REGIONAL.get(role, set(plants))
        for name in written:
            full = ctx.io.read(name)
            got = lh.table(name).collect()  # never refused
            where = f"{role} on {name}"
            if role not in REGIONAL or name == "gold.metric_catalogue":
                assert len(got) == full.count(), where
            elif "plant_id" in full.columns:
                expected = full.where(F.col("plant_id").isin(*visible)).count()
                assert len(got) == expected, where  # empty only where her plants have none
                if name == "gold.supply_chain_panorama":  # every plant with data has rows
                    assert bool(got) == bool(visible & set(PLANTS)), where
                assert {r["plant_id"] for r in got} <= visible, where
            else:  # her scope's rows, wherever her plants have receipts (the history: SU, TU)
                assert bool(got) == bool(visible & set(PLANTS)), where
                assert {r["scope"] for r in got} <= {"+".join(sorted(visible))}, where
                assert all(set(r["scope_plants"]) == visible for r in got), where


def test_a_regional_scorecard_is_recomputed_from_its_plants_receipts_alone(
    gold: dict[str, Any],
) -> None:
    ctx, io = gold["ctx"], gold["ctx"].io
    window = 3  # conf/gold/scorecard.yaml window_months
    cards = io.read("gold.supplier_scorecard")
    lines = (
        io.read("silver.goods_receipts")
        .where(F.col("receipt_date") <= F.lit(ctx.logical_date))
        .join(
            io.read("silver.purchase_orders").select(
                "plant_id", "po_number", "po_line", "supplier_group_id"
            ),
            ["plant_id", "po_number", "po_line"],
            "left",
        )
        .where(F.col("supplier_group_id").isNotNull())
        .select("plant_id", F.date_format("receipt_date", "yyyy-MM").alias("month"))
        .collect()
    )

    def receipts_in_window(month: str, plants: set[str]) -> int:
        end = dt.date.fromisoformat(month + "-01")
        first = [(end.year * 12 + end.month - 1 - k) for k in range(window)]
        months = {f"{m // 12}-{m % 12 + 1:02d}" for m in first}
        return sum(1 for r in lines if r["month"] in months and r["plant_id"] in plants)

    totals = {
        (r["scope"], r["month"]): r["n"]
        for r in cards.groupBy("scope", "month").agg(F.sum("receipt_lines").alias("n")).collect()
    }
    months = sorted({m for _, m in totals})
    assert len(months) >= 6
    regional = cards.where("scope <> 'group'").collect()
    assert regional and all(r["price"] is None and r["price_score"] is None for r in regional)
    assert any(r["composite_score"] is not None for r in regional)  # from the other components
    assert cards.where("scope = 'group' AND price_score IS NOT NULL").count() > 0
    for month in months:
        for role, visible in REGIONAL.items():
            scope = "+".join(sorted(visible))
            assert totals.get((scope, month), 0) == receipts_in_window(month, visible), (
                role,
                month,
            )
        every = set(load_plants(ctx.settings.conf_dir))
        assert totals[("group", month)] == receipts_in_window(month, every), month
        assert totals[("group", month)] > totals[("SU+SZ", month)]  # not the group figure
