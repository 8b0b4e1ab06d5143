"""delta-rs engine: Spark writes Parquet, the driver commits exactly those files to Delta.

A write goes through four steps, each safe to interrupt:

1. stage    Spark's native writer puts Parquet files under `<table>/_staging/<txn>/`.
2. check    footers give per-file statistics; NOT NULL and CHECK constraints are verified
            on the staged files (nothing is visible to any reader yet).
3. publish  the files are moved into the table's partition folders. Still invisible: a
            Delta reader sees only files named in the log.
4. commit   one atomic Delta commit (add, and remove when replacing) through `deltalake`,
            against the snapshot read when the write started.

A crash before step 4 leaves only uncommitted files, which `vacuum` removes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import posixpath
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable, Field, Schema
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    PostCommitHookProperties,
    RemoveAction,
)
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from medlake.config import Settings
from medlake.io import failpoints
from medlake.io.changes import OnChange, TableChange
from medlake.io.commit import CommitContext
from medlake.io.errors import (
    CommitOutcomeUnknownError,
    ConstraintViolationError,
    TableConflictError,
    TableIOError,
    TableNotFoundError,
    UnsupportedTableError,
)
from medlake.io.result import Changes, OptimizeResult, Retract, WriteResult
from medlake.io.schema import evolution_needed, one_file_per_partition, struct_from_delta
from medlake.io.schema import partition_literal as _literal
from medlake.io.schema import partition_literals as _literals
from medlake.io.stats import footer_stats
from medlake.io.storage import Storage
from medlake.tables import TableSpec

STAGING = "_staging"
MAX_REBASES = 10
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_UNSUPPORTED_FEATURES = {"deletionVectors", "columnMapping"}

Mode = Literal["append", "overwrite"]


@dataclass
class _StagedFile:
    source: str  # full path under the staging folder
    relative: str  # path relative to the table root once published, as on disk
    partition_values: dict[str, str | None]
    size: int
    mtime_ms: int
    stats: str
    num_records: int


@dataclass
class _Staged:
    txn: str
    folder: str
    files: list[_StagedFile] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(f.num_records for f in self.files)


def _partition_values(relative: str, partition_by: Sequence[str]) -> dict[str, str | None]:
    segments = relative.split("/")[:-1]
    values: dict[str, str | None] = {}
    for segment in segments:
        key, sep, raw = segment.partition("=")
        if not sep:
            continue
        value = unquote(raw)
        values[key] = None if value == HIVE_NULL else value
    if sorted(values) != sorted(partition_by):
        raise TableIOError(f"staged file {relative} is not in a partition folder of {partition_by}")
    return values


def where_condition(spec: TableSpec, where: Mapping[str, set[str]]) -> Column:
    """True where every column's value is one of the given Delta partition strings."""
    condition = F.lit(True)
    for column, values in where.items():
        kind = spec.column(column).data_type
        literals = [F.lit(v).cast(kind) for v in sorted(values)]
        condition = condition & F.coalesce(F.col(column).isin(*literals), F.lit(False))
    return condition


def _partition_filters(want: Mapping[str, set[str]]) -> list[tuple[str, str, Any]]:
    return [
        (k, "=", next(iter(v))) if len(v) == 1 else (k, "in", sorted(v)) for k, v in want.items()
    ]


def check_readable(spec: TableSpec, table: DeltaTable) -> None:
    """Refuse tables whose features the Parquet read path cannot honour."""
    protocol = table.protocol()
    features = set(protocol.reader_features or []) & _UNSUPPORTED_FEATURES
    mapping = table.metadata().configuration.get("delta.columnMapping.mode", "none")
    if features or mapping not in ("none", None):
        used = ", ".join(sorted(features | ({"columnMapping"} if mapping != "none" else set())))
        raise UnsupportedTableError(
            f"{spec.name}: the table uses {used}, which the Parquet read path of the "
            "delta-rs engine cannot honour; read it with the delta-spark engine "
            "(storage.engine: delta-spark) or rewrite it without those features"
        )


