"""Helpers of the medlake DAGs (medlake/dags/medlake_dags.py): the spark-submit task of one job, the
interval check and the failure alert. Imports nothing heavy: no Spark, pandas or Presidio
(the jobs do); part of the installed package so that every Airflow worker imports it the same
way, whatever its DAG folder."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from medlake import jobserver
from medlake.config import (
    CONF_DIR_VAR,
    DEFAULT_CONF_DIR,
    TASK_ID_VAR,
    TRY_NUMBER_VAR,
    home_dir,
    packaged,
)
from medlake.pipeline import load_pipeline

NOT_READY = 75  # a job's input or model is not there yet (medlake.runtime.EXIT_NOT_READY)
LOG4J = packaged("resources", "log4j2.properties")
SERVER = packaged("jobserver.py")

# The day range of the run's data interval: [start, end) as first and last day.
DATE_ARGS = [
    "--date",
    "{{ data_interval_start | ds }}",
    "--to",
    "{{ macros.ds_add(data_interval_end | ds, -1) }}",
    "--run-id",
    "{{ run_id }}",
]

# spark-submit resources a connection's extra may set (extra name -> SparkSubmitHook argument)
RESOURCES = {
    "driver-memory": "driver_memory",
    "executor-memory": "executor_memory",
    "executor-cores": "executor_cores",
    "num-executors": "num_executors",
    "total-executor-cores": "total_executor_cores",
}
DRIVERS = ("per-task", "shared")


# SparkSubmitOperator arguments a LakehouseJob does not take: the connection's extra sets them
SUBMIT_SETTINGS = frozenset(
    {
        "files", "py_files", "archives", "driver_class_path", "jars", "java_class", "packages",
        "exclude_packages", "repositories", "total_executor_cores", "executor_cores",
        "executor_memory", "driver_memory", "keytab", "principal", "proxy_user",
        "num_executors", "status_poll_interval", "verbose", "spark_binary", "properties_file",
        "yarn_queue", "deploy_mode", "use_krb5ccache", "post_submit_commands",
        "track_driver_via_k8s_api", "yarn_track_via_rm_api", "yarn_rm_auth", "application",
        "name",
    }
)  # fmt: skip


class LakehouseSubmitHook(SparkSubmitHook):
    """The provider's spark-submit hook with the connection's medlake extras applied through
    its constructor, and the exit code of the spark-submit it ran (`exit_code`).

    From the extra: the resources in RESOURCES, `conf` (more spark.* settings), the driver's
    Java options, `pyspark-python` (the executors' Python; the driver runs this one) and
    `lakehouse-env` (`--env` for the job, unless its arguments have one); `driver`, `session-dir`
    and `session-idle-minutes` (the shared driver) become `shared`, `session_dir` and
    `idle_minutes`. A connection that asks for cluster deploy mode or an unknown driver is
    refused. The task's own `conf` and `env_vars` win over what the extra derives.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        name: str,
        application_args: list[str] | None = None,
        conf: dict[str, Any] | None = None,
        env_vars: dict[str, Any] | None = None,
    ) -> None:
        extra = connection_extra(conn_id)
        if str(extra.get("deploy-mode", "client")) != "client":
            raise AirflowFailException(
                f"Airflow connection {conn_id!r} sets deploy-mode "
                f"{extra['deploy-mode']!r}: the jobs run their driver on the Airflow worker "
                "(client mode), where this project is installed; remove deploy-mode or set it "
                "to client (docs/airflow.md)"
            )
        driver = str(extra.get("driver", "per-task"))
        if driver not in DRIVERS:
            raise AirflowFailException(
                f"Airflow connection {conn_id!r}: extra driver is "
                f"{driver!r}; expected per-task or shared (docs/airflow.md)"
            )
        java_options = f"-Dlog4j.configurationFile={LOG4J} {extra.get('driver-java-options', '')}"
        # the driver runs this installation's Python; executors run `pyspark-python` (a
        # shipped environment on a cluster) or the same Python on one machine. As spark.*
        # settings they reach spark-submit on every master (Kubernetes included).
        driver_python = os.environ.get("PYSPARK_DRIVER_PYTHON") or sys.executable
        executor_python = str(
            extra.get("pyspark-python") or os.environ.get("PYSPARK_PYTHON") or driver_python
        )
        self.conf: dict[str, Any] = {
            # quiet driver logs (the driver runs here, in client mode)
            "spark.driver.extraJavaOptions": java_options.strip(),
            "spark.pyspark.driver.python": driver_python,
            "spark.pyspark.python": executor_python,
            **extra.get("conf", {}),
            **(conf or {}),
        }
        self.application_args = list(application_args or [])
        env = extra.get("lakehouse-env")
        if env and "--env" not in self.application_args:
            self.application_args += ["--env", str(env)]
        self.env_vars: dict[str, Any] = {
            "PYSPARK_DRIVER_PYTHON": driver_python,
            "PYSPARK_PYTHON": executor_python,
            **(env_vars or {}),
        }
        self.shared = driver == "shared"
        self.idle_minutes = float(extra.get("session-idle-minutes", 10))
        self.session_dir = Path(
            str(extra.get("session-dir") or Path(tempfile.gettempdir()) / f"medlake-{os.getuid()}")
        )
        self.exit_code: int | None = None
        super().__init__(
            conf=self.conf,
            conn_id=conn_id,
            name=name,
            application_args=self.application_args,
            env_vars=self.env_vars,
            **{argument: extra[key] for key, argument in RESOURCES.items() if key in extra},
        )

    def command(self, application: str) -> list[str]:
        """The spark-submit command line that runs `application` (a job script, the server)."""
        return self._build_spark_submit_command(application)

    def submit(self, application: str = "", **kwargs: Any) -> str | None:
        """Run spark-submit as the provider does (raising when it exits non-zero); its exit
        code, the job's own in client mode, is kept in `exit_code` either way."""
        self.exit_code = None
        try:
            return super().submit(application, **kwargs)
        finally:
            process = self._submit_sp
            self.exit_code = None if process is None else process.returncode


