"""What `spark-submit` a task runs is decided by the Airflow connection alone, and what its
exit code means by the code alone.

The operator and its hook (the provider's, with the connection's extra applied) build the
command in a fresh process (its own AIRFLOW_HOME) from a connection given as an environment
variable, as Airflow resolves it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from medlake.dag_tasks import NOT_READY, LakehouseJob
from medlake.orchestrate import LocalAirflow
from medlake.runtime import EXIT_NOT_READY
from tests import REPO

SCRIPT = """
import json, sys
from medlake.dag_tasks import LakehouseJob
op = LakehouseJob(task_id="gold", job="gold", arguments=["--date", "2026-01-02"],
                  conn_id="spark_medlake")
hook = op.build_hook()
print("COMMAND=" + json.dumps({"cmd": hook.command(op.application), "env": hook.env_vars}))
"""


def _run(
    tmp_path: Path, connection: dict[str, object], script: str = SCRIPT
) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh Python whose Airflow knows `connection` as spark_medlake."""
    env = LocalAirflow(home=tmp_path).environ()
    env["AIRFLOW_CONN_SPARK_MEDLAKE"] = json.dumps(connection)
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )


def _command(tmp_path: Path, connection: dict[str, object], script: str = SCRIPT) -> Any:
    """What `script` printed after COMMAND=, as JSON (the script must succeed)."""
    done = _run(tmp_path, connection, script)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("COMMAND="))
    return json.loads(line.removeprefix("COMMAND="))


def test_cluster_deploy_mode_is_refused_with_the_fix(tmp_path: Path) -> None:
    done = _run(
        tmp_path, {"conn_type": "spark", "host": "yarn", "extra": {"deploy-mode": "cluster"}}
    )
    assert done.returncode != 0
    assert "deploy-mode 'cluster'" in done.stderr and "client" in done.stderr


def test_a_cluster_connection_changes_master_resources_python_and_overlay(tmp_path: Path) -> None:
    built = _command(
        tmp_path,
        {
            "conn_type": "spark",
            "host": "yarn",
            "extra": {
                "deploy-mode": "client",
                "queue": "etl",
                "executor-memory": "8g",
                "num-executors": "6",
                "conf": {"spark.archives": "s3a://bucket/medlake-env.tar.gz#environment"},
                "pyspark-python": "./environment/bin/python",
                "lakehouse-env": "cluster",
            },
        },
    )
    cmd = built["cmd"]
    assert isinstance(cmd, list)

    def value(flag: str) -> str:
        return str(cmd[cmd.index(flag) + 1])

    assert value("--master") == "yarn"
    assert value("--deploy-mode") == "client"
    assert value("--queue") == "etl"
    assert value("--executor-memory") == "8g"
    assert value("--num-executors") == "6"
    assert "spark.archives=s3a://bucket/medlake-env.tar.gz#environment" in cmd
    assert "spark.pyspark.python=./environment/bin/python" in cmd
    assert f"spark.pyspark.driver.python={sys.executable}" in cmd
    assert cmd[-5:] == [str(REPO / "medlake" / "jobs" / "gold.py"), "--date", "2026-01-02", "--env",
                        "cluster"]  # fmt: skip
    env = built["env"]
    assert isinstance(env, dict)
    assert env["PYSPARK_PYTHON"] == "./environment/bin/python"
    assert env["PYSPARK_DRIVER_PYTHON"] == sys.executable


def test_the_local_connection_runs_local_spark_with_this_python(tmp_path: Path) -> None:
    built = _command(tmp_path, {"conn_type": "spark", "host": "local[2]", "extra": {}})
    cmd = built["cmd"]
    assert isinstance(cmd, list)
    assert cmd[cmd.index("--master") + 1] == "local[2]"
    assert "--deploy-mode" not in cmd and "--env" not in cmd
    env = built["env"]
    assert isinstance(env, dict) and env["PYSPARK_PYTHON"] == sys.executable


