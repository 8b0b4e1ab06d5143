"""One nightly run under `airflow dags test`, against one empty spark-submit of the same run.

Run with `python -m bench.night --scale 1` (`make bench`). The simulator delivers four days
of every configured plant (under `var/bench/night/`); the first night is run once to bring
the lake to the state of an ordinary night (not timed). Then, in one run:

1. baseline: an **empty spark-submit** (start a session, count one row, stop) on the
   connection's master with the per-task driver options, timed as the median of three;
2. the night as it was: **one spark-submit per task, one ingest task per plant**
   (connection extra `driver: per-task`, `ingest_tasks: per-plant`);
3. **a shared driver, one ingest task per plant** (`driver: shared`, medlake.jobserver;
   its start is inside the night's time);
4. **a shared driver, one ingest task for every plant** (`ingest_tasks: one`), Spark's
   compiled expressions and constraint propagation on (the default until the small-plan
   settings of medlake/conf/lakehouse.yaml);
5. the default now: the same with medlake/conf/lakehouse.yaml's `spark.conf` (interpreted
   expressions, no constraint propagation).

Nights 2 to 5 each process the next delivered day, so each lands new files. Per-task
seconds come from Airflow's metadata database. Ratios: night / empty spark-submit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import machine, write_section
from bench.throughput import bench_keys
from medlake.config import DEFAULT_CONF_DIR
from medlake.orchestrate import LOCAL_JAVA_OPTIONS, LocalAirflow

REPO = Path(__file__).resolve().parents[1]  # the checkout: var/bench, the working folder

START = dt.date(2026, 3, 2)
WORK = REPO / "var" / "bench" / "night"
# (driver, ingest tasks, Spark expressions): nights 2..5
LAYOUTS = [
    ("per-task", "per-plant", "compiled"),
    ("shared", "per-plant", "compiled"),
    ("shared", "one", "compiled"),
    ("shared", "one", "interpreted"),
]
COMPILED = {  # Spark's own defaults, which medlake/conf/lakehouse.yaml changes for one machine
    "spark.sql.codegen.factoryMode": "FALLBACK",
    "spark.sql.codegen.wholeStage": "true",
    "spark.sql.constraintPropagation.enabled": "true",
}
EMPTY = "from pyspark.sql import SparkSession\ns = SparkSession.builder.getOrCreate()\n" \
    "s.range(1).count()\ns.stop()\n"  # fmt: skip


def _conf(root: Path) -> Path:
    conf = root / "conf"
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    overlay = yaml.safe_load((conf / "env" / "demo.yaml").read_text(encoding="utf-8")) or {}
    overlay.update(
        storage={"root": str(root / "lake")},
        landing={"root": str(root / "landing")},
        mlflow={"tracking_uri": str(root / "mlruns")},
        reports={"folder": str(root / "reports")},
        lineage={"transport": "none"},
        pipeline={
            **overlay.get("pipeline", {}),
            "retries": 0,
            "alerts": str(root / "alerts.jsonl"),
        },
    )
    (conf / "env" / "bench.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    return conf


def empty_submit(java_options: str) -> float:
    script = WORK / "empty.py"
    script.write_text(EMPTY, encoding="utf-8")
    spark_submit = str(Path(sys.executable).parent / "spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    began = time.perf_counter()
    subprocess.run(
        [spark_submit, "--master", "local[2]", "--driver-java-options", java_options, str(script)],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - began


def night(
    root: Path, conf: Path, driver: str, ingest: str, expressions: str, day: dt.date
) -> dict[str, Any]:
    pipeline = yaml.safe_load((conf / "pipeline.yaml").read_text(encoding="utf-8"))
    pipeline["ingest_tasks"] = ingest
    (conf / "pipeline.yaml").write_text(yaml.safe_dump(pipeline), encoding="utf-8")
    overlay_path = conf / "env" / "bench.yaml"
    overlay = yaml.safe_load(overlay_path.read_text(encoding="utf-8"))
    overlay.setdefault("spark", {})["conf"] = COMPILED if expressions == "compiled" else {}
    overlay_path.write_text(yaml.safe_dump(overlay), encoding="utf-8")
    home = root / f"airflow-{driver}-{ingest}-{expressions}"
    airflow = LocalAirflow(home=home, conf_dir=conf, env_name="bench", driver=driver)
    log = home / "airflow.log"
    airflow.init(log)
    tasks: dict[str, float] = {}

    def on_task(task_id: str, state: str, seconds: float | None) -> None:
        tasks[task_id] = seconds or 0.0
        print(f"  {driver:8} {task_id:24} {state:10} {seconds or 0:6.1f} s", flush=True)

    began = time.perf_counter()
    try:
        code = airflow.run_day("medlake_nightly", day, log, on_task=on_task)
    finally:
        airflow.stop_drivers()
    seconds = time.perf_counter() - began
    bad = {t: s for t, s in airflow.task_states("medlake_nightly", day).items() if s == "failed"}
    if code != 0 or bad:
        raise SystemExit(f"the {driver} night of {day} failed ({bad}); see {log}")
    return {"seconds": seconds, "tasks": tasks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-record", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args()
    os.environ.update(bench_keys())
    from medlake_simulator.generate import generate

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    conf = _conf(WORK)
    days = len(LAYOUTS) + 1
    generate(WORK / "landing", start=START, days=days, scale=args.scale, seed=args.seed, workers=2)
    print("first night (brings the lake to an ordinary night's state; not timed)", flush=True)
    night(WORK, conf, "shared", "one", "interpreted", START)
    empties = [empty_submit(LOCAL_JAVA_OPTIONS) for _ in range(3)]
    empty = statistics.median(empties)
    print(f"empty spark-submit: {', '.join(f'{e:.1f}' for e in empties)} s", flush=True)
    nights = {
        layout: night(WORK, conf, *layout, START + dt.timedelta(days=i + 1))
        for i, layout in enumerate(LAYOUTS)
    }
    print(json.dumps({"empty": empties, **{" ".join(k): v for k, v in nights.items()}}, indent=1))
    if not args.no_record:
        write_section("night", _section(args, empty, nights))


def _section(
    args: argparse.Namespace, empty: float, nights: dict[tuple[str, str], dict[str, Any]]
) -> str:
    names = {
        ("per-task", "per-plant", "compiled"): "one spark-submit per task, ingest per plant",
        ("shared", "per-plant", "compiled"): "shared driver, ingest per plant",
        ("shared", "one", "compiled"): "shared driver, one ingest task, compiled expressions",
        ("shared", "one", "interpreted"): "shared driver, one ingest task, interpreted "
        "expressions (default)",
    }
    lines = [
        "## One nightly run against one empty spark-submit",
        "",
        f"Latest run {dt.date.today()} on {machine()}.",
        f"Command: `python -m bench.night --scale {args.scale:g}` (every configured plant, "
        "one delivered day per night after an untimed first night, `airflow dags test` of "
        "medlake_nightly on local[2]; empty spark-submit: median of three).",
        "",
        "| run | seconds | / empty spark-submit |",
        "| --- | ---: | ---: |",
        f"| baseline: empty spark-submit | {empty:.1f} | 1.0x |",
    ]
    for layout, got in nights.items():
        lines.append(
            f"| night: {names[layout]} | {got['seconds']:.0f} | {got['seconds'] / empty:.1f}x |"
        )
    lines += [
        "",
        "Target (issue 16): at most 6x. Seconds per task (Airflow's task durations):",
        "",
        "| task | " + " | ".join(names[k] for k in nights) + " |",
        "| --- |" + " ---: |" * len(nights),
    ]
    tasks: list[str] = []
    for got in nights.values():
        tasks += [t for t in got["tasks"] if t not in tasks and t != "watcher"]
    for task in tasks:
        cells = [
            f"{got['tasks'][task]:.1f}" if task in got["tasks"] else "" for got in nights.values()
        ]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