class LakehouseJob(SparkSubmitOperator):
    """`spark-submit jobs/<job>.py ARGS` on the Airflow connection's master.

    The task carries only arguments; the connection decides where and how big: its host is
    the Spark master (`local[2]`, `yarn`, `k8s://https://…`, `spark://host:7077`), its extra
    may set `queue`, `namespace`, the resources in RESOURCES, `conf` (more spark.* settings,
    such as `spark.archives` with the executors' Python environment), `driver-java-options`,
    `pyspark-python` (the Python the executors run), `lakehouse-env` (the conf/env overlay
    the job loads; default: the worker's $LAKEHOUSE_ENV, else `local`) and `driver`:
    `per-task` (default: one spark-submit per task) or `shared` (one spark-submit of
    `medlake.jobserver` that runs the night's jobs one after the other and exits after
    `session-idle-minutes`, default 10; bench/RESULTS.md `night`). The extra is applied by
    LakehouseSubmitHook. The driver runs in client mode on the worker, where this project is
    installed. A job that exits with NOT_READY (no model trained yet, too little history) is
    skipped, not failed: the exit code of its spark-submit (or of its job on the shared
    driver) decides.
    """

    def __init__(
        self, *, job: str, arguments: list[str], conn_id: str = "spark_default", **kwargs: Any
    ) -> None:
        given = sorted(SUBMIT_SETTINGS & kwargs.keys())
        if given:  # the hook would not pass them on: refuse rather than drop them silently
            raise ValueError(
                f"LakehouseJob {job!r}: {', '.join(given)} are spark-submit settings, which "
                "come from the Airflow connection's extra (conf, resources, pyspark-python; "
                "docs/airflow.md, docs/cluster.md), not from the task"
            )
        super().__init__(
            application=str(packaged("jobs", f"{job}.py")),
            application_args=arguments,
            name=f"medlake-{job}",
            conn_id=conn_id,
            **kwargs,
        )
        self.job = job
        self.conn_id = conn_id
        self.submit_hook: LakehouseSubmitHook | None = None  # of the last spark-submit

    def build_hook(
        self, *, name: str | None = None, application_args: list[str] | None = None
    ) -> LakehouseSubmitHook:
        """The spark-submit of this task (or, with another name and arguments, of the shared
        driver): the task's arguments, conf and environment, the connection's extra."""
        args = self.application_args if application_args is None else application_args
        return LakehouseSubmitHook(
            conn_id=self.conn_id,
            name=name or self.name,
            application_args=list(args or []),
            conf=self.conf,
            env_vars=self.env_vars,
        )

    def _get_hook(self) -> LakehouseSubmitHook:
        """The hook SparkSubmitOperator.execute submits with (after adding its OpenLineage
        settings to `conf`); kept as `submit_hook` for its exit code."""
        self.submit_hook = self.build_hook()
        return self.submit_hook

    def execute(self, context: Any) -> None:
        self.env_vars = {**(self.env_vars or {}), **try_number_env(context)}
        hook = self.build_hook()  # refuses a connection the jobs cannot run on, before any work
        if hook.shared:
            self._execute_shared(hook)
            return
        try:
            super().execute(context)
        except AirflowException:
            if self.submit_hook is not None and self.submit_hook.exit_code == NOT_READY:
                self._skip()
            raise

    def _skip(self) -> None:
        raise AirflowSkipException(
            f"jobs/{self.job}.py: nothing to do yet (its input or model is not there; "
            "the log above says what it needs)"
        ) from None

    def server_command(self, task: LakehouseSubmitHook | None = None) -> list[str]:
        """The spark-submit that starts the shared driver: the task's own command (`task`, its
        hook, built when not given) with `medlake.jobserver` as the application (same master,
        resources and settings)."""
        task = task or self.build_hook()
        args = task.application_args
        server_args = ["--idle-seconds", str(int(task.idle_minutes * 60))]
        if "--env" in args:
            server_args += args[args.index("--env") : args.index("--env") + 2]
        server = self.build_hook(name="medlake-shared-driver", application_args=server_args)
        return server.command(str(SERVER))

    def _execute_shared(self, hook: LakehouseSubmitHook) -> None:
        from medlake.cli import run_argv  # noqa: PLC0415 - DAG parsing stays light (the CLI imports Spark)

        env = {**os.environ, **{k: str(v) for k, v in hook.env_vars.items()}}
        argv = run_argv(self.job, hook.application_args)
        try:
            code = jobserver.run_job(
                self.server_command(hook),
                hook.session_dir,
                argv,
                echo=self.log.info,
                env=env,
                cwd=home_dir(),
            )
        except jobserver.ServerError as exc:
            raise AirflowException(f"jobs/{self.job}.py: {exc}") from None
        if code == NOT_READY:
            self._skip()
        if code != 0:
            raise AirflowException(
                f"jobs/{self.job}.py exited with {code} on the shared driver (the log above "
                "says why)"
            )


