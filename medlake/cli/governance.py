"""`lakehouse query`, `lakehouse audit ...` and `lakehouse governance reidentify|erase|views`:
the command-line side of the governed read path, the audit trail and the data subjects."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException, PySparkException

from medlake.argtypes import non_negative_int, positive_int
from medlake.cli.identity import add_identity_args, signed_in
from medlake.client import SERVER_ENV, Client, ServiceError, exit_code, print_rows
from medlake.config import ConfigError, Settings
from medlake.entities import full_registry
from medlake.governance.access import AccessDenied, UnknownRoleError, load_access, load_plants
from medlake.governance.audit import AuditEvent, AuditTrail, AuditTrailError
from medlake.governance.identity import audit_refusal
from medlake.governance.read import Lakehouse, QueryResult
from medlake.governance.sqlcheck import QueryError, failure_condition, first_line
from medlake.governance.subjects import NotPermittedError, erase, reidentify
from medlake.governance.views import DEFAULT_OUT, render_views, view_statements
from medlake.io import TableNotFoundError

EXIT_DENIED = 2  # the role may not read what the query names

# --- read ------------------------------------------------------------------------------------


def add_read_cli(subparsers: Any) -> None:
    """Register `lakehouse query "SQL" --role R [--purpose TEXT] [--limit N] [--format F]`."""
    p = subparsers.add_parser(
        "query",
        help="run a SQL query over the lakehouse as a role (governed, audited)",
        description="Run a SELECT over registered tables (e.g. silver.complaints) as one role "
        "of conf/governance/access.yaml: rows outside the role's plants are filtered, columns "
        "masked or left out by class, and the read is written to the audit trail with the "
        "number of rows returned. Exit 2 when the role may not read a table.",
    )
    p.add_argument("sql", help='the query, e.g. "SELECT * FROM silver.complaints"')
    add_identity_args(p)
    p.add_argument("--purpose", help="why the data is read (recorded in the audit trail)")
    p.add_argument(
        "--limit", type=positive_int, default=1000, help="return at most N rows (default 1000)"
    )
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_query)


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    if os.environ.get(SERVER_ENV):  # through the query service: no Spark in this process
        try:
            client = Client(role=args.role, act_as=args.act_as, purpose=args.purpose)
            answer = client.sql(args.sql, limit=args.limit)
        except (ServiceError, PermissionError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exit_code(exc)
        print_rows(answer.columns, answer.rows, args.format)
        if args.format == "table":
            _count_line(len(answer.rows), args.limit)
        return 0
    try:
        who = signed_in(args, settings, via="query")
        lakehouse = Lakehouse.open(who=who, settings=settings, purpose=args.purpose)
        result = lakehouse.fetch(args.sql, limit=args.limit)
    except (AccessDenied, UnknownRoleError, QueryError, TableNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DENIED
    except AnalysisException as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return EXIT_DENIED
    except (Py4JJavaError, PySparkException) as exc:
        cause = failure_condition(exc)
        print(f"error: the query failed while running ({cause}); the log has the details",
              file=sys.stderr)  # fmt: skip
        return 1
    print_result(result, args.format, limit=args.limit)
    return 0


def print_result(result: QueryResult, fmt: str, *, limit: int | None = None) -> None:
    """Write rows to stdout as an aligned table (with a count line), CSV or a JSON list of
    objects (nested rows as objects)."""
    if fmt == "json":
        records = [row.asDict(recursive=True) for row in result.rows]
        print(json.dumps(records, indent=2, default=str, ensure_ascii=False))
        return
    print_rows(result.columns, result.rows, fmt)
    if fmt == "table":
        _count_line(len(result.rows), limit)


def _count_line(rows: int, limit: int | None) -> None:
    more = " (the limit; --limit N returns more)" if limit and rows == limit else ""
    print(f"({rows} rows{more})")


# --- audit -----------------------------------------------------------------------------------


AUDIT_PERMISSION = "read_audit"


def protected_history(table: str) -> bool:
    """Tables whose history only a role with read_audit may read: the audit trail and the
    vaults (their commits name everyone's queries, purposes and tokens)."""
    return table == "_audit" or table.startswith("_vault")


def audit_reader(settings: Settings, args: argparse.Namespace, *, what: str) -> AuditTrail | None:
    """The audit trail, for a signed-in identity acting in a role that holds read_audit;
    otherwise the refusal is printed and audited (who, which role, what was asked) and None
    is returned. Sets `args.principal` for `audited_read`."""
    who = signed_in(args, settings, via=what)  # a failed sign-in is audited and raised
    args.principal, args.role = who.principal, who.role
    trail = AuditTrail(settings)
    try:
        load_access(settings.conf_dir).require(who.role, AUDIT_PERMISSION)
    except (AccessDenied, UnknownRoleError) as exc:
        audit_refusal(
            settings,
            exc,
            via=what,
            principal=who.principal,
            role=who.role,
            purpose=args.purpose,
            table="_audit",
        )
        print(f"error: {exc}", file=sys.stderr)
        return None
    return trail


def audited_read(
    trail: AuditTrail, args: argparse.Namespace, *, what: str, table: str, rows: int
) -> None:
    """Record that the signed-in `args.principal` read `table` (the audit trail or a vault's
    history) as `args.role`."""
    event = AuditEvent(
        action="read",
        table_name=table,
        principal=args.principal,
        role=args.role,
        purpose=args.purpose,
        row_count=rows,
        details={"via": what},
    )
    trail.record([event])


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    """`lakehouse audit verify`: exit 0 when every event's MAC, every link and every anchored
    head check out, 1 naming the first problem. Open to every operator: it prints counts, key
    ids and the head MAC, no event's content."""
    try:
        trail = AuditTrail(settings)
        result = trail.verify()
    except AuditTrailError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result.ok:
        keys = ", ".join(result.key_ids) or "none"
        print(
            f"audit trail intact: {result.checked} events at {trail.location} (each MAC "
            f"checked; key ids: {keys}); {result.anchored} anchored heads checked in "
            f"{result.anchor}"
        )
        if result.unanchored:
            print(
                f"note: the newest {result.unanchored} events are after the last anchored head "
                "(an append stopped before anchoring); the next append anchors them"
            )
        if result.head_hash:
            print(f"head: event {result.checked - 1}, MAC {result.head_hash}")
        return 0
    print(
        f"error: audit trail at {trail.location} is broken ({result.checked} events read, "
        f"anchor {result.anchor}): {result.reason}",
        file=sys.stderr,
    )
    return 1


def cmd_audit_show(args: argparse.Namespace, settings: Settings) -> int:
    """`lakehouse audit show`: the newest events, optionally of one table."""
    trail = audit_reader(settings, args, what="audit show")
    if trail is None:
        return EXIT_DENIED
    try:
        events = trail.events()
    except AuditTrailError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.table:
        events = [e for e in events if e.get("table_name") == args.table]
    if args.last:
        events = events[-args.last :]
    audited_read(trail, args, what="audit show", table="_audit", rows=len(events))
    if args.json:
        print(json.dumps(events, indent=2, default=str, ensure_ascii=False))
        return 0
    if not events:
        which = f" for {args.table}" if args.table else ""
        print(f"no audit events{which} at {trail.location}")
        return 0
    header = ("SEQ", "TIME (UTC)", "PRINCIPAL", "ROLE", "ACTION", "TABLE", "VERSION", "ROWS")
    rows = [header]
    for e in events:
        time = e.get("event_time")
        rows.append(
            (
                str(e.get("seq")),
                f"{time:%Y-%m-%d %H:%M:%S}" if isinstance(time, dt.datetime) else "-",
                str(e.get("principal") or "-"),
                str(e.get("role") or "-"),
                str(e.get("action")),
                str(e.get("table_name")),
                "-" if e.get("table_version") is None else str(e["table_version"]),
                "-" if e.get("row_count") is None else str(e["row_count"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row, event in zip(rows, [None, *events], strict=True):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        purpose = "PURPOSE" if event is None else (event.get("purpose") or "-")
        print(f"{line}  {purpose}")
    return 0


def add_audit_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit verify` and `audit show` to the `lakehouse` command."""
    audit = sub.add_parser(
        "audit",
        help="verify and show the tamper-evident audit trail (_audit)",
        description="The audit trail records governed reads and refusals, re-identifications, "
        "erasures, identity changes, writes, table maintenance and key rotations as an HMAC "
        "chain in the _audit table (keys from the secret store: $LAKEHOUSE_AUDIT_KEY or "
        "audit_keys in $LAKEHOUSE_SECRETS_FILE), and writes every head to an anchor file "
        "outside the lakehouse (audit.anchor). Rotate the key by adding a new key id as "
        "current; the next append records a key_rotation event (docs/security.md).",
    )
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    p = asub.add_parser(
        "verify",
        help="check every MAC, link and anchored head; exit 1 naming the first problem",
        description="Read every event, check its MAC with the key of its key id, that seq "
        "is contiguous from 0, that each event links to the previous one and that times "
        "never go back; then check every line of the anchor (its own MAC) and that each head "
        "it recorded is the event at that seq, and the head in the Delta log. Exit 0 when "
        "intact (printing the events, key ids and anchored heads checked, and the head MAC), "
        "1 with the first problem: the event's seq and id, a missing key id, a truncated "
        "tail, a missing anchor.",
    )
    p.set_defaults(func=cmd_audit_verify)
    p = asub.add_parser(
        "show",
        help="print the newest audit events",
        description="Print the newest audit events in chain order, optionally of one table.",
    )
    p.add_argument(
        "--last",
        type=non_negative_int,
        default=20,
        metavar="N",
        help="the newest N events (default 20; 0 for all)",
    )
    p.add_argument("--table", metavar="T", help="only events on registered table T")
    p.add_argument("--json", action="store_true", help="print the events as JSON")
    _add_audit_role(p)
    p.set_defaults(func=cmd_audit_show)


def _add_audit_role(p: argparse.ArgumentParser) -> None:
    add_identity_args(p, role_help="a role of yours holding read_audit; the read is audited")
    p.add_argument("--purpose", help="why the trail is read (recorded)")


# --- subjects --------------------------------------------------------------------------------


def add_subjects_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "reidentify",
        help="print the clear value behind a pseudonym (permitted roles only; audited)",
    )
    p.add_argument("--token", required=True)
    add_identity_args(p)
    p.add_argument("--purpose", required=True, help="why, e.g. a recall or ticket number")
    p.set_defaults(func=cmd_reidentify)
    p = sub.add_parser(
        "erase",
        help="erase a data subject from the vault, bronze, its quarantine and the landing "
        "files, old versions included (permitted roles; audited)",
    )
    p.add_argument("--subject", required=True, metavar="TOKEN")
    add_identity_args(p)
    p.add_argument("--purpose", required=True, help="e.g. the data-subject request number")
    p.set_defaults(func=cmd_erase)


def cmd_reidentify(args: argparse.Namespace, settings: Settings) -> int:
    try:
        who = signed_in(args, settings, via="governance reidentify")
        subject = reidentify(settings, who=who, token=args.token, purpose=args.purpose)
    except NotPermittedError as exc:
        raise ConfigError(str(exc)) from None
    if subject.value is None:
        print(f"{subject.token}: not in the {subject.jurisdiction} vault (never vaulted or erased)")
        return 1
    print(f"{subject.token} ({subject.entity_type}, {subject.jurisdiction}): {subject.value}")
    return 0


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    try:
        who = signed_in(args, settings, via="governance erase")
        result = erase(
            settings,
            who=who,
            token=args.subject,
            purpose=args.purpose,
            progress=lambda message: print(f"  {message}", file=sys.stderr, flush=True),
        )
    except NotPermittedError as exc:
        raise ConfigError(str(exc)) from None
    print(result.summary())
    for path in result.unreadable:
        print(f"  not swept: {path}", file=sys.stderr)
    if not result.vault_rows and not result.unreadable:
        print(
            f"{args.subject}: not in its vault (never vaulted, or erased before): no copy to "
            "look for; the erasure is recorded so it is never vaulted again"
        )
    return 1 if result.unreadable else 0


# --- views -----------------------------------------------------------------------------------


def add_views_cli(governance_subparsers: Any) -> None:
    """Register `lakehouse governance views [--role R] [--out DIR]`."""
    p = governance_subparsers.add_parser(
        "views",
        help="write per-role SQL views for BI tools",
        description="Write one SQL script per role (<out>/<role>.sql) creating schema <role> "
        "with a view per table the role may read: the same columns, masks and row filters as "
        "the governed reads, compiled from conf/governance/access.yaml.",
    )
    p.add_argument("--role", help="only this role (default: every role)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.set_defaults(func=cmd_views)


def cmd_views(args: argparse.Namespace, settings: Settings) -> int:

    policy = load_access(settings.conf_dir)
    registry = full_registry(settings.conf_dir)
    plants = load_plants(settings.conf_dir)
    policy.check(registry, plants)
    roles = [args.role] if args.role else sorted(policy.roles)
    for role in roles:
        policy.role(role)  # an unknown role fails before anything is written
    out = Path(settings.resolve(args.out))
    out.mkdir(parents=True, exist_ok=True)
    for role in roles:
        path = out / f"{role}.sql"
        path.write_text(render_views(policy, registry, plants, role), encoding="utf-8")
        count = len(view_statements(policy, registry, plants, role))
        print(f"{role}: {count} views -> {path}")
    return 0
