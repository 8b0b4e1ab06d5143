"""The silver build: conform, deduplicate, flag, quality-gate and upsert each entity, reconciled.

For every entity (FX rates and master data first, because others need them): read the
run's bronze partitions, conform them (`conform.py`), quarantine rows that cannot be
conformed, keep the latest version of each business key, flag anomalies, apply the
entity's quality rules (`conf/quality`), upsert into `silver.<entity>`, and record
per plant that rows read = inserted + updated + duplicates + quarantined + dropped.
A quality rule with action `fail` stops that entity's promotion for the run.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from medlake.bronze.ingest import months_of, read_bronze
from medlake.config import ConfigError
from medlake.entities import EntitySpec
from medlake.governance import vault
from medlake.governance.masking import VAULT, Masker
from medlake.io import Changes, CommitContext, Retract, TableIO
from medlake.silver.conform import Refs, conform
from medlake.silver.masterdata import PartyRecord, XrefRow, match_parties, stabilise
from medlake.silver.quality import RuleResult, RuleSet, evaluate, load_rule_dir, results_rows
from medlake.sources import PlantSource

log = logging.getLogger("medlake.silver")

FIRST = ("fx_rates", "suppliers", "materials")
RECON = "_reconciliation"
DQ = "_dq"
XREF = {"supplier": "silver.supplier_xref", "material": "silver.material_xref"}
CANDIDATES = "silver.masterdata_candidates"
ENTITY_THREADS = 4  # entities built at once (see `_in_parallel`)


@dataclass
class EntityOutcome:
    entity: str
    rows_read: int = 0
    versions_read: dict[str, int | None] = field(default_factory=dict)
    versions_written: dict[str, int] = field(default_factory=dict)
    failed: list[RuleResult] = field(default_factory=list)
    recon: list[dict[str, Any]] = field(default_factory=list)
    dq_rows: list[dict[str, Any]] = field(default_factory=list)
    vaulted: dict[str, int] = field(default_factory=dict)  # new vault rows per jurisdiction


@dataclass
class SilverResult:
    run_id: str
    entities: list[EntityOutcome] = field(default_factory=list)

    @property
    def failed_gates(self) -> list[tuple[str, RuleResult]]:
        return [(e.entity, r) for e in self.entities for r in e.failed]


@dataclass(frozen=True)
class SilverRun:
    io: TableIO
    specs: Mapping[str, EntitySpec]
    rules: Mapping[str, RuleSet]
    sources: Mapping[str, PlantSource]  # every configured plant (master data spans them all)
    plants: Sequence[str]  # the plants this run processes
    dates: Sequence[dt.date]
    run_id: str
    group_currency: str
    masker: Masker  # masks personal data before anything is ranked or written

    @property
    def logical_date(self) -> dt.date:
        return max(self.dates)

    def ctx(self) -> CommitContext:
        return CommitContext(job="silver", run_id=self.run_id, logical_date=self.logical_date)


def build(run: SilverRun, entities: Sequence[str] | None = None) -> SilverResult:
    names = list(entities or run.specs)
    ordered = _order(names, run.rules, run.specs)
    check_mappings(run.specs, run.sources, ordered)
    result = SilverResult(run.run_id)
    refs = Refs(run.group_currency, fx=_fx_table(run), xref=_xrefs(run))
    for name in [n for n in ordered if n in FIRST]:
        spec = run.specs[name]
        if name in {"suppliers", "materials"}:
            refs = Refs(
                run.group_currency,
                fx=refs.fx,
                xref={**(refs.xref or {}), **_match(run, spec)},
                fx_note=refs.fx_note,
            )
        result.entities.append(_entity(run, spec, refs))
        if name == "fx_rates":
            failed = ", ".join(r.rule_id for r in result.entities[-1].failed)
            note = (
                f"this run's FX rates were not promoted (quality gate {failed} of "
                "silver.fx_rates failed): fix them and re-run"
                if failed
                else ""
            )
            refs = Refs(run.group_currency, fx=_fx_table(run), xref=refs.xref, fx_note=note)
    rest = [n for n in ordered if n not in FIRST]
    done = _in_parallel(run, rest, _needs(names, run.rules, run.specs), refs)
    result.entities += [done[n] for n in rest]
    return result


def _in_parallel(
    run: SilverRun, names: list[str], needs: Mapping[str, set[str]], refs: Refs
) -> dict[str, EntityOutcome]:
    """Build entities concurrently, each once the tables it refers to are built.

    Each entity is a chain of small Spark jobs and Delta commits whose latency is mostly
    planning and commit overhead, so overlapping them uses the cores far better than one
    after the other (bench/RESULTS.md, `pipeline`)."""
    done: dict[str, EntityOutcome] = {}
    pending = list(names)
    running: dict[Future[EntityOutcome], str] = {}
    with ThreadPoolExecutor(max_workers=ENTITY_THREADS, thread_name_prefix="silver") as pool:
        while pending or running:
            ready = [n for n in pending if needs[n] & set(names) - {n} <= done.keys()]
            if not ready and not running:  # a cycle in the references: break it in order
                ready = pending[:1]
            for name in ready:
                pending.remove(name)
                running[pool.submit(_entity, run, run.specs[name], refs)] = name
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done[running.pop(future)] = future.result()
    return done


def check_mappings(
    specs: Mapping[str, EntitySpec], sources: Mapping[str, PlantSource], entities: Sequence[str]
) -> None:
    """Every plant that delivers an entity maps its key and mandatory columns; otherwise
    every row would be quarantined as 'missing', which is a configuration error."""

    problems = []
    for name in entities:
        spec = specs[name]
        needed = [c.name for c in spec.columns if c.name in spec.keys or c.missing == "reject"]
        for plant_id, source in sources.items():
            entity = source.entities.get(spec.source)
            if entity is None:
                continue
            missing = [c for c in needed if c not in entity.columns.values()]
            if missing:
                problems.append(
                    f"conf/sources/{plant_id}.yaml: entities.{spec.source}.columns maps no "
                    f"local column to {', '.join(missing)} (required by conf/silver/{name}.yaml)"
                )
    if problems:
        raise ConfigError("incomplete source mapping:\n  " + "\n  ".join(problems))


def _needs(
    names: list[str], rules: Mapping[str, RuleSet], specs: Mapping[str, EntitySpec]
) -> dict[str, set[str]]:
    """The entities of `names` each entity's quality rules and cross-checks refer to."""
    return {
        n: (
            {
                str(getattr(r, "ref_table", "")).removeprefix("silver.")
                for r in (rules[f"silver.{n}"].rules if f"silver.{n}" in rules else [])
            }
            | {c.ref for c in specs[n].cross_checks}
        )
        & set(names)
        for n in names
    }


