"""The nightly DAG end to end under `airflow dags test`: real Airflow, real operators, real
spark-submit, on a tiny simulated day of two plants in a copy of medlake/conf/.

One date runs twice: the first run lands, masks, gates and builds gold; the second leaves
every table's content as it was. Then a quality rule with action `fail` is added and the date
runs a third time: the silver task fails, gold does not run, the alert is recorded and the
report still shows the failed gate.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession

from medlake.config import DEFAULT_CONF_DIR, Settings, load_settings
from medlake.entities import full_registry
from medlake.governance.audit import AuditTrail
from medlake.io import TableIO
from medlake.orchestrate import LocalAirflow
from medlake_simulator.generate import generate
from tests import REPO

DAY = dt.date(2026, 1, 5)
PLANTS = ["SU", "TU"]
DAG = "medlake_nightly"
GOLD = ("gold.supply_chain_panorama", "gold.supplier_scorecard", "gold.product_cost")

pytestmark = pytest.mark.slow


def _conf(root: Path) -> Path:
    """medlake/conf/ with two plants and an `e2e` overlay that keeps everything under `root`."""
    conf = root / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    for source in (conf / "sources").glob("*.yaml"):
        if source.stem not in PLANTS:
            source.unlink()
    overlay = yaml.safe_load((conf / "env" / "test.yaml").read_text(encoding="utf-8"))
    overlay.update(
        storage={"root": str(root / "lake")},
        landing={"root": str(root / "landing")},
        mlflow={"tracking_uri": str(root / "mlruns")},
        reports={"folder": str(root / "reports")},
        lineage={"transport": "none"},
        pipeline={"retries": 0, "alerts": str(root / "alerts.jsonl")},
    )
    (conf / "env" / "e2e.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    return conf


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("nightly")
    conf = _conf(root)
    generate(root / "landing", start=DAY, days=1, scale=0.1, seed=7, progress=False)
    airflow = LocalAirflow(home=root / "airflow", conf_dir=conf, env_name="e2e")
    log = root / "airflow.log"
    airflow.init(log)
    settings = load_settings("e2e", conf_dir=conf)
    yield {"root": root, "conf": conf, "airflow": airflow, "log": log, "settings": settings}
    airflow.stop_drivers()


def _run(world: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    airflow: LocalAirflow = world["airflow"]
    code = airflow.run_day(DAG, DAY, world["log"])
    with sqlite3.connect(world["root"] / "airflow" / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? AND date(logical_date) = ?",
            (DAG, (DAY + dt.timedelta(days=1)).isoformat()),
        ).fetchone()
    return code, airflow.task_states(DAG, DAY), run_id


VOLATILE = {"_run_id", "_ingested_at"}  # the run that wrote a row and when: differ per run


def _contents(
    spark: SparkSession, settings: Settings, only: tuple[str, ...] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """Every bronze, silver and gold table as sorted rows, without the columns naming the run
    that wrote a row and its wall-clock time."""
    io = TableIO(spark, settings, full_registry(settings.conf_dir))
    out = {}
    for spec in io.registry:
        if spec.layer not in ("bronze", "silver", "gold") or (only and spec.name not in only):
            continue
        if io.version(spec.name) is None:
            continue
        frame = io.read(spec.name)
        kept = [c for c in frame.columns if c not in VOLATILE]
        out[spec.name] = sorted(
            (tuple(str(v) for v in row) for row in frame.select(*kept).collect()), key=str
        )
    return out


def _log_tail(world: dict[str, Any]) -> str:
    return world["log"].read_text(encoding="utf-8", errors="replace")[-6000:]


@pytest.fixture(scope="module")
def two_runs(world: dict[str, Any], spark: SparkSession) -> dict[str, Any]:
    first = _run(world)
    tables_first = _contents(spark, world["settings"])
    second = _run(world)
    tables_second = _contents(spark, world["settings"])
    kept = world["root"] / "good-report"  # the failed-gate run below rewrites the report
    shutil.copytree(world["root"] / "reports", kept)
    return {
        "first": first,
        "second": second,
        "before": tables_first,
        "after": tables_second,
        "report": kept / f"medlake-report-{DAY}.html",
    }


def test_the_night_succeeds_task_by_task(world: dict[str, Any], two_runs: dict[str, Any]) -> None:
    code, states, _ = two_runs["first"]
    assert code == 0, _log_tail(world)
    ran = {t: s for t, s in states.items() if t not in ("watcher", "score.late_delivery")}
    assert set(ran.values()) == {"success"}, (states, _log_tail(world))
    assert "ingest.all" in set(states)  # medlake/conf/pipeline.yaml: ingest_tasks: one
    # no champion model exists yet: scoring is skipped, not failed; the watcher has nothing
    assert states["score.late_delivery"] == "skipped"
    assert states["watcher"] == "skipped"


def test_gold_tables_hold_the_day(
    world: dict[str, Any], two_runs: dict[str, Any], spark: SparkSession
) -> None:
    tables = two_runs["before"]
    for name in GOLD:
        assert tables.get(name), f"{name} is empty after the run"
    io = TableIO(spark, world["settings"], full_registry(world["conf"]))
    panorama = io.read("gold.supply_chain_panorama")
    months = {r[0] for r in panorama.select("month").distinct().collect()}
    assert f"{DAY:%Y-%m}" in months and max(months) == f"{DAY:%Y-%m}"
    plants = {r[0] for r in panorama.where("plant_id IS NOT NULL").select("plant_id").collect()}
    assert plants == set(PLANTS)
    # bronze landed the files of both plants and of no other
    manifest = io.read("_bronze_manifest").where("status = 'ingested'")
    assert {r[0] for r in manifest.select("plant_id").distinct().collect()} == set(PLANTS)


def test_the_audit_trail_records_each_run_and_verifies(
    world: dict[str, Any], two_runs: dict[str, Any]
) -> None:
    trail = AuditTrail(world["settings"], full_registry(world["conf"]))
    verdict = trail.verify()
    assert verdict.ok, verdict.reason
    events = trail.events()
    for key in ("first", "second"):
        run_id = two_runs[key][2]
        written = {(e["job"], e["table_name"]) for e in events if e["run_id"] == run_id}
        assert ("gold", "gold.supply_chain_panorama") in written, (key, sorted(written))
        assert any(job == "ingest" for job, _ in written), key
        assert any(job == "silver" and t.startswith("silver.") for job, t in written), key


def test_a_second_run_of_the_date_leaves_the_tables_identical(
    world: dict[str, Any], two_runs: dict[str, Any]
) -> None:
    code, states, _ = two_runs["second"]
    assert code == 0 and states["gold"] == "success", _log_tail(world)
    before, after = two_runs["before"], two_runs["after"]
    assert set(before) == set(after)
    changed = [name for name in before if before[name] != after[name]]
    assert changed == []
    assert sum(len(rows) for rows in before.values()) > 200  # not a vacuous comparison


def test_the_report_is_written_for_the_day(world: dict[str, Any], two_runs: dict[str, Any]) -> None:
    page = two_runs["report"]
    facts = json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))
    assert facts["date_from"] == facts["date_to"] == DAY.isoformat()
    assert {p["plant_id"] for p in facts["landed"]} == set(PLANTS)
    assert facts["quality"]["failed"] == 0 and facts["audit"]["ok"]
    assert "<svg" in page.read_text(encoding="utf-8")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is missing: `make test` installs it (scripts/ensure_chromium.sh)"
    return found


def test_the_report_renders_in_headless_chromium(
    world: dict[str, Any], two_runs: dict[str, Any], spark: SparkSession
) -> None:
    from playwright.sync_api import sync_playwright

    io = TableIO(spark, world["settings"], full_registry(world["conf"]))
    # expected figures, computed here from the tables the report summarises
    manifest = io.read("_bronze_manifest").where("status = 'ingested'").collect()
    landed = {p: sum(r["rows_ingested"] for r in manifest if r["plant_id"] == p) for p in PLANTS}
    panorama = io.read("gold.supply_chain_panorama").where("metric_id = 'otd'")
    group = panorama.where("grain = 'month'").first()
    by_plant = {
        r["plant_id"]: r["value"] for r in panorama.where("grain = 'plant_id+month'").collect()
    }
    screenshot = REPO / "var" / "test-artifacts" / f"nightly-report-{DAY}.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=_chromium(),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(two_runs["report"].as_uri())
            charts = {c.get_attribute("data-chart"): c for c in page.locator("svg.chart").all()}
            assert set(charts) == {
                "otd_by_plant",
                "supplier_composite",
                "material_cost_change",
                "rows_landed",
            }
            # every chart has a size on screen; landed rows are drawn, one bar per plant,
            # the longer bar for the plant that landed more rows
            for name, chart in charts.items():
                box = chart.bounding_box()
                assert box and box["width"] > 100 and box["height"] > 5, name
            bars = page.locator('svg[data-chart="rows_landed"] rect.bar').all()
            drawn = {
                float(b.get_attribute("data-value") or "nan"): b.bounding_box()["width"]  # type: ignore[index]
                for b in bars
            }
            assert sorted(drawn) == sorted(float(v) for v in landed.values())
            assert drawn[max(drawn)] >= drawn[min(drawn)] > 0
            otd_bars = page.locator('svg[data-chart="otd_by_plant"] rect.bar').all()
            assert len(otd_bars) == len(PLANTS)
            for plant, bar in zip(sorted(PLANTS), otd_bars, strict=True):
                value = bar.get_attribute("data-value")
                expected = by_plant.get(plant)
                assert (value or None) == (None if expected is None else f"{expected:.6g}")
            tile = page.locator('[data-metric="otd"] .figure').inner_text()
            assert tile == (
                "–" if group is None or group["value"] is None else f"{100 * group['value']:.1f}%"
            )
            text = page.locator("body").inner_text()
            for label in (
                "Supply-chain panorama",
                "供应链全景",
                "Supplier scorecard",
                "供应商记分卡",
                "Quality gates",
                "质量关卡",
                "Cost transmission",
            ):
                assert label in text
            gates = page.locator('[data-metric="quality_gates"] .figure').inner_text()
            facts = json.loads(two_runs["report"].with_suffix(".json").read_text("utf-8"))
            assert gates == f"{facts['quality']['passed']} / {facts['quality']['rules']}"
            # one page: at a desktop window the whole report is at most two screens tall
            height = page.evaluate("document.documentElement.scrollHeight")
            assert height <= 2000, height
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000


def test_a_failed_gate_stops_gold_records_an_alert_and_is_reported(
    world: dict[str, Any], two_runs: dict[str, Any], spark: SparkSession
) -> None:
    rules = world["conf"] / "quality" / "fx_rates.yaml"
    spec = yaml.safe_load(rules.read_text(encoding="utf-8"))
    spec["rules"].append(
        {"id": "e2e_impossible", "check": "range", "column": "rate", "max": 0, "action": "fail"}
    )
    rules.write_text(yaml.safe_dump(spec), encoding="utf-8")
    gold_before = _contents(spark, world["settings"], GOLD)
    code, states, run_id = _run(world)
    assert code != 0
    assert states["silver.master_data"] == "failed", states
    for task in ("gates", "gold", "score.late_delivery"):
        assert states[task] == "upstream_failed", (task, states)
    assert states["report"] == "success" and states["watcher"] == "failed", states
    alerts = [
        json.loads(line)
        for line in (world["root"] / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    mine = [a for a in alerts if a["run_id"] == run_id]
    assert {a["task_id"] for a in mine} >= {"silver.master_data"}
    assert all(a["dag_id"] == DAG and a["data_interval_start"].startswith(str(DAY)) for a in mine)
    facts = json.loads(
        (world["root"] / "reports" / f"medlake-report-{DAY}.json").read_text(encoding="utf-8")
    )
    assert any("e2e_impossible" in rule for rule in facts["quality"]["failed_rules"])
    assert _contents(spark, world["settings"], GOLD) == gold_before
