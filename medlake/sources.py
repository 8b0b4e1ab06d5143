"""Per-plant source configuration (`conf/sources/<plant>.yaml`): deliveries and dialect maps."""

from __future__ import annotations

import codecs
import re
import zoneinfo
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medlake.config import ConfigError, format_validation_error, read_yaml

FileFormat = Literal["csv", "jsonl", "parquet"]
ENTITY_KEY = re.compile(r"^[a-z][a-z0-9]*__[a-z][a-z0-9_]*$")


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


class EntitySource(_Strict):
    file: str = Field(min_length=1, description="file name inside the day's delivery folder")
    columns: dict[str, str] = Field(min_length=1, description="local column -> canonical column")

    @model_validator(mode="after")
    def _unique_targets(self) -> EntitySource:
        targets = list(self.columns.values())
        dupes = sorted({t for t in targets if targets.count(t) > 1})
        if dupes:
            raise ValueError(f"several local columns map to {', '.join(dupes)}")
        return self


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

    @property
    def id(self) -> str:
        return self.plant.id

    def code_map(self, domain: str) -> dict[str, str]:
        return self.codes.get(domain, {})


def load_sources(folder: Path) -> dict[str, PlantSource]:
    """Every plant's source configuration in `folder`, keyed by plant id (sorted)."""
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{folder}: no plant source configurations (*.yaml) found")
    plants: dict[str, PlantSource] = {}
    origin: dict[str, Path] = {}
    for path in files:
        data = read_yaml(path)
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
