"""The table registry: every table declared once in `conf/tables/*.yaml`, validated at load."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pyspark.sql import types as T

from medlake.config import ConfigError, format_validation_error, read_yaml

Layer = Literal["bronze", "silver", "gold", "system"]
Evolution = Literal["none", "additive"]

_NAME_PATTERNS: dict[str, re.Pattern[str]] = {
    "bronze": re.compile(r"^bronze\.[a-z][a-z0-9]*__[a-z][a-z0-9_]*$"),
    "silver": re.compile(r"^silver\.[a-z][a-z0-9_]*$"),
    "gold": re.compile(r"^gold\.[a-z][a-z0-9_]*$"),
    "system": re.compile(r"^_[a-z][a-z0-9_]*$"),
}
_NAME_FORMS = {
    "bronze": "bronze.<system>__<entity>",
    "silver": "silver.<entity>",
    "gold": "gold.<mart>",
    "system": "_<name>",
}
CLASSIFICATION = re.compile(r"^(public|internal|confidential|restricted|free_text|pii\.[a-z_]+)$")

_PRIMITIVES: dict[str, T.DataType] = {
    "string": T.StringType(),
    "boolean": T.BooleanType(),
    "tinyint": T.ByteType(),
    "smallint": T.ShortType(),
    "int": T.IntegerType(),
    "bigint": T.LongType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
    "binary": T.BinaryType(),
}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_PARTITION_TYPES = (T.StringType, T.DateType, T.IntegerType, T.LongType, T.ShortType, T.ByteType)


def _split_top_level(text: str) -> tuple[str, str]:
    """Split `k,v` at the comma outside any parentheses or angle brackets."""
    depth = 0
    for i, char in enumerate(text):
        depth += char in "(<"
        depth -= char in ")>"
        if char == "," and depth == 0:
            return text[:i], text[i + 1 :]
    raise ValueError(f"map<{text}> needs a key and a value type")


def parse_type(text: str) -> T.DataType:
    """Parse the type names used in `conf/tables` (a subset of Spark SQL DDL).

    >>> parse_type("array<decimal(18,4)>")
    ArrayType(DecimalType(18,4), True)
    """
    spec = text.strip().lower()
    if spec in _PRIMITIVES:
        return _PRIMITIVES[spec]
    if match := _DECIMAL.match(spec):
        precision, scale = int(match[1]), int(match[2])
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(
                f"decimal({precision},{scale}) needs 1 <= precision <= 38, scale <= precision"
            )
        return T.DecimalType(precision, scale)
    if spec.startswith("array<") and spec.endswith(">"):
        return T.ArrayType(parse_type(spec[6:-1]))
    if spec.startswith("map<") and spec.endswith(">"):
        key, value = _split_top_level(spec[4:-1])
        return T.MapType(parse_type(key), parse_type(value))
    allowed = ", ".join([*_PRIMITIVES, "decimal(p,s)", "array<t>", "map<k,v>"])
    raise ValueError(f"unknown type {text!r}; expected one of {allowed}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: str
    nullable: bool = True
    description: str = Field(min_length=1)
    classification: str = "internal"
    unit: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        parse_type(value)
        return value

    @field_validator("classification")
    @classmethod
    def _known_class(cls, value: str) -> str:
        if not CLASSIFICATION.match(value):
            raise ValueError(
                "expected public, internal, confidential, restricted, free_text or pii.<kind>"
            )
        return value

    @property
    def data_type(self) -> T.DataType:
        return parse_type(self.type)


class TableSpec(_Strict):
    """One table: where it sits, what it holds, who owns it and how it may change."""

    name: str
    layer: Layer
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    columns: list[ColumnSpec] = Field(min_length=1)
    partition_by: list[str] = Field(default_factory=list)
    business_keys: list[str] = Field(default_factory=list)
    sequence_column: str | None = None
    constraints: dict[str, str] = Field(default_factory=dict)
    schema_evolution: Evolution = "none"

    @model_validator(mode="after")
    def _consistent(self) -> TableSpec:
        pattern = _NAME_PATTERNS[self.layer]
        if not pattern.match(self.name):
            raise ValueError(
                f"name {self.name!r} does not follow {_NAME_FORMS[self.layer]} "
                f"for layer {self.layer}"
            )
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate columns: {', '.join(dupes)}")
        by_name = {c.name: c for c in self.columns}
        for role, cols in (
            ("partition_by", self.partition_by),
            ("business_keys", self.business_keys),
            ("sequence_column", [self.sequence_column] if self.sequence_column else []),
        ):
            missing = [c for c in cols if c not in by_name]
            if missing:
                raise ValueError(f"{role} names unknown columns: {', '.join(missing)}")
        for col in self.partition_by:
            if col.startswith(("_", ".")):
                # hive folders `_x=…` / `.x=…` are hidden files to plain Parquet readers
                # (pyarrow's dataset discovery, Hive): they would find no rows at all
                raise ValueError(
                    f"partition column {col!r} starts with {col[0]!r}: its folders would be "
                    "hidden from plain Parquet readers; partition by a column whose name "
                    "starts with a letter"
                )
            if not isinstance(by_name[col].data_type, _PARTITION_TYPES):
                raise ValueError(
                    f"partition column {col!r} has type {by_name[col].type}; "
                    "use string, date or an integer type"
                )
        if self.sequence_column and not self.business_keys:
            raise ValueError("sequence_column needs business_keys")
        return self

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def spark_schema(self) -> T.StructType:
        return T.StructType([T.StructField(c.name, c.data_type, c.nullable) for c in self.columns])

    @property
    def path(self) -> str:
        """Location of the table relative to the storage root, e.g. `silver/supplier`."""
        if self.layer == "system":
            return f"_system/{self.name}"
        return self.name.replace(".", "/", 1)

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")


class UnknownTableError(KeyError):
    """A table name that is not declared in conf/tables."""

    def __str__(self) -> str:
        return str(self.args[0])


class _TableFile(_Strict):
    tables: list[TableSpec]


class Registry:
    """All declared tables by name, loaded from every YAML file in a folder."""

    def __init__(self, tables: list[TableSpec]) -> None:
        self._tables: dict[str, TableSpec] = {}
        for table in tables:
            if table.name in self._tables:
                raise ConfigError(f"table {table.name!r} is declared twice")
            self._tables[table.name] = table

    @classmethod
    def load(cls, folder: Path) -> Registry:
        tables: list[TableSpec] = []
        files = sorted(folder.glob("*.yaml"))
        if not files:
            raise ConfigError(f"{folder}: no table declarations (*.yaml) found")
        seen: dict[str, Path] = {}
        for path in files:
            data = read_yaml(path)
            # top-level `x-...` keys hold YAML anchors shared by several tables
            data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
            try:
                parsed = _TableFile.model_validate(data)
            except ValidationError as exc:
                raise ConfigError(format_validation_error(exc, [(path, data)])) from None
            for table in parsed.tables:
                if table.name in seen:
                    raise ConfigError(
                        f"{path}: table {table.name!r} is already declared in {seen[table.name]}"
                    )
                seen[table.name] = path
            tables.extend(parsed.tables)
        return cls(tables)

    def get(self, name: str) -> TableSpec:
        try:
            return self._tables[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._tables, n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise UnknownTableError(
                f"unknown table {name!r}; {hint}{len(self._tables)} tables are declared "
                "(see `lakehouse table list`)"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tables

    def __iter__(self) -> Iterator[TableSpec]:
        return iter(sorted(self._tables.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._tables)
