"""The query service (the analysts' process boundary) against the in-process governed path
and against a fresh `lakehouse metrics query` process, on the demo's six months of history.

Builds the history the way `make demo` does (simulator defaults: six plants, scale 1, seed
42, 2026-01-01 .. 06-30, then `lakehouse run backfill`) unless `--home` names a folder that
already holds it (after `make demo`: `--home .`). Then, for the metric `otd` by plant and
month as the regional analyst `analyst_cn` and one governed SQL query:

- cold: `lakehouse metrics query` in a fresh process (JVM start, planning, reads), the
  baseline the service removes;
- in process: `metric_query` through `Lakehouse` in this process, warm;
- service: `lakehouse serve` started as its own process, queried with `medlake.client` over
  HTTP on loopback once warm (two queries not counted).

    python -m bench.boundary [--home DIR] [--runs 20] [--cold-runs 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, write_section

METRIC, BY = "otd", ["plant_id", "month"]
SQL = (
    "SELECT plant_id, count(*) AS receipts, avg(datediff(receipt_date, '2026-01-01')) AS d "
    "FROM silver.goods_receipts GROUP BY plant_id ORDER BY plant_id"
)
ROLE = "analyst_cn"


def _lakehouse() -> str:
    return str(Path(sys.executable).parent / "lakehouse")


def build_history(home: Path) -> None:
    """The demo's six months: deliveries, then `lakehouse run backfill` (ingest, silver, gold)."""
    from medlake_simulator.demo import DEMO_HISTORY_DAYS, DEMO_SCALE, DEMO_SEED, DEMO_START
    from medlake_simulator.generate import generate

    generate(
        home / "var" / "deliveries",
        start=DEMO_START,
        days=DEMO_HISTORY_DAYS,
        scale=DEMO_SCALE,
        seed=DEMO_SEED,
        progress=False,
        workers=2,
    )
    last = DEMO_START + dt.timedelta(days=DEMO_HISTORY_DAYS - 1)
    subprocess.run(
        [_lakehouse(), "run", "backfill", "--date", str(DEMO_START), "--to", str(last)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", help="a folder holding the demo's history (var/lake)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold-runs", type=int, default=2)
    args = parser.parse_args()
    own = args.home is None
    home = Path(args.home or tempfile.mkdtemp(prefix="bench-boundary-")).resolve()
    os.environ["LAKEHOUSE_HOME"] = str(home)
    os.environ["LAKEHOUSE_ENV"] = "local"
    from medlake.config import load_settings
    from medlake_simulator.demo import demo_identities, demo_keys

    settings = load_settings("local")
    demo_keys(settings)
    demo_identities(settings)
    os.environ["LAKEHOUSE_TOKEN_FILE"] = str(home / "var/secrets/tokens" / f"demo.{ROLE}.token")
    try:
        if own:
            t = time.perf_counter()
            build_history(home)
            print(f"history built in {time.perf_counter() - t:.0f} s", flush=True)
        results = measure(settings, args.runs, args.cold_runs)
    finally:
        if own:
            shutil.rmtree(home, ignore_errors=True)
    write_section("boundary", render(results, args))


def measure(settings: object, runs: int, cold_runs: int) -> dict[str, list[float]]:
    from medlake.client import Client
    from medlake.gold.selfservice import metric_query
    from medlake.governance.read import Lakehouse

    out: dict[str, list[float]] = {"cold": [], "inproc": [], "inproc_sql": [], "service": []}
    out["service_sql"], out["service_start"] = [], []
    argv = [_lakehouse(), "metrics", "query", METRIC, "--by", ",".join(BY)]
    env = {k: v for k, v in os.environ.items() if k != "LAKEHOUSE_SERVER"}
    for _ in range(cold_runs):
        t = time.perf_counter()
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
        out["cold"].append(time.perf_counter() - t)
        print(f"cold: {out['cold'][-1]:.1f} s", flush=True)

    lh = Lakehouse.open(settings=settings, purpose="bench")  # type: ignore[arg-type]
    for i in range(runs + 2):
        t = time.perf_counter()
        metric_query(lh, settings, METRIC, by=BY)  # type: ignore[arg-type]
        if i >= 2:
            out["inproc"].append(time.perf_counter() - t)
        t = time.perf_counter()
        lh.fetch(SQL)
        if i >= 2:
            out["inproc_sql"].append(time.perf_counter() - t)
    lh.spark.stop()
    print(f"in process: median {statistics.median(out['inproc']):.2f} s", flush=True)

    t = time.perf_counter()
    server = subprocess.Popen(
        [_lakehouse(), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        if "listening on" not in line:
            raise RuntimeError(f"the service did not start: {line!r}")
        out["service_start"].append(time.perf_counter() - t)
        client = Client(line.split()[-1], purpose="bench")
        for i in range(runs + 2):
            t = time.perf_counter()
            client.metric(METRIC, by=BY)
            if i >= 2:
                out["service"].append(time.perf_counter() - t)
            t = time.perf_counter()
            client.sql(SQL)
            if i >= 2:
                out["service_sql"].append(time.perf_counter() - t)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"service: median {statistics.median(out['service']):.2f} s", flush=True)
    return out


def render(r: dict[str, list[float]], args: argparse.Namespace) -> str:
    def row(name: str, values: list[float], base: float) -> str:
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        return f"| {name} | {len(values)} | {p50:.2f} | {p95:.2f} | {p50 / base:.2f}x |"

    inproc = statistics.median(r["inproc"])
    inproc_sql = statistics.median(r["inproc_sql"])
    return "\n".join(
        [
            "## The query service: governed metric queries through the process boundary",
            "",
            f"Measured {dt.date.today()} on {machine()}.",
            f"Command: `python -m bench.boundary{' --home ' + args.home if args.home else ''} "
            f"--runs {args.runs} --cold-runs {args.cold_runs}`. History: the demo's six months "
            "(simulator defaults, 2026-01-01 .. 06-30, `lakehouse run backfill`). Query: "
            f"`{METRIC}` by {', '.join(BY)} as `{ROLE}` (signed in with its demo token), and "
            "one governed SQL aggregate over silver.goods_receipts. Times in seconds from "
            "request to rows; the service's first two answers are not counted (warm-up), nor "
            "are the in-process path's. Ratios against the in-process path in the same run.",
            "",
            "| path | runs | p50 | p95 | against in process |",
            "| --- | ---: | ---: | ---: | ---: |",
            row("metric, fresh `lakehouse metrics query` process (cold)", r["cold"], inproc),
            row("metric, in process (warm `Lakehouse`)", r["inproc"], inproc),
            row("metric, query service over HTTP (warm)", r["service"], inproc),
            row("SQL, in process (warm)", r["inproc_sql"], inproc_sql),
            row("SQL, query service over HTTP (warm)", r["service_sql"], inproc_sql),
            "",
            f"Service start to first request accepted: {r['service_start'][0]:.1f} s. "
            "Target: p50 of a warm metric query through the service <= 3 s.",
        ]
    )


if __name__ == "__main__":
    main()