def _order(
    names: list[str], rules: Mapping[str, RuleSet], specs: Mapping[str, EntitySpec]
) -> list[str]:
    """FX rates and master data first, then every entity after the tables its rules and
    cross-checks refer to."""
    needs = _needs(names, rules, specs)
    ordered = [e for e in FIRST if e in names]
    rest = sorted(e for e in names if e not in FIRST)
    while rest:
        ready = next((e for e in rest if needs[e] <= set(ordered) | {e}), rest[0])
        ordered.append(ready)
        rest.remove(ready)
    return ordered


# ----------------------------------------------------------------------------- one entity


def _entity(run: SilverRun, spec: EntitySpec, refs: Refs) -> EntityOutcome:
    log.info("silver: %s", spec.table)
    io, out = run.io, EntityOutcome(spec.entity)
    bronze_name = f"bronze.{spec.source}"
    out.versions_read[bronze_name] = io.version(bronze_name)
    if out.versions_read[bronze_name] is None:
        log.warning("silver: %s has no data yet; %s skipped", bronze_name, spec.table)
        return out
    plants = {p: s for p, s in run.sources.items() if p in run.plants and spec.source in s.entities}
    if not plants:
        log.info("silver: no plant of this run delivers %s; %s skipped", spec.source, spec.table)
        return out
    bronze = read_bronze(
        io, bronze_name, list(run.plants), list(run.dates), version=out.versions_read[bronze_name]
    )
    rows = conform(bronze, spec, plants, refs, run_id=run.run_id)
    personal = _personal_columns(run, spec)
    if personal:
        # Masked before anything is ranked, quarantined or written: no clear value goes further.
        rows = run.masker.mask(rows, personal, text_map="_text")
    # Latest version of each usable business key (rank 1); unusable rows are not ranked.
    usable = F.size("_errors") == 0
    key = ["__usable", "plant_id", *spec.keys]
    order = Window.partitionBy(*key).orderBy(F.col("_seq").desc(), F.col("_file_row").asc())
    ranked = rows.withColumn("__usable", usable).withColumn("__rank", F.row_number().over(order))
    # Materialised once: every count and write below starts from this small plan.
    ranked = checkpoint = ranked.localCheckpoint()
    try:
        if personal:
            out.vaulted = vault.store(
                run.io,
                run.masker.vault_rows(ranked),
                [run.masker.plant_jurisdiction[p] for p in plants],
                table=spec.table,
                ctx=run.ctx(),
            )
            ranked = ranked.drop(VAULT)
        _promote(run, spec, ranked, out)
    finally:
        checkpoint.unpersist()
    return out


