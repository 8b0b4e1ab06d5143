"""The medlake DAG family: the nightly chain from the plants' deliveries to gold and the report,
and the weekly model training. Generated from conf/pipeline.yaml and conf/sources/ in a stable
order; every task only passes arguments to `spark-submit jobs/<job>.py` (docs/airflow.md).

medlake_nightly, one run per day (its data interval):

    interval ─> ingest.all (or ingest.<PLANT>) ─> silver.<group> (in `after` order) ─> scan ─> gates
             ─> gold ─> score.<model> ─> report        watcher: fails the run if a task failed

A failed quality gate fails its silver task (or scan, or gates), so gold and scoring do not
run; the report runs after failures too and shows the gate results.

medlake_models, weekly: interval ─> train.<model> ─> validate.<model>
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, TaskGroup, TriggerRule, task

from medlake.config import CONF_DIR_VAR, DEFAULT_CONF_DIR
from medlake.dag_tasks import (
    DATE_ARGS,
    GOLD_TABLES,
    LakehouseJob,
    fail_the_run,
    record_alert,
    require_interval,
)
from medlake.pipeline import DagSchedule, Pipeline, load_pipeline, plant_ids

CONF = Path(os.environ.get(CONF_DIR_VAR) or DEFAULT_CONF_DIR)
PIPELINE: Pipeline = load_pipeline(CONF)
PLANTS = plant_ids(CONF)


def _asset(table: str) -> Asset:
    """An Airflow asset named after a table of the registry (conf/tables, conf/silver)."""
    return Asset(name=table, uri=f"medlake://{table}", group="medlake")


def _defaults(p: Pipeline) -> dict[str, object]:
    return {
        "owner": "medlake",
        "conn_id": p.connection,
        "pool": p.pool,
        "retries": p.retries,
        "retry_delay": dt.timedelta(minutes=p.retry_delay_minutes),
        "on_failure_callback": record_alert,
    }


def _job(kind: str, task_id: str, arguments: list[str], **kwargs: Any) -> LakehouseJob:
    return LakehouseJob(
        task_id=task_id,
        job=kind,
        arguments=arguments,
        execution_timeout=dt.timedelta(minutes=PIPELINE.timeout_minutes[kind]),
        **kwargs,
    )


def _watch(dag: DAG) -> None:
    """A run fails when any of its tasks failed: the run's state follows its last tasks only,
    and the report runs (and succeeds) after a failure too."""
    watcher = task(
        task_id="watcher",
        retries=0,
        trigger_rule=TriggerRule.ONE_FAILED,
        on_failure_callback=None,  # the failed task recorded its alert already
    )(fail_the_run)()
    [t for t in dag.tasks if t is not watcher.operator] >> watcher  # type: ignore[attr-defined]


def _scheduled(s: DagSchedule) -> dict[str, object]:
    """The DAG arguments a schedule of conf/pipeline.yaml decides."""
    start = dt.datetime(s.start_date.year, s.start_date.month, s.start_date.day, tzinfo=dt.UTC)
    return {
        "dag_id": s.dag_id,
        "schedule": CronDataIntervalTimetable(s.schedule, timezone=s.timezone),
        "start_date": start,
        "catchup": s.catchup,
        "max_active_runs": s.max_active_runs,
        "default_args": _defaults(PIPELINE),
    }


n = PIPELINE.nightly
with DAG(
    description="Nightly: plant deliveries -> bronze -> silver (masked, gated) -> gold -> report",
    **_scheduled(n),  # type: ignore[arg-type]
    tags=["medlake", "nightly"],
    doc_md=__doc__,
) as nightly:
    interval = task(task_id="interval", retries=0)(require_interval)()

    with TaskGroup("ingest", tooltip="deliveries -> bronze") as ingest:
        if PIPELINE.ingest_tasks == "per-plant":
            for plant in PLANTS:
                _job("ingest", plant, [*DATE_ARGS, "--plant", plant])
        else:  # every plant in one task: one Spark job over all delivered files
            _job("ingest", "all", DATE_ARGS)

    silver: dict[str, LakehouseJob] = {}
    with TaskGroup("silver", tooltip="canonical entities, masked and quality-gated"):
        for name in PIPELINE.silver_order():
            group = PIPELINE.silver_groups[name]
            silver[name] = _job(
                "silver",
                name,
                [*DATE_ARGS, "--entities", ",".join(group.entities)],
                outlets=[_asset(f"silver.{e}") for e in group.entities],
            )
            for before in group.after:
                silver[before] >> silver[name]
    roots = [t for name, t in silver.items() if not PIPELINE.silver_groups[name].after]

    scan = _job("scan", "scan", DATE_ARGS)
    gates = _job("gates", "gates", DATE_ARGS)
    gold = _job(
        "gold",
        "gold",
        DATE_ARGS,
        outlets=[_asset(t) for t in GOLD_TABLES],
    )
    scores = [
        _job(
            "score",
            f"score.{model}",
            [*DATE_ARGS, "--model", model],
            outlets=[_asset(f"gold.{model}_predictions")],
        )
        for model in PIPELINE.models.names
    ]
    # the report shows whatever the night produced, failed gates included
    report = _job("report", "report", DATE_ARGS, trigger_rule=TriggerRule.ALL_DONE)

    interval >> ingest >> roots
    list(silver.values()) >> scan >> gates >> gold >> scores >> report
    _watch(nightly)


m = PIPELINE.models
with DAG(
    description="Weekly: train each model on the latest silver, promote it when it passes",
    **_scheduled(m),  # type: ignore[arg-type]
    tags=["medlake", "models"],
) as models:
    check = task(task_id="interval", retries=0)(require_interval)()
    for model in m.names:
        train = _job("train", f"train.{model}", [*DATE_ARGS, "--model", model])
        validate = _job("validate", f"validate.{model}", [*DATE_ARGS, "--model", model])
        check >> train >> validate
    _watch(models)
