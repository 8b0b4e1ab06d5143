"""The group metric dictionary: one definition per KPI (conf/metrics), compiled to Spark.

A metric is data: which fact it is computed from, its numerator and denominator (or one
aggregate expression) in Spark SQL over the fact's columns, filters, parameters, the
dimensions it may be cut by, its unit, direction and alert thresholds. Variants are named
metrics of their own (`otd.emea`), never a silent change of the canonical one: other
parameters or filters for the rows they `applies_to` (plants by region or id, suppliers by
group id, purchase orders by plant and number; see Scope), reported next to the canonical
value under their own id.

>>> d = load_dictionary(Path("conf"))                                         # doctest: +SKIP
>>> compute(d.resolve_many(["otd", "otif"]), facts["receipt_lines"], ["plant_id", "month"])

Every definition carries a version. `conf/metrics/versions.lock` records the fingerprint of
each released (id, version); changing a formula without a new version is refused at load,
so a gold row's `metric_version` always names one formula. Rows computed with an older
version stay readable through Delta time travel of the gold table.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pyspark.sql import functions as F

from medlake.config import ConfigError, format_validation_error, read_yaml

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

LOCK_FILE = "versions.lock"
_ID = r"[a-z][a-z0-9_]*"
Direction = Literal["higher_is_better", "lower_is_better", "neutral"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Names(_Strict):
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class Thresholds(_Strict):
    """Alert levels on the metric's value; the direction says which side is bad."""

    warning: float | None = None
    critical: float | None = None


class Change(_Strict):
    version: int = Field(ge=1)
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    note: str = Field(min_length=1)


SCOPE_KEYS = ("regions", "plants", "suppliers", "purchase_orders")
_SCOPE_HINTS = {
    "contracts": "the facts carry no contract column; scope a supply agreement by its "
    "purchase_orders",
    "supplier_codes": "the facts carry the group supplier id, not the plant's supplier code; "
    "list group ids under suppliers (silver.supplier_xref maps codes to them)",
}


class Scope(_Strict):
    """Where a variant applies: the rows of some plants, suppliers or purchase orders.

    `regions` and `plants` pick plants (a plant in either list; every plant when both are
    empty); `suppliers` (supplier_group_id values) and `purchase_orders` (plant id -> the
    plant's PO numbers) narrow those rows further: a row is in scope when it passes every
    key given. So `{plants: [SU], suppliers: [SUP-3f9a1c2b4d]}` is that supplier's lines at Suzhou.
    """

    regions: list[str] = Field(default_factory=list)
    plants: list[str] = Field(default_factory=list)
    suppliers: list[str] = Field(
        default_factory=list, description="supplier_group_id values (silver.supplier_xref)"
    )
    purchase_orders: dict[str, list[str]] = Field(
        default_factory=dict, description="plant id -> its purchase-order numbers (po_number)"
    )

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [str(k) for k in data if k not in SCOPE_KEYS]
            if unknown:
                hints = "".join(f"; {k}: {_SCOPE_HINTS[k]}" for k in unknown if k in _SCOPE_HINTS)
                raise ValueError(
                    f"applies_to has unknown key {', '.join(unknown)}; it takes "
                    f"{', '.join(SCOPE_KEYS)}{hints}"
                )
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> Scope:
        if not (self.regions or self.plants or self.suppliers or self.purchase_orders):
            raise ValueError(f"applies_to needs at least one of {', '.join(SCOPE_KEYS)}")
        given = {
            "regions": self.regions,
            "plants": self.plants,
            "suppliers": self.suppliers,
            "purchase_orders": [*self.purchase_orders, *chain(*self.purchase_orders.values())],
        }
        blank = [k for k, values in given.items() if any(not v.strip() for v in values)]
        if blank:
            raise ValueError(f"applies_to.{blank[0]} has an empty value")
        no_orders = sorted(p for p, numbers in self.purchase_orders.items() if not numbers)
        if no_orders:
            raise ValueError(f"applies_to.purchase_orders.{no_orders[0]} lists no order")
        if self.plants and not self.regions:
            outside = sorted(set(self.purchase_orders) - set(self.plants))
            if outside:
                raise ValueError(
                    f"applies_to.purchase_orders names plants outside applies_to.plants: "
                    f"{', '.join(outside)} (their orders could never be in scope)"
                )
        return self

    def columns(self) -> list[str]:
        """The fact columns the scope filter reads."""
        needed = {
            "region": bool(self.regions),
            "plant_id": bool(self.plants or self.purchase_orders),
            "supplier_group_id": bool(self.suppliers),
            "po_number": bool(self.purchase_orders),
        }
        return [c for c, used in needed.items() if used]

    def fingerprint_body(self) -> dict[str, Any]:
        """What the fingerprint reads: regions and plants always (as before suppliers and
        purchase orders existed, so released fingerprints stay), the other keys when set."""
        body = self.model_dump()
        return {k: v for k, v in body.items() if k in ("regions", "plants") or v}


