"""Bronze ingestion: land each plant's delivery files as delivered, incrementally, losing nothing.

For every (plant, date) folder under the landing root the configured files are checksummed
and compared with `_bronze_manifest`: an identical re-delivery is skipped, a new or changed
file is parsed (in Spark tasks that each read a few hundred files, by the reader registered
for its format) and replaces that plant's rows of that date in `bronze.<system>__<entity>`
(partitioned by delivery month: the rest of the month is rewritten with them, so a table
keeps one file per month); rows that cannot be parsed replace the (entity, plant, date)
partition of `_bronze_quarantine`. Every file's outcome is appended to the manifest.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io as io_module
import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from medlake.bronze.readers import FileSpec, Parsed, iter_rows, read_file
from medlake.io import CommitContext, TableIO
from medlake.sources import PlantSource

log = logging.getLogger("medlake.bronze")

MANIFEST = "_bronze_manifest"
QUARANTINE = "_bronze_quarantine"
WRITE_THREADS = 4

_PARSED = T.StructType(
    [
        T.StructField("_kind", T.StringType(), False),  # row | error | file
        T.StructField("_source_file", T.StringType(), False),
        T.StructField("_file_row", T.IntegerType(), False),
        T.StructField("_record", T.MapType(T.StringType(), T.StringType()), True),
        T.StructField("_raw", T.StringType(), True),
        T.StructField("_reason", T.StringType(), True),
    ]
)


@dataclass(frozen=True)
class FileTask:
    """One configured file of one plant's delivery for one date."""

    plant_id: str
    delivery_date: dt.date
    entity: str
    path: Path
    relative: str
    sha256: str | None  # None: the file was not delivered
    size: int | None
    version: int | None  # version this delivery gets (None when skipped or missing)
    spec: FileSpec
    first: bool = True  # no file of this plant, date and entity was read before


@dataclass
class IngestResult:
    run_id: str
    manifest: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)  # table -> version written

    def count(self, status: str) -> int:
        return sum(1 for m in self.manifest if m["status"] == status)

    @property
    def rows_ingested(self) -> int:
        return sum(m["rows_ingested"] or 0 for m in self.manifest)

    @property
    def rows_quarantined(self) -> int:
        return sum(m["rows_quarantined"] or 0 for m in self.manifest)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_spec(source: PlantSource, entity: str, *, expected_rows: int | None = None) -> FileSpec:
    """How `entity`'s file is read: its format and the local columns every entity that the
    same file feeds reads (one file may feed several entities; it is read once)."""
    d, mapped = source.delivery, source.entities[entity]
    # each entity's columns once (expressions are parsed to find theirs), not per column
    reads = [set(o.local_columns) for o in source.entities.values() if o.file == mapped.file]
    # the file is refused as a whole only for columns every entity reads; a column only some
    # entities read refuses those entities alone (`_entity_header_problems`)
    common = [c for c in mapped.local_columns if all(c in r for r in reads)]
    return FileSpec(
        mapped.format or d.format, d.encoding, d.delimiter, tuple(common), expected_rows
    )


def read_columns(source: PlantSource, file: str) -> list[str]:
    """Every local column some entity reads from `file`."""
    found: dict[str, None] = {}
    for mapped in source.entities.values():
        if mapped.file == file:
            found.update(dict.fromkeys(mapped.local_columns))
    return list(found)


def _entity_header_problems(
    todo: Sequence[FileTask],
    sources: dict[str, PlantSource],
    summaries: dict[tuple[str, str], dict[str, Any]],
) -> dict[tuple[str, str], str]:
    """Tasks of a shared file whose entity reads a column the file lacks: refused alone, its
    rows quarantined with the reason (the other entities of the file land as usual)."""
    refused = {}
    for t in todo:
        s = summaries[(t.relative, t.entity)]
        header = s.get("header") or []
        if s.get("file_error") or s.get("empty") or not header:
            continue
        wanted = sources[t.plant_id].entities[t.entity].local_columns
        missing = [c for c in wanted if c not in header]
        if missing:
            reason = (
                f"header lacks columns {missing} that {t.entity} reads (conf/sources/"
                f"{t.plant_id}.yaml); the file's other entities are not affected"
            )
            s["file_error"] = reason
            s["errors"] = int(s.get("errors", 0)) + int(s.get("rows", 0))
            s["rows"] = 0
            refused[(t.relative, t.entity)] = reason
    return refused


