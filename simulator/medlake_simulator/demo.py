"""`make demo`: the simulator's default dataset through the nightly Airflow DAG to the report.

Generates six months and a week of the six plants' simulated deliveries under
`var/deliveries/`, loads the six months with `lakehouse run backfill` (ingest and silver in
steps of whole months, gold over the whole history), initialises a local Airflow (SQLite metadata
under `var/airflow/`), and runs the real `medlake_nightly` DAG for the first night after the
history with `airflow dags test`: the real operators launch the real `spark-submit` of every
job (ingest, silver, the governance scan, the quality gates, gold, scoring, the
report). `medlake-sim demo --night D` runs the DAG for one of the following nights. Then it
prints what a director would ask first: rows landed per plant, the quality results, the top
supplier risks and the cost-transmission headline, and the path of the HTML report.
Airflow's own output goes to `var/logs/airflow-demo.log`.

Pseudonymisation keys: the demo uses the keys of the environment or secret file when they
are configured; otherwise it creates random demo keys in `var/secrets/` (git-ignored), so
tokens stay stable across demo runs on this machine.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from medlake.config import Settings
from medlake.governance.access import load_access
from medlake.governance.classes import load_classes
from medlake.governance.identity import (
    IDENTITIES_ENV,
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    AuthError,
    Directory,
    Identity,
    save_token,
)
from medlake.governance.keys import AUDIT_KEY_ENV, KEY_ENV, SECRETS_FILE_ENV
from medlake.jobs import backfill
from medlake.orchestrate import LocalAirflow
from medlake.pipeline import load_pipeline
from medlake.runtime import JobContext, new_run_id
from medlake_simulator.generate import generate

DEMO_START = dt.date(2026, 1, 1)
DEMO_HISTORY_DAYS = 181  # 2026-01-01 .. 06-30, loaded by `lakehouse run backfill`
DEMO_NIGHTS = 8  # 07-01 .. 07-08 delivered too: the first runs through the nightly DAG
DEMO_DAYS = DEMO_HISTORY_DAYS + DEMO_NIGHTS
DEMO_SCALE = 1.0
DEMO_SEED = 42
DEMO_ENV = "demo"  # conf/env/demo.yaml: the local settings, tasks not retried


def demo_keys(settings: Settings) -> Path | None:
    """Point $LAKEHOUSE_SECRETS_FILE at demo keys under var/secrets unless keys are configured:
    a pseudonymisation key per jurisdiction and the audit trail's MAC key (`audit_keys`, id
    demo-1). The DAG's tasks inherit the variable, so every job finds both."""

    jurisdictions = load_classes(settings.conf_dir).jurisdictions
    if os.environ.get(SECRETS_FILE_ENV) or (
        all(os.environ.get(KEY_ENV.format(j.upper())) for j in jurisdictions)
        and os.environ.get(AUDIT_KEY_ENV)
    ):
        return None
    path = Path(settings.resolve("var/secrets/pseudonym-keys.yaml"))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)  # the secret store: the service account only
    stored = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    stored = stored if isinstance(stored, dict) else {}
    wanted = dict(stored)
    wanted.setdefault("pseudonym_keys", {j: secrets.token_hex(32) for j in jurisdictions})
    audit_key = {"current": "demo-1", "keys": {"demo-1": secrets.token_hex(32)}}
    wanted.setdefault("audit_keys", audit_key)
    if wanted != stored:  # a new file, or one from before audit keys: add what is missing
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(yaml.safe_dump(wanted), encoding="utf-8")
    os.environ[SECRETS_FILE_ENV] = str(path)
    return path


DEMO_SERVICE = "svc-lakehouse"  # the identity the DAG's tasks run as
DEMO_ADMIN = "demo.admin"
DEMO_TOKEN_HOURS = 24.0 * 30