def _personal_columns(run: SilverRun, spec: EntitySpec) -> dict[str, tuple[str, str]]:
    """Columns of the entity that silver must mask: name -> (classification, Spark type)."""
    personal = run.masker.classes.personal
    columns = run.io.registry.get(spec.table).columns
    return {c.name: (c.classification, c.type) for c in columns if personal(c.classification)}


def _promote(run: SilverRun, spec: EntitySpec, ranked: DataFrame, out: EntityOutcome) -> None:
    io = run.io
    counts = _plant_counts(
        ranked,
        read=F.lit(True),
        unusable=~F.col("__usable"),
        duplicates=F.col("__usable") & (F.col("__rank") > 1),
    )
    bad = ranked.where(~F.col("__usable"))
    latest = ranked.where(F.col("__usable") & (F.col("__rank") == 1))
    latest = _flag_anomalies(latest.drop("__usable", "__rank", "_errors", "_text"), spec)
    latest = _cross_check(io, spec, latest)
    table_spec = io.registry.get(spec.table)
    rules = run.rules.get(spec.table)
    outcome = None
    quality_bad: DataFrame | None = None
    if rules is None:
        latest = latest.withColumn("_dq_warnings", F.array().cast("array<string>"))
    else:
        outcome = evaluate(
            latest,
            rules,
            logical_date=run.logical_date,
            refs=_rule_refs(run, rules),
            **_daily_volumes(run, spec),
        )
        latest, quality_bad = outcome.kept, outcome.quarantined
        out.failed = outcome.failed_gates
        out.dq_rows = results_rows(
            outcome, table=spec.table, run_id=run.run_id, logical_date=run.logical_date
        )
    try:
        ruled: dict[str, int] = {}
        if outcome is not None and outcome.quarantined_count:
            ruled = _plant_counts(outcome.quarantined, n=F.lit(True))["n"]
        dropped: dict[str, int] = {}
        if outcome is not None and outcome.dropped_count:
            dropped = _plant_counts(outcome.dropped_rows(), n=F.lit(True))["n"]
        partition = {"plant_id": list(run.plants), "delivery_month": months_of(run.dates)}
        days = {"_delivery_date": list(run.dates)}
        quarantined = sum(counts["unusable"].values()) + sum(ruled.values())
        if (
            quarantined
            or io.version(spec.quarantine_table) is None
            or io.may_hold(spec.quarantine_table, {**partition, **days})
        ):
            out.versions_written[spec.quarantine_table] = io.replace_partitions(
                spec.quarantine_table,
                _quarantine_rows(bad, ranked, quality_bad, run.run_id),
                partition=partition,
                where=days,
                ctx=run.ctx(),
            ).version
        # else: nothing to quarantine and no stored row of these days to replace: no write
        kept = latest.select(*[c.name for c in table_spec.columns])
        changes: dict[str, Changes] = {}
        held: dict[str, int] = {}
        if out.failed:
            reasons = "; ".join(f"{r.rule_id}: {r.message}" for r in out.failed)
            log.error("silver: %s not promoted (quality gate failed): %s", spec.table, reasons)
            held = _plant_counts(kept, n=F.lit(True))["n"]
        else:
            # keys the batch still mentions (superseded or quarantined) are not withdrawn
            mentioned = ranked.select("plant_id", *spec.keys).dropna()
            written = io.upsert(
                spec.table,
                kept,
                ctx=run.ctx(),
                count_by="plant_id",
                retract=Retract(
                    _redelivered(run),
                    keep=mentioned,
                    within={"plant_id": list(run.plants), "_delivery_date": list(run.dates)},
                ),
            )
            out.versions_written[spec.table] = written.version
            changes = written.changes_by or {}
    finally:
        if outcome is not None:
            outcome.release()
    out.rows_read = sum(counts["read"].values())
    for plant in run.plants:
        inserted, updated, superseded, retracted = changes.get(plant, Changes(0, 0, 0))
        out.recon.append(
            _recon_row(
                run,
                spec,
                plant,
                read=counts["read"].get(plant, 0),
                inserted=inserted,
                updated=updated,
                duplicates=counts["duplicates"].get(plant, 0) + superseded,
                quarantined=counts["unusable"].get(plant, 0) + ruled.get(plant, 0),
                dropped=dropped.get(plant, 0),
                held=held.get(plant, 0),
                retracted=retracted,
                promoted=not out.failed,
            )
        )


