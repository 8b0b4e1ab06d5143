"""delta-spark engine: the same operations through `format("delta")` and `DeltaTable`.

Used where the delta-spark jars are on the Spark classpath (Databricks, EMR, a cluster with
the jars installed). Nothing here downloads jars; see `medlake.spark.use_delta_spark`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from medlake.config import Settings
from medlake.io.changes import OnChange, TableChange
from medlake.io.commit import CommitContext
from medlake.io.errors import TableConflictError, TableIOError, TableNotFoundError
from medlake.io.result import Changes, OptimizeResult, Retract, WriteResult
from medlake.io.schema import evolution_needed, one_file_per_partition
from medlake.io.storage import Storage
from medlake.tables import TableSpec

R = TypeVar("R")


def _sql_literal(value: Any) -> str:
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class DeltaSparkEngine:
    name = "delta-spark"

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        from delta.exceptions import DeltaConcurrentModificationException  # noqa: PLC0415 - needs the delta-spark jars
        from delta.tables import DeltaTable  # noqa: PLC0415 - needs the jars; imported only when chosen

        self.spark = spark
        self.settings = settings
        self._delta = DeltaTable
        self._conflict = DeltaConcurrentModificationException
        self.on_change: OnChange | None = None  # told of schema changes (TableIO sets it)

    # ------------------------------------------------------------------ helpers

    @contextmanager
    def _session_conf(self, values: Mapping[str, str]) -> Iterator[None]:
        """Set session settings for one operation and restore them afterwards."""
        previous: dict[str, str | None] = {key: self.spark.conf.get(key, None) for key in values}
        for key, value in values.items():
            self.spark.conf.set(key, value)
        try:
            yield
        finally:
            for key, old in previous.items():
                if old is None:
                    self.spark.conf.unset(key)
                else:
                    self.spark.conf.set(key, old)

    def _metadata(self, ctx: CommitContext, operation: str) -> dict[str, str]:
        meta = {**ctx.metadata(), "engine": self.name, "lakehouse_operation": operation}
        return {"spark.databricks.delta.commitInfo.userMetadata": json.dumps(meta)}

    def _guard(self, spec: TableSpec, action: Callable[[], R]) -> R:
        try:
            return action()
        except self._conflict as exc:
            raise TableConflictError(
                f"{spec.name}: another writer committed a conflicting change ({exc}). Nothing "
                "of this write is visible. Re-run the job; run writers of one table one at a "
                "time (Airflow pool)."
            ) from None

    def _table(self, spec: TableSpec, storage: Storage) -> Any:
        path = storage.spark_uri()
        if not self._delta.isDeltaTable(self.spark, path):
            raise TableNotFoundError(f"{spec.name}: no Delta table at {path} yet")
        return self._delta.forPath(self.spark, path)

    def _last(self, spec: TableSpec, storage: Storage) -> dict[str, Any]:
        row = self._table(spec, storage).history(1).first()
        return {} if row is None else row.asDict(recursive=True)

    def version(self, spec: TableSpec, storage: Storage) -> int | None:
        if not self._delta.isDeltaTable(self.spark, storage.spark_uri()):
            return None
        return int(self._last(spec, storage)["version"])

    def _ensure_table(
        self, spec: TableSpec, storage: Storage, ctx: CommitContext | None = None
    ) -> None:
        path = storage.spark_uri()
        if not self._delta.isDeltaTable(self.spark, path):
            builder = self._delta.createIfNotExists(self.spark).location(path)
            builder = builder.addColumns(spec.spark_schema).comment(spec.description)
            if spec.partition_by:
                builder = builder.partitionedBy(*spec.partition_by)
            interval = str(self.settings.storage.checkpoint_interval)
            builder = builder.property("delta.checkpointInterval", interval)
            # the log outlives vacuum and erasure: statistics (min/max) only for columns
            # that hold no commercial or personal text (as the delta-rs engine writes them)
            open_columns = [
                c.name
                for c in spec.columns
                if c.classification in ("public", "internal") and c.name not in spec.partition_by
            ]
            if open_columns:
                builder = builder.property("delta.dataSkippingStatsColumns", ",".join(open_columns))
            else:
                builder = builder.property("delta.dataSkippingNumIndexedCols", "0")
            builder.execute()
        stored = self.spark.read.format("delta").load(path).schema
        added = evolution_needed(spec, stored)
        if added:
            columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in added)
            self.spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")
            if self.on_change is not None:
                version = int(self._last(spec, storage)["version"])
                details = {
                    "columns_added": [f"{f.name} {f.dataType.simpleString()}" for f in added]
                }
                self.on_change(TableChange(spec.name, "schema_change", version, details), ctx)
        present = {
            row["key"] for row in self.spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()
        }
        for name, expression in spec.constraints.items():
            if f"delta.constraints.{name.lower()}" not in present:
                self.spark.sql(
                    f"ALTER TABLE delta.`{path}` ADD CONSTRAINT {name} CHECK ({expression})"
                )

    def _result(self, spec: TableSpec, storage: Storage, operation: str) -> WriteResult:
        last = self._last(spec, storage)
        metrics = last.get("operationMetrics") or {}
        rows = int(metrics.get("numOutputRows", metrics.get("numTargetRowsInserted", -1)))
        return WriteResult(
            spec.name,
            int(last["version"]),
            operation,
            int(metrics.get("numFiles", metrics.get("numTargetFilesAdded", -1))),
            int(metrics.get("numRemovedFiles", metrics.get("numTargetFilesRemoved", 0))),
            rows,
            rows_inserted=_int_or_none(metrics.get("numTargetRowsInserted")),
            rows_updated=_int_or_none(metrics.get("numTargetRowsUpdated")),
        )

    # ------------------------------------------------------------------ reads

    def read(
        self,
        spec: TableSpec,
        storage: Storage,
        *,
        version: int | None = None,
        timestamp: dt.datetime | None = None,
        partitions: Mapping[str, set[str]] | None = None,
    ) -> DataFrame:
        table = self._table(spec, storage)
        if timestamp is not None:  # the latest commit at or before the timestamp
            if timestamp.tzinfo is not None:
                timestamp = timestamp.astimezone(dt.UTC).replace(tzinfo=None)
            row = (
                table.history()
                .where(F.col("timestamp") <= F.lit(timestamp))
                .agg(F.max("version"))
                .first()
            )
            if row is None or row[0] is None:
                raise TableNotFoundError(f"{spec.name}: no version as of {timestamp}")
            version = int(row[0])
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        frame = reader.load(storage.spark_uri())
        for column, values in (partitions or {}).items():  # Delta prunes the partitions
            frame = frame.where(F.col(column).cast("string").isin(sorted(values)))
        return frame

    def may_hold(
        self, spec: TableSpec, storage: Storage, values: Mapping[str, Collection[Any]]
    ) -> bool:
        return True  # statistics are not consulted on this engine: read to find out

    def partition_values(self, spec: TableSpec, storage: Storage) -> list[dict[str, str | None]]:
        frame = self._table(spec, storage).toDF().select(*spec.partition_by).distinct()
        return [
            {c: None if r[c] is None else str(r[c]) for c in spec.partition_by}
            for r in frame.collect()
        ]

    def history(
        self, spec: TableSpec, storage: Storage, limit: int | None = None
    ) -> list[dict[str, Any]]:
        table = self._table(spec, storage)
        rows = table.history(limit) if limit else table.history()
        result = []
        for row in rows.collect():
            entry = row.asDict(recursive=True)
            if entry.get("userMetadata"):
                entry.update(json.loads(entry["userMetadata"]))
            result.append(entry)
        return result

    # ------------------------------------------------------------------ writes

    def _save(
        self,
        spec: TableSpec,
        storage: Storage,
        df: DataFrame,
        ctx: CommitContext,
        operation: str,
        mode: str,
        replace_where: str | None = None,
    ) -> WriteResult:
        with self._session_conf(self._metadata(ctx, operation)):
            self._ensure_table(spec, storage, ctx)
            writer = df.write.format("delta").mode(mode)
            if replace_where:
                writer = writer.option("replaceWhere", replace_where)
            self._guard(spec, lambda: writer.save(storage.spark_uri()))
        return self._result(spec, storage, operation)

    def append(
        self, spec: TableSpec, storage: Storage, df: DataFrame, ctx: CommitContext
    ) -> WriteResult:
        return self._save(spec, storage, df, ctx, "append", "append")

    def overwrite(
        self, spec: TableSpec, storage: Storage, df: DataFrame, ctx: CommitContext
    ) -> WriteResult:
        return self._save(spec, storage, df, ctx, "overwrite", "overwrite")

    def replace_partitions(
        self,
        spec: TableSpec,
        storage: Storage,
        df: DataFrame,
        ctx: CommitContext,
        partition: Mapping[str, Any],
        where: Mapping[str, set[str]] | None = None,
    ) -> WriteResult:
        # Delta's replaceWhere takes data columns too: it rewrites the files holding
        # matching rows, keeps the others' rows and checks every written row matches
        conditions = [
            f"`{k}` IN ({', '.join(_sql_literal(x) for x in sorted(v))})"
            if isinstance(v, list | tuple | set | frozenset)
            else f"`{k}` = {_sql_literal(v)}"
            for k, v in partition.items()
        ]
        for k, values in (where or {}).items():
            kind = spec.column(k).data_type.simpleString()
            literals = ", ".join(f"CAST({_sql_literal(x)} AS {kind})" for x in sorted(values))
            conditions.append(f"`{k}` IN ({literals})")
        return self._save(
            spec,
            storage,
            one_file_per_partition(df, spec),
            ctx,
            "replace_partitions",
            "overwrite",
            " AND ".join(conditions),
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
        seq = spec.sequence_column
        assert seq is not None
        # Same rule as the delta-rs engine: latest sequence per key, ties broken by content.
        order = [F.col(seq).desc_nulls_last(), F.xxhash64(*[F.col(c) for c in df.columns]).desc()]
        latest = (
            df.withColumn(
                "__rank",
                F.row_number().over(Window.partitionBy(*spec.business_keys).orderBy(*order)),
            )
            .where("__rank = 1")
            .drop("__rank")
        )
        keys = spec.business_keys
        condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        newer = f"s.`{seq}` >= t.`{seq}` OR t.`{seq}` IS NULL"
        with self._session_conf(self._metadata(ctx, "upsert")):
            self._ensure_table(spec, storage, ctx)
            target = self._table(spec, storage)
            doomed = None
            if retract is not None:
                protect = latest.select(*keys)
                if retract.keep is not None:
                    protect = protect.unionByName(retract.keep.select(*keys))
                doomed = (
                    target.toDF()
                    .where(F.expr(retract.condition))
                    .join(protect.distinct(), list(keys), "left_anti")
                )
            columns = {c: f"s.`{c}`" for c in latest.columns}
            if doomed is None:
                merge = (
                    target.alias("t")
                    .merge(latest.alias("s"), condition)
                    .whenMatchedUpdate(condition=newer, set=columns)
                    .whenNotMatchedInsert(values=columns)
                )
            else:
                # withdrawn rows ride along in the source, marked, and are deleted on match
                source = latest.withColumn("__del", F.lit(False)).unionByName(
                    doomed.select(*latest.columns).withColumn("__del", F.lit(True))
                )
                merge = (
                    target.alias("t")
                    .merge(source.alias("s"), condition)
                    .whenMatchedDelete(condition="s.__del")
                    .whenMatchedUpdate(condition=f"NOT s.__del AND ({newer})", set=columns)
                    .whenNotMatchedInsert(condition="NOT s.__del", values=columns)
                )
            changes = (
                self._changes_by(spec, storage, df, latest, count_by, doomed) if count_by else None
            )
            self._guard(spec, merge.execute)
        result = self._result(spec, storage, "upsert")
        return dataclasses.replace(result, changes_by=changes) if changes is not None else result

    def _changes_by(
        self,
        spec: TableSpec,
        storage: Storage,
        df: DataFrame,
        latest: DataFrame,
        count_by: str,
        doomed: DataFrame | None,
    ) -> dict[str, Changes]:
        """(inserted, updated, ignored) per `count_by` value, as the merge will decide them:
        ignored are incoming rows that lose to a stored or incoming later sequence."""
        seq, keys = spec.sequence_column, spec.business_keys
        assert seq is not None
        table = self._table(spec, storage).toDF()
        stored = table.select(*keys, F.col(seq).alias("__old"))
        gone: dict[str, int] = {}
        if doomed is not None:
            gone = {r[0]: int(r[1]) for r in doomed.groupBy(count_by).count().collect()}
        joined = latest.select(*keys, seq).join(stored, [*keys], "left")
        counts = joined.groupBy(count_by).agg(
            F.sum(F.when(F.col("__old").isNull(), 1).otherwise(0)).alias("i"),
            F.sum(F.when(F.col("__old") <= F.col(seq), 1).otherwise(0)).alias("u"),
        )
        won = {r[count_by]: (int(r["i"]), int(r["u"])) for r in counts.collect()}
        incoming = {r[0]: int(r[1]) for r in df.groupBy(count_by).count().collect()}
        return {
            k: Changes(
                *won.get(k, (0, 0)), incoming.get(k, 0) - sum(won.get(k, (0, 0))), gone.get(k, 0)
            )
            for k in incoming.keys() | gone.keys()
        }

    # ------------------------------------------------------------------ maintenance

    def optimize(
        self, spec: TableSpec, storage: Storage, ctx: CommitContext, target_mb: int
    ) -> OptimizeResult:
        conf = {
            **self._metadata(ctx, "optimize"),
            "spark.databricks.delta.optimize.maxFileSize": str(target_mb * 1024 * 1024),
        }
        with self._session_conf(conf):
            table = self._table(spec, storage)
            row = self._guard(spec, lambda: table.optimize().executeCompaction().first())
        metrics = row["metrics"] if row is not None else None
        removed = int(metrics["numFilesRemoved"]) if metrics else 0
        added = int(metrics["numFilesAdded"]) if metrics else 0
        return OptimizeResult(spec.name, int(self._last(spec, storage)["version"]), removed, added)

    def vacuum(
        self,
        spec: TableSpec,
        storage: Storage,
        *,
        retention_hours: int,
        dry_run: bool,
        ctx: CommitContext | None = None,
    ) -> list[str]:
        path = storage.spark_uri()
        self._table(spec, storage)
        conf = {"spark.databricks.delta.retentionDurationCheck.enabled": "false"}
        if ctx is not None:
            conf.update(self._metadata(ctx, "vacuum"))
        with self._session_conf(conf):
            listed = self.spark.sql(f"VACUUM delta.`{path}` RETAIN {retention_hours} HOURS DRY RUN")
            files = [str(r[0]) for r in listed.collect()]
            if not dry_run:
                self.spark.sql(f"VACUUM delta.`{path}` RETAIN {retention_hours} HOURS")
        return files

    def restore(
        self, spec: TableSpec, storage: Storage, version: int, ctx: CommitContext
    ) -> tuple[int, dict[str, Any]]:
        current = int(self._last(spec, storage)["version"])
        if not 0 <= version < current:
            raise TableIOError(
                f"{spec.name}: cannot restore version {version}: the table is at version "
                f"{current}; choose one of 0..{current - 1} (`lakehouse table history "
                f"{spec.name}`)"
            )
        with self._session_conf(self._metadata(ctx, "restore")):
            table = self._table(spec, storage)
            row = self._guard(spec, lambda: table.restoreToVersion(version).first())
        metrics = row.asDict() if row is not None else {}
        found = {k: v for k, v in metrics.items() if isinstance(v, int | str)}
        return int(self._last(spec, storage)["version"]), found


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