def connection_extra(conn_id: str) -> dict[str, Any]:
    """The extra of Airflow connection `conn_id`; a missing connection fails the task with
    how to create it."""
    try:
        connection = BaseHook.get_connection(conn_id)
    except Exception as exc:  # Airflow raises its own not-found types per version
        raise AirflowFailException(
            f"Airflow connection {conn_id!r} is missing: create it with "
            f"`airflow connections add {conn_id} --conn-type spark --conn-host "
            "'local[2]'` (or yarn, k8s://..., spark://host:7077); see README.md, "
            f"'Running on a cluster' ({exc})"
        ) from None
    return dict(connection.extra_dejson or {})


def try_number_env(context: Any) -> dict[str, str]:
    """The task's id and try number as the job's variables (`LAKEHOUSE_TASK_ID`,
    `LAKEHOUSE_TRY_NUMBER`): each task is its own OpenLineage job and each try its own run.
    As `LAKEHOUSE_` variables they reach the job through spark-submit's environment and
    through the shared driver, which passes a task's `LAKEHOUSE_*` variables to its job and
    never lends them to another task's."""
    task_instance = context.get("ti") or context.get("task_instance")
    number = getattr(task_instance, "try_number", None)
    task_id = getattr(task_instance, "task_id", None)
    env = {TRY_NUMBER_VAR: str(number)} if number else {}
    return env | ({TASK_ID_VAR: str(task_id)} if task_id else {})


def require_interval(**context: Any) -> str:
    """Fail loudly when the run has no data interval (a manual run without a logical date):
    every job processes the days of its interval and must not guess them."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None:
        raise AirflowFailException(
            "this run has no data interval, so there is no day to process: trigger it with a "
            "logical date (`airflow dags trigger medlake_nightly --logical-date 2026-01-02`) "
            "or let the scheduler run it"
        )
    return f"{start:%Y-%m-%d} .. {(end - dt.timedelta(days=1)):%Y-%m-%d}"


def alert_file() -> Path:

    conf = Path(os.environ.get(CONF_DIR_VAR) or DEFAULT_CONF_DIR)
    return load_pipeline(conf).alerts_path(conf)


def record_alert(context: Any) -> None:
    """on_failure_callback: append one JSON line naming the task, run, interval and error."""
    ti = context.get("ti") or context.get("task_instance")
    start = context.get("data_interval_start")
    event = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None) or context.get("run_id"),
        "try_number": getattr(ti, "try_number", None),
        "data_interval_start": start.isoformat() if start else None,
        "error": str(context.get("exception") or "")[-2000:],
    }
    path = alert_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(event, ensure_ascii=False) + "\n")


GOLD_TABLES = (
    "gold.supply_chain_panorama",
    "gold.supplier_scorecard",
    "gold.product_cost",
    "gold.cost_transmission",
    "gold.metric_catalogue",
)


def fail_the_run(**context: Any) -> None:
    """Runs only when a task of the run failed (trigger rule one_failed): fail the run too."""
    raise AirflowFailException("a task of this run failed; its log and var/alerts say why")
