"""The shared driver (medlake.jobserver): tasks hand their jobs to one running spark-submit.

A real server on local Spark; the jobs are real `lakehouse run` commands on a small
simulated delivery. The end-to-end DAG test runs a whole night through it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession

from medlake import jobserver
from medlake.config import DEFAULT_CONF_DIR, load_settings
from medlake.entities import full_registry
from medlake.io import TableIO
from medlake.orchestrate import SHARED_JAVA_OPTIONS, LocalAirflow
from medlake_simulator.generate import generate
from tests import REPO

DAY = dt.date(2026, 1, 5)
PLANT = "SU"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("shared")
    conf = root / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    overlay = yaml.safe_load((conf / "env" / "test.yaml").read_text(encoding="utf-8"))
    overlay.update(
        storage={"root": str(root / "lake")},
        landing={"root": str(root / "landing")},
        lineage={"transport": "none"},
        mlflow={"tracking_uri": str(root / "mlruns")},
    )
    (conf / "env" / "shared.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    generate(root / "landing", start=DAY, days=1, scale=0.05, seed=3, progress=False)
    python = sys.executable
    spark_submit = str(Path(python).parent / "spark-submit")
    command = [
        spark_submit,
        "--master",
        "local[1]",
        "--driver-java-options",
        SHARED_JAVA_OPTIONS,
        "--conf",
        f"spark.pyspark.python={python}",
        "--conf",
        f"spark.pyspark.driver.python={python}",
        str(REPO / "medlake" / "jobserver.py"),
        "--idle-seconds",
        "120",
        "--env",
        "shared",
    ]
    env = {
        **os.environ,
        "LAKEHOUSE_CONF": str(conf),
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
    }
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.pop("PYSPARK_GATEWAY_SECRET", None)
    folder = root / "run"
    yield {"root": root, "conf": conf, "command": command, "env": env, "folder": folder}
    jobserver.stop(folder)


def _job(world: dict[str, Any], *argv: str, **env: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = jobserver.run_job(
        world["command"],
        world["folder"],
        ["--env", "shared", *argv],
        echo=lines.append,
        env={**world["env"], **env},
        cwd=world["root"],
    )
    return code, lines


def _server_pid(world: dict[str, Any]) -> int:
    path = jobserver.socket_path(world["folder"], world["command"])
    pid_file = path.with_suffix(".pid")
    assert pid_file.exists(), f"no shared driver running; its log: {path.with_suffix('.log')}"
    return int(pid_file.read_text())


def test_a_job_gets_the_tasks_environment_and_its_exit_code_and_output_come_back(
    world: dict[str, Any],
) -> None:
    code, lines = _job(world, "table", "list", "--layer", "gold")
    assert code == 0
    assert any("gold.supplier_scorecard" in line for line in lines)
    # an environment variable of the task reaches the job: another conf folder, one more table
    extra = world["root"] / "conf-extra"
    shutil.copytree(world["conf"], extra)
    (extra / "tables" / "gold_extra.yaml").write_text(
        yaml.safe_dump(
            {
                "tables": [
                    {
                        "name": "gold.only_in_this_task",
                        "layer": "gold",
                        "description": "exists only in the second conf folder",
                        "owner": "test",
                        "columns": [
                            {
                                "name": "x",
                                "type": "int",
                                "description": "a number",
                                "classification": "internal",
                            }
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    code, lines = _job(world, "table", "list", "--layer", "gold", LAKEHOUSE_CONF=str(extra))
    assert code == 0, "\n".join(lines)
    assert any("gold.only_in_this_task" in line for line in lines)
    # and it does not stay: the next task sees its own environment only
    code, lines = _job(world, "table", "list", "--layer", "gold")
    assert code == 0, "\n".join(lines)
    assert not any("gold.only_in_this_task" in line for line in lines)
    # a user error keeps its exit code and message
    code, lines = _job(world, "run", "ingest")
    assert code == 2
    assert any("needs --date" in line for line in lines)


def test_a_task_killed_during_its_job_ends_the_driver_and_the_retry_lands_everything(
    world: dict[str, Any], tmp_path: Path, spark: SparkSession
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    client = tmp_path / "client.py"
    client.write_text(
        "import json, sys\n"
        "from pathlib import Path\n"
        "from medlake import jobserver\n"
        "w = json.loads(sys.argv[1])\n"
        "sys.exit(jobserver.run_job(w['command'], Path(w['folder']), w['argv'],\n"
        "                           echo=print, env=w['env'], cwd=Path(w['cwd'])))\n",
        encoding="utf-8",
    )
    argv = ["--env", "shared", "run", "ingest", "--date", DAY.isoformat(), "--plant", PLANT]
    env = {**world["env"], "LAKEHOUSE_BARRIER": "staged", "LAKEHOUSE_BARRIER_DIR": str(barrier)}
    spec = {
        "command": world["command"],
        "folder": str(world["folder"]),
        "argv": argv,
        "env": env,
        "cwd": str(world["root"]),
    }
    task = subprocess.Popen([sys.executable, str(client), json.dumps(spec)], env=world["env"])
    deadline = time.monotonic() + 240
    while not list(barrier.glob("ready.*")):
        assert task.poll() is None, "the task ended before its job reached the write"
        assert time.monotonic() < deadline, "the job never reached its first write"
        time.sleep(0.2)
    server = _server_pid(world)
    task.send_signal(signal.SIGKILL)  # a timeout or a lost worker
    task.wait()
    deadline = time.monotonic() + 60
    while _alive(server):
        assert time.monotonic() < deadline, "the driver kept running the killed task's job"
        time.sleep(0.2)
    settings = load_settings("shared", conf_dir=world["conf"])
    io = TableIO(spark, settings, full_registry(settings.conf_dir))
    assert io.version("_bronze_manifest") is None  # the killed job committed nothing

    # the retry starts a new driver and lands every delivered file of the day
    code, lines = _job(world, "run", "ingest", "--date", DAY.isoformat(), "--plant", PLANT)
    assert code == 0, "\n".join(lines[-40:])
    summary = json.loads("\n".join(lines[lines.index("{") : lines.index("}") + 1]))
    delivered = list((world["root"] / "landing" / PLANT / DAY.isoformat()).iterdir())
    assert summary["files_ingested"] + summary["files_quarantined"] == len(delivered)
    assert _server_pid(world) != server
    manifest = io.read("_bronze_manifest").collect()
    assert sorted(r["source_file"] for r in manifest) == sorted(
        f"{PLANT}/{DAY.isoformat()}/{f.name}" for f in delivered
    )


def test_a_driver_built_from_other_code_asks_for_a_new_one(world: dict[str, Any]) -> None:
    _job(world, "table", "list")  # a driver is running
    path = jobserver.socket_path(world["folder"], world["command"])
    server = _server_pid(world)
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(path))
        jobserver._send(conn, {"argv": ["table", "list"], "env": {}, "cwd": "/", "code": "old"})
        replies = list(jobserver._messages(conn))
    assert replies and "restart" in replies[0]
    deadline = time.monotonic() + 30
    while _alive(server):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    code, _ = _job(world, "table", "list")  # the next task starts a current one
    assert code == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has exited; it waits only for its parent (this test's client) to reap it
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


PER_TASK = """
import sys
from airflow.sdk.exceptions import AirflowSkipException
from medlake.dag_tasks import LakehouseJob
op = LakehouseJob(task_id="score", job="score", conn_id="spark_medlake",
                  arguments=["--date", "2026-01-05", "--run-id", "t1", "--model", "late_delivery"])
try:
    op.execute({})
except AirflowSkipException as exc:
    print("SKIPPED", exc)
"""


@pytest.mark.parametrize("driver", ["per-task", "shared"])
def test_a_job_that_is_not_ready_skips_its_task_on_either_driver(
    world: dict[str, Any], tmp_path: Path, driver: str
) -> None:
    airflow = LocalAirflow(home=tmp_path, conf_dir=world["conf"], env_name="shared", driver=driver)
    env = {**airflow.environ(), **{k: v for k, v in world["env"].items() if k.startswith("LAKE")}}
    try:
        done = subprocess.run(
            [sys.executable, "-c", PER_TASK], env=env, capture_output=True, text=True, check=False
        )
    finally:
        airflow.stop_drivers()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # no model was trained: the job exits 75, which is a skip, not a failure
    assert "SKIPPED" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
