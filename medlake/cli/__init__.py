"""The `lakehouse` command: jobs, tables, governed reads; errors print one clear message."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from deltalake.exceptions import DeltaError

from medlake import queryserver
from medlake.argtypes import iso_date, non_negative_int
from medlake.cli import evaluate, governance, identity, metrics, sources, whatif
from medlake.config import ConfigError, NotReadyError, Settings, load_settings
from medlake.entities import full_registry
from medlake.governance.audit import AuditTrail, write_auditor
from medlake.governance.identity import AuthError, job_principal, refuse_principal_override
from medlake.io import CommitContext, TableIO
from medlake.io.errors import TableIOError
from medlake.runtime import EXIT_NOT_READY, JobContext, JobResult, new_run_id
from medlake.spark import build_spark
from medlake.tables import Registry, UnknownTableError

EXIT_USER_ERROR = 2


def _registry(settings: Settings) -> Registry:
    """Declared tables plus the silver tables derived from conf/silver."""

    return full_registry(settings.conf_dir)


def _table_io(settings: Settings, app: str, table: str, *, audited: bool = False) -> Any:
    """TableIO on a fresh Spark session, after checking `table` is declared (fail fast);
    `audited`: every write and maintenance change is recorded in the audit trail, by the
    service identity or OS account that runs the command (a missing audit key stops it
    before anything changes)."""

    registry = _registry(settings)
    registry.get(table)
    auditor = None
    if audited:
        auditor = write_auditor(AuditTrail(settings, registry), job_principal(settings))
    return TableIO(build_spark(settings, app_name=app), settings, registry, on_write=auditor)


def _cli_context(job: str) -> Any:

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return CommitContext(job=job, run_id=f"cli__{stamp}__{uuid.uuid4().hex[:6]}")


def cmd_table_list(args: argparse.Namespace, settings: Settings) -> int:
    registry = _registry(settings)
    rows = [("TABLE", "LAYER", "PARTITIONED BY", "BUSINESS KEYS", "OWNER")]
    for t in registry:
        if args.layer and t.layer != args.layer:
            continue
        rows.append(
            (
                t.name,
                t.layer,
                ",".join(t.partition_by) or "-",
                ",".join(t.business_keys) or "-",
                t.owner,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_table_history(args: argparse.Namespace, settings: Settings) -> int:
    trail = None
    if governance.protected_history(args.name):  # everyone's queries, purposes and tokens
        what = f"table history {args.name}"
        trail = governance.audit_reader(settings, args, what=what)
        if trail is None:
            return governance.EXIT_DENIED
    io = _table_io(settings, "lakehouse-table-history", args.name)
    entries = io.history(args.name, limit=args.limit)
    if trail is not None:
        what = f"table history {args.name}"
        governance.audited_read(trail, args, what=what, table=args.name, rows=len(entries))
    if args.json:
        print(json.dumps(entries, indent=2, default=str))
        return 0
    print(f"{'VERSION':>7}  {'TIMESTAMP (UTC)':<23}  {'OPERATION':<18}  {'JOB':<24}  RUN ID / CODE")
    for e in entries:
        raw = e.get("timestamp", 0)
        if isinstance(raw, dt.datetime):  # delta-spark history
            stamp = raw
        else:
            stamp = dt.datetime.fromtimestamp(int(raw) / 1000, dt.UTC)
        op = e.get("lakehouse_operation") or e.get("operation", "")
        print(
            f"{e.get('version', ''):>7}  {stamp:%Y-%m-%d %H:%M:%S.%f}"[:34]
            + f"  {op:<18}  {e.get('job', '-'):<24}  {e.get('run_id', '-')} / "
            f"{e.get('code_version', '-')}"
        )
    return 0


def cmd_table_vacuum(args: argparse.Namespace, settings: Settings) -> int:
    io = _table_io(settings, "lakehouse-table-vacuum", args.name, audited=not args.dry_run)
    removed = io.vacuum(
        args.name,
        retention_hours=args.retention_hours,
        dry_run=args.dry_run,
        ctx=_cli_context("table_vacuum"),
    )
    verb = "would remove" if args.dry_run else "removed"
    print(f"{args.name}: {verb} {len(removed)} files")
    for path in removed[:20]:
        print(f"  {path}")
    if len(removed) > 20:
        print(f"  ... and {len(removed) - 20} more")
    return 0


def cmd_table_optimize(args: argparse.Namespace, settings: Settings) -> int:
    io = _table_io(settings, "lakehouse-table-optimize", args.name, audited=True)
    result = io.optimize(args.name, ctx=_cli_context("table_optimize"), target_mb=args.target_mb)
    print(
        f"{args.name}: compacted {result.files_removed} files into {result.files_added} "
        f"(version {result.version})"
    )
    return 0


NOT_RESTORABLE = ("_audit", "_erasures")  # and every _vault_*: see cmd_table_restore


def cmd_table_restore(args: argparse.Namespace, settings: Settings) -> int:
    """`lakehouse table restore NAME --version V`: one new commit with version V's files."""
    if args.name in NOT_RESTORABLE or args.name.startswith("_vault"):
        print(
            f"error: {args.name} is not restored by this command: restoring the audit trail "
            "would cut it short, restoring a vault or the erasure register would bring erased "
            "subjects back; restore such a table's folder from backup under the change process",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    io = _table_io(settings, "lakehouse-table-restore", args.name, audited=True)
    change = io.restore(args.name, version=args.version, ctx=_cli_context("table_restore"))
    print(
        f"{args.name}: restored version {args.version} as version {change.version} "
        f"(was {change.details['previous_version']}); audited"
    )
    return 0


JOBS = (
    "ingest",
    "silver",
    "scan",
    "gates",
    "gold",
    "train",
    "validate",
    "score",
    "report",
    "backfill",
)
MODEL_JOBS = ("train", "validate", "score")


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one job for a date (or a range of dates) and print what it did."""

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("medlake").setLevel(logging.INFO)
    if args.date is None and args.job not in ("train", "validate"):
        print(f"error: lakehouse run {args.job} needs --date YYYY-MM-DD", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.job in MODEL_JOBS and not args.model:
        print(
            f"error: lakehouse run {args.job} needs --model NAME (a file in conf/models)",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    dates: list[dt.date] = []
    if args.date is not None:  # train / validate without a date: the latest data in silver
        last = args.to or args.date
        if last < args.date:
            print(f"error: --to {last} is before --date {args.date}", file=sys.stderr)
            return EXIT_USER_ERROR
        dates = [args.date + dt.timedelta(days=i) for i in range((last - args.date).days + 1)]
    ctx = JobContext(
        settings=settings,
        job=args.job,
        dates=dates,
        run_id=args.run_id or new_run_id(args.job),
        plants=[p.strip() for p in args.plant.split(",")] if args.plant else None,
        force=args.force,
        model=args.model,
        entities=[e.strip() for e in args.entities.split(",")] if args.entities else None,
    )
    ctx.principal  # noqa: B018 (a service token that does not verify stops the job here)
    ctx.trail  # noqa: B018 (so does a missing audit key or anchor: before anything is written)
    module = importlib.import_module(f"medlake.jobs.{args.job}")
    result: JobResult = module.run(ctx)
    print(result.render())
    for gate in result.failed_gates:
        print(f"error: quality gate failed: {gate}", file=sys.stderr)
    return result.exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakehouse",
        description="ERP data-mining lakehouse for multi-plant medical-device groups.",
    )
    parser.add_argument(
        "--conf",
        help="configuration folder (default: $LAKEHOUSE_CONF, else the packaged medlake/conf)",
    )
    parser.add_argument(
        "--env",
        help="configuration overlay <conf>/env/<ENV>.yaml (default: $LAKEHOUSE_ENV or local)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    table = sub.add_parser("table", help="inspect and maintain registered Delta tables")
    tsub = table.add_subparsers(dest="table_command", required=True, metavar="ACTION")

    p = tsub.add_parser(
        "list",
        help="list every table declared in conf/tables",
        description="List every declared table with its layer, partitions, keys and owner.",
    )
    p.add_argument("--layer", choices=["bronze", "silver", "gold", "system"])
    p.set_defaults(func=cmd_table_list)

    p = tsub.add_parser(
        "history",
        help="show a table's commits",
        description="Show a table's commits, newest first: version, time, operation, job, "
        "run id and code version of the run that wrote it.",
    )
    p.add_argument("name", help="registered table name, e.g. silver.supplier or _audit")
    p.add_argument("--limit", type=non_negative_int, default=None, help="show at most N commits")
    p.add_argument("--json", action="store_true", help="print the raw commit info as JSON")
    identity.add_identity_args(
        p, role_help="for _audit and _vault_*: a role holding read_audit (audited)"
    )
    p.add_argument("--purpose", help="why the history is read (recorded)")
    p.set_defaults(func=cmd_table_history)

    p = tsub.add_parser(
        "vacuum",
        help="delete files no version within the retention needs",
        description="Delete data files that no table version within the retention window "
        "references: files replaced by later writes, files of writers that crashed before "
        "committing, and stale staging folders. Time travel to versions older than the "
        "retention is no longer possible afterwards.",
    )
    p.add_argument("name", help="registered table name")
    p.add_argument(
        "--retention-hours",
        type=non_negative_int,
        default=None,
        help="keep files needed by versions of the last H hours (default: "
        "storage.vacuum_retention_hours in conf)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the files, delete nothing")
    p.set_defaults(func=cmd_table_vacuum)

    p = tsub.add_parser(
        "optimize",
        help="compact small files",
        description="Rewrite the small files of each partition into files near the target "
        "size, in one commit that changes no data (readers see the same rows).",
    )
    p.add_argument("name", help="registered table name")
    p.add_argument(
        "--target-mb",
        type=non_negative_int,
        default=None,
        help="target file size (default: storage.target_file_mb)",
    )
    p.set_defaults(func=cmd_table_optimize)

    p = tsub.add_parser(
        "restore",
        help="make an earlier version current again (audited)",
        description="Commit version V's files as the table's new current version, in one "
        "commit; later versions stay in the history (time travel). Audited with the version "
        "restored and the previous one. Not for _audit, _erasures and the vaults.",
    )
    p.add_argument("name", help="registered table name")
    p.add_argument(
        "--version", type=non_negative_int, required=True, metavar="V", help="version to restore"
    )
    p.set_defaults(func=cmd_table_restore)

    p = sub.add_parser(
        "run",
        help="run a pipeline job (ingest, silver, scan, gates, gold, train, validate, score, "
        "report, backfill)",
        description="Run one pipeline job for a logical date, idempotently: running it again "
        "for the same date leaves the same tables. ingest lands the plants' deliveries in "
        "bronze; silver conforms them into the group model and masks personal data; scan "
        "checks every silver string column for personal data that is not classified; gates "
        "fails when a quality gate of the dates failed; gold computes the scenario marts "
        "through the metric dictionary; train, validate and score fit a model (conf/models), "
        "promote it from challenger to champion when it passes its thresholds, and write the "
        "champion's predictions; report writes the night's HTML report; backfill runs ingest, "
        "silver and gold over --date/--from .. --to in steps of whole months and, started again, "
        "continues after the last finished step. Exit codes: 0 done, "
        "1 failed (a quality gate), 2 bad input or configuration, 75 not ready yet (no model "
        "or too little history; nothing written).",
    )
    p.add_argument("job", choices=JOBS)
    p.add_argument(
        "--date",
        "--from",
        dest="date",
        type=iso_date,
        help="logical date YYYY-MM-DD, or the first of a range (required, except train / "
        "validate: latest data)",
    )
    p.add_argument("--to", type=iso_date, help="last date of a range starting at --date (backfill)")
    p.add_argument("--plant", help="only these plants (comma-separated ids), default all")
    p.add_argument("--run-id", help="run identifier (default: manual__<time>__<job>__<id>)")
    p.add_argument("--force", action="store_true", help="ingest: re-read files even when unchanged")
    p.add_argument("--model", help="train / validate / score: model name (conf/models/NAME.yaml)")
    p.add_argument("--entities", help="silver: only these entities (comma-separated), default all")
    p.set_defaults(func=cmd_run)

    _governance_commands(sub)
    _gold_commands(sub)
    sources.add_cli(sub)

    return parser


def _governance_commands(sub: Any) -> None:
    """`query`, `audit ...` and `governance ...`: governed reads, the audit trail, subjects."""

    identity.add_identity_cli(sub)
    queryserver.add_cli(sub)
    governance.add_read_cli(sub)
    governance.add_audit_cli(sub)
    gov = sub.add_parser(
        "governance",
        help="personal data: re-identify, erase, detection quality, per-role SQL views",
        description="Personal data in the lakehouse: re-identification and erasure of data "
        "subjects through the vaults (permitted roles, stated purpose, audited), detection "
        "quality on the simulator's labelled narratives, and per-role SQL views for BI tools.",
    )
    gsub = gov.add_subparsers(dest="governance_command", required=True, metavar="ACTION")
    governance.add_subjects_cli(gsub)
    evaluate.add_cli(gsub)
    evaluate.add_quality_cli(gsub)
    governance.add_views_cli(gsub)


def _gold_commands(sub: Any) -> None:
    """`metrics ...` (the metric dictionary) and `gold what-if` (cost transmission)."""

    metrics.add_cli(sub)
    gold = sub.add_parser(
        "gold",
        help="scenario analysis on gold: what-if of a component price change",
        description="Scenario analysis over the group model: what a component price change "
        "does to the material cost and margin of every product that contains it.",
    )
    gsub = gold.add_subparsers(dest="gold_command", required=True, metavar="ACTION")
    whatif.add_cli(gsub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    try:
        settings = load_settings(args.env, conf_dir=args.conf)
        refuse_principal_override(settings, via=f"lakehouse {args.command}")
        return func(args, settings)
    except AuthError as exc:  # audited where it was raised
        print(f"error: {exc}", file=sys.stderr)
        return governance.EXIT_DENIED
    except NotReadyError as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except UnknownTableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except Exception as exc:
        if isinstance(exc, TableIOError | DeltaError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


def submit(job: str) -> None:
    """Entry point of `spark-submit medlake/jobs/<job>.py ARGS`: the same as `lakehouse run
    <job> ARGS` (an `--env E` anywhere in ARGS selects the configuration overlay); exits with
    its code."""
    sys.exit(main(run_argv(job, sys.argv[1:])))


def run_argv(job: str, args: list[str]) -> list[str]:
    """The `lakehouse` command line of `medlake/jobs/<job>.py ARGS`: `--env E` and `--conf DIR`
    (also as `--env=E`) anywhere in ARGS move before `run`: they are options of `lakehouse`,
    not of `run`."""
    head: list[str] = []
    rest: list[str] = []
    at = 0
    while at < len(args):
        arg = args[at]
        if arg in ("--env", "--conf") and at + 1 < len(args):
            head += args[at : at + 2]
            at += 2
            continue
        (head if arg.startswith(("--env=", "--conf=")) else rest).append(arg)
        at += 1
    return [*head, "run", job, *rest]
