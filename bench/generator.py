"""Source-simulator benchmark: rows per second and peak memory at three scales.

Run with `python -m bench.generator` (defaults: one year of daily deliveries at scales 1,
10 and 125, two worker processes). Each scale runs in a fresh process whose peak resident
memory (ru_maxrss of the process and its workers) is recorded, to show that memory stays
bounded while volume grows: the generator streams each plant-day to disk.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import machine, write_section

REPO = Path(__file__).resolve().parents[1]  # the checkout: var/bench, the working folder

CHILD = """
import datetime as dt, json, resource, sys
from pathlib import Path
from medlake_simulator.generate import generate
out, days, scale, workers = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
r = generate(out, start=dt.date(2026, 1, 1), days=days, scale=scale, seed=42, progress=False, workers=workers)
peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
print(json.dumps({"rows": r.rows, "files": r.files, "seconds": r.seconds, "peak_kib": max(peak_self, peak_children), "bytes": size}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--scales", default="125,10,1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    results = []
    for scale in [float(s) for s in args.scales.split(",")]:
        out = REPO / "var" / "bench" / f"generator-{scale:g}"
        shutil.rmtree(out, ignore_errors=True)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(out), str(args.days), str(scale), str(args.workers)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["scale"] = scale
        results.append(result)
        print(f"scale {scale:g}: {result['rows']:,} rows in {result['seconds']:.0f} s", flush=True)
        shutil.rmtree(out, ignore_errors=True)
        if not args.no_record:  # record after every scale: the largest one takes long
            write_section("generator", _table(args, sorted(results, key=lambda r: r["scale"])))
    print(_table(args, sorted(results, key=lambda r: r["scale"])))


def _table(args: argparse.Namespace, results: list[dict[str, float]]) -> str:
    lines = [
        "## Source simulator: throughput and peak memory",
        "",
        f"Measured {dt.date.today().isoformat()} on {machine()}.",
        f"Command: `python -m bench.generator --days {args.days} --scales {args.scales} --workers {args.workers}`",
        "(each scale in a fresh process; peak = largest resident set of the process or one of its",
        "workers; output deleted after each scale).",
        "",
        "| scale | days | rows | files | on disk | seconds | rows/s | peak memory |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['scale']:g} | {args.days} | {r['rows']:,} | {r['files']:,} | {r['bytes'] / 2**30:.2f} GiB "
            f"| {r['seconds']:.0f} | {r['rows'] / r['seconds']:,.0f} | {r['peak_kib'] / 1024:.0f} MiB |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