class Variant(_Strict):
    """A named variant: the canonical metric with other parameters or filters where it
    `applies_to` (some regions, plants, suppliers or purchase orders)."""

    id: str = Field(pattern=rf"^{_ID}\.{_ID}$")
    version: int = Field(ge=1)
    name: Names
    reason: str = Field(min_length=1)
    applies_to: Scope
    params: dict[str, float] = Field(default_factory=dict)
    filters: list[str] = Field(default_factory=list)


class MetricSpec(_Strict):
    id: str = Field(pattern=rf"^{_ID}$")
    version: int = Field(ge=1)
    status: Literal["draft", "active", "deprecated"]
    name: Names
    definition: str = Field(min_length=1)
    fact: str = Field(pattern=rf"^{_ID}$")
    numerator: str | None = None
    denominator: str | None = None
    expression: str | None = None
    filters: list[str] = Field(default_factory=list)
    params: dict[str, float] = Field(default_factory=dict)
    grain: str = Field(min_length=1, description="what one counted unit is, e.g. receipt line")
    dimensions: list[str] = Field(min_length=1)
    requires: list[str] = Field(
        default_factory=list, description="dimensions every cut must include (e.g. material)"
    )
    unit: str = Field(min_length=1)
    currency: Literal["group", "none"] = "none"
    direction: Direction
    thresholds: Thresholds = Thresholds()
    empty_denominator: Literal["null", "zero"] = "null"
    owner: str = Field(min_length=1)
    changes: list[Change] = Field(min_length=1)
    variants: list[Variant] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> MetricSpec:
        ratio = self.numerator is not None and self.denominator is not None
        single = self.expression is not None and self.numerator is None and self.denominator is None
        if not (ratio or single):
            raise ValueError("give numerator and denominator (a ratio), or expression alone")
        missing = [d for d in self.requires if d not in self.dimensions]
        if missing:
            raise ValueError(f"requires names dimensions not listed: {', '.join(missing)}")
        if not any(c.version == self.version for c in self.changes):
            raise ValueError(f"changes has no entry for version {self.version}")
        for variant in self.variants:
            if not variant.id.startswith(self.id + "."):
                raise ValueError(f"variant {variant.id!r} must be named {self.id}.<variant>")
            unknown = sorted(set(variant.params) - set(self.params))
            if unknown:
                raise ValueError(
                    f"variant {variant.id} sets parameters the metric does not have: "
                    f"{', '.join(unknown)}"
                )
            if variant.applies_to.suppliers and "supplier_group_id" not in self.dimensions:
                raise ValueError(
                    f"variant {variant.id}: applies_to.suppliers needs supplier_group_id, which "
                    f"is not a dimension of {self.id} (fact {self.fact})"
                )
        used = _placeholders([*self._texts(), *(f for v in self.variants for f in v.filters)])
        undefined = sorted(used - set(self.params))
        if undefined:
            raise ValueError(f"formula uses undefined parameters: {', '.join(undefined)}")
        return self

    def _texts(self) -> list[str]:
        return [t for t in (self.numerator, self.denominator, self.expression) if t] + list(
            self.filters
        )


class _MetricFile(_Strict):
    metrics: list[MetricSpec]


class _LockFile(_Strict):
    fingerprints: dict[str, str] = Field(default_factory=dict)

    @field_validator("fingerprints")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not re.match(rf"^{_ID}(\.{_ID})?@\d+$", k)]
        if bad:
            raise ValueError(f"keys must read <metric>@<version>: {', '.join(bad)}")
        return value


def _placeholders(texts: Iterable[str]) -> set[str]:
    names: set[str] = set()
    for text in texts:
        for _, field, _, _ in string.Formatter().parse(text):
            if field is not None:
                names.add(field)
    return names


