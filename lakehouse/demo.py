"""`make demo`: the simulator's default dataset through bronze, silver and the governance gates.

Generates the default simulated deliveries of the six plants under `var/deliveries/`, ingests
them into bronze, builds silver (personal data masked, vaults written), runs the governance
scan, computes the gold marts, reads tables through the governed read path as a quality
engineer, a regional and a group analyst, and verifies the audit trail. Until the nightly
DAG exists (Airflow, issue 7), the jobs run in this process.

Pseudonymisation keys: the demo uses the keys of the environment or secret file when they
are configured; otherwise it creates random demo keys in `var/secrets/` (git-ignored), so
tokens stay stable across demo runs on this machine.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lakehouse.config import Settings
from lakehouse.simulator.generate import generate

DEMO_START = dt.date(2026, 1, 1)
DEMO_DAYS = 7  # the default small scale: a few minutes of pipeline time on 2 cores
DEMO_SCALE = 1.0
DEMO_SEED = 42


def demo_keys(settings: Settings) -> Path | None:
    """Point $LAKEHOUSE_SECRETS_FILE at demo keys under var/secrets unless keys are configured."""
    from governance.classes import load_classes
    from governance.keys import KEY_ENV, SECRETS_FILE_ENV

    jurisdictions = load_classes(settings.conf_dir).jurisdictions
    if os.environ.get(SECRETS_FILE_ENV) or all(
        os.environ.get(KEY_ENV.format(j.upper())) for j in jurisdictions
    ):
        return None
    path = Path(settings.resolve("var/secrets/pseudonym-keys.yaml"))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = {j: secrets.token_hex(32) for j in jurisdictions}
        path.write_text(yaml.safe_dump({"pseudonym_keys": keys}), encoding="utf-8")
        path.chmod(0o600)
    os.environ[SECRETS_FILE_ENV] = str(path)
    return path


def run_demo(settings: Settings) -> int:
    from jobs import JobContext, new_run_id

    started = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    deliveries = Path(settings.resolve(settings.landing.root))
    step(f"generating {DEMO_DAYS} days of deliveries for six plants under {deliveries}")
    made = generate(
        deliveries,
        start=DEMO_START,
        days=DEMO_DAYS,
        scale=DEMO_SCALE,
        seed=DEMO_SEED,
        progress=False,
        workers=2,
    )
    summary = json.loads((deliveries / "_truth" / "summary.json").read_text())
    step(
        f"{made.rows:,} rows in {made.files:,} files; "
        f"{summary['pii_labels']:,} planted personal values labelled"
    )
    keys = demo_keys(settings)
    if keys is not None:
        step(f"pseudonymisation keys: demo keys in {keys} (production: env or secret file)")
    dates = [DEMO_START + dt.timedelta(days=i) for i in range(DEMO_DAYS)]
    spark = None
    results: dict[str, dict[str, Any]] = {}
    for job in ("ingest", "silver", "scan", "gold"):
        ctx = JobContext(settings=settings, job=job, dates=dates, run_id=new_run_id(job))
        ctx._spark = spark
        step(f"running {job} for {dates[0]} .. {dates[-1]}")
        module: Any = __import__(f"jobs.{job}", fromlist=["run"])
        results[job] = module.run(ctx)
        spark = ctx.spark
        step(_summary(job, results[job]))
    assert spark is not None
    _governed_read(settings, spark, step)
    _gold_headlines(settings, spark, step)
    from governance.audit import AuditTrail

    verdict = AuditTrail(settings).verify()
    step(
        f"audit trail: {verdict.checked} events, "
        + ("hash chain intact" if verdict.ok else f"BROKEN: {verdict.reason}")
    )
    spark.stop()
    failed = [g for r in results.values() for g in r.get("failed_gates", [])]
    for gate in failed:
        print(f"quality gate failed: {gate}")
    step("demo finished" + (" with failed gates" if failed else ""))
    return 1 if failed or not verdict.ok else 0


def _summary(job: str, result: dict[str, Any]) -> str:
    if job == "ingest":
        keys = ("files_ingested", "rows_ingested", "rows_quarantined")
        return ", ".join(f"{k} {result[k]:,}" for k in keys if k in result)
    if job == "silver":
        vaulted = ", ".join(f"{j} {n}" for j, n in sorted(result.get("vaulted", {}).items()))
        return (
            f"silver: {result['entities']} entities, {result['rows_read']:,} rows read, "
            f"{len(result['unbalanced'])} unbalanced; new vault entries: {vaulted or 'none'}"
        )
    if job == "gold":
        rows = ", ".join(
            f"{t.removeprefix('gold.')} {n:,}" for t, n in result["rows_written"].items()
        )
        return f"gold as of {result['as_of_date']}: rows written: {rows}"
    return (
        f"governance scan: {result['columns_scanned']} string columns, "
        f"{result['values_sampled']:,} values sampled, {len(result['failed_gates'])} failed"
    )


def _gold_headlines(settings: Settings, spark: Any, step: Callable[[str], None]) -> None:
    """On-time delivery per plant and the suppliers with risk flags, as the group analyst."""
    from governance.read import Lakehouse

    group = Lakehouse.open(role="group_analyst", settings=settings, spark=spark, purpose="demo")
    otd = group.sql(
        "SELECT plant_id, round(100 * sum(numerator) / sum(denominator), 1) AS otd "
        "FROM gold.supply_chain_panorama WHERE grain = 'plant_id+month' AND metric_id = 'otd' "
        "GROUP BY plant_id ORDER BY plant_id"
    ).collect()
    step("on-time delivery (metric otd): " + ", ".join(f"{r[0]} {r[1]}%" for r in otd))
    flags = group.sql(
        "SELECT supplier_name, material_category, array_join(risk_flags, ', ') AS flags "
        "FROM gold.supplier_scorecard WHERE size(risk_flags) > 0 "
        "ORDER BY composite_score NULLS LAST LIMIT 3"
    ).collect()
    step("suppliers with risk flags (gold.supplier_scorecard, lowest composite first):")
    for row in flags:
        print("         " + " | ".join(str(v) for v in row))


def _governed_read(settings: Settings, spark: Any, step: Callable[[str], None]) -> None:
    from governance.read import Lakehouse

    quality = Lakehouse.open(
        role="quality_engineer", settings=settings, spark=spark, purpose="demo: recall contacts"
    )
    rows = quality.sql(
        "SELECT plant_id, customer_code, contact_name, contact_phone FROM silver.customers "
        "ORDER BY plant_id, customer_code LIMIT 3"
    ).collect()
    step("silver.customers as quality_engineer (personal data pseudonymised per jurisdiction):")
    for row in rows:
        print("         " + " | ".join(str(v) for v in row))
    eu = Lakehouse.open(role="analyst_eu", settings=settings, spark=spark, purpose="demo")
    counts = eu.sql(
        "SELECT plant_id, count(*) AS complaints FROM silver.complaints GROUP BY plant_id "
        "ORDER BY plant_id"
    ).collect()
    step(
        "silver.complaints as analyst_eu (EU plants only): "
        + ", ".join(f"{r['plant_id']} {r['complaints']}" for r in counts)
    )
