"""Access policies by role (`conf/governance/access.yaml`) compiled into one read plan per table."""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pyspark.sql import types as T

from medlake.config import DEFAULT_CONF_DIR, ConfigError, format_validation_error, read_yaml
from medlake.governance.classes import CLASSES_FILE, load_classes
from medlake.sources import PlantInfo, load_sources
from medlake.tables import Registry, TableSpec

ACCESS_FILE = "governance/access.yaml"
Level = Literal["clear", "masked", "denied"]
Permission = Literal["reidentify", "erase", "read_audit"]
PERMISSIONS: tuple[str, ...] = ("reidentify", "erase", "read_audit")
MASKED_TEXT = "<masked>"
PLANT_COLUMN = "plant_id"
# a group-level mart row computed over a set of plants names them here (array<string>): a role
# with a row filter reads the row only when it may read every one of them
SCOPE_COLUMN = "scope_plants"
GROUP_SCOPE = "group"

# Tables no role reads through a governed read, whatever access.yaml says: they hold values
# as delivered or in the clear (only the audited re-identification command opens a vault).
NEVER_READABLE: dict[str, str] = {
    "bronze.*": "bronze holds the data as the plants delivered it, before personal data is masked",
    "_bronze_quarantine": "it holds delivered lines as raw text, before personal data is masked",
    "_vault*": "vaults hold clear personal values; use the audited re-identification command",
}
_PATTERN = re.compile(r"^((silver|gold|bronze)\.[a-z0-9_*?\[\]]+|_[a-z0-9_*?\[\]]*)$")


class AccessDenied(PermissionError):  # noqa: N818 (reads as a verdict: `raise AccessDenied`)
    """The role may not read this table (or run this action); the message says why."""


class UnknownRoleError(ConfigError):
    """A role that `conf/governance/access.yaml` does not declare."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _table_pattern(value: str) -> str:
    if not _PATTERN.match(value):
        raise ValueError(
            f"{value!r} is not a table name or pattern; use e.g. silver.complaints, silver.*, "
            "gold.* or _audit"
        )
    for never, why in NEVER_READABLE.items():
        if fnmatch.fnmatchcase(value, never) or value == never:
            raise ValueError(f"{value!r} can never be granted: {why}")
    return value


class TableGrant(_Strict):
    """Which tables a role reads: names or glob patterns (`silver.*` is the whole layer)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    read: list[str] = Field(min_length=1)
    except_: list[str] = Field(default_factory=list, alias="except")

    @field_validator("read", "except_")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return [_table_pattern(v) for v in value]

    def grants(self, table: str) -> bool:
        def matches(patterns: list[str]) -> bool:
            return any(fnmatch.fnmatchcase(table, p) for p in patterns)

        return matches(self.read) and not matches(self.except_)


class RowFilter(_Strict):
    """Rows of the plants in any of these countries, regions or plant ids (a union)."""

    countries: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    plants: list[str] = Field(default_factory=list)

    @field_validator("countries")
    @classmethod
    def _iso_countries(cls, value: list[str]) -> list[str]:
        bad = [c for c in value if not re.fullmatch(r"[A-Z]{2}", c)]
        if bad:
            raise ValueError(f"expected ISO country codes such as CN or DE, got {bad}")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> RowFilter:
        if not (self.countries or self.regions or self.plants):
            raise ValueError("name countries, regions or plants (or write `rows: all`)")
        return self

    def admits(self, plant: PlantInfo) -> bool:
        return (
            plant.id in self.plants
            or plant.country in self.countries
            or plant.region in self.regions
        )

    def describe(self) -> str:
        parts = [
            f"{what} {', '.join(values)}"
            for what, values in (
                ("countries", self.countries),
                ("regions", self.regions),
                ("plants", self.plants),
            )
            if values
        ]
        return "; ".join(parts)


class Role(_Strict):
    description: str = Field(min_length=1)
    tables: TableGrant
    columns: dict[str, Level] = Field(description="level per column class; unlisted = denied")
    rows: Literal["all"] | RowFilter
    permissions: list[Permission] = Field(default_factory=list)

    def level(self, classification: str) -> Level:
        return self.columns.get(classification, "denied")


class _AccessFile(_Strict):
    shared_tables: list[str] = Field(default_factory=list)
    roles: dict[str, Role] = Field(min_length=1)

    @field_validator("shared_tables")
    @classmethod
    def _shared_names(cls, value: list[str]) -> list[str]:
        for name in value:
            _table_pattern(name)
            if any(ch in name for ch in "*?["):
                raise ValueError(f"{name!r}: list shared tables by exact name, not by pattern")
        return value

    @field_validator("roles")
    @classmethod
    def _role_names(cls, value: dict[str, Role]) -> dict[str, Role]:
        bad = [r for r in value if not re.fullmatch(r"[a-z][a-z0-9_]*", r)]
        if bad:
            raise ValueError(f"role names are lower_snake_case (SQL schema names): {bad}")
        return value


