"""Schema checks between a DataFrame, the declared table and the stored Delta table."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from medlake.io.errors import SchemaMismatchError
from medlake.tables import TableSpec

# Widening casts that never lose information; anything else must be cast by the transform.
_SAFE_WIDENING: dict[type[T.DataType], tuple[type[T.DataType], ...]] = {
    T.ByteType: (T.ShortType, T.IntegerType, T.LongType),
    T.ShortType: (T.IntegerType, T.LongType),
    T.IntegerType: (T.LongType,),
    T.FloatType: (T.DoubleType,),
    T.NullType: (T.DataType,),
}


def _widens(source: T.DataType, target: T.DataType) -> bool:
    allowed = _SAFE_WIDENING.get(type(source), ())
    return any(isinstance(target, kind) for kind in allowed)


def _same_type(a: T.DataType, b: T.DataType) -> bool:
    """Equal types, ignoring nullability inside arrays, maps and structs."""
    return a.simpleString() == b.simpleString()


def conform(df: DataFrame, spec: TableSpec) -> DataFrame:
    """Return `df` with the table's columns in declared order, or raise naming every problem.

    Missing and undeclared columns and incompatible types are errors; lossless widening
    (int to bigint, float to double, untyped nulls) is applied.
    """
    actual = {f.name: f.dataType for f in df.schema.fields}
    expected = {f.name: f.dataType for f in spec.spark_schema.fields}
    problems = []
    missing = [name for name in expected if name not in actual]
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    extra = [name for name in actual if name not in expected]
    if extra:
        problems.append(
            f"columns not declared for the table: {', '.join(extra)} "
            "(declare them in conf/tables and set schema_evolution: additive)"
        )
    casts = []
    for name, want in expected.items():
        got = actual.get(name)
        if got is None or _same_type(got, want):
            casts.append(F.col(name))
        elif _widens(got, want):
            casts.append(F.col(name).cast(want).alias(name))
        else:
            problems.append(
                f"column {name}: expected {want.simpleString()}, got {got.simpleString()}"
            )
    if problems:
        raise SchemaMismatchError(
            f"{spec.name}: data does not match the declared schema; " + "; ".join(problems)
        )
    return df.select(*casts)


def struct_from_delta(schema_json: str) -> T.StructType:
    """Delta stores its schema in Spark's own JSON format."""
    return T.StructType.fromJson(json.loads(schema_json))


def evolution_needed(spec: TableSpec, stored: T.StructType) -> list[T.StructField]:
    """Columns the registry declares but the stored table lacks, if that change is allowed.

    Raises when the stored table has columns the registry does not declare, when a type
    differs, or when columns are missing and the table does not allow additive evolution.
    """
    declared = {f.name: f for f in spec.spark_schema.fields}
    present = {f.name: f for f in stored.fields}
    problems = []
    dropped = [n for n in present if n not in declared]
    if dropped:
        problems.append(f"stored columns no longer declared: {', '.join(dropped)}")
    for name, field in present.items():
        if name in declared and not _same_type(declared[name].dataType, field.dataType):
            problems.append(
                f"column {name}: stored as {field.dataType.simpleString()}, "
                f"declared as {declared[name].dataType.simpleString()}"
            )
    added = [f for n, f in declared.items() if n not in present]
    if added and spec.schema_evolution != "additive":
        problems.append(
            f"declared columns not in the stored table: {', '.join(f.name for f in added)} "
            "(set schema_evolution: additive to add them)"
        )
    if problems:
        raise SchemaMismatchError(
            f"{spec.name}: stored table does not match the registry; " + "; ".join(problems)
        )
    # Columns added to an existing table must be nullable: old rows have no value.
    return [T.StructField(f.name, f.dataType, True) for f in added]


def partition_literal(value: Any) -> str:
    """A partition value as Delta writes it in the log: dates in ISO form, others as str."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def partition_literals(value: Any) -> set[str]:
    """Partition value(s) as Delta partition strings: one value or a list/tuple/set of them."""
    if isinstance(value, list | tuple | set | frozenset):
        return {partition_literal(v) for v in value}
    return {partition_literal(value)}


def one_file_per_partition(df: DataFrame, spec: TableSpec) -> DataFrame:
    """`df` shuffled so that a write gives one file per table partition (one file for an
    unpartitioned table): a rewrite compacts what it replaces instead of adding small
    files. The work before the shuffle keeps its parallelism."""
    return df.repartition(*spec.partition_by) if spec.partition_by else df.repartition(1)