def _redelivered(run: SilverRun) -> str:
    """Stored rows from the deliveries this run reads again: a key they no longer contain
    was withdrawn by the plant (a corrected re-delivery) and leaves silver."""
    plants = ", ".join("'" + p.replace("'", "''") + "'" for p in run.plants)
    dates = ", ".join(f"DATE'{d.isoformat()}'" for d in run.dates)
    return f"plant_id IN ({plants}) AND _delivery_date IN ({dates})"


def _plant_counts(df: DataFrame, **conditions: SparkColumn) -> dict[str, dict[str, int]]:
    """Rows meeting each condition, per plant, in one Spark job."""
    column = "plant_id" if "plant_id" in df.columns else "_plant_id"
    sums = [F.sum(F.when(c, 1).otherwise(0)).alias(n) for n, c in conditions.items()]
    found: dict[str, dict[str, int]] = {n: {} for n in conditions}
    for row in df.groupBy(column).agg(*sums).collect():
        for name in conditions:
            found[name][row[column]] = int(row[name])
    return found


def _flag_anomalies(df: DataFrame, spec: EntitySpec) -> DataFrame:
    """Robust z-score (median and MAD within the group) above the threshold: flag, keep."""
    for a in spec.anomalies:
        group = Window.partitionBy(*(["plant_id", *a.by]))
        x = F.col(a.column).cast("double")
        median = F.percentile_approx(x, 0.5).over(group)
        df = df.withColumn("__med", median)
        mad = F.percentile_approx(F.abs(x - F.col("__med")), 0.5).over(group)
        df = df.withColumn("__mad", mad)
        z = F.abs(x - F.col("__med")) / (F.lit(1.4826) * F.col("__mad"))
        flag = F.when(
            (F.col("__mad") > 0) & (z > a.threshold), F.lit(f"anomaly:{a.column}:robust_z")
        )
        df = df.withColumn("_flags", F.array_compact(F.concat("_flags", F.array(flag)))).drop(
            "__med", "__mad"
        )
    return df


def _cross_check(io: TableIO, spec: EntitySpec, df: DataFrame) -> DataFrame:
    """Flag rows that disagree with a related table, e.g. a receipt in another unit than
    its order line (`cross_checks` in the spec). Rows without a partner are not flagged."""

    for check in spec.cross_checks:
        ref = f"silver.{check.ref}"
        if io.version(ref) is None:
            continue
        wanted = set(re.findall(r"\bref_([a-z][a-z0-9_]*)", check.expr)) | set(check.keys.values())
        right = io.read(ref).select(
            F.col("plant_id").alias("ref_plant_id"), *[F.col(c).alias(f"ref_{c}") for c in wanted]
        )
        right = right.dropDuplicates(["ref_plant_id", *[f"ref_{c}" for c in check.keys.values()]])
        cond = F.col("plant_id") == F.col("ref_plant_id")
        for mine, theirs in check.keys.items():
            cond = cond & (F.col(mine) == F.col(f"ref_{theirs}"))
        flag = F.when(F.coalesce(F.expr(check.expr), F.lit(False)), F.lit(check.flag))
        df = (
            df.join(right, cond, "left")
            .withColumn("_flags", F.array_compact(F.concat("_flags", F.array(flag))))
            .drop("ref_plant_id", *[f"ref_{c}" for c in wanted])
        )
    return df


def _quarantine_rows(
    bad: DataFrame, rows: DataFrame, quality_bad: DataFrame | None, run_id: str
) -> DataFrame:
    conformance = bad.select(
        "plant_id",
        "_delivery_date",
        F.date_format("_delivery_date", "yyyy-MM").alias("delivery_month"),
        "_source_file",
        "_file_row",
        F.col("_text").alias("record"),
        F.lit("conformance").alias("rule_id"),
        F.array_join("_errors", "; ").alias("reason"),
        F.lit(run_id).alias("_run_id"),
    )
    if quality_bad is None:
        return conformance
    texts = rows.select(
        F.col("plant_id").alias("__p"),
        F.col("_source_file").alias("__f"),
        F.col("_file_row").alias("__r"),
        F.col("_text").alias("record"),
    )
    ruled = quality_bad.join(
        texts,
        (F.col("plant_id") == F.col("__p"))
        & (F.col("_source_file") == F.col("__f"))
        & (F.col("_file_row") == F.col("__r")),
        "left",
    ).select(
        "plant_id",
        "_delivery_date",
        F.date_format("_delivery_date", "yyyy-MM").alias("delivery_month"),
        "_source_file",
        "_file_row",
        "record",
        F.col("_rule_id").alias("rule_id"),
        F.col("_reason").alias("reason"),
        F.lit(run_id).alias("_run_id"),
    )
    return conformance.unionByName(ruled)


