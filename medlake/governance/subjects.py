"""Re-identification and erasure of data subjects through the vaults; permitted, purposed, audited.

`lakehouse governance reidentify --token T --purpose P [--role R]` prints the clear value behind
a pseudonym (a recall must reach the customers and sometimes the patients concerned);
`lakehouse governance erase --subject T --purpose P [--role R]` records the erasure so silver
never vaults the value again, tombstones every spelling of the clear value in the landing
files, bronze, the bronze quarantine and the manifest of the jurisdiction's plants
(`medlake.governance.erasure`), removes the vault row, and purges the old versions of every
table it changed. Silver and gold then keep only an unlinkable token.
Both need a signed-in identity acting in a role with the permission
(conf/governance/access.yaml) and a stated purpose, and both append an audit event whether
they succeed or are refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pyspark.sql import functions as F

from medlake.bronze.ingest import QUARANTINE
from medlake.config import Settings
from medlake.entities import full_registry
from medlake.governance.access import UnknownRoleError, load_access, load_plants
from medlake.governance.audit import AuditEvent, AuditTrail, write_auditor
from medlake.governance.classes import load_classes, vault_table
from medlake.governance.erasure import (
    Rewritten,
    subject_pattern,
    sweep_bronze,
    sweep_landing,
    sweep_silver,
)
from medlake.governance.identity import SignedIn
from medlake.governance.operators import TOKEN
from medlake.governance.vault import ERASURES
from medlake.io import CommitContext, TableIO
from medlake.io.arrow import read_table
from medlake.io.commit import new_run_id
from medlake.sources import PlantSource, load_sources
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


@dataclass(frozen=True)
class Erasure:
    """What `erase` changed: the vault rows removed and every other copy tombstoned."""

    token: str
    vault_rows: int
    landing_files: tuple[Rewritten, ...] = ()
    # table -> rows rewritten: bronze, its quarantine and manifest, and silver free texts
    tables: Mapping[str, int] = field(default_factory=dict)
    unreadable: tuple[str, ...] = ()  # landing files that could not be decoded: not swept
    purged: tuple[str, ...] = ()  # tables whose old versions were vacuumed (retention 0)

    def summary(self) -> str:
        rows = sum(self.tables.values())
        if self.unreadable:
            return (
                f"{self.token}: NOT finished: {len(self.unreadable)} landing file(s) could not "
                f"be read in their declared encoding or as UTF-8, so they were not swept; "
                f"{len(self.landing_files)} landing file(s) and {rows} table row(s) were "
                "tombstoned and the vault row is kept: fix the files (or the plant's encoding) "
                "and run erase again"
            )
        return (
            f"{self.token}: {self.vault_rows} vault row(s) erased, {len(self.landing_files)} "
            f"landing file(s) and {rows} table row(s) tombstoned, old versions of "
            f"{len(self.purged)} table(s) purged; the token stays, unlinkable"
        )


def _jurisdiction_sources(settings: Settings, jurisdiction: str) -> dict[str, PlantSource]:
    countries = load_classes(settings.conf_dir).jurisdictions[jurisdiction].countries
    sources = load_sources(settings.conf_dir / "sources")
    return {p: s for p, s in sorted(sources.items()) if s.plant.country in countries}


def erase(
    settings: Settings,
    *,
    who: SignedIn,
    token: str,
    purpose: str,
    progress: Callable[[str], None] | None = None,
) -> Erasure:
    """Erase a data subject from every copy: tombstone the clear value in the landing files
    and bronze (its quarantine and manifest included) of the jurisdiction's plants, purge the
    old versions of every table changed, and remove the vault row last (an interrupted
    erasure is finished by running it again). Audited, refusals included."""

    jurisdiction = _permitted(settings, who, "erase", token, purpose)
    say = progress or (lambda _message: None)
    name = vault_table(jurisdiction)
    registry = full_registry(settings.conf_dir)
    spark = build_spark(settings, app_name="medlake-erase")
    trail = AuditTrail(settings, registry)
    auditor = write_auditor(trail, who.principal)
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
    vaulted = (
        io.read(name).where(F.col("token") == token).collect()
        if io.version(name) is not None
        else []
    )
    result = Erasure(token, 0)
    if vaulted:
        system = io.location(ERASURES)  # the journal holds file names and checksums only
        folder = Path(system).parent if "://" not in system else Path(settings.resolve("var"))
        journal = folder / "_erasure_journal" / f"{token}.jsonl"
        result = _sweep(io, settings, jurisdiction, token, vaulted, commit, say, journal)
        # Every table that may hold an old copy is purged, changed now or not: a file
        # re-delivered since keeps the value only in an earlier version of its table.
        candidates = {*result.tables, *_copy_tables(io), name}
        purged = sorted(t for t in candidates if io.version(t) is not None)
        if result.unreadable:  # the vault row stays: erase runs again once they are fixed
            say(f"{len(result.unreadable)} landing file(s) could not be read: not finished")
        else:
            current = io.read(name).localCheckpoint()
            io.overwrite(name, current.where(F.col("token") != token), ctx=commit)
            result = replace(result, vault_rows=len(vaulted))
            say(f"purging the old versions of {len(purged)} table(s) (retention 0 hours)")
            for table in purged:  # each purge is audited by the table layer
                io.vacuum(table, retention_hours=0, ctx=commit)
            result = replace(result, purged=tuple(purged))
            journal.unlink(missing_ok=True)
    _audit(
        settings,
        "erase",
        name,
        who,
        purpose,
        row_count=result.vault_rows,
        job=commit.job,
        run_id=commit.run_id,  # the purges and writes of this erasure carry the same run id
        details={
            "token": token,
            "retention_hours_of_purge": 0,
            "landing_files": [
                {"file": r.relative, "sha256_before": r.old_sha256, "sha256_after": r.new_sha256}
                for r in result.landing_files
            ],
            "table_rows": dict(result.tables),
            "unreadable_landing_files": list(result.unreadable),
            "purged_tables": list(result.purged),
        },
    )
    return result


def _copy_tables(io: TableIO) -> list[str]:
    """The tables that keep delivered text: bronze, its quarantine, silver's quarantines and
    the silver tables with free text."""
    return [
        t.name
        for t in io.registry
        if t.layer == "bronze"
        or t.name == QUARANTINE
        or (t.layer == "silver" and any(c.classification == "free_text" for c in t.columns))
        or t.name.endswith("__quarantine")
    ]


def _sweep(
    io: TableIO,
    settings: Settings,
    jurisdiction: str,
    token: str,
    vaulted: Sequence[Any],
    commit: CommitContext,
    say: Callable[[str], None],
    journal: Path,
) -> Erasure:
    """Tombstone every spelling of the vaulted value in the landing files and bronze."""
    sources = _jurisdiction_sources(settings, jurisdiction)
    landing = Path(settings.resolve(settings.landing.root))
    rewritten: list[Rewritten] = []
    unreadable: set[str] = set()
    bronze: dict[str, int] = {}
    tables = [t.name for t in io.registry if t.layer == "bronze"]
    for row in vaulted:
        pattern = subject_pattern(row["entity_type"], row["value"])
        say(f"sweeping the landing files of {', '.join(sources)} for {token}")
        swept = sweep_landing(landing, sources, pattern, progress=say, journal=journal)
        rewritten += swept.rewritten
        unreadable.update(swept.unreadable)
        shas = {r.old_sha256: r.new_sha256 for r in swept.rewritten}
        say(f"sweeping {len(tables)} bronze tables, the quarantine and the manifest")
        for table, rows in sweep_bronze(io, tables, list(sources), pattern, shas, commit).items():
            bronze[table] = bronze.get(table, 0) + rows
        say("sweeping silver's free texts and quarantines for spellings the detector missed")
        for table, rows in sweep_silver(io, list(sources), pattern, token, commit).items():
            bronze[table] = bronze.get(table, 0) + rows
    return Erasure(token, 0, tuple(rewritten), bronze, tuple(sorted(unreadable)))
