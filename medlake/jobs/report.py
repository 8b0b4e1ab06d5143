"""Job `report`: the night's HTML report (medlake/report.py) and its figures as JSON.

Reads gold (panorama, scorecard, product cost, predictions) for the month of the run's last
date and the system tables (_bronze_manifest, _dq, _reconciliation, _audit) for its dates,
writes `<reports.folder>/medlake-report-<last date>.html` and `.json` and prints the path.
It writes no table, so running it again rewrites the same two files. Missing gold (a night
whose gates failed) gives a report of what is there, saying what is missing.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from medlake.gold.facts import plant_regions
from medlake.gold.metrics import load_dictionary
from medlake.governance.audit import AuditTrail
from medlake.jobs.gates import latest, latest_results
from medlake.report import render
from medlake.runtime import JobContext, JobResult

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from medlake.gold.metrics import MetricDictionary

TILES = ("otd", "otif", "incoming_pass_rate", "lead_time_mean", "ppv")
PLANT_COLUMNS = (
    "otd",
    "otif",
    "lead_time_mean",
    "lead_time_p90",
    "incoming_pass_rate",
    "ppv",
    "inventory_turns",
    "days_of_supply",
)
TOP = 8  # rows per table: the page must be read without scrolling through raw data


def run(ctx: JobContext) -> JobResult:

    facts = collect(ctx, load_dictionary(ctx.settings.conf_dir))
    folder = Path(ctx.settings.resolve(ctx.settings.reports.folder))
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"medlake-report-{facts['date_to']}"
    page, data = stem.with_suffix(".html"), stem.with_suffix(".json")
    page.write_text(render(facts), encoding="utf-8")
    data.write_text(json.dumps(facts, indent=2, ensure_ascii=False, default=str), "utf-8")
    return JobResult.of(
        ctx,
        {
            "run_id": ctx.run_id,
            "report": str(page),
            "figures": str(data),
            "gates_failed": len(facts["quality"]["failed_rules"]),
        },
    )


def collect(ctx: JobContext, dictionary: MetricDictionary) -> dict[str, Any]:
    """The figures of the report, as plain JSON-ready values."""

    first, last = min(ctx.dates), max(ctx.dates)
    month = f"{last:%Y-%m}"
    regions = plant_regions(ctx.settings.conf_dir)
    names = {m.id: {"en": m.spec.name.en, "zh": m.spec.name.zh} for m in dictionary}
    panorama = _table(ctx, "gold.supply_chain_panorama", f"month = '{month}'")
    facts: dict[str, Any] = {
        "run_id": ctx.run_id,
        "date_from": first.isoformat(),
        "date_to": last.isoformat(),
        "month": month,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "currency": ctx.settings.group.currency,
        "plant_count": len(regions),
        "names": names,
        "targets": {
            m.id: m.spec.thresholds.warning
            for m in dictionary
            if m.spec.thresholds.warning is not None
        },
        "kpis": _kpis(panorama, dictionary),
        "panorama_columns": [
            {"metric_id": c, "unit": dictionary.get(c).spec.unit, **_name(dictionary, c)}
            for c in PLANT_COLUMNS
        ],
        "plants": _plants(panorama, regions),
        "landed": _landed(ctx, first, last),
        "quality": _quality(ctx, first, last),
        "predictions": _predictions(ctx, last),
        "audit": _audit(ctx),
    }
    facts.update(_suppliers(ctx, month))
    facts.update(_costs(ctx, month, facts["currency"]))
    return facts


def _name(dictionary: MetricDictionary, metric_id: str) -> dict[str, str]:
    name = dictionary.get(metric_id).spec.name
    return {"name_en": name.en, "name_zh": name.zh}


def _table(ctx: JobContext, name: str, where: str) -> DataFrame | None:
    if ctx.io.version(name) is None:
        return None
    return ctx.io.read(name).where(where)


def _kpis(panorama: DataFrame | None, dictionary: MetricDictionary) -> list[dict[str, Any]]:
    """Group-level values (the panorama's `month` grain) of the headline metrics."""
    rows = {}
    if panorama is not None:
        rows = {
            r["metric_id"]: r
            for r in panorama.where("grain = 'month'")
            .select("metric_id", "value", "status")
            .collect()
        }
    out = []
    for metric_id in TILES:
        row = rows.get(metric_id)
        out.append(
            {
                "metric_id": metric_id,
                "unit": dictionary.get(metric_id).spec.unit,
                "value": row["value"] if row else None,
                "status": row["status"] if row else "no_data",
                **_name(dictionary, metric_id),
            }
        )
    return out


def _plants(panorama: DataFrame | None, regions: dict[str, str]) -> list[dict[str, Any]]:
    plants: dict[str, dict[str, Any]] = {
        p: {"plant_id": p, "region": r, "otd": None, "otd_status": "no_data"}
        for p, r in sorted(regions.items())
    }
    if panorama is None:
        return list(plants.values())
    rows = (
        panorama.where("grain = 'plant_id+month'")
        .where(panorama.metric_id.isin(*PLANT_COLUMNS))
        .select("plant_id", "metric_id", "value", "status")
        .collect()
    )
    for r in rows:
        plant = plants.setdefault(r["plant_id"], {"plant_id": r["plant_id"], "region": None})
        plant[r["metric_id"]] = r["value"]
        plant[f"{r['metric_id']}_status"] = r["status"]
    return list(plants.values())


def _suppliers(ctx: JobContext, month: str) -> dict[str, Any]:
    """The TOP suppliers to look at: flagged first, then the lowest composite score."""

    cards = _table(ctx, "gold.supplier_scorecard", f"month = '{month}' AND scope = 'group'")
    if cards is None:
        return {"suppliers": [], "scorecard_window": "no scorecard yet"}
    rows = (
        cards.orderBy(
            F.size("risk_flags").desc(), F.col("composite_score").asc_nulls_last(), "supplier_name"
        )
        .limit(TOP)
        .collect()
    )
    window = f"window {rows[0]['window_start']}..{rows[0]['window_end']}" if rows else month
    return {
        "scorecard_window": window,
        "suppliers": [
            {
                "name": r["supplier_name"] or r["supplier_group_id"],
                "category": r["material_category"],
                "composite": r["composite_score"],
                "rank": r["rank_in_category"],
                "of": r["suppliers_in_category"],
                "flags": list(r["risk_flags"]),
                "reasons": list(r["risk_reasons"]),
            }
            for r in rows
        ],
    }


def _costs(ctx: JobContext, month: str, currency: str) -> dict[str, Any]:
    """The products whose material cost moved most against the previous month."""

    costs = _table(ctx, "gold.product_cost", f"month = '{month}' AND NOT is_subassembly")
    if costs is None:
        return {"costs": [], "cost_headline": "No product cost computed yet."}
    change = (F.col("material_cost_group") - F.col("prev_material_cost_group")) / F.col(
        "prev_material_cost_group"
    )
    rows = (
        costs.withColumn("change_pct", change.cast("double"))
        .orderBy(F.abs("change_pct").desc_nulls_last(), "plant_id", "product_code")
        .limit(TOP)
        .collect()
    )
    out = [
        {
            "plant_id": r["plant_id"],
            "product": r["product_code"],
            "material_cost": None
            if r["material_cost_group"] is None
            else float(r["material_cost_group"]),
            "prev_material_cost": None
            if r["prev_material_cost_group"] is None
            else float(r["prev_material_cost_group"]),
            "change_pct": r["change_pct"],
            "margin_pct": r["margin_pct"],
        }
        for r in rows
    ]
    moved = [c for c in out if c["change_pct"]]
    if moved:
        c = moved[0]
        headline = (
            f"Largest material-cost change: {c['product']} at {c['plant_id']} "
            f"{100 * c['change_pct']:+.1f}% against last month ({currency} "
            f"{c['prev_material_cost']:,.2f} -> {c['material_cost']:,.2f} per unit)."
        )
    else:
        headline = f"No product's material cost changed against the month before {month}."
    return {"costs": out, "cost_headline": headline}


def _landed(ctx: JobContext, first: dt.date, last: dt.date) -> list[dict[str, Any]]:

    manifest = _table(
        ctx,
        "_bronze_manifest",
        f"delivery_date BETWEEN '{first}' AND '{last}' AND status IN ('ingested', 'quarantined')",
    )
    if manifest is None:
        return []
    rows = (
        latest(manifest, ["plant_id", "source_file"], "recorded_at")
        .groupBy("plant_id")
        .agg(
            F.count("*").alias("files"),
            F.sum(F.coalesce("rows_ingested", F.lit(0))).alias("rows_ingested"),
            F.sum(F.coalesce("rows_quarantined", F.lit(0))).alias("rows_quarantined"),
        )
        .orderBy("plant_id")
        .collect()
    )
    return [r.asDict() for r in rows]


def _quality(ctx: JobContext, first: dt.date, last: dt.date) -> dict[str, Any]:

    dq = latest_results(ctx, "_dq", first, last)
    rules = [] if dq is None else dq.collect()
    by_table: dict[str, dict[str, Any]] = {}
    failed_rules = []
    for r in rules:
        t = by_table.setdefault(
            r["table_name"],
            {"table": r["table_name"], "rules": 0, "passed": 0, "warned": 0, "failed": 0},
        )
        t["rules"] += 1
        if r["passed"]:
            t["passed"] += 1
        elif r["action"] == "fail":
            t["failed"] += 1
            # counts only: _dq.message is confidential (it quotes an example value)
            failed_rules.append(
                f"{r['table_name']} {r['rule_id']} ({r['check']}): {r['rows_failed']:,} of "
                f"{r['rows_checked']:,} rows failed"
            )
        else:
            t["warned"] += 1
    recon = latest_results(ctx, "_reconciliation", first, last)
    balance = (
        {}
        if recon is None
        else {
            r["balanced"]: r["n"]
            for r in recon.groupBy("balanced").agg(F.count("*").alias("n")).collect()
        }
    )
    tables = sorted(by_table.values(), key=lambda t: (-t["failed"], -t["warned"], t["table"]))
    return {
        "rules": len(rules),
        "passed": sum(t["passed"] for t in tables),
        "warned": sum(t["warned"] for t in tables),
        "failed": sum(t["failed"] for t in tables),
        "failed_rules": failed_rules,
        "by_table": tables[:TOP],
        "reconciliation": {"balanced": balance.get(True, 0), "unbalanced": balance.get(False, 0)},
    }


def _predictions(ctx: JobContext, last: dt.date) -> dict[str, Any] | None:

    scored = _table(ctx, "gold.late_delivery_predictions", f"score_date = '{last}'")
    if scored is None:
        return None
    row = scored.agg(
        F.count("*").alias("lines"),
        F.sum(F.col("predicted_late").cast("int")).alias("late"),
        F.max("model_version").alias("model_version"),
    ).first()
    if row is None or not row["lines"]:
        return None
    return {"lines": row["lines"], "late": row["late"], "model_version": row["model_version"]}


def _audit(ctx: JobContext) -> dict[str, Any]:

    verdict = AuditTrail(ctx.settings, ctx.registry).verify()
    message = (
        f"audit trail intact: {verdict.checked:,} events"
        if verdict.ok
        else f"AUDIT TRAIL BROKEN at event {verdict.position}: {verdict.reason}"
    )
    return {"ok": verdict.ok, "events": verdict.checked, "message": message}


if __name__ == "__main__":  # spark-submit medlake/jobs/report.py --date D [...]
    from medlake.cli import submit

    submit("report")
