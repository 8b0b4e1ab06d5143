"""Per-plant source configuration (`conf/sources/<plant>.yaml`): deliveries and dialect maps."""

from __future__ import annotations

import codecs
import re
import zoneinfo
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medlake import expressions
from medlake.config import ConfigError, format_validation_error, read_yaml

FileFormat = Literal["csv", "jsonl", "parquet", "reference-rates-csv"]
ENTITY_KEY = re.compile(r"^[a-z][a-z0-9]*__[a-z][a-z0-9_]*$")
DayMonthOrder = Literal["day_first", "month_first"]
EmptyPolicy = Literal["refuse", "nothing_today"]
REGEX_MARKER = "re:"  # a missing-value marker written `re:<pattern>` matches by regular expression


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlantInfo(_Strict):
    id: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,7}$")
    name: str
    country: str = Field(pattern=r"^[A-Z]{2}$")
    region: str
    jurisdiction: str = Field(
        description="whose privacy law applies: keys are kept per jurisdiction"
    )
    timezone: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as Europe/Berlin") from None
        return value


class Delivery(_Strict):
    format: FileFormat
    encoding: str = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    decimal: Literal[".", ","] = "."
    date_format: str = Field(description="Spark datetime pattern of business dates")
    datetime_format: str = Field(description="Spark datetime pattern of plant-local timestamps")
    true_values: list[str] = Field(min_length=1)
    false_values: list[str] = Field(min_length=1)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError("unknown encoding; use a Python codec name such as gb18030") from None
        return value


class UnitMap(_Strict):
    unit: str = Field(description="canonical unit")
    factor: float = Field(gt=0, description="canonical quantity = local quantity x factor")


def day_month_order(pattern: str) -> DayMonthOrder | None:
    """Whether a numeric date pattern reads the day or the month first; None when it has no
    numeric day and month (e.g. `d-MMM-yy`: the month is a name, nothing is ambiguous)."""
    letters = re.sub(r"'[^']*'", "", pattern)  # quoted literals are not fields
    if re.search(r"M{3,}|L{3,}", letters) or "d" not in letters or "M" not in letters:
        return None
    if "y" in letters and letters.index("y") < min(letters.index("d"), letters.index("M")):
        return None  # year first (yyyy-MM-dd, yyyy/MM/dd): read year, month, day everywhere
    return "day_first" if letters.index("d") < letters.index("M") else "month_first"


class FieldRule(_Strict):
    """How one canonical column is read when it is not a plain copy of one local column."""

    value: str | None = Field(default=None, description="a constant for every row")
    expr: str | None = Field(
        default=None, description="an expression over local columns (docs/onboarding.md)"
    )
    formats: list[str] = Field(
        default_factory=list, description="date or timestamp patterns, tried in order"
    )
    order: DayMonthOrder | None = Field(
        default=None, description="how a numeric date such as 10-09-2014 is read"
    )
    number: Literal["extract"] | None = Field(
        default=None, description="take the number out of text around it (`12.5 kg` -> 12.5)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> FieldRule:
        if self.value is not None and self.expr is not None:
            raise ValueError("give either value (a constant) or expr, not both")
        orders = {o for o in map(day_month_order, self.formats) if o}
        if len(orders) > 1:
            raise ValueError(
                "the formats read numeric dates both day-first and month-first; a value such "
                "as 10-09-2014 would depend on the order of the list: keep one order"
            )
        if orders and self.order is None:
            raise ValueError(
                f"numeric day and month formats need `order: {orders.pop()}` (or the other "
                "order) so that a value such as 10-09-2014 has one stated meaning"
            )
        if orders and self.order not in orders:
            raise ValueError(
                f"order is {self.order} but the formats read {orders.pop()}: correct one of them"
            )
        if self.order and not orders:
            raise ValueError("order applies to numeric day/month formats; none is listed")
        if self.expr is not None:
            expressions.parse(self.expr)  # raises ValueError naming the problem
        return self


class EntitySource(_Strict):
    file: str = Field(min_length=1, description="file name inside the day's delivery folder")
    format: FileFormat | None = Field(
        default=None, description="this file's format when it differs from delivery.format"
    )
    decimal: Literal[".", ","] | None = Field(
        default=None, description="this file's decimal mark when it differs from delivery.decimal"
    )
    columns: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="local column -> canonical column (or a list: one column feeding several)",
    )
    fields: dict[str, FieldRule] = Field(
        default_factory=dict, description="canonical column -> constant, expression, formats"
    )
    missing: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="local column -> {marker text (or re:pattern): reason code}",
    )
    empty: EmptyPolicy = Field(
        default="refuse",
        description="a delivery with no rows: refused, or accepted as 'nothing today' "
        "(never a retraction of rows already landed)",
    )

    @model_validator(mode="after")
    def _unique_targets(self) -> EntitySource:
        targets = [t for ts in self.columns.values() for t in as_list(ts)]
        targets += [t for t, rule in self.fields.items() if rule.value is not None or rule.expr]
        dupes = sorted({t for t in targets if targets.count(t) > 1})
        if dupes:
            raise ValueError(f"several sources map to {', '.join(dupes)}")
        if not targets:
            raise ValueError("maps no column: give columns (local -> canonical) or fields")
        for local, markers in self.missing.items():
            if local not in self.local_columns:
                raise ValueError(
                    f"missing.{local}: {local!r} is not a local column this entity reads"
                )
            for marker, reason in markers.items():
                if not re.fullmatch(r"[a-z][a-z0-9_]*", reason):
                    raise ValueError(
                        f"missing.{local}.{marker}: reason {reason!r} must be a code such as "
                        "not_captured (lower case, digits, _)"
                    )
                if marker.startswith(REGEX_MARKER):
                    expressions.check_regex(
                        marker.removeprefix(REGEX_MARKER), f"missing.{local}.{marker}"
                    )
        return self

    @property
    def targets(self) -> dict[str, str]:
        """canonical column -> the local column copied into it (plain mappings only)."""
        return {t: local for local, ts in self.columns.items() for t in as_list(ts)}

    def sourced(self) -> set[str]:
        """Every canonical column this entity gives a value: mapped, constant or derived."""
        derived = {t for t, r in self.fields.items() if r.value is not None or r.expr}
        return set(self.targets) | derived

    @property
    def local_columns(self) -> tuple[str, ...]:
        """The file's columns this entity reads: mapped ones and those expressions name."""
        names = dict.fromkeys(self.columns)
        for rule in self.fields.values():
            if rule.expr:
                names.update(dict.fromkeys(expressions.columns(expressions.parse(rule.expr))))
        return tuple(names)