CONTROL_FILE = "_control.csv"


def read_control(folder: Path) -> tuple[dict[str, tuple[int, str | None]], str | None]:
    """The delivery's control totals (`_control.csv`: file, rows, sha256; docs/onboarding.md):
    file name -> (data rows, sha256 or None), and a problem when the control file is unusable
    (then no file of the delivery is vouched for)."""
    path = folder / CONTROL_FILE
    if not path.is_file():
        return {}, None
    try:
        rows = list(csv.DictReader(io_module.StringIO(path.read_text(encoding="utf-8-sig"))))
        totals = {}
        for row in rows:
            sha = (row.get("sha256") or "").strip().lower() or None
            totals[row["file"].strip()] = (int(row["rows"]), sha)
    except (OSError, UnicodeDecodeError, KeyError, ValueError, TypeError, csv.Error) as exc:
        return (
            {},
            f"{CONTROL_FILE} is not usable ({exc}); expected a CSV with columns file,rows,sha256",
        )
    return totals, None


# ----------------------------------------------------------------------------- planning


def previous_deliveries(
    io: TableIO, plants: Sequence[str], dates: Sequence[dt.date]
) -> dict[tuple[str, dt.date, str], tuple[str, int]]:
    """Latest (sha256, version) per (plant, date, entity) read before; the sha256 of a file
    that was refused as a whole is marked so that the same file is read again."""
    if io.version(MANIFEST) is None:
        return {}
    rows = (
        io.read(MANIFEST)
        .where(F.col("plant_id").isin(list(plants)) & F.col("delivery_date").isin(list(dates)))
        .where(F.col("status").isin("ingested", "quarantined"))
        .select("plant_id", "delivery_date", "entity", "sha256", "file_version", "status")
        .collect()
    )
    latest: dict[tuple[str, dt.date, str], tuple[str, int]] = {}
    for r in rows:
        key = (r.plant_id, r.delivery_date, r.entity)
        # a file refused as a whole is read again next time: the reason may lie outside it
        # (control totals, the mapping, the declared encoding or empty policy)
        sha = r.sha256 if r.status == "ingested" else f"refused:{r.sha256}"
        if key not in latest or r.file_version > latest[key][1]:
            latest[key] = (sha, r.file_version)
    return latest


def plan(
    landing: Path,
    sources: dict[str, PlantSource],
    dates: Sequence[dt.date],
    previous: dict[tuple[str, dt.date, str], tuple[str, int]],
    *,
    force: bool = False,
) -> tuple[list[FileTask], list[FileTask], list[tuple[str, dt.date, str]]]:
    """Files to ingest, files to skip (identical or missing), and unexpected files. A file
    that feeds several entities is one task per entity (parsed once, see `parse`)."""
    todo: list[FileTask] = []
    skip: list[FileTask] = []
    unexpected: list[tuple[str, dt.date, str]] = []
    for plant_id, source in sources.items():
        for day in dates:
            folder = landing / plant_id / day.isoformat()
            configured: dict[str, list[str]] = defaultdict(list)
            for entity, cfg in sorted(source.entities.items()):
                configured[cfg.file].append(entity)
            control: dict[str, tuple[int, str | None]] = {}
            control_problem = None
            if folder.is_dir():
                unexpected += [
                    (plant_id, day, p.name)
                    for p in sorted(folder.iterdir())
                    if p.name not in configured and p.name != CONTROL_FILE
                ]
                control, control_problem = read_control(folder)
            for name, entities in sorted(configured.items(), key=lambda kv: kv[1]):
                path = folder / name
                relative = f"{plant_id}/{day.isoformat()}/{name}"
                sha = sha256_of(path) if path.is_file() else None
                size = path.stat().st_size if sha else None
                rows, vouched = control.get(name, (None, None))
                for entity in entities:
                    spec = file_spec(source, entity, expected_rows=rows)
                    if control_problem:
                        spec = replace(spec, control_problem=control_problem)
                    elif vouched and sha and vouched == sha:
                        spec = replace(spec, vouched=True)
                    elif vouched and sha and vouched != sha:
                        spec = replace(
                            spec,
                            control_problem=f"sha256 {sha[:12]}... differs from the control "
                            f"total {vouched[:12]}... in {CONTROL_FILE}: damaged or cut in "
                            "transfer; ask the plant to re-deliver it",
                        )
                    if sha is None:
                        skip.append(
                            FileTask(plant_id, day, entity, path, relative, None, None, None, spec)
                        )
                        continue
                    before = previous.get((plant_id, day, entity))
                    if before and before[0] == sha and not force:
                        skip.append(
                            FileTask(plant_id, day, entity, path, relative, sha, size, None, spec)
                        )
                        continue
                    version = (
                        before[1] + 1
                        if before and before[0] != sha
                        else (before[1] if before else 1)
                    )
                    first = before is None
                    todo.append(
                        FileTask(
                            plant_id,
                            day,
                            entity,
                            path,
                            relative,
                            sha,
                            size,
                            version,
                            spec,
                            first,
                        )
                    )
    return todo, skip, unexpected


