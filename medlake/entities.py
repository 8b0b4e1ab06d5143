"""Silver conformance specs (`conf/silver/<entity>.yaml`): canonical columns and their rules.

One spec per entity says which bronze table feeds it, the business key, how each canonical
column is typed and what happens when it is missing, which columns carry codes, units,
money or master-data references. The silver table and its quarantine table are derived
from the spec, so the model is declared once. Row rules beyond typing (ranges, references,
anomalies, cross-entity checks) live in the entity's quality rule file (`conf/quality`,
`medlake/silver/quality.py`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medlake.config import ConfigError, format_validation_error, key_line, read_yaml
from medlake.sources import PlantSource, as_list
from medlake.tables import ColumnSpec, Registry, TableSpec

SourceType = Literal["string", "int", "decimal", "date", "datetime", "bool"]
Missing = Literal["keep", "reject", "flag", "impute"]
DECIMAL = "decimal(18,6)"
_SPARK_TYPE = {
    "string": "string",
    "int": "int",
    "decimal": DECIMAL,
    "date": "date",
    "datetime": "timestamp",
    "bool": "boolean",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: SourceType
    description: str = Field(min_length=1)
    missing: Missing = "keep"
    impute: str | None = Field(default=None, description="value used when missing: impute")
    impute_method: str | None = Field(default=None, description="how the value was chosen")
    code: str | None = Field(default=None, description="code domain mapped by conf/sources codes")
    lookup: Literal["supplier", "material"] | None = None
    unit_of: list[str] = Field(default_factory=list, description="quantities in this unit")
    price_per: list[str] = Field(default_factory=list, description="prices per this unit")
    unit: str | None = None
    classification: str = "internal"

    @model_validator(mode="after")
    def _impute_needs_value(self) -> Column:
        if self.missing == "impute" and (self.impute is None or not self.impute_method):
            raise ValueError("missing: impute needs `impute` (the value) and `impute_method`")
        return self

    @property
    def is_unit(self) -> bool:
        """A unit of measure: mapped to the canonical unit (`units` in conf/sources), its
        quantities and prices converted. `unit_of: []` marks a unit with nothing to convert."""
        return "unit_of" in self.model_fields_set or bool(self.unit_of or self.price_per)

    @property
    def group_id_column(self) -> str:
        return f"{self.name.removesuffix('_code')}_group_id"


class Money(_Strict):
    currency: str = Field(description="currency column, or `plant` for the plant's currency")
    fx_date: str = Field(description="date column whose FX rate converts the amounts")
    amounts: list[str] = Field(min_length=1)


MOVED_TO_QUALITY = {"anomalies": "anomaly", "cross_checks": "cross_check"}


class EntitySpec(_Strict):
    """How one source entity becomes the canonical `silver.<entity>` table."""

    entity: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    source: str
    description: str
    owner: str
    keys: list[str] = Field(min_length=1)
    sequence: str | None = None
    partition_date: str | None = None
    money: Money | None = None
    columns: list[Column] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        for key, check in MOVED_TO_QUALITY.items():
            if isinstance(data, dict) and key in data:
                raise ValueError(
                    f"{key} are quality rules now: declare each in conf/quality/<entity>.yaml "
                    f"as a rule with check: {check} and action: flag, with plant_id in its "
                    f"{'by' if check == 'anomaly' else 'keys'} as before (docs/quality-rules.md)"
                )
        return data

    @model_validator(mode="after")
    def _references(self) -> EntitySpec:
        names = {c.name for c in self.columns}
        refs = [*self.keys, *([self.sequence] if self.sequence else [])]
        refs += [self.partition_date] if self.partition_date else []
        for c in self.columns:
            refs += c.unit_of + c.price_per
        if self.money:
            refs += [self.money.fx_date, *self.money.amounts]
            refs += [self.money.currency] if self.money.currency != "plant" else []
        unknown = sorted({r for r in refs if r not in names})
        if unknown:
            raise ValueError(f"names columns that are not declared: {', '.join(unknown)}")
        return self

    @property
    def table(self) -> str:
        return f"silver.{self.entity}"

    @property
    def quarantine_table(self) -> str:
        return f"silver.{self.entity}__quarantine"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def snapshot(self) -> bool:
        return self.partition_date is None

    def output_columns(self) -> list[ColumnSpec]:
        """The canonical table's columns, in order (see docs/data-dictionary.md)."""
        out = [_col("plant_id", "string", "Group plant id", "public", nullable=False)]
        if self.partition_date:
            out.append(
                _col(
                    "partition_month",
                    "string",
                    f"Month (yyyy-MM) of {self.partition_date}: the partition",
                    "public",
                    False,
                )
            )
        quantities = {q for c in self.columns for q in c.unit_of}
        prices = {p for c in self.columns for p in c.price_per}
        amounts = set(self.money.amounts) if self.money else set()
        for c in self.columns:
            out += _outputs(c, c.name in self.keys, c.name in quantities, c.name in prices)
            if c.name in amounts:
                out.append(
                    _col(
                        f"{c.name}_group",
                        DECIMAL,
                        f"{c.description}, in group currency",
                        c.classification,
                        unit="group currency",
                    )
                )
        if self.money:
            if self.money.currency == "plant":
                out.append(
                    _col(
                        "currency", "string", "ISO currency of the amounts (the plant's)", "public"
                    )
                )
            out.append(
                _col(
                    "fx_rate_to_group",
                    "decimal(18,8)",
                    f"Group currency per unit of currency, on {self.money.fx_date}",
                    "public",
                )
            )
        out += [
            _col(
                "_seq",
                "bigint",
                "Order of versions: record version, delivery date, file version",
                "public",
                False,
            ),
            _col(
                "_flags",
                "array<string>",
                "Marks kept with the row: quality rules with action flag (anomalies, "
                "cross-checks), missing and imputed values, unmatched master data, late FX rates",
                "public",
            ),
            _col(
                "_dq_warnings",
                "array<string>",
                "Quality rules with action warn that the row failed",
                "public",
            ),
            _col("_delivery_date", "date", "Delivery the row came from", "public", False),
            _col(
                "_source_file",
                "string",
                "File the row came from (landing-relative path)",
                "public",
                False,
            ),
            _col("_file_row", "int", "Row number in that file", "public", False),
            _col("_run_id", "string", "Run that wrote the row", "public", False),
        ]
        return out

    def table_spec(self) -> TableSpec:
        # `partition_month` partitions but is not part of the key: a correction that moves a row's
        # date to another month replaces the stored row there (TableIO.upsert)
        keys = ["plant_id", *self.keys]
        return TableSpec(
            name=self.table,
            layer="silver",
            description=self.description,
            owner=self.owner,
            columns=self.output_columns(),
            partition_by=["plant_id", *(["partition_month"] if self.partition_date else [])],
            business_keys=keys,
            sequence_column="_seq",
        )

    def quarantine_spec(self) -> TableSpec:
        return TableSpec(
            name=self.quarantine_table,
            layer="silver",
            description=f"Rows of {self.source} kept out of {self.table}, with the rule and reason",
            owner=self.owner,
            partition_by=["plant_id", "delivery_month"],
            columns=[
                _col("plant_id", "string", "Group plant id", "public", False),
                _col("_delivery_date", "date", "Delivery the row came from", "public", False),
                _col(
                    "delivery_month",
                    "string",
                    "Month (yyyy-MM) of _delivery_date: the partition",
                    "public",
                    False,
                ),
                _col("_source_file", "string", "File the row came from", "public", False),
                _col("_file_row", "int", "Row number in that file", "public", False),
                _col(
                    "record",
                    "map<string,string>",
                    "The row's canonical columns as delivered text",
                    "confidential",
                ),
                _col(
                    "rule_id",
                    "string",
                    "Rule that kept the row out (conformance or a quality rule id)",
                    "public",
                    False,
                ),
                _col("reason", "string", "Why, naming the column and value", "confidential", False),
                _col("_run_id", "string", "Run that quarantined the row", "public", False),
            ],
        )


