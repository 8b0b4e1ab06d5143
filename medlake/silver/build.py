"""The silver build: conform, deduplicate, quality-gate and upsert each entity, reconciled.

For every entity (FX rates and master data first, because others need them): read the
run's bronze partitions, conform them (`conform.py`), quarantine rows that cannot be
conformed, keep the latest version of each business key, apply the entity's quality rules
(`conf/quality/<entity>.yaml`: ranges, references, anomalies and cross-entity checks, see
`quality.py`), upsert into `silver.<entity>`, and record per plant that rows read =
inserted + updated + duplicates + quarantined + dropped + held (`recon.py`). A quality rule
with action `fail` stops that entity's promotion for the run. The order of entities is
planned in `plan.py`; FX rates and cross-references come from `reference.py`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from medlake.bronze.ingest import months_of, read_bronze
from medlake.entities import EntitySpec
from medlake.governance import vault
from medlake.governance.masking import VAULT
from medlake.io import Changes, Retract
from medlake.silver.conform import Refs, conform
from medlake.silver.plan import FIRST, check_mappings, needs, order
from medlake.silver.quality import RuleSet, evaluate, load_rule_dir, results_rows
from medlake.silver.recon import RECON, plant_counts, quarantine_rows, recon_row, redelivered
from medlake.silver.reference import fx_table, match, months_upto, xrefs
from medlake.silver.run import EntityOutcome, SilverResult, SilverRun

__all__ = ["DQ", "RECON", "EntityOutcome", "SilverResult", "SilverRun", "build", "load_rules"]

log = logging.getLogger("medlake.silver")

DQ = "_dq"
ENTITY_THREADS = 4  # entities built at once (see `_in_parallel`)


def build(run: SilverRun, entities: Sequence[str] | None = None) -> SilverResult:
    names = list(entities or run.specs)
    ordered = order(names, run.rules)
    check_mappings(run.specs, run.sources, ordered)
    result = SilverResult(run.run_id)
    refs = Refs(run.group_currency, fx=fx_table(run), xref=xrefs(run), date_window=run.date_window)
    for name in [n for n in ordered if n in FIRST]:
        spec = run.specs[name]
        if name in {"suppliers", "materials"}:
            refs = Refs(
                run.group_currency,
                date_window=run.date_window,
                fx=refs.fx,
                xref={**(refs.xref or {}), **match(run, spec)},
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
            refs = Refs(
                run.group_currency,
                fx=fx_table(run),
                xref=refs.xref,
                fx_note=note,
                date_window=run.date_window,
            )
    rest = [n for n in ordered if n not in FIRST]
    done = _in_parallel(run, rest, needs(names, run.rules), refs)
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
    ranked = conflicts(ranked, spec, key)
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


def conflicts(ranked: DataFrame, spec: EntitySpec, key: list[str]) -> DataFrame:
    """Mark key conflicts: usable rows of a key's latest version that differ in content. A
    duplicate is the same record twice (removed; text compared without padding and case);
    two different records under one key and version are a conflict that someone must
    resolve, so every row of it is quarantined (`__conflict` holds the reason, naming the
    differing columns and the rows involved)."""
    latest = Window.partitionBy(*key)
    same = Window.partitionBy(*key, "_seq")
    hashes = {c.name: F.xxhash64(comparable(c.name, c.type)) for c in spec.columns}
    differs = [
        F.when(F.min(h).over(same) != F.max(h).over(same), F.lit(n)) for n, h in hashes.items()
    ]
    rows = F.array_sort(
        F.collect_list(F.concat_ws(":", "_source_file", F.col("_file_row").cast("string"))).over(
            same
        )
    )
    shown = F.concat_ws(", ", *[F.format_string(f"{k}=%s", F.col(k)) for k in spec.keys])
    columns = F.array_compact(F.array(*differs))
    return ranked.withColumn(
        "__conflict",
        F.when(
            F.col("__usable")
            & (F.col("_seq") == F.max("_seq").over(latest))
            & (F.size(columns) > 0),
            F.format_string(
                "key conflict: %d rows share the key (%s) and version but differ in %s; every "
                "version is kept here (%s): decide which is right and re-deliver it",
                F.size(rows),
                shown,
                F.array_join(columns, ", "),
                F.array_join(rows, ", "),
            ),
        ),
    )


def comparable(name: str, kind: str) -> Column:
    """A value as two versions of one record are compared: text without its padding and
    case (a re-keyed `abc ` is the same record as `ABC`), everything else as it is."""
    return F.upper(F.trim(F.col(name))) if kind == "string" else F.col(name)


def _personal_columns(run: SilverRun, spec: EntitySpec) -> dict[str, tuple[str, str]]:
    """Columns of the entity that silver must mask: name -> (classification, Spark type)."""
    personal = run.masker.classes.personal
    columns = run.io.registry.get(spec.table).columns
    return {c.name: (c.classification, c.type) for c in columns if personal(c.classification)}


def _promote(run: SilverRun, spec: EntitySpec, ranked: DataFrame, out: EntityOutcome) -> None:
    io = run.io
    conflict = F.col("__conflict").isNotNull()
    counts = plant_counts(
        ranked,
        read=F.lit(True),
        unusable=~F.col("__usable"),
        conflicts=conflict,
        duplicates=F.col("__usable") & (F.col("__rank") > 1) & ~conflict,
    )
    bad = ranked.where(~F.col("__usable"))
    conflicting = ranked.where(conflict)
    latest = ranked.where(F.col("__usable") & (F.col("__rank") == 1) & ~conflict)
    latest = latest.drop("__usable", "__rank", "__conflict", "_errors", "_text")
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
            outcome,
            table=spec.table,
            run_id=run.run_id,
            logical_date=run.logical_date,
            first_date=min(run.dates),
        )
    try:
        ruled: dict[str, int] = {}
        if outcome is not None and outcome.quarantined_count:
            ruled = plant_counts(outcome.quarantined, n=F.lit(True))["n"]
        dropped: dict[str, int] = {}
        if outcome is not None and outcome.dropped_count:
            dropped = plant_counts(outcome.dropped_rows(), n=F.lit(True))["n"]
        partition = {"plant_id": list(run.plants), "delivery_month": months_of(run.dates)}
        days = {"_delivery_date": list(run.dates)}
        quarantined = (
            sum(counts["unusable"].values())
            + sum(counts["conflicts"].values())
            + sum(ruled.values())
        )
        if (
            quarantined
            or io.version(spec.quarantine_table) is None
            or io.may_hold(spec.quarantine_table, {**partition, **days})
        ):
            out.versions_written[spec.quarantine_table] = io.replace_partitions(
                spec.quarantine_table,
                quarantine_rows(bad, ranked, quality_bad, run.run_id, conflicting),
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
            held = plant_counts(kept, n=F.lit(True))["n"]
        else:
            # keys the batch still mentions (superseded or quarantined) are not withdrawn
            mentioned = ranked.select("plant_id", *spec.keys).dropna()
            written = io.upsert(
                spec.table,
                kept,
                ctx=run.ctx(),
                count_by="plant_id",
                retract=Retract(
                    redelivered(run),
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
            recon_row(
                run,
                spec,
                plant,
                read=counts["read"].get(plant, 0),
                inserted=inserted,
                updated=updated,
                duplicates=counts["duplicates"].get(plant, 0) + superseded,
                conflicts=counts["conflicts"].get(plant, 0),
                quarantined=counts["unusable"].get(plant, 0) + ruled.get(plant, 0),
                dropped=dropped.get(plant, 0),
                held=held.get(plant, 0),
                retracted=retracted,
                promoted=not out.failed,
            )
        )


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
    months = months_upto(io, bronze, last)
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


def load_rules(folder: Path) -> dict[str, RuleSet]:

    return load_rule_dir(folder) if folder.is_dir() and any(folder.glob("*.yaml")) else {}
