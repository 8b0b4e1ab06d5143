"""`lakehouse metrics list | show | query | lock`: the metric dictionary, self-service."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import TYPE_CHECKING, Any

from pyspark.errors import AnalysisException, ParseException

from medlake.cli.governance import print_result
from medlake.cli.identity import add_identity_args, signed_in
from medlake.client import SERVER_ENV, Client, ServiceError, exit_code, print_rows
from medlake.config import CONF_DIR_VAR, ConfigError, Settings, packaged, source_checkout
from medlake.gold.metrics import LOCK_FILE, load_dictionary, read_lock, write_lock
from medlake.gold.selfservice import metric_query, metric_title
from medlake.governance.access import AccessDenied
from medlake.governance.read import Lakehouse
from medlake.governance.sqlcheck import QueryError
from medlake.io import TableNotFoundError

if TYPE_CHECKING:
    from medlake.gold.metrics import Metric, MetricDictionary

EXIT_DENIED = 2


def add_cli(subparsers: Any) -> None:
    m = subparsers.add_parser(
        "metrics",
        help="the group metric dictionary: list, show, query as a role, lock versions",
        description="One definition of every KPI for the whole group (conf/metrics). `query` "
        "computes a metric from silver through the governed read path (rows and columns as "
        "the role may see them; every table read is audited).",
    )
    sub = m.add_subparsers(dest="metrics_command", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="every metric and variant with version, unit and owner")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="one metric: definition, formula, dimensions, thresholds")
    p.add_argument("metric", help="metric or variant id, e.g. otd or otd.emea")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser(
        "query",
        help="compute a metric by dimensions as a role (governed, audited)",
        description="Compute one metric from silver by the given dimensions, reading every "
        "input table as --role (conf/governance/access.yaml): a regional role gets its own "
        "plants' rows only. --where filters the metric's fact rows (SQL over the fact's "
        "columns, e.g. \"month >= '2026-03'\").",
    )
    p.add_argument("metric", help="metric or variant id")
    p.add_argument("--by", default="", help="dimensions, comma-separated (default: none)")
    p.add_argument("--where", help="SQL condition on the fact's columns")
    add_identity_args(p)
    p.add_argument("--purpose", help="why the data is read (recorded in the audit trail)")
    p.add_argument(
        "--as-of",
        type=dt.date.fromisoformat,
        help="count only rows dated on or before this day (default: today)",
    )
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_query)
    p = sub.add_parser(
        "lock",
        help="record the fingerprints of the current versions in conf/metrics/versions.lock",
        description="Record each metric version's formula fingerprint. A released version "
        "whose formula changes afterwards is refused at load: raise its version instead.",
    )
    p.set_defaults(func=cmd_lock)


def _dictionary(settings: Settings, *, check_lock: bool = True) -> MetricDictionary:

    return load_dictionary(settings.conf_dir, check_lock=check_lock)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:

    d = _dictionary(settings)
    released = read_lock(d.folder / LOCK_FILE)
    rows = [("ID", "VERSION", "STATUS", "UNIT", "FACT", "OWNER", "NAME")]
    for m in d:
        status = m.spec.status if f"{m.id}@{m.version}" in released else "unreleased"
        name = next((v.name for v in m.spec.variants if v.id == m.id), m.spec.name)
        rows.append(
            (
                m.id,
                str(m.version),
                status,
                m.spec.unit,
                m.spec.fact,
                m.spec.owner,
                f"{name.en} / {name.zh}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1])
    return 0


def describe(m: Metric) -> str:
    s = m.spec
    variant = next((v for v in s.variants if v.id == m.id), None)
    name = variant.name if variant else s.name
    lines = [
        f"{m.id} (version {m.version}, {s.status}): {name.en} / {name.zh}",
        "",
        *([f"variant of {m.canonical}: {variant.reason}", ""] if variant else []),
        s.definition,
        "",
        f"fact:        {s.fact} (grain: {s.grain})",
        f"unit:        {s.unit}" + (" in group currency" if s.currency == "group" else ""),
        f"direction:   {s.direction.replace('_', ' ')}",
        f"thresholds:  warning {s.thresholds.warning}, critical {s.thresholds.critical}",
        f"dimensions:  {', '.join(s.dimensions)}"
        + (f" (every cut includes {', '.join(s.requires)})" if s.requires else ""),
        f"parameters:  {', '.join(f'{k}={v:g}' for k, v in m.params.items()) or '-'}",
        f"empty denominator reads: {s.empty_denominator}",
        f"owner:       {s.owner}; fingerprint {m.fingerprint}",
        "",
        "formula:",
        *("  " + line for line in m.sql().splitlines()),
        "",
        "changes:",
        *(f"  v{c.version} {c.date}: {c.note}" for c in s.changes),
    ]
    others = [v.id for v in s.variants if v.id != m.id]
    if others:
        lines += ["", f"variants: {', '.join(others)}"]
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    print(describe(_dictionary(settings).get(args.metric)))
    return 0


def cmd_lock(args: argparse.Namespace, settings: Settings) -> int:
    dictionary = _dictionary(settings)
    if dictionary.folder.resolve().is_relative_to(packaged().resolve()) and not source_checkout():
        raise ConfigError(
            f"{dictionary.folder} is the installed package's configuration, which an upgrade "
            "replaces: lock versions in your own configuration folder (copy it, then "
            f"`lakehouse --conf DIR metrics lock`, or set ${CONF_DIR_VAR})"
        )
    path, added = write_lock(dictionary)
    print(f"{path}: {len(added)} version(s) recorded" + (f": {', '.join(added)}" if added else ""))
    return 0


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:

    by = [b.strip() for b in args.by.split(",") if b.strip()]
    as_of = args.as_of.isoformat() if args.as_of else None
    if os.environ.get(SERVER_ENV):  # through the query service: no Spark in this process
        try:
            client = Client(role=args.role, act_as=args.act_as, purpose=args.purpose)
            answer = client.metric(args.metric, by=by, where=args.where, as_of=as_of)
        except (ServiceError, PermissionError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exit_code(exc)
        print(answer.info.get("title", args.metric))
        print_rows(answer.columns, answer.rows, args.format)
        return 0
    who = signed_in(args, settings, via="metrics query")
    lh = Lakehouse.open(who=who, settings=settings, purpose=args.purpose)
    try:
        metric, result = metric_query(
            lh, settings, args.metric, by=by, where=args.where, as_of=args.as_of
        )
    except (AccessDenied, QueryError, TableNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DENIED
    except ParseException as exc:
        raise ConfigError(
            f"--where is not a valid SQL condition: {str(exc).splitlines()[0]}"
        ) from None
    except AnalysisException as exc:
        first = str(exc).splitlines()[0]
        print(
            f"error: {args.metric} cannot be computed as role {lh.role!r}: {first} (a column "
            "the fact needs may be hidden from this role, or --where names an unknown column)",
            file=sys.stderr,
        )
        return EXIT_DENIED
    print(metric_title(metric))
    print_result(result, args.format)
    return 0
