"""Parse dags/ with Airflow's DagBag in a fresh process and write what the tests check
to a JSON file (Airflow logs to stdout).

Run by tests/dags/test_dag_integrity.py with a throw-away AIRFLOW_HOME; a fresh process shows
what the DAG files import (sys.modules) without the test session's own imports.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(dag_folder: str, out: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    before = set(sys.modules)
    started = time.perf_counter()
    bag = DagBag(dag_folder=dag_folder)
    elapsed = time.perf_counter() - started
    dags = {}
    for dag_id, dag in bag.dags.items():
        timetable = dag.timetable
        dags[dag_id] = {
            "tasks": sorted(dag.task_ids),
            "edges": sorted(
                [up, t.task_id] for t in dag.tasks for up in sorted(t.upstream_task_ids)
            ),
            "timetable": type(timetable).__name__,
            "cron": getattr(timetable, "expression", None),
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "pools": sorted({t.pool for t in dag.tasks}),
            "operators": {t.task_id: type(t).__name__ for t in dag.tasks},
            "retries": {t.task_id: t.retries for t in dag.tasks},
            "timeouts": {
                t.task_id: t.execution_timeout.total_seconds() if t.execution_timeout else None
                for t in dag.tasks
            },
            "trigger_rules": {t.task_id: str(t.trigger_rule) for t in dag.tasks},
            "arguments": {
                t.task_id: list(getattr(t, "application_args", None) or []) for t in dag.tasks
            },
            "applications": {t.task_id: getattr(t, "application", None) for t in dag.tasks},
            "conn_ids": sorted({str(getattr(t, "conn_id", "")) for t in dag.tasks} - {""}),
            "outlets": {
                t.task_id: sorted(o.name for o in t.outlets) for t in dag.tasks if t.outlets
            },
            "failure_callbacks": sorted(t.task_id for t in dag.tasks if t.on_failure_callback),
        }
    Path(out).write_text(
        json.dumps(
            {
                "seconds": elapsed,
                "files": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats}
                if bag.dagbag_stats and hasattr(bag.dagbag_stats[0].duration, "total_seconds")
                else {s.file: float(s.duration) for s in bag.dagbag_stats},
                "import_errors": bag.import_errors,
                "new_modules": sorted(
                    m.split(".")[0] for m in set(sys.modules) - before if "." not in m
                ),
                "dags": dags,
            }
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
