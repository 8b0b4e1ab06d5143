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

import datetime as dt
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
from pyspark.sql import DataFrame, SparkSession
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


def file_spec(source: PlantSource, entity: str) -> FileSpec:
    d = source.delivery
    return FileSpec(d.format, d.encoding, d.delimiter, tuple(source.entities[entity].columns))


# ----------------------------------------------------------------------------- planning


def previous_deliveries(
    io: TableIO, plants: Sequence[str], dates: Sequence[dt.date]
) -> dict[tuple[str, dt.date, str], tuple[str, int]]:
    """Latest (sha256, version) per (plant, date, entity) that reached bronze before."""
    if io.version(MANIFEST) is None:
        return {}
    rows = (
        io.read(MANIFEST)
        .where(F.col("plant_id").isin(list(plants)) & F.col("delivery_date").isin(list(dates)))
        .where(F.col("status").isin("ingested", "quarantined"))
        .select("plant_id", "delivery_date", "entity", "sha256", "file_version")
        .collect()
    )
    latest: dict[tuple[str, dt.date, str], tuple[str, int]] = {}
    for r in rows:
        key = (r.plant_id, r.delivery_date, r.entity)
        if key not in latest or r.file_version > latest[key][1]:
            latest[key] = (r.sha256, r.file_version)
    return latest


def plan(
    landing: Path,
    sources: dict[str, PlantSource],
    dates: Sequence[dt.date],
    previous: dict[tuple[str, dt.date, str], tuple[str, int]],
    *,
    force: bool = False,
) -> tuple[list[FileTask], list[FileTask], list[tuple[str, dt.date, str]]]:
    """Files to ingest, files to skip (identical or missing), and unexpected files."""
    todo: list[FileTask] = []
    skip: list[FileTask] = []
    unexpected: list[tuple[str, dt.date, str]] = []
    for plant_id, source in sources.items():
        for day in dates:
            folder = landing / plant_id / day.isoformat()
            configured = {cfg.file: entity for entity, cfg in source.entities.items()}
            if folder.is_dir():
                unexpected += [
                    (plant_id, day, p.name)
                    for p in sorted(folder.iterdir())
                    if p.name not in configured
                ]
            for name, entity in sorted(configured.items(), key=lambda kv: kv[1]):
                path = folder / name
                relative = f"{plant_id}/{day.isoformat()}/{name}"
                spec = file_spec(source, entity)
                if not path.is_file():
                    skip.append(
                        FileTask(plant_id, day, entity, path, relative, None, None, None, spec)
                    )
                    continue
                sha = sha256_of(path)
                before = previous.get((plant_id, day, entity))
                size = path.stat().st_size
                if before and before[0] == sha and not force:
                    skip.append(
                        FileTask(plant_id, day, entity, path, relative, sha, size, None, spec)
                    )
                    continue
                version = (
                    before[1] + 1 if before and before[0] != sha else (before[1] if before else 1)
                )
                todo.append(
                    FileTask(plant_id, day, entity, path, relative, sha, size, version, spec)
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
                parsed = (
                    read_file(content, spec) if content else Parsed(file_error=_empty_error(spec))
                )
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
    log.info("ingest: %d files to read, %d unchanged or missing", len(todo), len(skipped))
    summaries: dict[str, dict[str, Any]] = {}
    if todo:
        parsed = parse(spark, todo).persist()
        try:
            summaries = {
                r._source_file: json.loads(r._raw)
                for r in parsed.where("_kind = 'file'").select("_source_file", "_raw").collect()
            }
            # a file refused as a whole leaves its bronze partition as it was (a bad
            # re-delivery must not empty the good version already landed)
            usable = [t for t in todo if not summaries.get(t.relative, {}).get("file_error")]
            _write_bronze(io, parsed, usable, started, run_id, result, dates)
            _write_quarantine(io, parsed, todo, started, run_id, result, dates)
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


def _empty_error(spec: FileSpec) -> str | None:
    """A zero-byte delivery: no rows (JSON Lines), or a CSV/Parquet file without a header."""
    return None if spec.format == "jsonl" else f"empty file (0 bytes): no {spec.format} header"


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

    def run(table: str) -> tuple[str, int]:
        version = -1
        for frame, target in by_table[table]:
            version = io.replace_partitions(table, frame, ctx=ctx, **target).version
        return table, version

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
) -> None:
    blocks: dict[tuple[tuple[str, ...], tuple[dt.date, ...]], list[str]] = defaultdict(list)
    for entity, tasks in by_entity(todo).items():
        for plants, days in partition_groups(tasks):
            blocks[(tuple(plants), tuple(days))].append(entity)
    errors = parsed.where(F.col("_kind") == "error").select(
        F.col("_entity").alias("entity"),
        F.col("_plant_id").alias("plant_id"),
        F.col("_delivery_date").alias("delivery_date"),
        F.col("_source_file").alias("source_file"),
        F.col("_file_sha256").alias("file_sha256"),
        F.col("_file_row").alias("file_row"),
        F.col("_raw").alias("raw"),
        F.col("_reason").alias("reason"),
        F.lit(run_id).alias("run_id"),
        F.lit(started).cast("timestamp").alias("ingested_at"),
    )
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
    summaries: dict[str, dict[str, Any]],
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
        if t.relative not in summaries:
            raise RuntimeError(f"{t.relative}: the reader produced no summary; nothing recorded")
        s = summaries[t.relative]
        good, bad = int(s.get("rows", 0)), int(s.get("errors", 0))
        extra = [c for c in s.get("header", []) if c not in t.spec.columns]
        status = "quarantined" if s.get("file_error") else "ingested"
        message = s.get("file_error") or (f"{bad} rows quarantined" if bad else None)
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