def by_entity(tasks: Sequence[FileTask]) -> dict[str, list[FileTask]]:
    grouped: dict[str, list[FileTask]] = defaultdict(list)
    for t in tasks:
        grouped[t.entity].append(t)
    return dict(sorted(grouped.items()))


def partition_groups(tasks: Sequence[FileTask]) -> list[tuple[list[str], list[dt.date]]]:
    """Split one entity's tasks into exact (plants x dates) blocks: one commit each."""
    plants_by_date: dict[dt.date, set[str]] = defaultdict(set)
    for t in tasks:
        plants_by_date[t.delivery_date].add(t.plant_id)
    blocks: dict[frozenset[str], list[dt.date]] = defaultdict(list)
    for day, at_day in sorted(plants_by_date.items()):
        blocks[frozenset(at_day)].append(day)
    return [(sorted(block), days) for block, days in blocks.items()]


# ----------------------------------------------------------------------------- parsing in Spark


FILES_PER_TASK = 400  # a parse task reads this many delivered files, one after the other


def _parse_partition(
    batches: Iterator[Any], specs: dict[str, tuple[str, FileSpec]]
) -> Iterator[Any]:

    for batch in batches:
        out: dict[str, list[Any]] = {n: [] for n in _PARSED.fieldNames()}
        for path in batch["path"]:
            relative, spec = specs[path]
            try:
                content = Path(path).read_bytes()
            except OSError as exc:  # gone or unreadable since planning: the file is refused
                parsed = Parsed(file_error=f"could not read the delivered file: {exc}")
            else:
                parsed = read_file(content, spec)
            for number, record, raw, reason in iter_rows(parsed):
                out["_kind"].append("row" if record is not None else "error")
                out["_source_file"].append(relative)
                out["_file_row"].append(number)
                out["_record"].append(record)
                out["_raw"].append(raw)
                out["_reason"].append(reason)
            summary = {
                "header": parsed.header,
                "file_error": parsed.file_error,
                "rows": len(parsed.rows),
                "errors": len(parsed.errors),
                "empty": parsed.empty,
            }
            for name, value in (
                ("_kind", "file"),
                ("_source_file", relative),
                ("_file_row", 0),
                ("_record", None),
                ("_raw", json.dumps(summary, ensure_ascii=False)),
                ("_reason", parsed.file_error),
            ):
                out[name].append(value)
        yield pd.DataFrame(out)