def _recon_row(
    run: SilverRun,
    spec: EntitySpec,
    plant: str,
    *,
    read: int,
    inserted: int,
    updated: int,
    duplicates: int,
    quarantined: int,
    dropped: int,
    held: int,
    retracted: int,
    promoted: bool,
) -> dict[str, Any]:
    accounted = inserted + updated + duplicates + quarantined + dropped + held
    return {
        "run_id": run.run_id,
        "logical_date": run.logical_date,
        "entity": spec.entity,
        "plant_id": plant,
        "rows_read": read,
        "rows_inserted": inserted,
        "rows_updated": updated,
        "duplicates_removed": duplicates,
        "rows_quarantined": quarantined,
        "rows_dropped": dropped,
        "rows_held": held,
        "rows_retracted": retracted,
        "promoted": promoted,
        "balanced": accounted == read,
        "recorded_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
    }


def _rule_refs(run: SilverRun, rules: RuleSet) -> dict[str, DataFrame]:
    refs = {}
    for rule in rules.rules:
        name = getattr(rule, "ref_table", None)
        if name and run.io.version(name) is not None:
            refs[name] = run.io.read(name)
    return refs


def _daily_volumes(run: SilverRun, spec: EntitySpec) -> dict[str, list[int]]:
    """Delivered rows per calendar day of the run's plants: the days before the run (from
    the first delivery on) as `volume_history`, the run's own days as `volume_days`. Taken
    from bronze, so a range run and a run per day judge the same volumes."""
    io, bronze = run.io, f"bronze.{spec.source}"
    first, last = min(run.dates), max(run.dates)
    months = _months_upto(io, bronze, last)
    counts: dict[dt.date, int] = {}
    if months:
        lookback = months[-4:]  # trailing windows are days, not months
        rows = (
            io.read(bronze, partitions={"delivery_month": lookback})
            .where(F.col("_plant_id").isin(list(run.plants)) & (F.col("_delivery_date") <= last))
            .groupBy("_delivery_date")
            .count()
            .collect()
        )
        counts = {r["_delivery_date"]: int(r["count"]) for r in rows}
    before = sorted(d for d in counts if d < first)
    history = []
    if before:
        day = before[0]
        while day < first:
            history.append(counts.get(day, 0))
            day += dt.timedelta(days=1)
    return {"volume_history": history, "volume_days": [counts.get(d, 0) for d in sorted(run.dates)]}


# ----------------------------------------------------------------------------- reference data


def _fx_table(run: SilverRun) -> DataFrame | None:
    """Group-currency rate per (date, currency) from every plant's ERP rates: the quoted
    rates to the group currency where a plant quotes them, else inverses of rates from it."""
    if run.io.version("silver.fx_rates") is None:
        return None
    g = run.group_currency
    fx = run.io.read("silver.fx_rates")
    direct = fx.where(F.col("to_currency") == g).select(
        "rate_date",
        F.col("from_currency").alias("currency"),
        F.col("rate").cast("double").alias("r"),
        F.lit(0).alias("inverse"),
    )
    inverse = fx.where((F.col("from_currency") == g) & (F.col("rate") > 0)).select(
        "rate_date",
        F.col("to_currency").alias("currency"),
        (1 / F.col("rate").cast("double")).alias("r"),
        F.lit(1).alias("inverse"),
    )
    # a quoted rate to the group currency beats the inverse of a rate from it (rounding)
    best = Window.partitionBy("rate_date", "currency")
    return (
        direct.unionByName(inverse)
        .withColumn("__best", F.min("inverse").over(best))
        .where(F.col("inverse") == F.col("__best"))
        .groupBy("rate_date", "currency")
        .agg(F.avg("r").cast("decimal(18,8)").alias("rate_to_group"))
    ).persist()


def _xrefs(run: SilverRun) -> dict[str, DataFrame]:
    return {
        lookup: run.io.read(name).select("plant_id", "local_code", "group_id")
        for lookup, name in XREF.items()
        if run.io.version(name) is not None
    }


