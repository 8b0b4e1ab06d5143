"""Column classes, their masking operators and the jurisdictions (conf/governance/classes.yaml)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medlake.config import DEFAULT_CONF_DIR, ConfigError, format_validation_error, read_yaml
from medlake.tables import ColumnSpec, Registry

OperatorName = Literal["pseudonym", "partial_mask", "redact", "generalise", "drop", "detect"]
CLASSES_FILE = "governance/classes.yaml"
_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Masking(_Strict):
    operator: OperatorName
    params: dict[str, Any] = Field(default_factory=dict)


class ColumnClass(_Strict):
    sensitivity: int = Field(ge=0, le=4)
    description: str = Field(min_length=1)
    entity: str | None = None
    operator: OperatorName | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class Jurisdiction(_Strict):
    law: str
    countries: list[str] = Field(min_length=1)


class Classes(_Strict):
    classes: dict[str, ColumnClass]
    free_text_entities: dict[str, Masking]
    jurisdictions: dict[str, Jurisdiction]

    @model_validator(mode="after")
    def _consistent(self) -> Classes:
        for name, cls in self.classes.items():
            if name.startswith("pii.") and cls.operator in (None, "detect"):
                raise ValueError(f"classes.{name}: personal data needs a masking operator")
        for entity, masking in self.free_text_entities.items():
            if masking.operator == "detect":
                raise ValueError(f"free_text_entities.{entity}: 'detect' is for columns only")
        seen: dict[str, str] = {}
        for name, jur in self.jurisdictions.items():
            for country in jur.countries:
                if country in seen:
                    raise ValueError(
                        f"jurisdictions: {country} is in both {seen[country]} and {name}"
                    )
                seen[country] = name
        return self

    def get(self, name: str) -> ColumnClass:
        try:
            return self.classes[name]
        except KeyError:
            raise ConfigError(
                f"{CLASSES_FILE}: column class {name!r} is not declared "
                f"(declared: {', '.join(sorted(self.classes))})"
            ) from None

    def jurisdiction_of(self, country: str) -> str:
        for name, jur in self.jurisdictions.items():
            if country in jur.countries:
                return name
        raise ConfigError(
            f"{CLASSES_FILE}: country {country!r} belongs to no jurisdiction; add it to one "
            "under `jurisdictions` (its pseudonym key and vault follow from that)"
        )

    def personal(self, classification: str) -> bool:
        """Whether silver must mask a column of this class before writing it."""
        return self.get(classification).operator is not None

    def check(self, registry: Registry) -> None:
        """Every column of every registered table carries a declared class."""
        unknown = sorted(
            {
                f"{t.name}.{c.name} ({c.classification})"
                for t in registry
                for c in t.columns
                if c.classification not in self.classes
            }
        )
        if unknown:
            raise ConfigError(
                f"{CLASSES_FILE}: columns use undeclared classes: {', '.join(unknown[:10])}"
            )
        mismatched = sorted(
            f"{t.name}.{c.name} ({c.type}, {c.classification}: {problem})"
            for t in registry
            for c in t.columns
            if c.classification in self.classes
            and (problem := _type_problem(self.classes[c.classification], c.type))
        )
        if mismatched:
            raise ConfigError(
                f"{CLASSES_FILE}: operators that do not fit the column type: "
                + "; ".join(mismatched[:10])
            )
        missing = [vault_table(j) for j in self.jurisdictions if vault_table(j) not in registry]
        if missing:
            raise ConfigError(
                f"{CLASSES_FILE}: no vault table declared for {', '.join(missing)}; declare "
                "one per jurisdiction (see conf/tables/governance.yaml)"
            )


def _type_problem(cls: ColumnClass, column_type: str) -> str | None:
    """Why the class's operator cannot mask a column of this type (None: it can)."""
    if cls.operator in ("pseudonym", "partial_mask", "redact", "detect"):
        return None if column_type == "string" else f"{cls.operator} needs a string column"
    if cls.operator == "generalise":
        keep = cls.params.get("keep", "year")
        if keep == "year":
            ok = column_type in ("date", "timestamp")
            return None if ok else "generalise to a year needs a date or timestamp column"
        if not isinstance(keep, int) or column_type != "string":
            return "generalise with keep: N needs an integer N and a string column"
    return None


def vault_table(jurisdiction: str) -> str:
    """The restricted table that keeps the clear values behind one jurisdiction's tokens."""
    return f"_vault_{jurisdiction}"


def _load(model: type[_M], path: Path) -> _M:
    """One YAML file as `model`; every problem is a `ConfigError` naming file and field."""
    data = read_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, [(path, data)])) from None


def load_classes(conf_dir: Path = DEFAULT_CONF_DIR) -> Classes:
    return _load(Classes, conf_dir / CLASSES_FILE)


def plant_jurisdictions(
    classes: Classes, countries: Mapping[str, str], plants: Iterable[str] | None = None
) -> dict[str, str]:
    """plant id -> jurisdiction, from each plant's country (conf/sources)."""
    wanted = set(countries if plants is None else plants)
    return {p: classes.jurisdiction_of(c) for p, c in sorted(countries.items()) if p in wanted}


# --- class review: names and units that look commercial or personal ---------------------------

DECISIONS_FILE = "governance/class_decisions.yaml"
COMMERCIAL = re.compile(
    r"price|cost|margin|amount|revenue|spend|payment|bank|iban|contract|discount|salary|"
    r"invoice|terms",
    re.IGNORECASE,
)
PERSONAL = re.compile(
    r"(^|_)(name|phone|email|contact|address|birth|passport|national|street|postcode|zip)(_|$)",
    re.IGNORECASE,
)
MONEY_UNIT = re.compile(r"EUR|USD|CNY|currency", re.IGNORECASE)
OPEN_CLASSES = ("public", "internal")


class ClassDecisions(_Strict):
    """Reviewed exceptions: `table.column` -> why its open class is right."""

    decisions: dict[str, str] = Field(default_factory=dict)


def load_class_decisions(conf_dir: Path = DEFAULT_CONF_DIR) -> ClassDecisions:
    return _load(ClassDecisions, conf_dir / DECISIONS_FILE)


def looks_sensitive(column: ColumnSpec) -> str | None:
    """Why a column looks commercial or personal (its name, or a money unit), else None."""
    if COMMERCIAL.search(column.name):
        return "its name looks commercial"
    if column.unit and MONEY_UNIT.search(column.unit):
        return f"its unit {column.unit!r} is money"
    if PERSONAL.search(column.name):
        return "its name looks personal"
    return None


def review_classes(registry: Registry, decisions: ClassDecisions) -> list[str]:
    """Columns that look commercial or personal but are classed public or internal without a
    reviewed decision, and decisions that no longer name such a column."""
    problems, open_sensitive = [], set()
    for table in registry:
        for column in table.columns:
            why = looks_sensitive(column)
            if why is None or column.classification not in OPEN_CLASSES:
                continue
            key = f"{table.name}.{column.name}"
            open_sensitive.add(key)
            if not decisions.decisions.get(key, "").strip():
                problems.append(
                    f"{key} is classed {column.classification} but {why}: class it "
                    f"confidential or personal, or record why in {DECISIONS_FILE}"
                )
    for key in sorted(set(decisions.decisions) - open_sensitive):
        problems.append(
            f"{DECISIONS_FILE}: {key} is no longer an open column that looks "
            "commercial or personal; remove the decision"
        )
    return problems