def _col(
    name: str,
    type_: str,
    description: str,
    classification: str = "internal",
    nullable: bool = True,
    unit: str | None = None,
) -> ColumnSpec:
    return ColumnSpec(
        name=name,
        type=type_,
        description=description,
        classification=classification,
        nullable=nullable,
        unit=unit,
    )


def _outputs(c: Column, key: bool, quantity: bool, price: bool) -> list[ColumnSpec]:
    nullable = not key and c.missing != "reject"
    kind = _SPARK_TYPE[c.type]
    if c.type == "datetime":
        return [
            _col(c.name, "timestamp", f"{c.description} (UTC)", c.classification, nullable),
            _col(
                f"{c.name}_local_date",
                "date",
                f"{c.description}: plant-local date",
                c.classification,
                nullable,
            ),
        ]
    if c.code:
        return [
            _col(
                c.name,
                "string",
                f"{c.description} (group code, domain {c.code})",
                c.classification,
                nullable,
            ),
            _col(
                f"{c.name}_local",
                "string",
                f"{c.description} as the plant codes it",
                c.classification,
            ),
        ]
    if c.is_unit:
        return [
            _col(c.name, "string", f"{c.description}: canonical unit", c.classification, nullable),
            _col(f"{c.name}_source", "string", "Unit as delivered", c.classification),
        ]
    if quantity or price:
        what = "in the canonical unit" if quantity else "per canonical unit"
        return [
            _col(c.name, kind, f"{c.description}, {what}", c.classification, nullable, unit=c.unit),
            _col(f"{c.name}_source", kind, f"{c.description}, as delivered", c.classification),
        ]
    out = [_col(c.name, kind, c.description, c.classification, nullable, unit=c.unit)]
    if c.lookup:
        out.append(
            _col(
                c.group_id_column,
                "string",
                f"Group {c.lookup} id of {c.name} (master-data match)",
                "public",
            )
        )
    return out