def _months_upto(io: TableIO, bronze_name: str, day: dt.date) -> list[str]:
    """The bronze table's month partitions up to the month of `day`, oldest first."""
    upto = f"{day:%Y-%m}"
    found = {p["delivery_month"] for p in io.partition_values(bronze_name)}
    return sorted(m for m in found if m is not None and m <= upto)


def _newest_snapshots(io: TableIO, bronze_name: str, as_of: dt.date) -> DataFrame:
    """Each plant's newest delivery of a master-data snapshot up to `as_of`: one scan of
    the two delivery columns finds the days, then only their months are read."""
    months = _months_upto(io, bronze_name, as_of)
    if not months:
        return io.read(bronze_name, partitions={"delivery_month": []})
    newest = (
        io.read(bronze_name, partitions={"delivery_month": months})
        .where(F.col("_delivery_date") <= F.lit(as_of))
        .groupBy("_plant_id")
        .agg(F.max("_delivery_date").alias("day"))
        .collect()
    )
    days = {r["_plant_id"]: r["day"] for r in newest}
    frame = io.read(bronze_name, partitions={"delivery_month": months_of(list(days.values()))})
    picked = F.lit(False)
    for plant, day in sorted(days.items()):
        picked = picked | ((F.col("_plant_id") == plant) & (F.col("_delivery_date") == F.lit(day)))
    return frame.where(picked)


_MATCH_FIELDS = {
    "suppliers": ("supplier", "supplier_code", "supplier_name", "tax_id", "country", None, "SUP"),
    "materials": ("material", "material_code", "description", None, None, "global_ref", "MAT"),
}


def _match(run: SilverRun, spec: EntitySpec) -> dict[str, DataFrame]:
    """Match every plant's latest master snapshot into group ids; write xref and candidates."""
    lookup, code, name, reg, country, ref, prefix = _MATCH_FIELDS[spec.entity]
    io = run.io
    bronze_name = f"bronze.{spec.source}"
    if io.version(bronze_name) is None:
        return {}
    bronze = _newest_snapshots(io, bronze_name, run.logical_date)
    delivering = {p: s for p, s in run.sources.items() if spec.source in s.entities}
    rows = conform(bronze, spec, delivering, Refs(run.group_currency), run_id=run.run_id)
    picked = [c for c in (code, name, reg, country, ref) if c]
    records = []
    newest_first = rows.where(F.size("_errors") == 0).orderBy(
        "plant_id", code, F.col("_seq").desc(), "_file_row"
    )
    seen: set[tuple[str, str]] = set()
    for r in newest_first.select("plant_id", *picked).collect():
        if (r["plant_id"], r[code]) in seen:
            continue  # one record per local code: its newest version
        seen.add((r["plant_id"], r[code]))
        records.append(
            PartyRecord(
                plant_id=r["plant_id"],
                local_code=r[code],
                name=r[name],
                registration_id=r[reg] if reg else None,
                country=r[country] if country else None,
                extra_ref=r[ref] if ref else None,
            )
        )
    steward = {
        (p, local): group
        for p, s in run.sources.items()
        for local, group in s.code_map(lookup).items()
    }
    result = match_parties(records, prefix=prefix, steward=steward)
    previous = (
        [XrefRow(**r.asDict()) for r in io.read(XREF[lookup]).collect()]
        if io.version(XREF[lookup]) is not None
        else []
    )
    spark = io.spark
    xref = spark.createDataFrame(
        [
            (x.plant_id, x.local_code, x.group_id, x.method, x.match_key, x.name)
            for x in stabilise(result.xref, previous)
        ],
        io.registry.get(XREF[lookup]).spark_schema,
    )
    io.overwrite(XREF[lookup], xref, ctx=run.ctx())
    candidates = spark.createDataFrame(
        [
            (lookup, c.plant_id, c.local_code, c.status, list(c.candidates), c.reason)
            for c in result.candidates
        ],
        io.registry.get(CANDIDATES).spark_schema,
    )
    io.replace_partitions(CANDIDATES, candidates, partition={"domain": lookup}, ctx=run.ctx())
    for c in result.candidates:
        log.warning("master data %s %s/%s: %s", c.status, c.plant_id, c.local_code, c.reason)
    return {lookup: io.read(XREF[lookup]).select("plant_id", "local_code", "group_id")}


def load_rules(folder: Path) -> dict[str, RuleSet]:

    return load_rule_dir(folder) if folder.is_dir() and any(folder.glob("*.yaml")) else {}
