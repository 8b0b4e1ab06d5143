"""Re-identification and erasure of data subjects through the vaults; permitted, purposed, audited.

`lakehouse governance reidentify --token T --purpose P [--role R]` prints the clear value behind
a pseudonym (a recall must reach the customers and sometimes the patients concerned);
`lakehouse governance erase --subject T --purpose P [--role R]` removes a subject from its
vault, records the erasure so silver never vaults the value again, and vacuums the vault so
no earlier table version keeps it. Silver and gold then keep only an unlinkable token.
Both need a signed-in identity acting in a role with the permission
(conf/governance/access.yaml) and a stated purpose, and both append an audit event whether
they succeed or are refused.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import functions as F

from medlake.config import Settings
from medlake.entities import full_registry
from medlake.governance.access import UnknownRoleError, load_access, load_plants
from medlake.governance.audit import AuditEvent, AuditTrail, write_auditor
from medlake.governance.classes import load_classes, vault_table
from medlake.governance.identity import SignedIn
from medlake.governance.operators import TOKEN
from medlake.governance.vault import ERASURES
from medlake.io import CommitContext, TableIO
from medlake.io.arrow import read_table
from medlake.io.commit import new_run_id
from medlake.spark import build_spark

MIN_PURPOSE = 10  # characters: a ticket number and a word, not "x"


class NotPermittedError(Exception):
    """The role may not do this, or the request lacks what it needs (purpose, valid token)."""


@dataclass(frozen=True)
class Subject:
    token: str
    entity_type: str
    jurisdiction: str
    value: str | None  # None: not in the vault (never vaulted, or erased)


def _check(settings: Settings, role: str, permission: str, token: str, purpose: str) -> str:
    """The token's jurisdiction, if `role` may do `permission` on it for this purpose."""

    policy = load_access(settings.conf_dir)
    try:
        allowed = policy.may(role, permission)
    except UnknownRoleError as exc:
        raise NotPermittedError(str(exc)) from None
    if not allowed:
        raise NotPermittedError(f"role {role!r} may not {permission} (conf/governance/access.yaml)")
    if len((purpose or "").strip()) < MIN_PURPOSE:
        raise NotPermittedError(
            f"{permission} needs a purpose of at least {MIN_PURPOSE} characters, for example "
            "--purpose 'recall R-2026-014: contact affected patients'"
        )
    match = TOKEN.match(token)
    if match is None:
        raise NotPermittedError(
            f"{token!r} is not a pseudonym token (<ENTITY>_<jurisdiction>_<hex>)"
        )
    jurisdiction = match["jurisdiction"]
    classes = load_classes(settings.conf_dir)
    if jurisdiction not in classes.jurisdictions:
        raise NotPermittedError(f"token {token!r} names an unknown jurisdiction {jurisdiction!r}")
    rows = policy.role(role).rows
    if rows != "all":  # a regional role reaches only the vault of the plants it may read
        plants = [
            p
            for p in load_plants(settings.conf_dir).values()
            if p.country in classes.jurisdictions[jurisdiction].countries
        ]
        if not all(rows.admits(p) for p in plants):
            raise NotPermittedError(
                f"role {role!r} does not read the rows of every {jurisdiction} plant, so it "
                f"may not {permission} a {jurisdiction} subject"
            )
    return jurisdiction


def _permitted(settings: Settings, who: SignedIn, permission: str, token: str, purpose: str) -> str:
    """`_check`, with a refusal recorded in the audit trail before it is raised."""
    try:
        return _check(settings, who.role, permission, token, purpose)
    except NotPermittedError as exc:
        why = {"token": token, "why": str(exc)}
        _audit(settings, f"{permission}_refused", "_vault", who, purpose, details=why)
        raise


def _audit(
    settings: Settings, action: str, table: str, who: SignedIn, purpose: str, **kw: object
) -> None:

    AuditTrail(settings).record(
        AuditEvent(
            action=action,
            table_name=table,
            principal=who.principal,
            role=who.role,
            purpose=purpose,
            **kw,  # type: ignore[arg-type]
        )
    )


def reidentify(settings: Settings, *, who: SignedIn, token: str, purpose: str) -> Subject:
    """The clear value behind `token`; audited whether allowed or refused."""

    jurisdiction = _permitted(settings, who, "reidentify", token, purpose)
    name = vault_table(jurisdiction)
    rows = read_table(settings, name, filter=("token", "=", token))
    value = rows[0]["value"] if rows else None
    entity = rows[0]["entity_type"] if rows else TOKEN.match(token)["entity"]  # type: ignore[index]
    _audit(
        settings,
        "reidentify",
        name,
        who,
        purpose,
        columns=("token", "value"),
        row_count=len(rows),
        details={"token": token},
    )
    return Subject(token, entity, jurisdiction, value)


def erase(settings: Settings, *, who: SignedIn, token: str, purpose: str) -> int:
    """Remove the subject from its vault for good; returns the vault rows removed."""

    jurisdiction = _permitted(settings, who, "erase", token, purpose)
    name = vault_table(jurisdiction)
    registry = full_registry(settings.conf_dir)
    spark = build_spark(settings, app_name="medlake-erase")
    auditor = write_auditor(AuditTrail(settings, registry), who.principal)
    io = TableIO(spark, settings, registry, on_write=auditor)
    stamp = dt.datetime.now(dt.UTC)
    commit = CommitContext(job="erase", run_id=new_run_id("erase"), logical_date=stamp.date())
    # Recorded first: from here on no silver run vaults the subject again, even if the
    # removal below is interrupted (running erase again finishes it).
    erased = spark.createDataFrame(
        [(token, jurisdiction, stamp, who.principal, purpose)],
        registry.get(ERASURES).spark_schema,
    )
    io.append(ERASURES, erased, ctx=commit)
    removed = 0
    if io.version(name) is not None:
        current = io.read(name).localCheckpoint()
        removed = current.where(F.col("token") == token).count()
        if removed:
            io.overwrite(name, current.where(F.col("token") != token), ctx=commit)
            io.vacuum(name, retention_hours=0, ctx=commit)
    _audit(settings, "erase", name, who, purpose, row_count=removed, details={"token": token})
    return removed