def demo_identities(settings: Settings) -> Path | None:
    """Point $LAKEHOUSE_IDENTITIES at a demo identity directory under var/secrets unless one
    is configured: the service identity of the DAG (its token is handed to every task
    through $LAKEHOUSE_TOKEN_FILE), an administrator, and one user `demo.<role>` per role of
    conf/governance/access.yaml, with a 30-day token each in var/secrets/tokens/ (no
    passwords: `lakehouse identity passwd NAME` sets one for `lakehouse login`)."""

    if os.environ.get(IDENTITIES_ENV):
        return None
    path = Path(settings.resolve("var/secrets/identities.yaml"))
    tokens = path.parent / "tokens"
    directory = Directory.open_or_create(path)
    roles = sorted(load_access(settings.conf_dir).roles)
    wanted = [
        Identity(DEMO_SERVICE, "service", ("data_steward",)),
        Identity(DEMO_ADMIN, "user", ("data_steward", "auditor"), admin=True),
        *(Identity(f"demo.{role}", "user", (role,)) for role in roles),
    ]
    for identity in wanted:
        if identity.name not in directory.identities:
            directory.put(identity)
    directory.save()
    for identity in wanted:
        token_file = tokens / f"{identity.name}.token"
        if not token_file.exists() or _expired(directory, token_file):
            save_token(directory.issue(identity.name, hours=DEMO_TOKEN_HOURS)[0], token_file)
    os.environ[IDENTITIES_ENV] = str(path)
    if not (os.environ.get(TOKEN_ENV) or os.environ.get(TOKEN_FILE_ENV)):
        os.environ[TOKEN_FILE_ENV] = str(tokens / f"{DEMO_SERVICE}.token")
    return path


def _expired(directory: Directory, token_file: Path) -> bool:
    try:
        directory.verify(token_file.read_text(encoding="utf-8"))
    except AuthError:  # expired, revoked or from an older directory
        return True
    return False


def run_demo(settings: Settings, night: dt.date | None = None) -> int:
    """Six months of history through `backfill`, then the first night through the DAG; with
    `night`, only that night's DAG run (the deliveries are already there)."""

    started = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    deliveries = Path(settings.resolve(settings.landing.root))
    first_night = DEMO_START + dt.timedelta(days=DEMO_HISTORY_DAYS)
    last_night = DEMO_START + dt.timedelta(days=DEMO_DAYS - 1)
    if night is None:
        night = first_night
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
        deliveries.chmod(0o700)  # delivered data holds personal values: the service only
        summary = json.loads((deliveries / "_truth" / "summary.json").read_text())
        step(
            f"{made.rows:,} rows in {made.files:,} files; "
            f"{summary['pii_labels']:,} planted personal values labelled"
        )
    elif not first_night <= night <= last_night:
        step(f"error: the demo delivered the nights {first_night} .. {last_night}; got {night}")
        return 2
    keys = demo_keys(settings)
    if keys is not None:
        step(f"pseudonymisation and audit keys: demo keys in {keys} (production: secret store)")
    identities = demo_identities(settings)
    if identities is not None:
        step(
            f"identities: demo directory {identities}, the DAG runs as {DEMO_SERVICE}; "
            f"tokens of demo.<role> users in {identities.parent / 'tokens'}"
        )
    if night == first_night and _backfill_history(settings, step) != 0:
        return 1

    log = Path(settings.resolve("var/logs/airflow-demo.log"))
    airflow = LocalAirflow(
        home=Path(settings.resolve("var/airflow")),
        conf_dir=settings.conf_dir,
        env_name=DEMO_ENV,
        driver_memory=settings.spark.driver_memory,
    )
    dag_id = load_pipeline(settings.conf_dir, DEMO_ENV).nightly.dag_id
    step(f"initialising Airflow in {airflow.home} (its output: {log})")
    airflow.init(log)

    def on_task(task_id: str, state: str, seconds: float | None) -> None:
        took = f" in {seconds:.0f}s" if seconds is not None else ""
        step(f"  {task_id:<24} {state}{took}")

    step(f"airflow dags test {dag_id}: data interval {night} (the nightly run)")
    try:
        code = airflow.run_day(dag_id, night, log, on_task=on_task)
    finally:
        airflow.stop_drivers()  # the night's shared Spark driver; it would idle for minutes
    states = airflow.task_states(dag_id, night)
    bad = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed"))
    if code != 0 or bad:
        step(f"run of {night} failed ({', '.join(bad) or f'exit {code}'}); see {log}")
    report = Path(settings.resolve(settings.reports.folder)) / f"medlake-report-{night}.html"
    if not report.with_suffix(".json").exists():
        step(f"no report was written for {night}; see {log}")
        return 1
    facts = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    for line in summary_lines(facts):
        print(line)
    step(f"report: {report}")
    if night < last_night:
        following = night + dt.timedelta(days=1)
        step(
            f"the plants also delivered {following} .. {last_night}: run the nightly DAG for "
            f"the next one with `medlake-sim demo --night {following}`"
        )
    step("demo finished" + (f"; the run of {night} failed" if bad or code else ""))
    return 1 if bad or code or not facts["audit"]["ok"] else 0