def load_specs(folder: Path) -> dict[str, EntitySpec]:
    """Every entity spec in `folder`, keyed by entity name (sorted)."""
    specs: dict[str, EntitySpec] = {}
    for path in sorted(folder.glob("*.yaml")):
        data: dict[str, Any] = read_yaml(path)
        try:
            spec = EntitySpec.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, [(path, data)])) from None
        if path.stem != spec.entity:
            raise ConfigError(f"{path}: entity {spec.entity!r} must match the file name")
        specs[spec.entity] = spec
    if not specs:
        raise ConfigError(f"{folder}: no silver entity specs (*.yaml) found")
    return specs


def full_registry(conf_dir: Path) -> Registry:
    """`conf/tables` plus the silver tables and quarantines derived from `conf/silver`."""
    declared = Registry.load(conf_dir / "tables")
    derived = []
    silver_dir = conf_dir / "silver"
    if silver_dir.is_dir():
        for spec in load_specs(silver_dir).values():
            derived += [spec.table_spec(), spec.quarantine_spec()]
    return Registry([*declared, *derived])


def check_source_mappings(
    plants: Mapping[str, PlantSource],
    specs: Mapping[str, EntitySpec],
    origin: Mapping[str, Path] | Path | None = None,
) -> None:
    """Strict checks of every mapping against the silver model, before anything runs: each
    entity feeds a silver table, each target is a column of it (a mapping to a column that
    does not exist would leave the real column empty), each key and mandatory column has a
    source, formats and number extraction apply to columns of the right type. One error
    lists every problem with its file, line and field."""
    by_source = {spec.source: spec for spec in specs.values()}
    problems: list[str] = []
    for plant_id, source in plants.items():
        if isinstance(origin, Path):  # the sources folder: <PLANT>.yaml (load_sources checks)
            path = origin / f"{plant_id}.yaml"
        else:
            path = (origin or {}).get(plant_id, Path(f"conf/sources/{plant_id}.yaml"))

        def problem(location: list[str | int], text: str, path: Path = path) -> None:
            line = key_line(path, location)
            at = f"{path}: line {line}" if line else f"{path}"
            problems.append(f"{at}: field '{'.'.join(map(str, location))}': {text}")

        for name, entity in source.entities.items():
            spec = by_source.get(name)
            if spec is None:
                problem(
                    ["entities", name],
                    f"no silver entity reads {name!r}; known sources: "
                    f"{', '.join(sorted(by_source))}",
                )
                continue
            known = {c.name: c for c in spec.columns}

            def unknown(target: str, spec: EntitySpec = spec, known: dict = known) -> str:  # type: ignore[type-arg]
                close = difflib.get_close_matches(target, list(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                return (
                    f"{spec.table} has no column {target!r}{hint}; its columns: {', '.join(known)}"
                )

            for local, targets in entity.columns.items():
                for target in as_list(targets):
                    if target not in known:
                        problem(["entities", name, "columns", local], unknown(target))
            for target, rule in entity.fields.items():
                where: list[str | int] = ["entities", name, "fields", target]
                column = known.get(target)
                if column is None:
                    problem(where, unknown(target))
                    continue
                if rule.formats and column.type not in ("date", "datetime"):
                    problem(where, f"formats apply to dates; {target} is {column.type}")
                if rule.number and column.type not in ("int", "decimal"):
                    problem(where, f"number: extract applies to numbers; {target} is {column.type}")
                if (rule.formats or rule.number) and target not in entity.sourced():
                    problem(where, f"no local column, value or expr feeds {target}")
            needed = [c.name for c in spec.columns if c.name in spec.keys or c.missing == "reject"]
            absent = [c for c in needed if c not in entity.sourced()]
            if absent:
                problem(
                    ["entities", name, "columns"],
                    f"maps nothing to {', '.join(absent)}, required by {spec.table} "
                    f"(conf/silver/{spec.entity}.yaml: business key or missing: reject)",
                )
    if problems:
        raise ConfigError("invalid source mapping:\n  " + "\n  ".join(problems))
