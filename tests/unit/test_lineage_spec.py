"""OpenLineage events that standard tools can join: Naming-spec dataset names with the logical
name as a symlink, schema facets, a range run's nominal time, one run per Airflow try, every
run ended (SIGTERM, orphan sweep), ingestion's delivered files aggregated per landing root."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from medlake.config import DEFAULT_CONF_DIR, TASK_ID_VAR, load_settings, read_yaml
from medlake.dag_tasks import try_number_env
from medlake.jobserver import ENV_PREFIXES, PER_TASK_PREFIX, _job_environment
from medlake.lineage import (
    AIRFLOW_TRY_NUMBER_VAR,
    TRY_NUMBER_VAR,
    FileEmitter,
    LineageRecorder,
    NullEmitter,
    abort_on_sigterm,
    dataset_naming,
    emitter_from_config,
    event_json,
    openlineage_run_id,
    try_number_from_env,
)
from medlake.runtime import JobContext, lineage_run
from medlake.tables import Registry
from tests import REPO
from tests.openlineage_schema import problems

DAY = dt.date(2024, 3, 1)
NOW = dt.datetime(2024, 3, 4, 6, 0, tzinfo=dt.UTC)
REGISTRY = Registry.load(DEFAULT_CONF_DIR / "tables")


def recorder(emitter: Any = None, **kwargs: Any) -> LineageRecorder:
    args: dict[str, Any] = {
        "job": "ingest",
        "run_id": "scheduled__2024-03-01T00:00:00+00:00",
        "logical_date": DAY,
        "storage_root": "/srv/lake",
        "registry": REGISTRY,
        "emitter": emitter or NullEmitter(),
        "clock": lambda: NOW,
    }
    return LineageRecorder(**{**args, **kwargs})


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- naming -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "namespace", "name"),
    [
        ("/srv/lake/bronze/erp__fx_rates", "file", "/srv/lake/bronze/erp__fx_rates"),
        ("/srv/lake/./bronze/x/", "file", "/srv/lake/bronze/x"),
        ("file:///srv/lake/bronze/x", "file", "/srv/lake/bronze/x"),
        ("s3://medlake-lakehouse/prod/bronze/x", "s3://medlake-lakehouse", "prod/bronze/x"),
        ("s3a://medlake-lakehouse/prod/bronze/x", "s3://medlake-lakehouse", "prod/bronze/x"),
        ("gs://bucket/lake/silver/supplier", "gs://bucket", "lake/silver/supplier"),
        (
            "abfss://lake@acct.dfs.core.windows.net/gold/cost",
            "abfss://lake@acct.dfs.core.windows.net",
            "gold/cost",
        ),
        ("hdfs://namenode:8020/medlake/silver/x", "hdfs://namenode:8020", "/medlake/silver/x"),
    ],
)
def test_dataset_naming_follows_the_openlineage_naming_spec(
    location: str, namespace: str, name: str
) -> None:
    assert dataset_naming(location) == (namespace, name)


def test_tables_are_named_by_location_with_the_logical_name_as_symlink_and_schema() -> None:
    rec = recorder(storage_root="s3://medlake-lakehouse/prod/")
    rec.read_table("bronze.erp__fx_rates", 4)
    rec.wrote("_lineage", 9)
    event = event_json(rec.event("COMPLETE"))
    (source,) = event["inputs"]
    assert (source["namespace"], source["name"]) == (
        "s3://medlake-lakehouse",
        "prod/bronze/erp__fx_rates",
    )
    assert source["facets"]["symlinks"]["identifiers"] == [
        {"namespace": "medlake", "name": "bronze.erp__fx_rates", "type": "TABLE"}
    ]
    assert "schema" not in source["facets"]  # inputs: the version is what matters
    (target,) = event["outputs"]
    assert (target["namespace"], target["name"]) == (
        "s3://medlake-lakehouse",
        "prod/_system/_lineage",  # system tables live under _system/
    )
    declared = next(
        t
        for t in read_yaml(DEFAULT_CONF_DIR / "tables" / "system.yaml")["tables"]
        if t["name"] == "_lineage"
    )["columns"]
    assert target["facets"]["schema"]["fields"] == [
        {"name": c["name"], "type": c["type"]} for c in declared
    ]
    assert problems(event) == []


def test_nominal_time_covers_the_whole_range_of_days() -> None:
    rec = recorder(period=(dt.date(2024, 2, 27), dt.date(2024, 3, 1)))
    nominal = event_json(rec.event("START"))["run"]["facets"]["nominalTime"]
    assert nominal["nominalStartTime"] == "2024-02-27T00:00:00.000Z"
    assert nominal["nominalEndTime"] == "2024-03-02T00:00:00.000Z"


# --- ingestion: one dataset for the landing root ------------------------------------------


def test_thousands_of_delivered_files_make_one_input_dataset_under_one_megabyte() -> None:
    tables = [f"bronze.erp__entity_{i:02d}" for i in range(30)]
    files = dict.fromkeys(tables, 305)  # 9,150 files, as in the night that broke
    rec = recorder()
    rec.read_delivery("/srv/landing", files, manifest=("_bronze_manifest", 17))
    for version, table in enumerate(tables, 1):
        rec.wrote(table, version)
    event = event_json(rec.event("COMPLETE"))

    size = len(json.dumps(event).encode("utf-8"))
    assert size < 1_000_000
    (delivery,) = event["inputs"]
    assert (delivery["namespace"], delivery["name"]) == ("file", "/srv/landing")
    facet = delivery["inputFacets"]["medlake_delivery"]
    assert facet["files"] == 30 * 305
    assert facet["filesPerTable"] == files
    assert facet["manifest"] == {
        "table": "_bronze_manifest",
        "namespace": "file",
        "name": "/srv/lake/_system/_bronze_manifest",
        "version": "17",
    }
    assert rec.rows() == []  # per-file `_lineage` edges come from the edge recorders
    assert problems(event) == []


# --- one OpenLineage run per Airflow try --------------------------------------------------


def job_context(tmp_path: Path, job: str = "silver", days: int = 1) -> JobContext:
    settings = load_settings(
        "test",
        overrides={
            "storage": {"root": str(tmp_path / "lake")},
            "lineage": {"transport": "file", "folder": str(tmp_path / "openlineage")},
        },
    )
    dates = [DAY + dt.timedelta(days=i) for i in range(days)]
    return JobContext(settings=settings, job=job, dates=dates, run_id="scheduled__2024-03-01")


def lose_the_executor(ctx: JobContext) -> None:
    with lineage_run(ctx) as rec:
        rec.read_table("bronze.erp__fx_rates", 3)
        raise RuntimeError("executor lost")


def test_a_retried_task_gives_one_openlineage_run_per_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = job_context(tmp_path)
    monkeypatch.setenv(TRY_NUMBER_VAR, "1")
    with pytest.raises(RuntimeError, match="executor lost"):
        lose_the_executor(ctx)
    monkeypatch.setenv(TRY_NUMBER_VAR, "2")
    with lineage_run(ctx) as rec:
        rec.read_table("bronze.erp__fx_rates", 3)

    events = read_events(tmp_path / "openlineage" / "silver.jsonl")
    runs: dict[str, list[str]] = {}
    for event in events:
        runs.setdefault(event["run"]["runId"], []).append(event["eventType"])
        assert problems(event) == []
    assert list(runs.values()) == [["START", "FAIL"], ["START", "COMPLETE"]]
    product_runs = [e["run"]["facets"]["medlake_run"] for e in events]
    assert [(f["runId"], f["tryNumber"]) for f in product_runs] == [
        ("scheduled__2024-03-01", 1),
        ("scheduled__2024-03-01", 1),
        ("scheduled__2024-03-01", 2),
        ("scheduled__2024-03-01", 2),
    ]
    assert list(runs) == [
        openlineage_run_id("silver", "scheduled__2024-03-01", try_number=1),
        openlineage_run_id("silver", "scheduled__2024-03-01", try_number=2),
    ]


def test_two_tasks_of_one_dag_run_are_two_openlineage_jobs_with_their_own_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two silver groups of the nightly DAG: the same job kind, DAG run id and try
    ctx = job_context(tmp_path)
    monkeypatch.setenv(TRY_NUMBER_VAR, "1")
    for task in ("silver.master_data", "silver.transactions"):
        monkeypatch.setenv(TASK_ID_VAR, task)
        with lineage_run(ctx) as rec:
            rec.read_table("bronze.erp__fx_rates", 3)
    by_run: dict[tuple[str, str], list[str]] = {}
    for task in ("silver.master_data", "silver.transactions"):
        for event in read_events(tmp_path / "openlineage" / f"{task}.jsonl"):
            key = (event["job"]["name"], event["run"]["runId"])
            by_run.setdefault(key, []).append(event["eventType"])
    assert by_run == {
        ("silver.master_data", openlineage_run_id("silver.master_data", ctx.run_id, try_number=1)): ["START", "COMPLETE"],
        ("silver.transactions", openlineage_run_id("silver.transactions", ctx.run_id, try_number=1)): ["START", "COMPLETE"],
    }  # fmt: skip
    assert len({run for _, run in by_run}) == 2
    # the task passes its id with its try
    env = try_number_env({"ti": SimpleNamespace(try_number=1, task_id="silver.transactions")})
    assert env == {TRY_NUMBER_VAR: "1", TASK_ID_VAR: "silver.transactions"}
    assert TASK_ID_VAR.startswith(PER_TASK_PREFIX)


def test_the_try_number_travels_from_the_airflow_task_to_the_job(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the operator passes the task instance's try to the job as a LAKEHOUSE_ variable ...
    env = try_number_env({"ti": SimpleNamespace(try_number=3)})
    assert env == {TRY_NUMBER_VAR: "3"}
    assert try_number_env({}) == {}
    assert TRY_NUMBER_VAR.startswith(PER_TASK_PREFIX) and PER_TASK_PREFIX in ENV_PREFIXES
    # ... which the shared driver sets for the job's duration only
    monkeypatch.delenv(TRY_NUMBER_VAR, raising=False)
    monkeypatch.delenv(AIRFLOW_TRY_NUMBER_VAR, raising=False)
    with _job_environment(env, str(tmp_path)):
        assert try_number_from_env() == 3
    assert try_number_from_env() is None
    # a job started by spark-submit outside the server sees what Airflow's task runner exports
    assert try_number_from_env({AIRFLOW_TRY_NUMBER_VAR: "2"}) == 2
    assert try_number_from_env({AIRFLOW_TRY_NUMBER_VAR: "2", TRY_NUMBER_VAR: "4"}) == 4


# --- every run ends -----------------------------------------------------------------------


def test_runs_that_never_ended_are_aborted_by_the_next_run_of_the_job(tmp_path: Path) -> None:
    emitter = emitter_from_config(
        {"transport": "file", "folder": str(tmp_path), "orphan_after_hours": 12}, tmp_path
    )
    assert isinstance(emitter, FileEmitter)

    def started(run_id: str, hours_ago: float, end: bool = False) -> str:
        rec = recorder(emitter, run_id=run_id, clock=lambda: NOW - dt.timedelta(hours=hours_ago))
        rec.start()
        if end:
            rec.complete()
        return rec.openlineage_run_id

    killed = started("killed", 30)
    ended = started("ended", 30, end=True)
    running = started("running", 2)
    other_job = recorder(
        emitter, job="gold", run_id="killed", clock=lambda: NOW - dt.timedelta(days=3)
    )
    other_job.start()

    now = recorder(emitter, run_id="next")
    assert now.close_orphaned_runs() == [killed]
    assert now.close_orphaned_runs() == []  # closed once

    events = read_events(emitter.path_for("ingest"))
    by_run: dict[str, list[str]] = {}
    for event in events:
        by_run.setdefault(event["run"]["runId"], []).append(event["eventType"])
        assert problems(event) == []
    assert by_run == {killed: ["START", "ABORT"], ended: ["START", "COMPLETE"], running: ["START"]}
    abort = events[-1]
    assert abort["eventTime"] == "2024-03-04T06:00:00.000Z"
    assert "within 12 hours" in abort["run"]["facets"]["errorMessage"]["message"]
    assert [e["eventType"] for e in read_events(emitter.path_for("gold"))] == ["START"]


def test_the_sigterm_handler_is_restored_after_the_run(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    rec = recorder(FileEmitter(tmp_path))
    with abort_on_sigterm(rec):
        assert signal.getsignal(signal.SIGTERM) not in (before, signal.SIG_DFL)
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_job_killed_with_sigterm_sends_abort_and_dies_of_the_signal(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import datetime as dt, sys, time
        from pathlib import Path
        from medlake.config import load_settings
        from medlake.runtime import JobContext, lineage_run

        tmp = Path({str(tmp_path)!r})
        settings = load_settings("test", overrides={{
            "storage": {{"root": str(tmp / "lake")}},
            "lineage": {{"transport": "file", "folder": str(tmp / "openlineage")}},
        }})
        ctx = JobContext(settings=settings, job="gold", dates=[dt.date(2024, 3, 1)], run_id="r1")
        with lineage_run(ctx):
            print("running", flush=True)
            time.sleep(120)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO, env=env
    ) as job:
        assert job.stdout is not None
        assert job.stdout.readline() == "running\n"
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=60) == -signal.SIGTERM

    events = read_events(tmp_path / "openlineage" / "gold.jsonl")
    assert [e["eventType"] for e in events] == ["START", "ABORT"]
    assert events[1]["run"]["facets"]["errorMessage"]["message"] == "terminated by SIGTERM"
    assert len({e["run"]["runId"] for e in events}) == 1


def test_events_of_a_failed_run_validate_against_the_spec(tmp_path: Path) -> None:
    rec = recorder(FileEmitter(tmp_path))
    rec.start()
    rec.read_file(str(tmp_path / "SZ" / "orders.csv"), hashlib.sha256(b"x").hexdigest())
    rec.wrote("bronze.erp__fx_rates", 2)
    rec.fail("boom", stack_trace="Traceback ...")
    for event in read_events(tmp_path / "ingest.jsonl"):
        assert problems(event) == []
    broken = event_json(rec.event("COMPLETE"))
    broken["run"]["runId"] = "not-a-uuid"
    del broken["outputs"][0]["facets"]["symlinks"]["identifiers"][0]["type"]
    assert len(problems(broken)) == 2  # the checker does catch what breaks the spec