def parse(spark: SparkSession, tasks: Sequence[FileTask]) -> DataFrame:
    """Every row of every task's file: good rows, quarantined rows and one summary per file.

    One Spark job over the list of files: each task reads a few hundred files from the
    landing folder (local, or mounted on every executor) and parses them in turn, so the
    cost per file is the parse, not a Spark partition or a file listing.
    """
    specs = {str(t.path.resolve()): (t.relative, t.spec) for t in tasks}
    slices = max(spark.sparkContext.defaultParallelism, -(-len(specs) // FILES_PER_TASK))
    files = spark.createDataFrame([(p,) for p in specs], "path string").repartition(slices)
    meta = spark.createDataFrame(
        [(t.relative, t.plant_id, t.delivery_date, t.entity, t.sha256, t.version) for t in tasks],
        "_source_file string, _plant_id string, _delivery_date date, _entity string, "
        "_file_sha256 string, _file_version int",
    )
    parsed = files.mapInPandas(lambda it: _parse_partition(it, specs), schema=_PARSED)
    return parsed.join(F.broadcast(meta), "_source_file")


# ----------------------------------------------------------------------------- the job


def ingest(
    io: TableIO,
    sources: dict[str, PlantSource],
    landing: Path,
    dates: Sequence[dt.date],
    *,
    run_id: str,
    force: bool = False,
) -> IngestResult:
    """Land `dates` of every plant in `sources`; see the module docstring for the rules."""
    spark = io.spark
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    result = IngestResult(run_id)
    previous = previous_deliveries(io, list(sources), dates)
    todo, skipped, unexpected = plan(landing, sources, dates, previous, force=force)
    log.info(
        "ingest: %d files to read (%d MiB) for %d tables, %d unchanged or missing",
        len({t.relative for t in todo}),
        sum(t.size or 0 for t in {t.relative: t for t in todo}.values()) >> 20,
        len({t.entity for t in todo}),
        len(skipped),
    )
    summaries: dict[tuple[str, str], dict[str, Any]] = {}
    if todo:
        parsed = parse(spark, todo).persist()
        try:
            by_file = {
                r._source_file: json.loads(r._raw)
                for r in parsed.where("_kind = 'file'")
                .select("_source_file", "_raw")
                .distinct()
                .collect()
            }
            log.info(
                "ingest: %d files parsed: %d rows read, %d quarantined; writing bronze",
                len(by_file),
                sum(int(v.get("rows", 0)) for v in by_file.values()),
                sum(int(v.get("errors", 0)) for v in by_file.values()),
            )
            summaries = _apply_empty_policy(todo, sources, by_file)
            refused = _entity_header_problems(todo, sources, summaries)
            # a file refused as a whole leaves its bronze partition as it was (a bad
            # re-delivery must not empty the good version already landed); an empty
            # re-delivery too: "nothing today" never retracts what an earlier file landed
            usable = [
                t
                for t in todo
                if not summaries[(t.relative, t.entity)].get("file_error")
                and not (summaries[(t.relative, t.entity)].get("empty") and not t.first)
            ]
            _write_bronze(io, parsed, usable, started, run_id, result, dates)
            _write_quarantine(io, parsed, todo, started, run_id, result, dates, refused)
        finally:
            parsed.unpersist()
    result.manifest = _manifest_rows(todo, skipped, unexpected, summaries, run_id, started)
    ctx = CommitContext(job="ingest", run_id=run_id, logical_date=max(dates))
    result.versions[MANIFEST] = io.append(
        MANIFEST,
        spark.createDataFrame(result.manifest, io.registry.get(MANIFEST).spark_schema),
        ctx=ctx,
    ).version
    return result


def _apply_empty_policy(
    todo: Sequence[FileTask],
    sources: dict[str, PlantSource],
    summaries: dict[str, dict[str, Any]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each task's outcome: a delivery with no rows is refused unless its contract says the
    plant may have nothing to deliver (`empty: nothing_today`); either way it lands nothing,
    so it never retracts rows an earlier delivery of the date landed."""
    outcome: dict[tuple[str, str], dict[str, Any]] = {}
    for t in todo:
        s = dict(summaries.get(t.relative, {}))
        s["known"] = read_columns(sources[t.plant_id], t.path.name)
        if s.get("empty"):
            policy = sources[t.plant_id].entities[t.entity].empty
            if policy == "refuse":
                s["file_error"] = (
                    f"empty delivery: no rows (the source contract of {t.entity} does not "
                    f"allow one; set entities.{t.entity}.empty: nothing_today in "
                    f"conf/sources/{t.plant_id}.yaml if the plant may have nothing to send)"
                )
        outcome[(t.relative, t.entity)] = s
    return outcome


def _write_bronze(
    io: TableIO,
    parsed: DataFrame,
    todo: Sequence[FileTask],
    started: dt.datetime,
    run_id: str,
    result: IngestResult,
    dates: Sequence[dt.date],
) -> None:
    jobs: list[tuple[str, DataFrame, dict[str, Any]]] = []
    for entity, tasks in by_entity(todo).items():
        table = f"bronze.{entity}"
        rows = parsed.where((F.col("_kind") == "row") & (F.col("_entity") == entity)).select(
            "_plant_id",
            "_delivery_date",
            F.lit(entity.split("__")[0]).alias("_source_system"),
            "_source_file",
            "_file_sha256",
            "_file_version",
            "_file_row",
            "_record",
            F.lit(started).cast("timestamp").alias("_ingested_at"),
            F.lit(run_id).alias("_run_id"),
            F.date_format("_delivery_date", "yyyy-MM").alias("delivery_month"),
        )
        for plants, days in partition_groups(tasks):
            block = rows.where(F.col("_plant_id").isin(plants) & F.col("_delivery_date").isin(days))
            jobs.append((table, block, bronze_slice(plants, days)))
    ctx = CommitContext(job="ingest", run_id=run_id, logical_date=max(dates))
    result.versions.update(write_concurrently(io, jobs, ctx))


def months_of(days: Sequence[dt.date]) -> list[str]:
    """The yyyy-MM months (bronze partitions) that `days` fall in."""
    return sorted({f"{d:%Y-%m}" for d in days})


def bronze_slice(plants: Sequence[str], days: Sequence[dt.date]) -> dict[str, Any]:
    """What one delivery block replaces in a bronze table: its rows of those plants and
    days, inside the month partitions the days fall in (the rest of each month is kept)."""
    return {
        "partition": {"delivery_month": months_of(days)},
        "where": {"_plant_id": list(plants), "_delivery_date": list(days)},
    }


def read_bronze(
    io: TableIO,
    table: str,
    plants: Sequence[str],
    days: Sequence[dt.date],
    *,
    version: int | None = None,
) -> DataFrame:
    """The rows that the deliveries of `plants` on `days` landed in bronze `table`: only
    the month partitions of those days are listed and read."""
    frame = io.read(table, version=version, partitions={"delivery_month": months_of(days)})
    return frame.where(
        F.col("_plant_id").isin(list(plants)) & F.col("_delivery_date").isin(list(days))
    )


def write_concurrently(
    io: TableIO, jobs: Sequence[tuple[str, DataFrame, dict[str, Any]]], ctx: CommitContext
) -> dict[str, int]:
    """Replace slices of several tables at once: small Spark jobs overlap their latency.

    Each job is (table, rows, replace_partitions keywords: `partition` and optional
    `where`). Jobs of the same table run one after the other (one writer per table).
    """

    by_table: dict[str, list[tuple[DataFrame, dict[str, Any]]]] = defaultdict(list)
    for table, frame, target in jobs:
        by_table[table].append((frame, target))

    done: list[str] = []

    def run(table: str) -> tuple[str, int]:
        version, rows = -1, 0
        for frame, target in by_table[table]:
            written = io.replace_partitions(table, frame, ctx=ctx, **target)
            version, rows = written.version, rows + (written.rows_written or 0)
        done.append(table)
        log.info("ingest: %s written, %d rows (%d of %d tables)", table, rows, len(done), total)
        return table, version

    total = len(by_table)
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        return dict(pool.map(run, sorted(by_table)))


def _write_quarantine(
    io: TableIO,
    parsed: DataFrame,
    todo: Sequence[FileTask],
    started: dt.datetime,
    run_id: str,
    result: IngestResult,
    dates: Sequence[dt.date],
    refused: dict[tuple[str, str], str] | None = None,
) -> None:
    blocks: dict[tuple[tuple[str, ...], tuple[dt.date, ...]], list[str]] = defaultdict(list)
    for entity, tasks in by_entity(todo).items():
        for plants, days in partition_groups(tasks):
            blocks[(tuple(plants), tuple(days))].append(entity)

    def quarantined(rows: DataFrame, raw: Column, reason: Column) -> DataFrame:
        return rows.select(
            F.col("_entity").alias("entity"),
            F.col("_plant_id").alias("plant_id"),
            F.col("_delivery_date").alias("delivery_date"),
            F.col("_source_file").alias("source_file"),
            F.col("_file_sha256").alias("file_sha256"),
            F.col("_file_row").alias("file_row"),
            raw.alias("raw"),
            reason.alias("reason"),
            F.lit(run_id).alias("run_id"),
            F.lit(started).cast("timestamp").alias("ingested_at"),
        )

    errors = quarantined(parsed.where(F.col("_kind") == "error"), F.col("_raw"), F.col("_reason"))
    if refused:  # the good rows of an entity refused alone are its quarantine too
        reasons = io.spark.createDataFrame(
            [(f, e, r) for (f, e), r in refused.items()], "__f string, __e string, __r string"
        )
        rows = parsed.where(F.col("_kind") == "row").join(
            F.broadcast(reasons),
            (F.col("_source_file") == F.col("__f")) & (F.col("_entity") == F.col("__e")),
        )
        errors = errors.unionByName(quarantined(rows, F.to_json("_record"), F.col("__r")))
    for (block_plants, block_days), entities in sorted(blocks.items()):
        plants, days = list(block_plants), list(block_days)
        block = errors.where(
            F.col("entity").isin(entities)
            & F.col("plant_id").isin(plants)
            & F.col("delivery_date").isin(days)
        )
        ctx = CommitContext(job="ingest", run_id=run_id, logical_date=max(dates))
        partition = {
            "entity": sorted(entities),
            "plant_id": list(plants),
            "delivery_date": list(days),
        }
        result.versions[QUARANTINE] = io.replace_partitions(
            QUARANTINE, block, partition=partition, ctx=ctx
        ).version


def _manifest_rows(
    todo: Sequence[FileTask],
    skipped: Sequence[FileTask],
    unexpected: Sequence[tuple[str, dt.date, str]],
    summaries: dict[tuple[str, str], dict[str, Any]],
    run_id: str,
    at: dt.datetime,
) -> list[dict[str, Any]]:
    def row(t: FileTask, status: str, message: str | None, **counts: Any) -> dict[str, Any]:
        return _manifest_row(
            t.plant_id,
            t.delivery_date,
            t.entity,
            t.relative,
            t.sha256,
            t.size,
            t.version,
            status,
            message,
            run_id,
            at,
            **counts,
        )

    out = []
    for t in todo:
        if (t.relative, t.entity) not in summaries:
            raise RuntimeError(f"{t.relative}: the reader produced no summary; nothing recorded")
        s = summaries[(t.relative, t.entity)]
        good, bad = int(s.get("rows", 0)), int(s.get("errors", 0))
        known = s.get("known", t.spec.columns)
        extra = [c for c in s.get("header", []) if c not in known]
        status = "quarantined" if s.get("file_error") else "ingested"
        message = s.get("file_error") or (f"{bad} rows quarantined" if bad else None)
        if s.get("empty") and not s.get("file_error"):
            message = (
                "no rows: the contract allows an empty delivery (nothing today); rows an "
                "earlier delivery of this date landed are kept"
            )
        if extra and not s.get("file_error"):
            note = f"new columns (schema drift): {', '.join(extra)}"
            message = f"{message}; {note}" if message else note
        out.append(
            row(t, status, message, read=good + bad, ingested=good, quarantined=bad, extra=extra)
        )
    for t in skipped:
        if t.sha256 is None:
            out.append(row(t, "missing", f"expected {t.path.name} in the delivery, not found"))
        else:
            out.append(row(t, "skipped", "identical to the file already ingested"))
    for plant_id, day, name in unexpected:
        message = "file is not configured in conf/sources; not ingested"
        relative = f"{plant_id}/{day.isoformat()}/{name}"
        out.append(
            _manifest_row(
                plant_id, day, name, relative, None, None, None, "unexpected", message, run_id, at
            )
        )
    return out


def _manifest_row(
    plant_id: str,
    day: dt.date,
    entity: str,
    relative: str,
    sha: str | None,
    size: int | None,
    version: int | None,
    status: str,
    message: str | None,
    run_id: str,
    at: dt.datetime,
    **counts: Any,
) -> dict[str, Any]:
    return {
        "plant_id": plant_id,
        "delivery_date": day,
        "entity": entity,
        "source_file": relative,
        "sha256": sha,
        "bytes": size,
        "file_version": version,
        "status": status,
        "rows_read": counts.get("read"),
        "rows_ingested": counts.get("ingested"),
        "rows_quarantined": counts.get("quarantined"),
        "extra_columns": counts.get("extra"),
        "message": message,
        "run_id": run_id,
        "recorded_at": at,
    }
