"""delta-spark engine: the same operations through `format("delta")` and `DeltaTable`.

Used where the delta-spark jars are on the Spark classpath (Databricks, EMR, a cluster with
the jars installed). Nothing here downloads jars; see `lakehouse.spark.use_delta_spark`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.config import Settings
from lakehouse.io.commit import CommitContext
from lakehouse.io.errors import TableConflictError, TableNotFoundError
from lakehouse.io.result import OptimizeResult, WriteResult
from lakehouse.io.storage import Storage
from lakehouse.tables import TableSpec


def _sql_literal(value: Any) -> str:
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class DeltaSparkEngine:
    name = "delta-spark"

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        from delta.tables import DeltaTable  # needs the jars; imported only when chosen

        self.spark = spark
        self.settings = settings
        self._delta = DeltaTable

    def _table(self, spec: TableSpec, storage: Storage) -> Any:
        path = storage.spark_uri()
        if not self._delta.isDeltaTable(self.spark, path):
            raise TableNotFoundError(f"{spec.name}: no Delta table at {path} yet")
        return self._delta.forPath(self.spark, path)

    def version(self, spec: TableSpec, storage: Storage) -> int | None:
        if not self._delta.isDeltaTable(self.spark, storage.spark_uri()):
            return None
        row = self._table(spec, storage).history(1).select("version").first()
        return None if row is None else int(row[0])

    def _ensure_table(self, spec: TableSpec, storage: Storage) -> None:
        path = storage.spark_uri()
        builder = (
            self._delta.createIfNotExists(self.spark).location(path).addColumns(spec.spark_schema)
        )
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        builder = builder.property(
            "delta.checkpointInterval", str(self.settings.storage.checkpoint_interval)
        ).comment(spec.description)
        builder.execute()
        existing = self.spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()
        present = {row["key"] for row in existing}
        for name, expression in spec.constraints.items():
            if f"delta.constraints.{name.lower()}" not in present:
                self.spark.sql(
                    f"ALTER TABLE delta.`{path}` ADD CONSTRAINT {name} CHECK ({expression})"
                )

    def _set_metadata(self, ctx: CommitContext, operation: str) -> None:
        meta = {**ctx.metadata(), "engine": self.name, "lakehouse_operation": operation}
        self.spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", json.dumps(meta))

    def _last_version(self, spec: TableSpec, storage: Storage) -> int:
        version = self.version(spec, storage)
        return -1 if version is None else version

    def read(
        self,
        spec: TableSpec,
        storage: Storage,
        *,
        version: int | None = None,
        timestamp: dt.datetime | None = None,
    ) -> DataFrame:
        self._table(spec, storage)
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        elif timestamp is not None:
            reader = reader.option("timestampAsOf", timestamp.isoformat())
        return reader.load(storage.spark_uri())

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
        self._ensure_table(spec, storage)
        self._set_metadata(ctx, operation)
        writer = df.write.format("delta").mode(mode)
        if replace_where:
            writer = writer.option("replaceWhere", replace_where)
        try:
            writer.save(storage.spark_uri())
        except Exception as exc:  # delta-spark raises JVM exceptions wrapped by py4j
            if "Concurrent" in type(exc).__name__ or "Concurrent" in str(exc):
                raise TableConflictError(f"{spec.name}: concurrent write conflict: {exc}") from None
            raise
        return WriteResult(
            spec.name, self._last_version(spec, storage), operation, -1, -1, df.count()
        )

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
    ) -> WriteResult:
        where = " AND ".join(f"{k} = {_sql_literal(v)}" for k, v in partition.items())
        return self._save(spec, storage, df, ctx, "replace_partitions", "overwrite", where)

    def upsert(
        self, spec: TableSpec, storage: Storage, df: DataFrame, ctx: CommitContext
    ) -> WriteResult:
        self._ensure_table(spec, storage)
        seq = spec.sequence_column
        assert seq is not None
        latest = (
            df.withColumn(
                "__rank",
                F.row_number().over(
                    Window.partitionBy(*spec.business_keys).orderBy(F.col(seq).desc_nulls_last())
                ),
            )
            .where("__rank = 1")
            .drop("__rank")
        )
        condition = " AND ".join(f"t.{k} <=> s.{k}" for k in spec.business_keys)
        self._set_metadata(ctx, "upsert")
        (
            self._table(spec, storage)
            .alias("t")
            .merge(latest.alias("s"), condition)
            .whenMatchedUpdateAll(condition=f"s.{seq} >= t.{seq}")
            .whenNotMatchedInsertAll()
            .execute()
        )
        return WriteResult(
            spec.name, self._last_version(spec, storage), "upsert", -1, -1, latest.count()
        )

    def optimize(
        self, spec: TableSpec, storage: Storage, ctx: CommitContext, target_mb: int
    ) -> OptimizeResult:
        self.spark.conf.set(
            "spark.databricks.delta.optimize.maxFileSize", str(target_mb * 1024 * 1024)
        )
        self._set_metadata(ctx, "optimize")
        metrics = self._table(spec, storage).optimize().executeCompaction().first()
        removed = added = -1
        if metrics is not None:
            removed = int(metrics["metrics"]["numFilesRemoved"])
            added = int(metrics["metrics"]["numFilesAdded"])
        return OptimizeResult(spec.name, self._last_version(spec, storage), removed, added)

    def vacuum(
        self,
        spec: TableSpec,
        storage: Storage,
        *,
        retention_hours: int,
        dry_run: bool,
        ctx: CommitContext | None = None,
    ) -> list[str]:
        self.spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        path = storage.spark_uri()
        if dry_run:
            rows = self.spark.sql(
                f"VACUUM delta.`{path}` RETAIN {retention_hours} HOURS DRY RUN"
            ).collect()
            return [str(r[0]) for r in rows]
        self._table(spec, storage).vacuum(retention_hours)
        return []

    def history(
        self, spec: TableSpec, storage: Storage, limit: int | None = None
    ) -> list[dict[str, Any]]:
        rows = (
            self._table(spec, storage).history(limit)
            if limit
            else self._table(spec, storage).history()
        )
        result = []
        for row in rows.collect():
            entry = row.asDict(recursive=True)
            if entry.get("userMetadata"):
                entry.update(json.loads(entry["userMetadata"]))
            result.append(entry)
        return result
