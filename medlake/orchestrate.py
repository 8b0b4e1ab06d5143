"""Run the DAG family on this machine the way the scheduler would: `airflow dags test`.

One local Airflow home (SQLite metadata under `var/airflow/` by default) whose DAG folder is
this project's `dags/`, the Spark connection pointing at local Spark, the pool the DAGs
use, and `spark-submit` of the installed PySpark on the PATH. `make demo` and the end-to-end
tests use it; a production Airflow sets the same things in its own configuration.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from medlake.config import (
    CONF_DIR_VAR,
    DAGS_DIR,
    DEFAULT_CONF_DIR,
    ENV_VAR,
    HOME_VAR,
    ConfigError,
    home_dir,
)
from medlake.jobserver import stop
from medlake.pipeline import load_pipeline

LOCAL_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
# A shared driver lives for the whole night: it needs the optimising JIT (with the quick
# tier only, its code cache filled within a minute and the JVM stopped compiling).
SHARED_JAVA_OPTIONS = "-XX:+UseSerialGC"


@dataclass
class LocalAirflow:
    """A local Airflow home for `airflow dags test` runs of dags/ on local Spark."""

    home: Path
    conf_dir: Path = DEFAULT_CONF_DIR
    env_name: str = "local"
    master: str = "local[2]"
    driver_memory: str = "2g"
    driver: str = "shared"  # the night's tasks share one driver (medlake.jobserver)
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def environ(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        pipeline = load_pipeline(self.conf_dir, self.env_name)
        connection = {
            "conn_type": "spark",
            "host": self.master,
            "extra": {
                "driver-memory": self.driver_memory,
                "lakehouse-env": self.env_name,
                # a per-task job lives seconds to minutes: the JIT's optimising tier and a
                # parallel collector cost the two cores more than they save (about a quarter
                # of each task's time, measured on ingest and gold in the demo)
                "driver-java-options": (
                    SHARED_JAVA_OPTIONS if self.driver == "shared" else LOCAL_JAVA_OPTIONS
                ),
                "driver": self.driver,
                "session-dir": str(self.session_dir),
            },
        }
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": "",
            f"AIRFLOW_CONN_{pipeline.connection.upper()}": json.dumps(connection),
            CONF_DIR_VAR: str(self.conf_dir),
            HOME_VAR: str(home_dir(self.conf_dir)),
            ENV_VAR: self.env_name,
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            **self.extra_env,
        }
        env.pop("PYSPARK_GATEWAY_PORT", None)
        env.pop("PYSPARK_GATEWAY_SECRET", None)
        return env

    @property
    def session_dir(self) -> Path:
        """Where the shared driver's socket and log live (medlake.jobserver)."""
        return self.home / "run"

    def stop_drivers(self) -> int:
        """Stop the shared drivers this home's runs started (they would exit when idle)."""

        return stop(self.session_dir) if self.session_dir.is_dir() else 0

    def airflow(self, *args: str, log: Path | None = None, check: bool = True) -> int:
        """Run the `airflow` command of this environment; output to `log` (or inherited)."""
        command = [str(Path(sys.executable).parent / "airflow"), *args]
        if log is None:
            done = subprocess.run(command, env=self.environ(), check=False)
        else:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a", encoding="utf-8") as out:
                out.write(f"\n$ airflow {' '.join(args)}\n")
                out.flush()
                done = subprocess.run(
                    command, env=self.environ(), stdout=out, stderr=subprocess.STDOUT, check=False
                )
        if check and done.returncode != 0:
            where = f"; its output is in {log}" if log else ""
            raise ConfigError(f"`airflow {' '.join(args)}` exited with {done.returncode}{where}")
        return done.returncode

    def init(self, log: Path) -> None:
        """Create (or migrate) the metadata database and the pool the DAGs run in."""
        self.home.mkdir(parents=True, exist_ok=True)
        pipeline = load_pipeline(self.conf_dir, self.env_name)
        self.airflow("db", "migrate", log=log)
        self.airflow(
            "pools",
            "set",
            pipeline.pool,
            "1",
            "medlake: one writer at a time on this machine",
            log=log,
        )

    def run_day(
        self,
        dag_id: str,
        day: dt.date,
        log: Path,
        on_task: Callable[[str, str, float | None], None] | None = None,
        poll_seconds: float = 2.0,
    ) -> int:
        """`airflow dags test` of the run whose data interval is `day` (logical date: the
        interval's end, as the scheduler starts it at midnight after the day).

        Output goes to `log`; `on_task(task_id, state, seconds)` is called once for each task
        that finishes, read from the metadata database while the run goes on."""
        logical = (day + dt.timedelta(days=1)).isoformat()
        args = ("dags", "test", dag_id, logical)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as out:
            out.write(f"\n$ airflow {' '.join(args)}\n")
            out.flush()
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "airflow"), *args],
                env=self.environ(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            reported: set[str] = set()
            started = time.monotonic()
            while True:
                finished = process.poll() is not None
                if on_task is not None:
                    for task_id, (state, seconds) in self._finished(dag_id, day, started).items():
                        if task_id not in reported:
                            reported.add(task_id)
                            on_task(task_id, state, seconds)
                if finished:
                    return process.returncode
                time.sleep(poll_seconds)

    def _finished(
        self, dag_id: str, day: dt.date, since: float
    ) -> dict[str, tuple[str, float | None]]:
        """Finished tasks of this run (ended after `since`, so a re-run reports anew)."""

        since_utc = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - since)
        try:
            with sqlite3.connect(self.home / "airflow.db", timeout=1) as db:
                rows = db.execute(
                    "SELECT ti.task_id, ti.state, ti.duration, ti.end_date FROM task_instance ti "
                    "JOIN dag_run dr ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id "
                    "WHERE dr.dag_id = ? AND date(dr.logical_date) = ? AND ti.end_date IS NOT NULL "
                    "AND ti.state IN ('success', 'failed', 'skipped', 'upstream_failed') "
                    "ORDER BY ti.end_date",
                    (dag_id, (day + dt.timedelta(days=1)).isoformat()),
                ).fetchall()
        except sqlite3.Error:  # the run holds the write lock; ask again at the next poll
            return {}
        out = {}
        for task_id, state, duration, end in rows:
            ended = dt.datetime.fromisoformat(str(end))
            if ended.tzinfo is None:
                ended = ended.replace(tzinfo=dt.UTC)
            if ended >= since_utc - dt.timedelta(seconds=1):
                out[task_id] = (state, duration)
        return out

    def task_states(self, dag_id: str, day: dt.date) -> dict[str, str]:
        """Task id -> state of the run of `day` (`airflow dags test` replaces an earlier run of
        the same logical date, so there is one; read from the metadata database)."""

        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute(
                "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run dr "
                "ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id "
                "WHERE dr.dag_id = ? AND date(dr.logical_date) = ?",
                (dag_id, (day + dt.timedelta(days=1)).isoformat()),
            ).fetchall()
        return dict(rows)
