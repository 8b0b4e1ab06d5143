"""The `medlake-sim` command: simulated plant deliveries and the demo built on them.

The simulator is a separate distribution (`medlake-simulator`) so the product never imports
it: the product reads what plants deliver, wherever it comes from.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from medlake.argtypes import iso_date, positive_float, positive_int
from medlake.config import ConfigError, load_settings
from medlake_simulator.generate import generate

EXIT_USER_ERROR = 2


def cmd_generate(args: argparse.Namespace) -> int:
    try:
        result = generate(
            Path(args.out),
            start=args.start,
            days=args.days,
            scale=args.scale,
            seed=args.seed,
            progress=not args.quiet,
            workers=args.workers,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    rate = result.rows / result.seconds if result.seconds else 0.0
    print(
        f"wrote {result.rows:,} rows in {result.files:,} files under {result.out} "
        f"in {result.seconds:.1f} s ({rate:,.0f} rows/s); ground truth in {result.out}/_truth/"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from medlake_simulator.demo import run_demo  # noqa: PLC0415 - pulls in Airflow: only for this command

    try:
        settings = load_settings(args.env, conf_dir=args.conf)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    return run_demo(settings, night=args.night)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medlake-sim",
        description="Simulated plants of a medical-device group, and the demo on top of them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "generate",
        help="write simulated plant deliveries (ERP, MES, WMS, QC, CRM, service, PLM)",
        description="Simulate six plants of a medical-device group and write what their "
        "systems deliver: one folder per plant per day (<plant>/<YYYY-MM-DD>/<system>__<entity>), "
        "in each plant's language, formats and encoding, with realistic dirt and planted "
        "signals. Ground truth (signals, personal-data labels, dirt counts) goes to _truth/. "
        "The same arguments always give byte-identical files.",
    )
    p.add_argument("--out", required=True, help="output folder (replaced if it exists)")
    p.add_argument(
        "--start", type=iso_date, default=dt.date(2026, 1, 1), help="first day (default 2026-01-01)"
    )
    p.add_argument(
        "--days", type=positive_int, default=7, help="number of daily deliveries (default 7)"
    )
    p.add_argument(
        "--scale", type=positive_float, default=1.0, help="volume multiplier (default 1)"
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="processes sharing the plants (default 1); the files do not depend on it",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "demo",
        help="run the embedded demo on local Spark, tables under var/",
        description="Run the demo on the embedded default: local Spark, Delta tables under var/. "
        "Generates six months and a week of deliveries, loads the six months with `lakehouse "
        "run backfill` and runs the nightly Airflow DAG for the first night after them.",
    )
    p.add_argument(
        "--night",
        type=iso_date,
        help="only run the nightly DAG for this later night (its deliveries are already there)",
    )
    p.add_argument("--conf", help="configuration folder (default: $LAKEHOUSE_CONF or packaged)")
    p.add_argument("--env", help="configuration overlay (default: $LAKEHOUSE_ENV or local)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