@dataclass(frozen=True)
class Metric:
    """A canonical metric or a variant with its parameters substituted: ready to compute."""

    id: str
    version: int
    canonical: str  # the canonical metric's id (== id unless a variant)
    spec: MetricSpec
    numerator: str | None
    denominator: str | None
    expression: str | None
    filters: tuple[str, ...]
    params: Mapping[str, float]
    scope: Scope | None  # None: the canonical metric, everywhere

    @property
    def is_ratio(self) -> bool:
        return self.expression is None

    @property
    def fingerprint(self) -> str:
        """SHA-256 over what decides the numbers (not names or prose)."""
        body = {
            "fact": self.spec.fact,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "expression": self.expression,
            "filters": list(self.filters),
            "unit": self.spec.unit,
            "currency": self.spec.currency,
            "empty_denominator": self.spec.empty_denominator,
            "scope": self.scope.fingerprint_body() if self.scope else None,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def sql(self) -> str:
        """The metric as one SQL aggregate over its fact (for `metrics show` and the docs)."""
        where = " AND ".join(f"({f})" for f in self.filters)
        value = (
            f"({self.numerator}) / NULLIF({self.denominator}, 0)"
            if self.is_ratio
            else str(self.expression)
        )
        text = f"SELECT {value} AS {self.id.replace('.', '_')}\nFROM {self.spec.fact}"
        return text + (f"\nWHERE {where}" if where else "")


class MetricDictionary:
    """Every metric and variant of conf/metrics by id."""

    def __init__(self, specs: Sequence[MetricSpec], folder: Path) -> None:
        self.folder = folder
        self.specs = {s.id: s for s in specs}
        self._resolved: dict[str, Metric] = {}
        for spec in specs:
            self._resolved[spec.id] = _resolve(spec, None)
            for variant in spec.variants:
                if variant.id in self._resolved:
                    raise ConfigError(f"{folder}: metric id {variant.id!r} is declared twice")
                self._resolved[variant.id] = _resolve(spec, variant)

    def __iter__(self) -> Any:
        return iter(self._resolved.values())

    def get(self, metric_id: str) -> Metric:
        try:
            return self._resolved[metric_id]
        except KeyError:
            close = difflib.get_close_matches(metric_id, self._resolved, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"unknown metric {metric_id!r}{hint} (`lakehouse metrics list` shows all "
                f"{len(self._resolved)})"
            ) from None

    def resolve_many(self, ids: Iterable[str]) -> list[Metric]:
        return [self.get(i) for i in ids]

    def for_fact(self, fact: str, *, variants: bool = True) -> list[Metric]:
        """Active metrics of one fact, canonical first, in declaration order."""
        return [
            m
            for m in self._resolved.values()
            if m.spec.fact == fact and m.spec.status == "active" and (variants or m.scope is None)
        ]

    def versions(self, ids: Iterable[str]) -> dict[str, int]:
        return {i: self.get(i).version for i in ids}

    def fingerprints(self) -> dict[str, str]:
        return {f"{m.id}@{m.version}": m.fingerprint for m in self._resolved.values()}


def _resolve(spec: MetricSpec, variant: Variant | None) -> Metric:
    params = {**spec.params, **(variant.params if variant else {})}

    def render(text: str | None) -> str | None:
        if text is None:
            return None
        return text.format(**{k: _number(v) for k, v in params.items()})

    filters = tuple(render(f) or "" for f in [*spec.filters, *(variant.filters if variant else [])])
    if variant is not None:
        filters = (*filters, _scope_filter(variant.applies_to))
    return Metric(
        id=variant.id if variant else spec.id,
        version=variant.version if variant else spec.version,
        canonical=spec.id,
        spec=spec,
        numerator=render(spec.numerator),
        denominator=render(spec.denominator),
        expression=render(spec.expression),
        filters=filters,
        params=params,
        scope=variant.applies_to if variant else None,
    )


def _scope_filter(scope: Scope) -> str:
    """The rows a variant applies to, as SQL over the fact's columns (Scope.columns())."""
    plants = []
    if scope.regions:
        plants.append(f"region IN ({_sql_list(scope.regions)})")
    if scope.plants:
        plants.append(f"plant_id IN ({_sql_list(scope.plants)})")
    clauses = [" OR ".join(plants)] if plants else []
    if scope.suppliers:
        clauses.append(f"supplier_group_id IN ({_sql_list(scope.suppliers)})")
    if scope.purchase_orders:
        clauses.append(
            " OR ".join(
                f"(plant_id = {_sql_text(plant)} AND po_number IN ({_sql_list(numbers)}))"
                for plant, numbers in sorted(scope.purchase_orders.items())
            )
        )
    if len(clauses) == 1:
        return clauses[0]
    return " AND ".join(f"({c})" for c in clauses)


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join(_sql_text(v) for v in values)


def _sql_text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def load_dictionary(conf_dir: Path, *, check_lock: bool = True) -> MetricDictionary:
    """Read conf/metrics/*.yaml; refuse a changed formula that kept its released version."""
    folder = conf_dir / "metrics"
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{folder}: no metric definitions (*.yaml) found")
    specs: list[MetricSpec] = []
    seen: dict[str, Path] = {}
    for path in files:
        data = read_yaml(path)
        data = {k: v for k, v in data.items() if not str(k).startswith("x-")}  # YAML anchors
        try:
            parsed = _MetricFile.model_validate(data)
        except ValidationError as exc:
            message = format_validation_error(exc, [(path, data)])
            raise ConfigError(_name_metrics(message, data)) from None
        for spec in parsed.metrics:
            if spec.id in seen:
                raise ConfigError(
                    f"{path}: metric {spec.id!r} is already declared in {seen[spec.id]}"
                )
            seen[spec.id] = path
            specs.append(spec)
    dictionary = MetricDictionary(specs, folder)
    if check_lock:
        _check_lock(dictionary, folder / LOCK_FILE)
    return dictionary


def _name_metrics(message: str, data: Mapping[str, Any]) -> str:
    """`field 'metrics.0.variants.1.applies_to'` -> the same, then `(metric otd, variant
    otd.x)`: the id of the metric (and variant) each invalid field belongs to."""
    metrics = data.get("metrics")

    def entry(items: Any, index: str) -> Mapping[str, Any]:
        if isinstance(items, list) and int(index) < len(items):
            item = items[int(index)]
            if isinstance(item, Mapping):
                return item
        return {}

    def name(match: re.Match[str]) -> str:
        metric = entry(metrics, match[2])
        ids = [f"metric {metric['id']}"] if "id" in metric else []
        if match[3] is not None:
            variant = entry(metric.get("variants"), match[3])
            ids += [f"variant {variant['id']}"] if "id" in variant else []
        return f"{match[1]} ({', '.join(ids)})" if ids else match[1]

    return re.sub(r"(field 'metrics\.(\d+)(?:\.variants\.(\d+))?[^']*')", name, message)


def read_lock(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    data = read_yaml(path)
    try:
        return _LockFile.model_validate(data).fingerprints
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, [(path, data)])) from None


