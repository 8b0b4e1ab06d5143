"""The DAG family parses, has the tasks and edges medlake/conf/ asks for, and imports nothing heavy.

dags/ is parsed by Airflow's own DagBag in a fresh process (tests/dags/parse_dags.py); the
expected tasks and edges are derived here from medlake/conf/sources and medlake/conf/pipeline.yaml, read as
plain YAML, not through the code that builds the DAGs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from medlake.config import DAGS_DIR, DEFAULT_CONF_DIR, ConfigError
from medlake.entities import full_registry
from medlake.orchestrate import LocalAirflow
from medlake.pipeline import load_pipeline
from tests import REPO

CONF = DEFAULT_CONF_DIR
PIPELINE = yaml.safe_load((CONF / "pipeline.yaml").read_text(encoding="utf-8"))
PLANTS = sorted(p.stem for p in (CONF / "sources").glob("*.yaml"))
GROUPS: dict[str, dict[str, Any]] = PIPELINE["silver_groups"]
MODELS = PIPELINE["models"]["names"]
HEAVY = ("pyspark", "pandas", "presidio_analyzer", "presidio_anonymizer", "spacy", "mlflow")


def _parse(home: Path, conf: Path = CONF) -> dict[str, Any]:
    out = home / "parsed.json"
    env = LocalAirflow(home=home, conf_dir=conf).environ()
    done = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("parse_dags.py")),
            str(DAGS_DIR),
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _parse(tmp_path_factory.mktemp("airflow-home"))


def test_every_dag_imports_without_errors(parsed: dict[str, Any]) -> None:
    assert parsed["import_errors"] == {}
    assert set(parsed["dags"]) == {PIPELINE["nightly"]["dag_id"], PIPELINE["models"]["dag_id"]}


def test_parse_time_is_within_budget(parsed: dict[str, Any]) -> None:
    # the budget of the issue: under 2 seconds per DAG file (Airflow's own per-file timing)
    assert parsed["files"], "DagBag reported no file statistics"
    for name, seconds in parsed["files"].items():
        assert seconds < 2.0, f"{name} took {seconds:.2f}s to parse"


def test_parsing_imports_no_spark_pandas_or_presidio(parsed: dict[str, Any]) -> None:
    loaded = set(parsed["new_modules"])
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def _nightly_expected(ingest_tasks: str) -> tuple[set[str], set[tuple[str, str]]]:
    ingest = [f"ingest.{p}" for p in PLANTS] if ingest_tasks == "per-plant" else ["ingest.all"]
    silver = {name: f"silver.{name}" for name in GROUPS}
    roots = [silver[g] for g, spec in GROUPS.items() if not spec.get("after")]
    scores = [f"score.{m}" for m in MODELS]
    tasks = {"interval", *ingest, *silver.values(), "scan", "gates", "gold", *scores, "report"}
    edges = {("interval", i) for i in ingest}
    edges |= {(i, r) for i in ingest for r in roots}
    edges |= {(silver[a], silver[g]) for g, spec in GROUPS.items() for a in spec.get("after", [])}
    edges |= {(s, "scan") for s in silver.values()}
    edges |= {("scan", "gates"), ("gates", "gold")}
    edges |= {("gold", s) for s in scores} | {(s, "report") for s in scores}
    edges |= {(t, "watcher") for t in tasks}
    return tasks | {"watcher"}, edges


def test_nightly_dag_has_the_expected_tasks_and_edges(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"][PIPELINE["nightly"]["dag_id"]]
    layout = PIPELINE.get("ingest_tasks", "one")
    tasks, edges = _nightly_expected(layout)
    assert set(dag["tasks"]) == tasks
    assert {tuple(e) for e in dag["edges"]} == edges
    if layout == "one":
        assert dag["arguments"]["ingest.all"][6:] == []  # every plant


def test_with_per_plant_ingestion_each_plant_has_its_task(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    pipeline = yaml.safe_load((conf / "pipeline.yaml").read_text(encoding="utf-8"))
    pipeline["ingest_tasks"] = "per-plant"
    (conf / "pipeline.yaml").write_text(yaml.safe_dump(pipeline), encoding="utf-8")
    dag = _parse(tmp_path, conf)["dags"][PIPELINE["nightly"]["dag_id"]]
    tasks, edges = _nightly_expected("per-plant")
    assert set(dag["tasks"]) == tasks
    assert {tuple(e) for e in dag["edges"]} == edges
    assert dag["arguments"]["ingest.SZ"][6:] == ["--plant", "SZ"]


def test_models_dag_has_the_expected_tasks_and_edges(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"][PIPELINE["models"]["dag_id"]]
    tasks = {"interval", "watcher"}
    edges = set()
    for m in MODELS:
        tasks |= {f"train.{m}", f"validate.{m}"}
        edges |= {("interval", f"train.{m}"), (f"train.{m}", f"validate.{m}")}
    edges |= {(t, "watcher") for t in tasks - {"watcher"}}
    assert set(dag["tasks"]) == tasks
    assert {tuple(e) for e in dag["edges"]} == edges


def test_tasks_only_pass_arguments_to_spark_submit(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"][PIPELINE["nightly"]["dag_id"]]
    date_args = [
        "--date", "{{ data_interval_start | ds }}",
        "--to", "{{ macros.ds_add(data_interval_end | ds, -1) }}",
        "--run-id", "{{ run_id }}",
    ]  # fmt: skip
    for task_id, operator in dag["operators"].items():
        if task_id in ("interval", "watcher"):
            continue
        assert operator == "LakehouseJob", task_id
        job = task_id.split(".")[0]
        assert dag["applications"][task_id] == str(REPO / "medlake" / "jobs" / f"{job}.py")
        assert dag["arguments"][task_id][:6] == date_args, task_id
    members = ",".join(GROUPS["master_data"]["entities"])
    assert dag["arguments"]["silver.master_data"][6:] == ["--entities", members]
    assert dag["arguments"][f"score.{MODELS[0]}"][6:] == ["--model", MODELS[0]]
    assert dag["conn_ids"] == [PIPELINE["connection"]]


def test_scheduling_pools_retries_timeouts_and_alerts(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"][PIPELINE["nightly"]["dag_id"]]
    assert dag["timetable"] == "CronDataIntervalTimetable"
    assert dag["cron"] == PIPELINE["nightly"]["schedule"]
    assert dag["catchup"] is True and dag["max_active_runs"] == 1
    assert dag["pools"] == [PIPELINE["pool"]]
    timeouts = PIPELINE["timeout_minutes"]
    for task_id, seconds in dag["timeouts"].items():
        if task_id not in ("interval", "watcher"):
            assert seconds == 60 * timeouts[task_id.split(".")[0]], task_id
            assert dag["retries"][task_id] == PIPELINE["retries"], task_id
            assert task_id in dag["failure_callbacks"], task_id
    assert dag["trigger_rules"]["report"].endswith("ALL_DONE")
    assert dag["trigger_rules"]["watcher"].endswith("ONE_FAILED")


def test_assets_are_named_after_registry_tables(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"][PIPELINE["nightly"]["dag_id"]]
    for name, spec in GROUPS.items():
        assert dag["outlets"][f"silver.{name}"] == sorted(f"silver.{e}" for e in spec["entities"])
    registry = full_registry(
        CONF
    )  # medlake/conf/tables and the silver tables of medlake/conf/silver
    named = [t for outlets in dag["outlets"].values() for t in outlets]
    assert named and all(t in registry for t in named), [t for t in named if t not in registry]
    gold = sorted(t.name for t in registry if t.layer == "gold" and "predictions" not in t.name)
    assert dag["outlets"]["gold"] == gold


def test_silver_groups_cover_every_entity_and_reference() -> None:
    entities = {p.stem for p in (CONF / "silver").glob("*.yaml")}
    grouped = [e for spec in GROUPS.values() for e in spec["entities"]]
    assert sorted(grouped) == sorted(entities)  # each entity exactly once
    group_of = {e: g for g, spec in GROUPS.items() for e in spec["entities"]}

    def ancestors(group: str) -> set[str]:
        found: set[str] = set()
        for a in GROUPS[group].get("after", []):
            found |= {a} | ancestors(a)
        return found

    for entity in entities:
        quality = CONF / "quality" / f"{entity}.yaml"  # referential rules and cross-checks
        refs = {
            r["ref_table"].removeprefix("silver.")
            for r in yaml.safe_load(quality.read_text()).get("rules", [])
            if "ref_table" in r
        }
        for ref in refs:
            mine, theirs = group_of[entity], group_of[ref]
            assert theirs == mine or theirs in ancestors(mine), f"{entity} reads {ref}"


def test_pipeline_errors_name_the_file_and_field(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "env").mkdir(parents=True)
    bad = dict(PIPELINE, retries=-1)
    bad["silver_groups"] = dict(GROUPS, extra={"entities": ["boms"], "after": ["nowhere"]})
    (conf / "pipeline.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_pipeline(conf, "local")
    message = str(err.value)
    assert str(conf / "pipeline.yaml") in message and "retries" in message

    (conf / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE), encoding="utf-8")
    (conf / "env" / "local.yaml").write_text(
        yaml.safe_dump({"pipeline": {"retry_delay_minutes": 0}}), encoding="utf-8"
    )
    with pytest.raises(ConfigError) as err:
        load_pipeline(conf, "local")
    assert str(conf / "env" / "local.yaml") in str(err.value)
    assert "retry_delay_minutes" in str(err.value)


def test_environment_overlay_changes_only_the_pipeline_keys_it_names() -> None:
    demo = load_pipeline(CONF, "demo")
    assert demo.retries == 0
    local = load_pipeline(CONF, "local")
    assert local.retries == PIPELINE["retries"]
    assert demo.silver_groups == local.silver_groups