SHARED = """
import json
from medlake.dag_tasks import LakehouseJob
commands = []
for job, args in (("gold", ["--date", "2026-01-02"]), ("ingest", ["--plant", "SU"])):
    op = LakehouseJob(task_id=job, job=job, arguments=args, conn_id="spark_medlake")
    commands.append(op.server_command())
print("COMMAND=" + json.dumps(commands))
"""


def test_a_shared_driver_connection_starts_one_server_command_for_every_job(
    tmp_path: Path,
) -> None:
    connection = {
        "conn_type": "spark",
        "host": "yarn",
        "extra": {"driver": "shared", "executor-memory": "8g", "lakehouse-env": "cluster",
                  "session-idle-minutes": 3},
    }  # fmt: skip
    gold, ingest = _command(tmp_path, connection, SHARED)
    assert gold == ingest  # one server for the night, whatever the job
    assert gold[gold.index("--master") + 1] == "yarn"
    assert gold[gold.index("--executor-memory") + 1] == "8g"
    assert gold[-5:] == [str(REPO / "medlake" / "jobserver.py"), "--idle-seconds",
                         "180", "--env", "cluster"]  # fmt: skip
    assert gold[gold.index("--name") + 1] == "medlake-shared-driver"


def test_an_unknown_driver_mode_is_refused_with_the_choices(tmp_path: Path) -> None:
    done = _run(tmp_path, {"conn_type": "spark", "host": "local[2]", "extra": {"driver": "pooled"}})
    assert done.returncode != 0
    assert "driver is 'pooled'" in done.stderr and "per-task or shared" in done.stderr


# spark-submit stands in for the job: it prints what a job may print, then exits with CODE
FAKE_SPARK_SUBMIT = """#!/bin/sh
echo "a job may print anything, such as: Error code is: 75"
exit {code}
"""

RUN_TASK = """
import json
from airflow.sdk.exceptions import AirflowSkipException
from medlake.dag_tasks import LakehouseJob
op = LakehouseJob(task_id="score", job="score", arguments=["--date", "2026-01-02"],
                  conn_id="spark_medlake")
try:
    op.execute({})
except AirflowSkipException:
    outcome = "skipped"
except Exception as exc:
    outcome = "failed " + type(exc).__name__
else:
    outcome = "succeeded"
print("OUTCOME=" + json.dumps([outcome, op.submit_hook.exit_code]))
"""


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(NOT_READY, "skipped"), (1, "failed AirflowException"), (0, "succeeded")],
)
def test_the_exit_code_of_spark_submit_decides_skipped_or_failed(
    tmp_path: Path, code: int, outcome: str
) -> None:
    # the provider's hook runs a real process: a `spark-submit` first on PATH
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "spark-submit"
    fake.write_text(FAKE_SPARK_SUBMIT.format(code=code), encoding="utf-8")
    fake.chmod(0o755)
    env = LocalAirflow(home=tmp_path).environ()
    env["AIRFLOW_CONN_SPARK_MEDLAKE"] = json.dumps(
        {"conn_type": "spark", "host": "local[2]", "extra": {"driver": "per-task"}}
    )
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        [sys.executable, "-c", RUN_TASK],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("OUTCOME="))
    assert json.loads(line.removeprefix("OUTCOME=")) == [outcome, code]


def test_not_ready_is_the_exit_code_the_jobs_use() -> None:
    assert NOT_READY == EXIT_NOT_READY == 75


def test_spark_submit_settings_on_the_task_are_refused_not_dropped() -> None:
    """The hook takes its settings from the connection; a task's own py_files would never
    reach spark-submit, so the task refuses it and says where it belongs."""
    with pytest.raises(ValueError, match="are spark-submit settings") as err:
        LakehouseJob(
            task_id="gold", job="gold", arguments=[], py_files="/opt/medlake.zip", verbose=True
        )
    assert "py_files, verbose are spark-submit settings" in str(err.value)
    assert "connection's extra" in str(err.value)
