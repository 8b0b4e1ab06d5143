"""The only module that reads or writes tables: one API, two engines (delta-rs, delta-spark).

>>> io = TableIO(spark, settings, registry)                              # doctest: +SKIP
>>> ctx = CommitContext(job="silver_supplier", run_id="r1", logical_date=day)  # doctest: +SKIP
>>> part = {"plant_id": "SZ"}                                            # doctest: +SKIP
>>> io.replace_partitions("silver.supplier", df, partition=part, ctx=ctx)  # doctest: +SKIP
>>> io.read("silver.supplier", version=3)                                # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from pyspark.sql import DataFrame, SparkSession

from medlake.config import Settings
from medlake.io.changes import OnChange, TableChange
from medlake.io.commit import CommitContext, code_version
from medlake.io.deltars import DeltaRsEngine
from medlake.io.errors import (
    ConstraintViolationError,
    SchemaMismatchError,
    TableConflictError,
    TableIOError,
    TableNotFoundError,
    UnsupportedTableError,
)
from medlake.io.result import Changes, OptimizeResult, Retract, WriteResult
from medlake.io.schema import conform, partition_literals
from medlake.io.storage import Storage, table_location
from medlake.spark import use_delta_spark
from medlake.tables import Registry, TableSpec

OnWrite = Callable[[str, WriteResult, CommitContext], None]
MAX_PATHS_REPORTED = 50  # vacuum: file names in the change's details (the count is complete)

__all__ = [
    "Changes",
    "CommitContext",
    "ConstraintViolationError",
    "OnChange",
    "OptimizeResult",
    "Retract",
    "SchemaMismatchError",
    "TableChange",
    "TableConflictError",
    "TableIO",
    "TableIOError",
    "TableNotFoundError",
    "UnsupportedTableError",
    "WriteResult",
    "code_version",
]


class Engine(Protocol):
    name: str
    on_change: OnChange | None  # told of schema changes the engine makes before a write

    def version(self, spec: TableSpec, storage: Storage) -> int | None: ...
    def read(
        self,
        spec: TableSpec,
        storage: Storage,
        *,
        version: int | None = None,
        timestamp: dt.datetime | None = None,
        partitions: Mapping[str, set[str]] | None = None,
    ) -> DataFrame: ...
    def partition_values(
        self, spec: TableSpec, storage: Storage
    ) -> list[dict[str, str | None]]: ...
    def may_hold(
        self, spec: TableSpec, storage: Storage, values: Mapping[str, Collection[Any]]
    ) -> bool: ...
    def append(
        self, spec: TableSpec, storage: Storage, df: DataFrame, ctx: CommitContext
    ) -> WriteResult: ...
    def overwrite(
        self, spec: TableSpec, storage: Storage, df: DataFrame, ctx: CommitContext
    ) -> WriteResult: ...
    def replace_partitions(
        self,
        spec: TableSpec,
        storage: Storage,
        df: DataFrame,
        ctx: CommitContext,
        partition: Mapping[str, Any],
        where: Mapping[str, set[str]] | None = None,
    ) -> WriteResult: ...
    def upsert(
        self,
        spec: TableSpec,
        storage: Storage,
        df: DataFrame,
        ctx: CommitContext,
        count_by: str | None = None,
        retract: Retract | None = None,
    ) -> WriteResult: ...
    def optimize(
        self, spec: TableSpec, storage: Storage, ctx: CommitContext, target_mb: int
    ) -> OptimizeResult: ...
    def vacuum(
        self,
        spec: TableSpec,
        storage: Storage,
        *,
        retention_hours: int,
        dry_run: bool,
        ctx: CommitContext | None = None,
    ) -> list[str]: ...
    def restore(
        self, spec: TableSpec, storage: Storage, version: int, ctx: CommitContext
    ) -> tuple[int, dict[str, Any]]: ...
    def history(
        self, spec: TableSpec, storage: Storage, limit: int | None = None
    ) -> list[dict[str, Any]]: ...


def make_engine(spark: SparkSession, settings: Settings) -> Engine:
    """delta-spark where configured (or `auto` with its jars present), else delta-rs."""
    if use_delta_spark(settings):
        from medlake.io.deltaspark import DeltaSparkEngine  # noqa: PLC0415 - optional engine: delta-spark needs its jars

        return DeltaSparkEngine(spark, settings)

    return DeltaRsEngine(spark, settings)


class TableIO:
    """Read and write registered tables by name; every write is one atomic Delta commit.

    `on_write` is told of every committed write, `on_change` of every other committed change
    (`TableChange`: optimize, vacuum, schema change, restore). An `on_write` listener with an
    `on_change` method of its own (`medlake.governance.audit.write_auditor`) is told of both.
    """

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        registry: Registry,
        *,
        engine: Engine | None = None,
        on_write: OnWrite | None = None,
        on_change: OnChange | None = None,
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.registry = registry
        self.engine = engine or make_engine(spark, settings)
        self.on_write = on_write  # told of every committed write (the audit trail listens)
        self.on_change: OnChange | None = on_change or getattr(on_write, "on_change", None)
        if self.on_change is not None:
            self.engine.on_change = self.on_change  # schema changes happen inside the engine

    def _wrote(self, name: str, result: WriteResult, ctx: CommitContext) -> WriteResult:
        if self.on_write is not None:
            self.on_write(name, result, ctx)
        return result

    def _changed(self, change: TableChange, ctx: CommitContext | None) -> None:
        if self.on_change is not None:
            self.on_change(change, ctx)

    # ----------------------------------------------------------------- addressing

    def location(self, name: str) -> str:
        """Where table `name` lives: `<storage.root>/<layer>/<name>`."""
        return table_location(self.settings, self.registry.get(name))

    def _resolve(self, name: str) -> tuple[TableSpec, Storage]:
        spec = self.registry.get(name)
        return spec, Storage(self.location(name))

    # ----------------------------------------------------------------- reads

    def version(self, name: str) -> int | None:
        """The latest committed version, or None when the table was never written."""
        spec, storage = self._resolve(name)
        return self.engine.version(spec, storage)

    def read(
        self,
        name: str,
        *,
        version: int | None = None,
        timestamp: dt.datetime | None = None,
        partitions: Mapping[str, Any] | None = None,
    ) -> DataFrame:
        """The table now, as of a `version`, or as of a `timestamp` (latest commit at or before).

        `partitions` ({column: value or list of values}) reads only those partitions: the
        files of the others are not even listed, so a nightly read of one day costs the
        same after a year of history as after a week.
        """
        if version is not None and timestamp is not None:
            raise ValueError("give version or timestamp, not both")
        spec, storage = self._resolve(name)
        wanted = None
        if partitions is not None:
            unknown = [c for c in partitions if c not in spec.partition_by]
            if unknown:
                raise TableIOError(
                    f"{name}: {unknown} are not partition columns (partition_by: "
                    f"{spec.partition_by}); filter the DataFrame instead"
                )
            wanted = {c: partition_literals(v) for c, v in partitions.items()}
        return self.engine.read(
            spec, storage, version=version, timestamp=timestamp, partitions=wanted
        )

    def partition_values(self, name: str) -> list[dict[str, str | None]]:
        """The distinct partitions the table holds now, as {column: Delta partition string}."""
        spec, storage = self._resolve(name)
        return self.engine.partition_values(spec, storage)

    def may_hold(self, name: str, values: Mapping[str, Collection[Any]]) -> bool:
        """Could the table hold a row whose value of each named column is among `values`?
        False only when it does not exist yet or when no file's partition values or column
        statistics allow it (an engine that cannot tell says True); no data is read."""
        spec, storage = self._resolve(name)
        if self.engine.version(spec, storage) is None:
            return False
        return self.engine.may_hold(spec, storage, values)

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits, newest first, with job, run_id, logical_date and code_version."""
        spec, storage = self._resolve(name)
        return self.engine.history(spec, storage, limit)

    # ----------------------------------------------------------------- writes

    def append(self, name: str, df: DataFrame, *, ctx: CommitContext) -> WriteResult:
        spec, storage = self._resolve(name)
        return self._wrote(name, self.engine.append(spec, storage, conform(df, spec), ctx), ctx)

    def overwrite(self, name: str, df: DataFrame, *, ctx: CommitContext) -> WriteResult:
        spec, storage = self._resolve(name)
        return self._wrote(name, self.engine.overwrite(spec, storage, conform(df, spec), ctx), ctx)

    def replace_partitions(
        self,
        name: str,
        df: DataFrame,
        *,
        partition: Mapping[str, Any],
        ctx: CommitContext,
        where: Mapping[str, Any] | None = None,
    ) -> WriteResult:
        """Atomically replace the rows of the given partitions with `df` (an idempotent re-run).

        `partition` maps partition columns to a value or a list of values, e.g.
        `{"month": "2026-01", "plant_id": ["SZ", "SU"]}`; every row of `df` must fall
        inside it, and every listed partition is replaced (emptied when `df` has no rows
        for it). Running the same (job, date, plant) again leaves the same table.

        `where` ({column: value or list of values}, any columns) narrows the replacement to
        the rows of those partitions that match every entry: the other rows are carried
        over into the new files, and every row of `df` must match too. A table partitioned
        by month can so be replaced one day and plant at a time and still hold one file per
        month, whatever the number of runs that built it.
        """
        spec, storage = self._resolve(name)
        unknown = [k for k in partition if k not in spec.partition_by]
        if not partition or unknown:
            raise TableIOError(
                f"{name}: replace_partitions needs partition columns of the table "
                f"({', '.join(spec.partition_by) or 'none declared'}); "
                f"got {list(partition) or 'none'}"
            )
        if any(
            v is None or (isinstance(v, list | tuple | set | frozenset) and (not v or None in v))
            for v in partition.values()
        ):
            raise TableIOError(
                f"{name}: partition values to replace must not be None: {dict(partition)}"
            )
        narrow = None
        if where:
            unknown = [k for k in where if k not in spec.column_names]
            if unknown:
                raise TableIOError(f"{name}: where names unknown columns {unknown}")
            narrow = {k: partition_literals(v) for k, v in where.items()}
            if any(not v or None in v for v in narrow.values()):
                raise TableIOError(f"{name}: where values must not be empty or None: {where}")
        written = self.engine.replace_partitions(
            spec, storage, conform(df, spec), ctx, partition, narrow
        )
        return self._wrote(name, written, ctx)

    def upsert(
        self,
        name: str,
        df: DataFrame,
        *,
        ctx: CommitContext,
        count_by: str | None = None,
        retract: Retract | None = None,
    ) -> WriteResult:
        """Insert new business keys and replace existing ones; the higher sequence wins.

        Incoming rows with an older sequence than the stored row are ignored, so late or
        repeated deliveries never roll a record back. Only the partitions holding incoming
        rows are rewritten; a partition column outside the business key (a month derived
        from a date) may change between versions, and the partition holding the stored
        version is then rewritten too, so a key lives in exactly one partition. With
        `count_by` (a business-key column), the result's `changes_by` holds the `Changes`
        per value of that column. `retract` (see `Retract`) deletes stored rows that meet
        its condition and whose key no incoming row carries (a corrected re-delivery that
        no longer contains a record withdraws it).
        """
        spec, storage = self._resolve(name)
        if not spec.business_keys or not spec.sequence_column:
            raise TableIOError(
                f"{name}: upsert needs business_keys and sequence_column declared in conf/tables"
            )
        if count_by is not None and count_by not in spec.business_keys:
            raise TableIOError(f"{name}: count_by={count_by!r} is not a business key column")
        written = self.engine.upsert(spec, storage, conform(df, spec), ctx, count_by, retract)
        return self._wrote(name, written, ctx)

    # ----------------------------------------------------------------- maintenance

    def optimize(
        self, name: str, *, ctx: CommitContext, target_mb: int | None = None
    ) -> OptimizeResult:
        """Compact small files per partition into files near `storage.target_file_mb`;
        `on_change` is told (files removed and added)."""
        spec, storage = self._resolve(name)
        target = target_mb or self.settings.storage.target_file_mb
        result = self.engine.optimize(spec, storage, ctx, target)
        details = {
            "files_removed": result.files_removed,
            "files_added": result.files_added,
            "target_mb": target,
        }
        self._changed(TableChange(name, "optimize", result.version, details), ctx)
        return result

    def vacuum(
        self,
        name: str,
        *,
        retention_hours: int | None = None,
        dry_run: bool = False,
        ctx: CommitContext | None = None,
    ) -> list[str]:
        """Delete files no longer referenced by a version within the retention window,
        uncommitted files from crashed writers, and stale staging folders. Unless `dry_run`,
        `on_change` is told: the retention used, whether it was below the configured
        `storage.vacuum_retention_hours`, and the files removed."""
        spec, storage = self._resolve(name)
        configured = self.settings.storage.vacuum_retention_hours
        hours = configured if retention_hours is None else retention_hours
        removed = self.engine.vacuum(spec, storage, retention_hours=hours, dry_run=dry_run, ctx=ctx)
        if not dry_run:
            details = {
                "retention_hours": hours,
                "configured_retention_hours": configured,
                "below_configured_retention": hours < configured,
                "files_removed": len(removed),
                "removed": removed[:MAX_PATHS_REPORTED],
            }
            version = self.engine.version(spec, storage)
            self._changed(TableChange(name, "vacuum", version, details), ctx)
        return removed

    def restore(self, name: str, *, version: int, ctx: CommitContext) -> TableChange:
        """Make `version` the table's current state again, in one new commit (time travel
        before it stays possible); `on_change` is told. Returns what was done."""
        spec, storage = self._resolve(name)
        before = self.engine.version(spec, storage)
        if before is None:
            raise TableNotFoundError(f"{name}: no table at {storage.root_uri} to restore")
        after, metrics = self.engine.restore(spec, storage, version, ctx)
        change = TableChange(
            name,
            "restore",
            after,
            {"restored_version": version, "previous_version": before, **metrics},
        )
        self._changed(change, ctx)
        return change