def _backfill_history(settings: Settings, step: Callable[[str], None]) -> int:
    """`lakehouse run backfill` over the history (in this process; skipped steps are free)."""

    history = [DEMO_START + dt.timedelta(days=i) for i in range(DEMO_HISTORY_DAYS)]
    step(
        f"lakehouse run backfill --from {history[0]} --to {history[-1]}: ingest and silver "
        "in steps of whole months (backfill.chunk_mib), then gold over the six months"
    )
    ctx = JobContext(
        settings=settings, job="backfill", dates=history, run_id=new_run_id("backfill")
    )
    # the jobs' own messages (unmatched master data, ...) go to a log file, one line per
    # finished step to the console
    log = Path(settings.resolve("var/logs/backfill-demo.log"))
    log.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    jobs_log = logging.getLogger("medlake")
    jobs_log.addHandler(to_file)
    jobs_log.setLevel(logging.INFO)
    progress = logging.getLogger("medlake.backfill")
    to_console = logging.StreamHandler(sys.stdout)
    to_console.setFormatter(logging.Formatter("           %(message)s"))
    progress.addHandler(to_console)
    step(f"  (the jobs' messages: {log})")
    try:
        ctx.spark.sparkContext.setLogLevel("ERROR")
        done = backfill.run(ctx)
    finally:
        progress.removeHandler(to_console)
        jobs_log.removeHandler(to_file)
        to_file.close()
        if ctx._spark is not None:
            ctx._spark.stop()  # the DAG's tasks start their own Spark applications
    step(
        f"history loaded in {done['seconds']:.0f}s ({done['steps_run']} steps run, "
        f"{done['steps_skipped']} already done): {done['rows_ingested']:,} rows landed, "
        f"{done['rows_quarantined']:,} quarantined, "
        f"{done['unbalanced_reconciliations']} unbalanced reconciliations"
    )
    for gate in done["failed_gates"]:
        step(f"backfill stopped: {gate}")
    return int(done["exit_code"])


def summary_lines(facts: dict[str, Any]) -> list[str]:
    """The short summary printed after the runs, from the report's figures (JSON)."""
    lines = [f"-- medlake, {facts['date_from']} .. {facts['date_to']} (month {facts['month']})"]
    landed = ", ".join(
        f"{p['plant_id']} {p['rows_ingested']:,}"
        + (f" (+{p['rows_quarantined']:,} quarantined)" if p["rows_quarantined"] else "")
        for p in facts["landed"]
    )
    lines.append(f"rows landed per plant on the last night: {landed or 'none'}")
    q = facts["quality"]
    recon = q["reconciliation"]
    lines.append(
        f"quality: {q['rules']} rule results, {q['passed']} passed, {q['warned']} warned, "
        f"{q['failed']} failed; reconciliation {recon['balanced']} balanced, "
        f"{recon['unbalanced']} unbalanced"
    )
    lines += [f"  failed: {rule}" for rule in q["failed_rules"]]
    risky = [s for s in facts["suppliers"] if s["flags"]][:3]
    lines.append(
        "top supplier risks (gold.supplier_scorecard):"
        if risky
        else "top supplier risks: none flagged in " + facts["scorecard_window"]
    )
    for s in risky:
        score = "-" if s["composite"] is None else f"{s['composite']:.1f}"
        lines.append(f"  {s['name']} ({s['category']}, score {score}): {'; '.join(s['reasons'])}")
    lines.append(f"cost transmission: {facts['cost_headline']}")
    lines.append(f"audit: {facts['audit']['message']}")
    return lines