def as_list(targets: str | list[str]) -> list[str]:
    return [targets] if isinstance(targets, str) else list(targets)


class PlantSource(_Strict):
    """Everything that differs for one plant: how it delivers and how its codes map."""

    plant: PlantInfo
    delivery: Delivery
    units: dict[str, UnitMap] = Field(default_factory=dict)
    codes: dict[str, dict[str, str]] = Field(default_factory=dict)
    entities: dict[str, EntitySource]

    @field_validator("entities")
    @classmethod
    def _entity_keys(cls, value: dict[str, EntitySource]) -> dict[str, EntitySource]:
        bad = [k for k in value if not ENTITY_KEY.match(k)]
        if bad:
            raise ValueError(f"entity keys must look like <system>__<entity>: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _shared_files_agree(self) -> PlantSource:
        read_as: dict[str, tuple[str, str, str]] = {}
        for name, e in sorted(self.entities.items()):
            how = (e.format or self.delivery.format, e.decimal or self.delivery.decimal, name)
            first = read_as.setdefault(e.file, how)
            if first[:2] != how[:2]:
                raise ValueError(
                    f"entities {first[2]} and {name} read {e.file} but declare different "
                    "format or decimal; a file is read once, in one way"
                )
        return self

    @property
    def id(self) -> str:
        return self.plant.id

    def code_map(self, domain: str) -> dict[str, str]:
        return self.codes.get(domain, {})


def load_sources(folder: Path) -> dict[str, PlantSource]:
    """Every plant's source configuration in `folder`, keyed by plant id (sorted); jobs check
    them against the silver model too (`medlake.entities.check_source_mappings`)."""
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{folder}: no plant source configurations (*.yaml) found")
    plants: dict[str, PlantSource] = {}
    origin: dict[str, Path] = {}
    for path in files:
        # top-level `x-...` keys hold YAML anchors shared by several entities (not settings)
        data = {k: v for k, v in read_yaml(path).items() if not str(k).startswith("x-")}
        try:
            source = PlantSource.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, [(path, data)])) from None
        if source.id in plants:
            raise ConfigError(
                f"{path}: plant {source.id!r} is already configured in {origin[source.id]}"
            )
        if path.stem != source.id:
            raise ConfigError(
                f"{path}: plant id {source.id!r} must match the file name ({source.id}.yaml)"
            )
        plants[source.id] = source
        origin[source.id] = path
    return dict(sorted(plants.items()))