@dataclass(frozen=True)
class ReadPlan:
    """What one role gets from one table: the same plan drives DataFrames and SQL views."""

    table: str
    role: str
    columns: tuple[str, ...]
    select_sql: tuple[str, ...]
    where_sql: str | None
    denied: tuple[str, ...]
    masked: tuple[str, ...]

    def query(self, source: str | None = None, *, pretty: bool = False) -> str:
        """`SELECT <columns> FROM <source> [WHERE <rows>]`, reading `source` (default the table);
        `pretty` puts each column on a line of its own."""
        sep, indent = (",\n  ", "\n  ") if pretty else (", ", " ")
        clauses = [f"SELECT{indent}{sep.join(self.select_sql)}", f"FROM {source or self.table}"]
        if self.where_sql:
            clauses.append(f"WHERE {self.where_sql}")
        return ("\n" if pretty else " ").join(clauses)


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def masked_sql(name: str, data_type: T.DataType) -> str:
    """A column present with its value hidden: `'<masked>'` for strings, else a typed NULL."""
    if isinstance(data_type, T.StringType):
        return f"{_literal(MASKED_TEXT)} AS {_quote(name)}"
    return f"CAST(NULL AS {data_type.simpleString().upper()}) AS {_quote(name)}"


class AccessPolicy:
    """Roles, their levels per column class, row filters, readable tables and permissions."""

    def __init__(
        self, roles: Mapping[str, Role], shared_tables: Iterable[str] = (), *, source: str = ""
    ) -> None:
        self.roles = dict(roles)
        self.shared_tables = frozenset(shared_tables)
        self.source = source or ACCESS_FILE

    def role(self, name: str) -> Role:
        try:
            return self.roles[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.roles, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UnknownRoleError(
                f"unknown role {name!r}; {hint}roles declared in {self.source}: "
                f"{', '.join(sorted(self.roles))}"
            ) from None

    def may(self, role: str, permission: str) -> bool:
        """Whether `role` holds `permission` (reidentify, erase, read_audit)."""
        if permission not in PERMISSIONS:
            raise ValueError(
                f"unknown permission {permission!r}; expected one of {', '.join(PERMISSIONS)}"
            )
        return permission in self.role(role).permissions

    def require(self, role: str, permission: str) -> None:
        """Raise `AccessDenied` unless `role` holds `permission`."""
        if not self.may(role, permission):
            holders = sorted(r for r, spec in self.roles.items() if permission in spec.permissions)
            raise AccessDenied(
                f"role {role!r} may not {permission}; roles that may: "
                f"{', '.join(holders) or 'none'} ({self.source})"
            )

    def plan(self, role: str, table: TableSpec, plants: Mapping[str, PlantInfo]) -> ReadPlan:
        """Compile what `role` may see of `table`; `AccessDenied` when it may read nothing."""
        spec = self.role(role)
        for never, why in NEVER_READABLE.items():
            if fnmatch.fnmatchcase(table.name, never):
                raise AccessDenied(f"{table.name} is never readable through a governed read: {why}")
        if not spec.tables.grants(table.name):
            raise AccessDenied(
                f"role {role!r} may not read {table.name} (roles.{role}.tables in {self.source} "
                f"grants {', '.join(spec.tables.read)}"
                + (f" except {', '.join(spec.tables.except_)}" if spec.tables.except_ else "")
                + ")"
            )
        where = self._where(role, spec, table, plants)
        columns, select, denied, masked = [], [], [], []
        for col in table.columns:
            level = spec.level(col.classification)
            if level == "denied":
                denied.append(col.name)
                continue
            columns.append(col.name)
            if level == "masked":
                masked.append(col.name)
                select.append(masked_sql(col.name, col.data_type))
            else:
                select.append(_quote(col.name))
        if not columns:
            raise AccessDenied(
                f"role {role!r} may see no column of {table.name}: every class it holds "
                f"({', '.join(sorted({c.classification for c in table.columns}))}) is denied"
            )
        return ReadPlan(
            table=table.name,
            role=role,
            columns=tuple(columns),
            select_sql=tuple(select),
            where_sql=where,
            denied=tuple(denied),
            masked=tuple(masked),
        )

    def _where(
        self, role: str, spec: Role, table: TableSpec, plants: Mapping[str, PlantInfo]
    ) -> str | None:
        if spec.rows == "all" or table.name in self.shared_tables:
            return None
        names = {c.name for c in table.columns}
        if PLANT_COLUMN not in names and SCOPE_COLUMN not in names:
            raise AccessDenied(
                f"role {role!r} reads rows of {spec.rows.describe()} only, and {table.name} has "
                f"no {PLANT_COLUMN} or {SCOPE_COLUMN} column to filter by; it is readable only "
                f"if it carries no plant's rows and is listed under shared_tables in "
                f"{self.source}"
            )
        visible = sorted(p for p, info in plants.items() if spec.rows.admits(info))
        if not visible:
            return "FALSE"
        listed = ", ".join(_literal(p) for p in visible)
        if PLANT_COLUMN in names:
            return f"{_quote(PLANT_COLUMN)} IN ({listed})"
        # every plant the row was computed over is one the role may read
        return (
            f"size({_quote(SCOPE_COLUMN)}) > 0 AND "
            f"forall({_quote(SCOPE_COLUMN)}, p -> p IN ({listed}))"
        )

    def row_scopes(self, plants: Mapping[str, PlantInfo]) -> dict[str, tuple[str, ...]]:
        """The plant sets that group-level marts are recomputed over: `group` (every plant)
        and the plants each role with a row filter reads (roles reading the same plants share
        one), named by their plant ids joined by `+`; roles that read no plant add none."""
        scopes = {GROUP_SCOPE: tuple(sorted(plants))}
        for spec in self.roles.values():
            if spec.rows == "all":
                continue
            visible = tuple(sorted(p for p, info in plants.items() if spec.rows.admits(info)))
            if visible and visible != scopes[GROUP_SCOPE]:
                scopes.setdefault("+".join(visible), visible)
        return scopes

    def readable(self, role: str, registry: Registry, plants: Mapping[str, PlantInfo]) -> list[str]:
        """Names of the registered tables `role` may read (sorted)."""
        names = []
        for table in registry:
            try:
                self.plan(role, table, plants)
            except AccessDenied:
                continue
            names.append(table.name)
        return names

    def check(self, registry: Registry, plants: Mapping[str, PlantInfo]) -> None:
        """Exact table names, plants and regions in the policy exist (typos fail loudly)."""
        problems = []
        names = [t.name for t in registry]
        for where, listed in self._named_tables():
            for name in listed:
                if not any(ch in name for ch in "*?[") and name not in registry:
                    close = difflib.get_close_matches(name, names, n=1)
                    hint = f" (did you mean {close[0]}?)" if close else ""
                    problems.append(f"{where}: {name} is not a registered table{hint}")
        regions = {p.region for p in plants.values()}
        for role, spec in sorted(self.roles.items()):
            if spec.rows == "all":
                continue
            for plant in spec.rows.plants:
                if plant not in plants:
                    problems.append(
                        f"roles.{role}.rows.plants: {plant} is not a configured plant "
                        f"(conf/sources: {', '.join(sorted(plants))})"
                    )
            for region in spec.rows.regions:
                if region not in regions:
                    problems.append(
                        f"roles.{role}.rows.regions: no plant is in region {region} "
                        f"(regions: {', '.join(sorted(regions))})"
                    )
        if problems:
            raise ConfigError(f"{self.source}:\n  " + "\n  ".join(problems))

    def _named_tables(self) -> list[tuple[str, list[str]]]:
        out = [("shared_tables", sorted(self.shared_tables))]
        for role, spec in sorted(self.roles.items()):
            out.append((f"roles.{role}.tables.read", spec.tables.read))
            out.append((f"roles.{role}.tables.except", spec.tables.except_))
        return out


def load_access(conf_dir: Path = DEFAULT_CONF_DIR) -> AccessPolicy:
    """Load and validate `conf/governance/access.yaml` against the column classes."""
    path = conf_dir / ACCESS_FILE
    data = read_yaml(path)
    # top-level `x-...` keys hold YAML anchors shared by several roles
    data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    try:
        parsed = _AccessFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, [(path, data)])) from None
    declared = load_classes(conf_dir).classes
    problems = []
    for role, spec in parsed.roles.items():
        for name in spec.columns:
            if name not in declared:
                close = difflib.get_close_matches(name, declared, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                problems.append(
                    f"{path}: field 'roles.{role}.columns.{name}': unknown column class; "
                    f"{hint}declared in {conf_dir / CLASSES_FILE}: {', '.join(sorted(declared))}"
                )
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return AccessPolicy(parsed.roles, parsed.shared_tables, source=str(path))


def load_plants(conf_dir: Path = DEFAULT_CONF_DIR) -> dict[str, PlantInfo]:
    """Plant id -> country, region and the rest, from `conf/sources`."""
    return {pid: source.plant for pid, source in load_sources(conf_dir / "sources").items()}
