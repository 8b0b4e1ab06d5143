"""Bronze + silver benchmark: throughput at two scales and the cost of the nightly increment.

Run with `python -m bench.pipeline` (defaults: scales 1 and 10, a history of 60 days).
For each scale the simulator writes `days + 1` daily deliveries ending on the 15th of a
month (a nightly run mid-month rewrites a realistic share of silver's monthly partitions);
then, in one process on the embedded default (local Spark, delta-rs):

1. rebuild: `ingest` and `silver` over the whole history from empty tables, in one run each
   (what a rebuild or a first load does);
2. nightly: `ingest` and `silver` for the one new day on top of that history.

Throughput is delivered rows per second of the rebuild; the incremental ratio is
nightly / rebuild, measured in the same process. The target (issue 4) is at most 10% for a
year of history (`--days 365`). Rows of earlier runs with another scale or history length
stay in the results table, so a long run (`--days 365 --scales 1`) and a throughput run
(`--days 30 --scales 1,10`) can be recorded side by side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import RESULTS, machine, write_section
from bench.throughput import bench_keys

REPO = Path(__file__).resolve().parents[1]  # the checkout: var/bench, the working folder

NIGHT = dt.date(2026, 7, 15)  # the nightly run's day; the history is the days before it

CHILD = """
import datetime as dt, json, sys, time
from pathlib import Path
from medlake.config import load_settings
from medlake.runtime import JobContext
from medlake.jobs import ingest, silver
root, days, start = Path(sys.argv[1]), int(sys.argv[2]), dt.date.fromisoformat(sys.argv[3])
history = [start + dt.timedelta(days=i) for i in range(days)]
night = [start + dt.timedelta(days=days)]
settings = load_settings("local", overrides={
    "storage": {"root": str(root / "lake")}, "landing": {"root": str(root / "landing")},
    "lineage": {"transport": "none"}})
spark = JobContext(settings=settings, job="bench", dates=night, run_id="start").spark
def run(job, module, dates, run_id):  # the Spark session is started before any timing
    ctx = JobContext(settings=settings, job=job, dates=dates, run_id=run_id, _spark=spark)
    began = time.perf_counter()
    summary = module.run(ctx)
    return time.perf_counter() - began, summary
t_ingest, s_ingest = run("ingest", ingest, history, "bench-rebuild-ingest")
t_silver, s_silver = run("silver", silver, history, "bench-rebuild-silver")
n_ingest, _ = run("ingest", ingest, night, "bench-night-ingest")
n_silver, s_night = run("silver", silver, night, "bench-night-silver")
print(json.dumps({
    "rows": s_ingest["rows_ingested"] + s_ingest["rows_quarantined"],
    "rebuild_ingest": t_ingest, "rebuild_silver": t_silver,
    "night_ingest": n_ingest, "night_silver": n_silver,
    "unbalanced": len(s_silver["unbalanced"]) + len(s_night["unbalanced"]),
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=60, help="days of history (default 60)")
    parser.add_argument("--scales", default="1,10")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    results = []
    start = NIGHT - dt.timedelta(days=args.days)
    for scale in [float(s) for s in args.scales.split(",")]:
        root = REPO / "var" / "bench" / f"pipeline-{scale:g}"
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "medlake.cli",
                "generate",
                "--out",
                str(root / "landing"),
                "--start",
                start.isoformat(),
                "--days",
                str(args.days + 1),
                "--scale",
                f"{scale:g}",
                "--workers",
                "2",
                "--quiet",
            ],
            check=True,
            cwd=REPO,
        )
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(root), str(args.days), start.isoformat()],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
            env={**os.environ, **bench_keys()},  # silver masks with the jurisdictions' keys
        )
        if done.returncode != 0:
            sys.exit(f"bench.pipeline: the run at scale {scale:g} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["scale"], result["days"] = scale, args.days
        results.append(result)
        print(json.dumps(result), flush=True)
        shutil.rmtree(root, ignore_errors=True)
        if not args.no_record:
            write_section("pipeline", _table(args, results))
    print(_table(args, results))


def _table(args: argparse.Namespace, results: list[dict[str, float]]) -> str:
    lines = [
        "## Bronze + silver: throughput and the nightly increment",
        "",
        f"Latest run {dt.date.today().isoformat()} on {machine()}.",
        "Command: `python -m bench.pipeline --days DAYS --scales SCALE` (rebuild = ingest + "
        "silver over the history from empty tables, one run each;",
        "nightly = ingest + silver of the next day on top; same process, local Spark). "
        "Target: nightly / rebuild at most 10% with a year of history.",
        "",
        "| scale | history days | rows | rebuild ingest s | rebuild silver s | rows/s | "
        "nightly ingest s | nightly silver s | nightly / rebuild | measured |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    rows = {k: v for k, v in _recorded().items() if k not in {_key(r) for r in results}}
    for r in results:
        rebuild = r["rebuild_ingest"] + r["rebuild_silver"]
        night = r["night_ingest"] + r["night_silver"]
        rows[_key(r)] = (
            f"| {r['scale']:g} | {int(r['days'])} | {int(r['rows']):,} | "
            f"{r['rebuild_ingest']:.0f} | {r['rebuild_silver']:.0f} | {r['rows'] / rebuild:,.0f} "
            f"| {r['night_ingest']:.0f} | {r['night_silver']:.0f} | {night / rebuild:.1%} | "
            f"{dt.date.today().isoformat()} |"
        )
    return "\n".join(lines + [rows[k] for k in sorted(rows)])


def _key(r: dict[str, float]) -> tuple[float, int]:
    return (float(r["scale"]), int(r["days"]))


def _recorded() -> dict[tuple[float, int], str]:
    """Result rows already in RESULTS.md (this benchmark's section), by (scale, days)."""
    import re

    text = RESULTS.read_text() if RESULTS.exists() else ""
    section = re.search(r"<!-- pipeline:start -->(.*?)<!-- pipeline:end -->", text, re.DOTALL)
    found = {}
    for line in (section.group(1) if section else "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and re.fullmatch(r"[0-9.]+", cells[0]):
            found[(float(cells[0]), int(cells[1]))] = line
    return found


if __name__ == "__main__":
    main()