def _check_lock(dictionary: MetricDictionary, path: Path) -> None:
    released = read_lock(path)
    for key, fingerprint in dictionary.fingerprints().items():
        if key in released and released[key] != fingerprint:
            metric, version = key.split("@")
            raise ConfigError(
                f"{path.parent}: metric {metric} version {version} was released with another "
                f"formula (fingerprint {released[key]}, now {fingerprint}); a changed "
                f"definition needs a new version: raise `version`, add a `changes` entry and "
                f"run `lakehouse metrics lock`"
            )


def write_lock(dictionary: MetricDictionary) -> tuple[Path, list[str]]:
    """Record the fingerprints of the current versions next to the released ones."""
    path = dictionary.folder / LOCK_FILE
    released = read_lock(path)
    current = dictionary.fingerprints()
    added = sorted(k for k in current if k not in released)
    merged = dict(sorted({**released, **current}.items()))
    lines = [
        "# Fingerprints of released metric versions (`lakehouse metrics lock`). A formula that",
        "# changes under a released version is refused at load: give it a new version instead.",
        "fingerprints:",
        *(f"  {k}: {v}" for k, v in merged.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, added


# --------------------------------------------------------------------------- Spark


def compute(metrics: Sequence[Metric], fact: DataFrame, by: Sequence[str]) -> DataFrame:
    """Metric values of one fact by the dimensions `by`, one row per group and metric.

    Columns: the `by` columns, metric_id, metric_version, numerator, denominator, value,
    status (ok / warning / critical / no_data against the thresholds). Metrics sharing the
    same filters are aggregated in one pass. A ratio whose denominator is zero or missing is
    NULL (or 0 when the metric says `empty_denominator: zero`); a cut outside a metric's
    dimensions, or without the dimensions it requires, is an error.
    """
    for m in metrics:
        _check_cut(m, by, fact.columns)
    return compute_sets(metrics, fact, [list(by)]).drop("_cut")


def compute_sets(
    metrics: Sequence[Metric], fact: DataFrame, cuts: Sequence[Sequence[str]]
) -> DataFrame:
    """Like `compute` for several cuts in one aggregation (GROUPING SETS) per filter group.

    Columns: every dimension of any cut (NULL outside a row's cut), `_cut` (the index of the
    row's cut in `cuts`), then as `compute`. A metric is kept only for the cuts in its scope.
    """

    dims = sorted({d for cut in cuts for d in cut})
    absent = [d for d in dims if d not in fact.columns]
    if absent:
        raise ConfigError(f"the fact has no column {', '.join(absent)}")
    for m in metrics:
        _check_scope(m, fact.columns)
    # grouping_id(): one bit per dimension, first dimension highest, 1 = not grouped
    gid_of = {
        sum(1 << (len(dims) - 1 - i) for i, d in enumerate(dims) if d not in cut): n
        for n, cut in enumerate(cuts)
    }
    groups: dict[tuple[str, ...], list[Metric]] = {}
    for m in metrics:
        groups.setdefault(m.filters, []).append(m)
    parts = []
    for filters, members in groups.items():
        rows = fact
        for f in filters:
            rows = rows.where(f)
        aggs: list[Column] = []
        for i, m in enumerate(members):
            aggs.append(F.expr(m.numerator or m.expression or "").cast("double").alias(f"n{i}"))
            den = F.expr(m.denominator).cast("double") if m.denominator else F.lit(None)
            aggs.append(den.cast("double").alias(f"d{i}"))
        if dims:
            sets = [[F.col(d) for d in cut] for cut in cuts]
            grouped = rows.groupingSets(sets, *dims).agg(*aggs, F.grouping_id().alias("_gid"))
            cut_col = F.create_map(*[F.lit(x) for kv in gid_of.items() for x in kv])[F.col("_gid")]
        else:
            grouped, cut_col = rows.agg(*aggs), F.lit(0)
        grouped = grouped.withColumn("_cut", cut_col)
        cells = [
            F.when(
                F.col("_cut").isin(*[n for n, cut in enumerate(cuts) if in_scope(m, cut)]),
                F.struct(
                    F.lit(m.id).alias("metric_id"),
                    F.lit(m.version).alias("metric_version"),
                    F.col(f"n{i}").alias("numerator"),
                    F.col(f"d{i}").alias("denominator"),
                    _value(m, F.col(f"n{i}"), F.col(f"d{i}")).alias("value"),
                ),
            )
            for i, m in enumerate(members)
        ]
        exploded = grouped.select(*dims, "_cut", F.explode(F.array(*cells)).alias("m"))
        parts.append(exploded.where(F.col("m").isNotNull()).select(*dims, "_cut", "m.*"))
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out.withColumn("status", status_column(metrics))


def _value(m: Metric, num: Column, den: Column) -> Column:

    if not m.is_ratio:
        return num
    empty = F.lit(0.0) if m.spec.empty_denominator == "zero" else F.lit(None).cast("double")
    return F.when(den.isNull() | (den == 0), empty).otherwise(num / den)


def status_column(metrics: Sequence[Metric]) -> Column:
    """ok / warning / critical / no_data per row, from each metric's thresholds and direction."""

    status = F.when(F.col("value").isNull(), F.lit("no_data"))
    for m in metrics:
        t, d = m.spec.thresholds, m.spec.direction
        if d == "neutral" or (t.warning is None and t.critical is None):
            continue
        this = F.col("metric_id") == m.id

        def worse(limit: float, direction: Direction = d) -> Column:
            return (
                F.col("value") < limit
                if direction == "higher_is_better"
                else F.col("value") > limit
            )

        if t.critical is not None:
            status = status.when(this & worse(t.critical), F.lit("critical"))
        if t.warning is not None:
            status = status.when(this & worse(t.warning), F.lit("warning"))
    return status.otherwise(F.lit("ok"))


def _check_cut(m: Metric, by: Sequence[str], columns: Sequence[str]) -> None:
    outside = [d for d in by if d not in m.spec.dimensions]
    if outside:
        raise ConfigError(
            f"metric {m.id} cannot be cut by {', '.join(outside)}; its dimensions are "
            f"{', '.join(m.spec.dimensions)}"
        )
    missing = [d for d in m.spec.requires if d not in by]
    if missing:
        raise ConfigError(
            f"metric {m.id} is only meaningful per {', '.join(m.spec.requires)}: add it to the cut"
        )
    absent = [d for d in by if d not in columns]
    if absent:
        raise ConfigError(f"fact {m.spec.fact} has no column {', '.join(absent)}")


def _check_scope(m: Metric, columns: Sequence[str]) -> None:
    """A variant's applies_to must name columns its fact has (suppliers: supplier_group_id,
    purchase_orders: po_number)."""
    absent = [c for c in (m.scope.columns() if m.scope else []) if c not in columns]
    if absent:
        raise ConfigError(
            f"metric {m.id}: applies_to reads {', '.join(absent)}, which fact {m.spec.fact} "
            "does not have"
        )


def in_scope(metric: Metric, by: Sequence[str]) -> bool:
    """Whether `metric` may be computed for the cut `by` (its dimensions and requirements)."""
    return all(d in metric.spec.dimensions for d in by) and all(
        r in by for r in metric.spec.requires
    )