class DeltaRsEngine:
    """Table operations for the default engine; see the module docstring for the protocol."""

    name = "delta-rs"

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = settings
        self.on_change: OnChange | None = None  # told of schema changes (TableIO sets it)

    # ------------------------------------------------------------------ snapshot access

    def _open(self, spec: TableSpec, storage: Storage) -> DeltaTable | None:
        try:
            return DeltaTable(storage.root_uri)
        except DeltaTableNotFound:
            return None

    def version(self, spec: TableSpec, storage: Storage) -> int | None:
        table = self._open(spec, storage)
        return None if table is None else table.version()

    def _require(self, spec: TableSpec, storage: Storage) -> DeltaTable:
        table = self._open(spec, storage)
        if table is None:
            raise TableNotFoundError(f"{spec.name}: no Delta table at {storage.root_uri} yet")
        return table

    def read(
        self,
        spec: TableSpec,
        storage: Storage,
        *,
        version: int | None = None,
        timestamp: dt.datetime | None = None,
        partitions: Mapping[str, set[str]] | None = None,
    ) -> DataFrame:
        table = self._require(spec, storage)
        if timestamp is not None and timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=dt.UTC)  # naive means UTC, as stored
        target: int | dt.datetime | None = version if version is not None else timestamp
        if target is not None:
            try:
                table.load_as_version(target)
            except (DeltaError, ValueError, OSError) as exc:
                raise TableNotFoundError(f"{spec.name}: no version as of {target}: {exc}") from None
        check_readable(spec, table)
        schema = struct_from_delta(table.schema().to_json())
        if partitions is None:
            relative = [_relative_to_root(storage, uri) for uri in table.file_uris()]
        else:
            relative = [
                a["path"]
                for a in _add_actions(table)
                if all(a["partition_values"].get(c) in v for c, v in partitions.items())
            ]
        if not relative:
            return self.spark.createDataFrame([], schema)
        return self._scan(storage, schema, relative).select(*schema.fieldNames())

    def may_hold(
        self, spec: TableSpec, storage: Storage, values: Mapping[str, Collection[Any]]
    ) -> bool:
        table = self._require(spec, storage)
        return any(_may_hold(a, values) for a in _add_actions(table))

    def partition_values(self, spec: TableSpec, storage: Storage) -> list[dict[str, str | None]]:
        table = self._require(spec, storage)
        found = {tuple(sorted(a["partition_values"].items())) for a in _add_actions(table)}
        return [dict(p) for p in sorted(found, key=str)]

    def _scan(
        self, storage: Storage, schema: T.StructType, paths: list[str], base: str = ""
    ) -> DataFrame:
        """Spark's Parquet scan of exactly `paths` (relative to `base` in the table), with
        partition values taken from the hive-style folders below `base`."""
        prefix = f"{base}/" if base else ""
        return (
            self.spark.read.schema(schema)
            .option("basePath", storage.spark_uri(base))
            .parquet(*[storage.spark_uri(prefix + p) for p in paths])
        )

    def history(
        self, spec: TableSpec, storage: Storage, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return self._require(spec, storage).history(limit)

    # ------------------------------------------------------------------ table lifecycle

    def _ensure_table(self, spec: TableSpec, storage: Storage, ctx: CommitContext) -> DeltaTable:
        """Open the table, creating it or adding declared columns and constraints as needed."""
        table = self._open(spec, storage)
        props = self._commit_properties(ctx, "create")
        if table is None:
            try:
                table = DeltaTable.create(
                    storage.root_uri,
                    Schema.from_json(spec.spark_schema.json()),
                    mode="ignore",
                    partition_by=spec.partition_by or None,
                    name=spec.name,
                    description=spec.description,
                    configuration={
                        "delta.checkpointInterval": str(self.settings.storage.checkpoint_interval),
                    },
                    commit_properties=props,
                )
            except (CommitFailedError, DeltaError):
                table = self._open(spec, storage)  # a concurrent writer created it first
                if table is None:
                    raise
        # upsert and optimize scan files, and writes must not ignore DVs or column mapping
        check_readable(spec, table)
        layout = list(table.metadata().partition_columns)
        if layout != list(spec.partition_by):
            raise TableIOError(
                f"{spec.name}: the table at {storage.root_uri} is partitioned by {layout}, the "
                f"registry declares {spec.partition_by} (an earlier layout); nothing was "
                "written. Rebuild it: move the table folder away and run `lakehouse run "
                "backfill` over its history (`make clean` clears a demo lakehouse)"
            )
        stored = struct_from_delta(table.schema().to_json())
        added = evolution_needed(spec, stored)
        if added:
            table.alter.add_columns(
                [Field.from_json(json.dumps(f.jsonValue())) for f in added],
                commit_properties=self._commit_properties(ctx, "add columns"),
            )
            if self.on_change is not None:
                table.update_incremental()
                change = TableChange(
                    spec.name,
                    "schema_change",
                    table.version(),
                    {"columns_added": [f"{f.name} {f.dataType.simpleString()}" for f in added]},
                )
                self.on_change(change, ctx)
        missing_constraints = {
            k: v
            for k, v in spec.constraints.items()
            if f"delta.constraints.{k.lower()}" not in table.metadata().configuration
        }
        if missing_constraints:
            table.alter.add_constraint(
                missing_constraints,
                commit_properties=self._commit_properties(ctx, "add constraints"),
            )
        table.update_incremental()
        return table

    def _commit_properties(
        self, ctx: CommitContext, operation: str, **extra: Any
    ) -> CommitProperties:
        meta: dict[str, Any] = {
            **ctx.metadata(),
            "engine": self.name,
            "lakehouse_operation": operation,
        }
        meta.update(extra)
        # Only blind appends may be re-based by deltalake onto a newer version. Everything
        # else commits against the snapshot read when the write started (see `_commit`).
        retries = None if operation == "append" else 0
        return CommitProperties(custom_metadata=meta, max_commit_retries=retries)

    # ------------------------------------------------------------------ write protocol

    def _stage(
        self, spec: TableSpec, storage: Storage, df: DataFrame, *, max_records: int | None = None
    ) -> _Staged:
        txn = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
        staged = _Staged(txn=txn, folder=f"{STAGING}/{txn}")
        writer = df.write.mode("error").option("compression", "snappy")
        if max_records:
            writer = writer.option("maxRecordsPerFile", max_records)
        if spec.partition_by:
            writer = writer.partitionBy(*spec.partition_by)
        writer.parquet(storage.spark_uri(staged.folder))
        data_columns = [c.name for c in spec.columns if c.name not in spec.partition_by]
        # the log outlives vacuum and erasure: min/max of a column that may hold commercial
        # or personal text (anything not public or internal) would keep a value in it
        restricted = [
            c.name for c in spec.columns if c.classification not in ("public", "internal")
        ]
        prefix = storage.abs(staged.folder)
        for entry in storage.list_files(staged.folder):
            base = posixpath.basename(entry.path)
            if not base.endswith(".parquet") or base.startswith((".", "_")):
                continue
            relative = posixpath.relpath(entry.path, prefix)
            stats = footer_stats(storage.fs, entry.path, data_columns)
            for name in restricted:
                stats.min_values.pop(name, None)
                stats.max_values.pop(name, None)
            if stats.num_records == 0:
                continue  # Spark writes an empty file for an empty unpartitioned frame
            staged.files.append(
                _StagedFile(
                    source=entry.path,
                    relative=relative,
                    partition_values=_partition_values(relative, spec.partition_by),
                    size=entry.size,
                    mtime_ms=entry.mtime_ms,
                    stats=stats.to_json(),
                    num_records=stats.num_records,
                )
            )
        failpoints.reach("staged")
        return staged

    def _verify(self, spec: TableSpec, storage: Storage, staged: _Staged) -> None:
        """NOT NULL from footer statistics where they exist; whatever is left (nested
        columns without statistics, CHECK constraints) in one scan of the staged files."""
        problems: dict[str, int] = {}
        scans: dict[str, Any] = {}
        for col in spec.columns:
            if col.nullable:
                continue
            label = f"have NULL in NOT NULL column {col.name}"
            if col.name in spec.partition_by:
                problems[label] = sum(
                    f.num_records for f in staged.files if f.partition_values[col.name] is None
                )
                continue
            counts = [json.loads(f.stats)["nullCount"].get(col.name) for f in staged.files]
            if any(c is None for c in counts):
                scans[label] = F.col(col.name).isNull()
            else:
                problems[label] = sum(counts)
        for name, expression in spec.constraints.items():
            # As Delta does: a row passes only when the expression is true (NULL fails).
            scans[f"violate CHECK {name}: {expression}"] = ~F.coalesce(
                F.expr(expression), F.lit(False)
            )
        problems.update(self._count_where(spec, storage, staged, scans))
        found = [f"{n} rows {label}" for label, n in problems.items() if n]
        if found:
            raise ConstraintViolationError(
                f"{spec.name}: nothing was committed; " + "; ".join(found)
            )

    def _count_where(
        self, spec: TableSpec, storage: Storage, staged: _Staged, conditions: dict[str, Any]
    ) -> dict[str, int]:
        """Rows matching each condition, all counted in one pass over the staged files."""
        if not staged.files or not conditions:
            return {}
        frame = self._scan(
            storage, spec.spark_schema, [f.relative for f in staged.files], staged.folder
        )
        sums = [
            F.sum(F.when(cond, 1).otherwise(0)).alias(f"c{i}")
            for i, cond in enumerate(conditions.values())
        ]
        row = frame.agg(*sums).first()
        assert row is not None
        return {label: int(row[f"c{i}"] or 0) for i, label in enumerate(conditions)}

    def _publish(self, storage: Storage, staged: _Staged) -> list[AddAction]:
        actions = []
        for f in staged.files:
            storage.move(f.source, storage.abs(f.relative))
            actions.append(
                AddAction(
                    path=f.relative,  # deltalake percent-encodes it in the log
                    size=f.size,
                    partition_values=f.partition_values,
                    modification_time=f.mtime_ms,
                    data_change=True,
                    stats=f.stats,
                )
            )
        failpoints.reach("published")
        return actions

    def _discard(self, storage: Storage, staged: _Staged, published: bool) -> None:
        """Best effort: remove this write's files after a failure (vacuum catches the rest)."""
        try:
            if published:
                for f in staged.files:
                    path = storage.abs(f.relative)
                    if storage.fs.get_file_info(path).is_file:
                        storage.delete_file(path)
            storage.delete_dir(storage.abs(staged.folder))
        except OSError:
            pass

    def _commit(
        self,
        spec: TableSpec,
        storage: Storage,
        table: DeltaTable,
        actions: list[AddAction | RemoveAction],
        *,
        mode: Mode,
        partition_filters: list[tuple[str, str, Any]] | None,
        props: CommitProperties,
        txn: str,
    ) -> int:
        """Commit against `table`'s snapshot; return the new version.

        A partition replacement whose snapshot went stale is re-based only when no commit
        in between touched its partitions or the table's metadata; any other conflict raises
        `TableConflictError`. When the commit call fails in another way, the log is checked
        for this write's transaction id, so a commit that landed is never reported as lost
        (and its files are never deleted).
        """
        read_version = table.version()
        for _ in range(MAX_REBASES + 1):
            try:
                table.create_write_transaction(
                    actions,
                    mode=mode,
                    schema=table.schema(),
                    partition_by=spec.partition_by or None,
                    partition_filters=partition_filters,
                    commit_properties=props,
                    post_commithook_properties=PostCommitHookProperties(create_checkpoint=True),
                )
            except CommitFailedError as exc:
                base = table.version()
                table.update_incremental()
                if (
                    mode == "overwrite"
                    and partition_filters is not None
                    and not self._touched(storage, base, table.version(), partition_filters)
                ):
                    continue
                raise TableConflictError(
                    f"{spec.name}: another writer committed after version {read_version}, which "
                    f"this write was based on, and the changes conflict ({exc}). Nothing of this "
                    "write is visible. Re-run the job; run writers of one table one at a time "
                    "(Airflow pool)."
                ) from None
            except Exception as exc:
                return self._outcome(spec, storage, read_version, txn, exc)
            try:
                table.update_incremental()
            except Exception as exc:
                return self._outcome(spec, storage, read_version, txn, exc)
            return table.version()
        raise TableConflictError(
            f"{spec.name}: gave up after {MAX_REBASES} re-bases on concurrent commits; "
            "re-run the job"
        )

    def _outcome(
        self, spec: TableSpec, storage: Storage, read_version: int, txn: str, error: Exception
    ) -> int:
        """After an ambiguous commit failure: the version that holds `txn`, or raise."""
        try:
            fresh = DeltaTable(storage.root_uri)
            newer = fresh.version() - read_version
            for entry in fresh.history(newer) if newer > 0 else []:
                if entry.get("lakehouse_txn") == txn:
                    return int(entry["version"])
        except Exception as check_error:
            raise CommitOutcomeUnknownError(
                f"{spec.name}: the commit call failed ({error}) and the log could not be read "
                f"to see whether it landed ({check_error}). Its files are left in place; look "
                f"for transaction {txn} in `lakehouse table history {spec.name}`, then re-run "
                "the job (vacuum removes files that were never committed)."
            ) from error
        raise TableIOError(
            f"{spec.name}: the commit failed ({error}); nothing of this write is visible. "
            "Re-run the job."
        ) from error

    def _touched(
        self,
        storage: Storage,
        after: int,
        upto: int,
        partition_filters: list[tuple[str, str, Any]],
    ) -> bool:
        """Did any commit in (after, upto] change metadata or files in these partitions?"""
        want = {k: set(v) if op == "in" else {v} for k, op, v in partition_filters}
        for version in range(after + 1, upto + 1):
            path = storage.abs(f"_delta_log/{version:020d}.json")
            with storage.fs.open_input_stream(path) as stream:
                lines = stream.read().decode("utf-8").splitlines()
            for line in lines:
                action = json.loads(line)
                if "metaData" in action or "protocol" in action:
                    return True
                for kind in ("add", "remove"):
                    if kind in action:
                        values = action[kind].get("partitionValues") or {}
                        if all(values.get(k) in v for k, v in want.items()):
                            return True
        return False

    def _write(
        self,
        spec: TableSpec,
        storage: Storage,
        df: DataFrame,
        ctx: CommitContext,
        *,
        operation: str,
        mode: Mode,
        partition_filters: list[tuple[str, str, Any]] | None = None,
        removes: list[RemoveAction] | None = None,
        check_partitions: Mapping[str, set[str]] | None = None,
        max_records: int | None = None,
        data_change: bool = True,
        table: DeltaTable | None = None,
        extra_meta: Mapping[str, Any] | None = None,
    ) -> tuple[int, _Staged]:
        table = table or self._ensure_table(spec, storage, ctx)
        staged = self._stage(spec, storage, df, max_records=max_records)
        published = False
        try:
            if check_partitions:
                outside = [
                    f.relative
                    for f in staged.files
                    if any(f.partition_values[k] not in v for k, v in check_partitions.items())
                ]
                if outside:
                    raise TableIOError(
                        f"{spec.name}: rows outside the partitions being replaced "
                        f"({check_partitions}), e.g. in {outside[0]}; nothing was committed"
                    )
            if data_change:
                self._verify(spec, storage, staged)
            adds = self._publish(storage, staged)
            published = True
            if not data_change:
                for add in adds:
                    add.data_change = False
            actions: list[AddAction | RemoveAction] = [*(removes or []), *adds]
            if not actions and mode == "append":
                version = table.version()  # nothing to add or remove: no empty commit
            else:
                meta = {**(extra_meta or {}), "lakehouse_txn": staged.txn}
                props = self._commit_properties(ctx, operation, **meta)
                version = self._commit(
                    spec,
                    storage,
                    table,
                    actions,
                    mode=mode,
                    partition_filters=partition_filters,
                    props=props,
                    txn=staged.txn,
                )
        except CommitOutcomeUnknownError:
            raise  # the files may be committed: never delete them here
        except BaseException:
            self._discard(storage, staged, published)
            raise
        failpoints.reach("committed")
        storage.delete_dir(storage.abs(staged.folder))
        return version, staged

    # ------------------------------------------------------------------ operations

    def append(
        self, spec: TableSpec, storage: Storage, df: DataFrame, ctx: CommitContext
    ) -> WriteResult:
        version, staged = self._write(spec, storage, df, ctx, operation="append", mode="append")
        return WriteResult(spec.name, version, "append", len(staged.files), 0, staged.rows)

    def overwrite(
        self, spec: TableSpec, storage: Storage, df: DataFrame, ctx: CommitContext
    ) -> WriteResult:
        table = self._ensure_table(spec, storage, ctx)
        before = len(table.file_uris())
        version, staged = self._write(
            spec,
            storage,
            one_file_per_partition(df, spec),
            ctx,
            operation="overwrite",
            mode="overwrite",
            table=table,
        )
        return WriteResult(spec.name, version, "overwrite", len(staged.files), before, staged.rows)

    def replace_partitions(
        self,
        spec: TableSpec,
        storage: Storage,
        df: DataFrame,
        ctx: CommitContext,
        partition: Mapping[str, Any],
        where: Mapping[str, set[str]] | None = None,
    ) -> WriteResult:
        want = {k: _literals(v) for k, v in partition.items()}
        filters = _partition_filters(want)
        table = self._ensure_table(spec, storage, ctx)
        replaced = [
            a
            for a in _add_actions(table)
            if all(a["partition_values"].get(k) in v for k, v in want.items())
        ]
        before = len(replaced)
        if where:
            # copy-on-write: rows of the partitions outside `where` are carried over
            matches = where_condition(spec, where)
            df = df.where(
                F.assert_true(
                    matches, f"{spec.name}: a row to write lies outside where={dict(where)}"
                ).isNull()
            )
            if replaced:
                stored = struct_from_delta(table.schema().to_json())
                kept = self._scan(storage, stored, [a["path"] for a in replaced])
                df = df.unionByName(kept.where(~matches).select(*df.columns))
        version, staged = self._write(
            spec,
            storage,
            one_file_per_partition(df, spec),
            ctx,
            operation="replace_partitions",
            mode="overwrite",
            partition_filters=filters,
            check_partitions=want,
            table=table,
            extra_meta={"partition": {k: sorted(v) for k, v in want.items()}},
        )
        return WriteResult(
            spec.name, version, "replace_partitions", len(staged.files), before, staged.rows
        )

    def upsert(
        self,
        spec: TableSpec,
        storage: Storage,
        df: DataFrame,
        ctx: CommitContext,
        count_by: str | None = None,
        retract: Retract | None = None,
    ) -> WriteResult:
        keys, seq = spec.business_keys, spec.sequence_column
        assert seq is not None  # checked by TableIO
        table = self._ensure_table(spec, storage, ctx)
        order = [F.col(seq).desc_nulls_last(), F.col("__new").desc(), F.col("__tiebreak").desc()]
        incoming = (
            df.withColumn("__new", F.lit(1))
            .withColumn("__tiebreak", F.xxhash64(*[F.col(c) for c in df.columns]))
            .withColumn("__retract", F.lit(False))
        )
        incoming_rows_frame = incoming
        removes: list[RemoveAction] = []
        existing: DataFrame | None = None
        if table.version() >= 0 and table.file_uris():
            actions = _add_actions(table)
            stored = struct_from_delta(table.schema().to_json())
            if spec.partition_by:
                touched = self._upsert_partitions(spec, storage, df, actions, stored, retract)
                actions = [
                    a
                    for a in actions
                    if tuple(a["partition_values"].get(c) for c in spec.partition_by) in touched
                ]
            if actions:
                removes = _removes(actions, data_change=True)
                existing = (
                    self._scan(storage, stored, [a["path"] for a in actions])
                    .select(*df.columns)
                    .withColumn("__new", F.lit(0))
                    .withColumn("__tiebreak", F.lit(0).cast("bigint"))
                    .withColumn("__retract", F.lit(False))
                )
                if retract is not None:
                    existing = _mark_retracted(existing, keys, retract)
        combined = (
            incoming_rows_frame if existing is None else incoming_rows_frame.unionByName(existing)
        )
        by_key = Window.partitionBy(*keys)
        ranked = (
            combined.withColumn("__rank", F.row_number().over(by_key.orderBy(*order)))
            .withColumn("__had_old", F.max(1 - F.col("__new")).over(by_key))
            .withColumn("__had_new", F.max("__new").over(by_key))
            .persist()
        )
        try:
            winner = (F.col("__rank") == 1) & (F.col("__new") == 1)
            # a stored row the caller retracts, whose key no incoming row carries
            gone = (F.col("__had_new") == 0) & F.col("__retract")
            sums = [
                F.sum(F.when(gone, 1).otherwise(0)).alias("retracted"),
                F.sum(F.col("__new")).alias("incoming"),
                F.sum(F.when(winner & (F.col("__had_old") == 0), 1).otherwise(0)).alias("inserted"),
                F.sum(F.when(winner & (F.col("__had_old") == 1), 1).otherwise(0)).alias("updated"),
            ]
            grouped = ranked.groupBy(count_by) if count_by else ranked.groupBy()
            changes_by: dict[str, Changes] = {}
            incoming_n = inserted = updated = retracted = 0
            for row in grouped.agg(*sums).collect():
                n, i, u, r = (
                    int(row[c] or 0) for c in ("incoming", "inserted", "updated", "retracted")
                )
                incoming_n, inserted, updated = incoming_n + n, inserted + i, updated + u
                retracted += r
                if count_by and (n or r):
                    changes_by[row[count_by]] = Changes(i, u, n - i - u, r)
            winners = ranked.where((F.col("__rank") == 1) & ~gone).select(*df.columns)
            winners = one_file_per_partition(winners, spec)
            version, staged = self._write(
                spec,
                storage,
                winners,
                ctx,
                operation="upsert",
                mode="append",
                removes=removes,
                table=table,
                extra_meta={
                    "rows_inserted": inserted,
                    "rows_updated": updated,
                    "rows_retracted": retracted,
                },
            )
        finally:
            ranked.unpersist()
        return WriteResult(
            spec.name,
            version,
            "upsert",
            len(staged.files),
            len(removes),
            staged.rows,
            rows_inserted=inserted,
            rows_updated=updated,
            rows_ignored=incoming_n - inserted - updated,
            rows_retracted=retracted,
            changes_by=changes_by if count_by else None,
        )

    def _upsert_partitions(
        self,
        spec: TableSpec,
        storage: Storage,
        df: DataFrame,
        actions: list[dict[str, Any]],
        stored: T.StructType,
        retract: Retract | None = None,
    ) -> set[tuple[Any, ...]]:
        """The partitions an upsert rewrites: those of the incoming rows and, when a partition
        column is not part of the key (a month derived from a date that a correction may
        change), those where the stored version of an incoming key lives, and those holding
        rows the caller retracts.

        Only stored files that can hold such a row are read: a file outside the incoming
        partitions whose key-column statistics miss the incoming keys' range (per value of
        the partition columns that are keys, such as the plant), and whose partition values
        or statistics miss `retract.within`, cannot, so a nightly upsert reads the files of
        its own month instead of the table's whole history."""
        parts, keys = spec.partition_by, spec.business_keys
        moving = [c for c in parts if c not in keys]
        ranged = [k for k in keys if k not in parts]
        summary = df.groupBy(*parts).agg(
            *[F.min(k).alias(f"__min_{i}") for i, k in enumerate(ranged)],
            *[F.max(k).alias(f"__max_{i}") for i, k in enumerate(ranged)],
        )
        groups = summary.collect()  # one row per incoming partition
        wanted = {tuple(_none_or_literal(r[c]) for c in parts) for r in groups}
        if not (moving or retract) or not actions:
            return wanted
        owners = [c for c in parts if c in keys]  # rows of one owner share their key space
        bounds: dict[tuple[Any, ...], list[tuple[Any, Any]]] = {}
        for r in groups:
            owner = tuple(_none_or_literal(r[c]) for c in owners)
            span = [(r[f"__min_{i}"], r[f"__max_{i}"]) for i in range(len(ranged))]
            before = bounds.get(owner)
            bounds[owner] = (
                span
                if before is None
                else [_widen(a, b) for a, b in zip(before, span, strict=True)]
            )

        def may_hold_key(a: dict[str, Any]) -> bool:
            span = bounds.get(tuple(a["partition_values"].get(c) for c in owners))
            return span is not None and all(
                _overlaps(a, k, low, high) for k, (low, high) in zip(ranged, span, strict=True)
            )

        candidates = [
            a
            for a in actions
            if tuple(a["partition_values"].get(c) for c in parts) not in wanted
            and ((moving and may_hold_key(a)) or (retract and _may_hold(a, retract.within or {})))
        ]
        if not candidates:
            return wanted
        scan = self._scan(storage, stored, [a["path"] for a in candidates])
        hit = F.lit(False)
        if moving:
            marks = df.select(*keys).distinct().withColumn("__hit", F.lit(True))
            scan = scan.join(marks, list(keys), "left")
            hit = F.col("__hit").isNotNull()
        if retract:
            hit = hit | F.coalesce(F.expr(retract.condition), F.lit(False))
        found = scan.where(hit).select(*parts).distinct().collect()
        return wanted | {tuple(_none_or_literal(r[c]) for c in parts) for r in found}

    def optimize(
        self, spec: TableSpec, storage: Storage, ctx: CommitContext, target_mb: int
    ) -> OptimizeResult:
        table = self._require(spec, storage)
        target = target_mb * 1024 * 1024
        groups: dict[tuple[str | None, ...], list[dict[str, Any]]] = {}
        for action in _add_actions(table):
            key = tuple(action["partition_values"].get(c) for c in spec.partition_by)
            if action["size"] < target:
                groups.setdefault(key, []).append(action)
        chosen = [a for files in groups.values() if len(files) > 1 for a in files]
        if not chosen:
            return OptimizeResult(spec.name, table.version(), 0, 0)
        total_bytes = sum(a["size"] for a in chosen)
        total_rows = sum(a["num_records"] for a in chosen)
        stored = struct_from_delta(table.schema().to_json())
        frame = self._scan(storage, stored, [a["path"] for a in chosen]).select(
            *stored.fieldNames()
        )
        if spec.partition_by:
            frame = frame.repartition(*spec.partition_by)
        else:
            frame = frame.coalesce(max(1, math.ceil(total_bytes / target)))
        max_records = max(1, int(target / max(1.0, total_bytes / max(1, total_rows))))
        removes = _removes(chosen, data_change=False)
        version, staged = self._write(
            spec,
            storage,
            frame,
            ctx,
            operation="optimize",
            mode="append",
            removes=removes,
            max_records=max_records,
            data_change=False,
            table=table,
        )
        return OptimizeResult(spec.name, version, len(chosen), len(staged.files))

    def vacuum(
        self,
        spec: TableSpec,
        storage: Storage,
        *,
        retention_hours: int,
        dry_run: bool,
        ctx: CommitContext | None = None,
    ) -> list[str]:
        """Delete files no version within the retention still needs, and stale staging folders."""
        table = self._require(spec, storage)
        removed = table.vacuum(
            retention_hours=retention_hours,
            dry_run=dry_run,
            enforce_retention_duration=False,
            full=True,  # also files never committed (crashed or conflicting writers)
            commit_properties=self._commit_properties(ctx, "vacuum") if ctx else None,
        )
        cutoff_ms = (time.time() - retention_hours * 3600) * 1000
        for folder in storage.list_dirs(STAGING):
            if folder.mtime_ms <= cutoff_ms:
                removed.append(storage.relative(folder.path) + "/")
                if not dry_run:
                    storage.delete_dir(folder.path)
        return removed

    def restore(
        self, spec: TableSpec, storage: Storage, version: int, ctx: CommitContext
    ) -> tuple[int, dict[str, Any]]:
        """Make `version`'s files the table's current state again, in one new commit; return
        the new version and delta-rs's restore metrics."""
        table = self._require(spec, storage)
        current = table.version()
        if not 0 <= version < current:
            raise TableIOError(
                f"{spec.name}: cannot restore version {version}: the table is at version "
                f"{current}; choose one of 0..{current - 1} (`lakehouse table history "
                f"{spec.name}`)"
            )
        try:
            metrics = table.restore(
                version,
                commit_properties=self._commit_properties(
                    ctx, "restore", restored_version=str(version)
                ),
            )
        except (DeltaError, OSError) as exc:
            raise TableIOError(
                f"{spec.name}: restoring version {version} failed ({exc}); its files may have "
                "been vacuumed (then it cannot be restored)"
            ) from None
        after = DeltaTable(storage.root_uri).version()
        return after, {k: v for k, v in metrics.items() if isinstance(v, int | str)}


def _relative_to_root(storage: Storage, uri: str) -> str:
    """A snapshot file (absolute path or URI from deltalake) relative to the table root."""
    root = storage.root_uri.rstrip("/") + "/"
    if uri.startswith(root):
        return uri[len(root) :]
    return storage.relative(uri.split("://", 1)[-1] if "://" in uri else uri)


def _removes(actions: list[dict[str, Any]], *, data_change: bool) -> list[RemoveAction]:
    now_ms = int(time.time() * 1000)
    return [
        RemoveAction(
            path=a["path"],
            data_change=data_change,
            deletion_timestamp=now_ms,
            size=a["size"],
            partition_values=a["partition_values"],
        )
        for a in actions
    ]


def _none_or_literal(value: Any) -> str | None:
    return None if value is None else _literal(value)


def _widen(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """The smallest range holding ranges `a` and `b` (None: unbounded on that side)."""
    try:
        low = None if a[0] is None or b[0] is None else min(a[0], b[0])
        high = None if a[1] is None or b[1] is None else max(a[1], b[1])
    except TypeError:
        return (None, None)
    return (low, high)


def _may_hold(action: dict[str, Any], values: Mapping[str, Collection[Any]]) -> bool:
    """Can the file of `action` hold a row whose value of each named column is among
    `values`? By its partition values, else by its column statistics (min and max)."""
    for column, wanted in values.items():
        if column in action["partition_values"]:
            if action["partition_values"][column] not in {_none_or_literal(v) for v in wanted}:
                return False
        elif not wanted or not _overlaps(action, column, min(wanted), max(wanted)):
            return False
    return True


def _overlaps(action: dict[str, Any], column: str, low: Any, high: Any) -> bool:
    """Can the file of `action` hold a value of `column` in [low, high]? True whenever its
    statistics or the range are missing or not comparable (a truncated or absent bound)."""
    lo, hi = action["min"].get(column), action["max"].get(column)
    if lo is None or hi is None or low is None or high is None:
        return True
    try:
        return not (hi < low or lo > high)
    except TypeError:
        return True


def _add_actions(table: DeltaTable) -> list[dict[str, Any]]:
    """The snapshot's add actions as dicts with path, size, num_records, partition_values."""

    rows = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    result = []
    for row in rows:
        partition_values = {
            key.removeprefix("partition."): (None if value is None else _literal(value))
            for key, value in row.items()
            if key.startswith("partition.")
        }
        result.append(
            {
                "path": unquote(row["path"]),  # on-disk relative path (log form is encoded)
                "size": row["size_bytes"],
                "num_records": row["num_records"] or 0,
                "partition_values": partition_values,
                "min": {k[4:]: v for k, v in row.items() if k.startswith("min.")},
                "max": {k[4:]: v for k, v in row.items() if k.startswith("max.")},
            }
        )
    return result


def _mark_retracted(existing: DataFrame, keys: Sequence[str], retract: Retract) -> DataFrame:
    """`__retract` on stored rows that meet the condition and whose key `keep` lacks (the
    incoming keys are excluded by the caller's window)."""
    flag = F.coalesce(F.expr(retract.condition), F.lit(False))
    if retract.keep is None:
        return existing.withColumn("__retract", flag)
    kept = retract.keep.select(*keys).distinct().withColumn("__kept", F.lit(True))
    return (
        existing.join(kept, list(keys), "left")
        .withColumn("__retract", flag & F.col("__kept").isNull())
        .drop("__kept")
    )
