"""Data-quality rules for silver tables: declared in YAML, evaluated on a DataFrame in one pass.

>>> rules = load_rules(Path("conf/quality/purchase_orders.yaml"))  # doctest: +SKIP
>>> outcome = evaluate(df, rules, logical_date=day, refs={"silver.suppliers": s})  # doctest: +SKIP
>>> with outcome:  # writes read the cached evaluation, then it is released  # doctest: +SKIP
...     io.append("silver.purchase_orders", outcome.kept, ctx=ctx)
...     io.append("silver.purchase_orders__quarantine", outcome.quarantined, ctx=ctx)

Semantics in plain words:

- Only `not_null` looks at NULLs. Every other row-level check lets a NULL pass (as a SQL CHECK
  constraint does), except an `expression` rule with `null_fails: true`.
- `quarantine` beats `drop`: a row failing both kinds goes to quarantine, once, under the first
  failing quarantine rule in file order, with the reasons of every failing quarantine rule.
- `warn`, `flag` and `fail` never remove a row; `warn` lists the rule id in `_dq_warnings`,
  `flag` adds the rule's flag (for example `anomaly:value:robust_z`) to the row's `_flags`,
  kept with the row for anyone who reads it; `fail` rules make
  `QualityOutcome.failed_gates` non-empty.
- `anomaly` (robust z-score within a group of the checked rows) and `cross_check` (a row that
  disagrees with its partner row in another table) are row-level rules like the others, so
  every reason a row is quarantined, dropped, warned or flagged is declared in one rule file.
- `freshness` and `volume` judge the whole table (action `warn` or `fail` only); `unique` judges
  keys (rows with a NULL key column are not compared) and may quarantine every duplicated row.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from operator import or_
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from medlake.config import ConfigError, format_validation_error, read_yaml

Action = Literal["warn", "flag", "drop", "quarantine", "fail"]
ColumnName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Bound = int | float | dt.datetime | dt.date

SILVER_TABLE = r"^silver\.[a-z][a-z0-9_]*$"
WARNINGS, RULE_ID, REASON, FLAGS = "_dq_warnings", "_rule_id", "_reason", "_flags"
_STATUS = "__dq_status"
_TIME_TYPES = (T.DateType, T.TimestampType, T.TimestampNTZType)
_CONSEQUENCE = {
    "warn": "kept with a warning",
    "flag": "kept and flagged",
    "drop": "dropped",
    "quarantine": "quarantined",
    "fail": "the quality gate fails",
}


class BaseRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    check: str
    action: Action
    description: str | None = None
    flag: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_:.-]*$")

    @model_validator(mode="after")
    def _flag_with_action(self) -> BaseRule:
        if self.flag is not None and self.action != "flag":
            raise ValueError(f"flag {self.flag!r} is given, so action must be 'flag'")
        return self

    @property
    def checked_columns(self) -> tuple[str, ...]:
        """Columns of the checked table that the rule reads (checked before evaluating)."""
        column = getattr(self, "column", None)
        return (column,) if column else tuple(getattr(self, "columns", ()))

    @property
    def flag_text(self) -> str:
        """What action `flag` adds to a failing row's `_flags`: `flag`, else the rule id."""
        return self.flag or self.id


class NotNullRule(BaseRule):
    """Fails a row where any of `columns` is NULL."""

    check: Literal["not_null"] = "not_null"
    columns: list[ColumnName] = Field(min_length=1)


class RangeRule(BaseRule):
    """Fails a row whose non-NULL `column` lies outside [min, max] (bounds optional)."""

    check: Literal["range"] = "range"
    column: ColumnName
    min: Bound | None = None
    max: Bound | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> RangeRule:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is None or self.max is None:
            return self
        try:
            inverted = self.min > self.max  # type: ignore[operator]
        except TypeError:
            raise ValueError("min and max must both be numbers or both be dates") from None
        if inverted:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class AllowedValuesRule(BaseRule):
    """Fails a row whose non-NULL `column` is not one of `values`."""

    check: Literal["allowed_values"] = "allowed_values"
    column: ColumnName
    values: list[bool | int | float | str] = Field(min_length=1)


class AnomalyRule(BaseRule):
    """Fails a row whose non-NULL `column` lies more than `threshold` robust z-scores from the
    median of its group (`by`): |x - median| / (1.4826 * MAD). A group whose MAD is 0 (half or
    more of its values equal) flags nothing. The statistics are those of the checked rows."""

    check: Literal["anomaly"] = "anomaly"
    column: ColumnName
    by: list[ColumnName] = Field(default_factory=list)
    method: Literal["robust_z"] = "robust_z"
    threshold: float = Field(gt=0)

    @property
    def checked_columns(self) -> tuple[str, ...]:
        return (self.column, *self.by)

    @property
    def flag_text(self) -> str:
        return self.flag or f"anomaly:{self.column}:{self.method}"


class CrossCheckRule(BaseRule):
    """Fails a row that disagrees with its partner row in `ref_table`: the rows are paired by
    `keys` (this table's column -> the reference's column), and `expr` (Spark SQL, the
    partner's columns named `ref_<column>`) is true when they disagree. A row without a
    partner, or where `expr` is NULL, passes."""

    check: Literal["cross_check"] = "cross_check"
    ref_table: str = Field(min_length=1)
    keys: dict[ColumnName, ColumnName] = Field(min_length=1)
    expr: str = Field(min_length=1)

    @property
    def checked_columns(self) -> tuple[str, ...]:
        return tuple(self.keys)

    @property
    def ref_columns(self) -> list[str]:
        """The reference's columns the check reads: its keys and the `ref_<c>` in `expr`."""
        named = re.findall(r"\bref_([A-Za-z_][A-Za-z0-9_]*)", self.expr)
        return list(dict.fromkeys([*self.keys.values(), *named]))


class UniqueRule(BaseRule):
    """Fails every row whose key (`columns`, none NULL) occurs more than once."""

    check: Literal["unique"] = "unique"
    columns: list[ColumnName] = Field(min_length=1)
    action: Literal["warn", "quarantine", "fail"]


class ReferentialRule(BaseRule):
    """Fails a row whose non-NULL `column` is absent from `ref_table`.`ref_column`; with
    `same`, from the reference's rows that agree on those columns too (for example
    `same: [plant_id]`: plant-local codes are looked up in the same plant's master)."""

    check: Literal["referential"] = "referential"
    column: ColumnName
    ref_table: str = Field(min_length=1)
    ref_column: ColumnName
    same: list[ColumnName] = Field(default_factory=list)

    @property
    def checked_columns(self) -> tuple[str, ...]:
        return (self.column, *self.same)


class FreshnessRule(BaseRule):
    """Table-level: the newest `column` value is at most `max_age_days` before the logical date."""

    check: Literal["freshness"] = "freshness"
    column: ColumnName
    max_age_days: int = Field(ge=0)
    action: Literal["warn", "fail"]


class VolumeRule(BaseRule):
    """Table-level: rows this run / mean rows of the last `trailing_runs` runs is within bounds."""

    check: Literal["volume"] = "volume"
    min_ratio: float = Field(default=0.0, ge=0)
    max_ratio: float | None = Field(default=None, gt=0)
    trailing_runs: int = Field(default=7, ge=1)
    action: Literal["warn", "fail"]

    @model_validator(mode="after")
    def _ratios(self) -> VolumeRule:
        if self.max_ratio is not None and self.min_ratio > self.max_ratio:
            raise ValueError(f"min_ratio {self.min_ratio} is greater than max_ratio")
        return self


class ExpressionRule(BaseRule):
    """Fails a row where the Spark SQL boolean `expr` is false (NULL fails only if `null_fails`)."""

    check: Literal["expression"] = "expression"
    expr: str = Field(min_length=1)
    null_fails: bool = False


Rule: TypeAlias = Annotated[
    NotNullRule
    | RangeRule
    | AllowedValuesRule
    | UniqueRule
    | ReferentialRule
    | FreshnessRule
    | VolumeRule
    | ExpressionRule
    | AnomalyRule
    | CrossCheckRule,
    Field(discriminator="check"),
]
CHECKS: dict[str, type[BaseRule]] = {
    "not_null": NotNullRule,
    "range": RangeRule,
    "allowed_values": AllowedValuesRule,
    "unique": UniqueRule,
    "referential": ReferentialRule,
    "freshness": FreshnessRule,
    "volume": VolumeRule,
    "expression": ExpressionRule,
    "anomaly": AnomalyRule,
    "cross_check": CrossCheckRule,
}
REFERENCING = (ReferentialRule, CrossCheckRule)  # rules that read another table


def _duplicate_ids(rules: Sequence[BaseRule]) -> str | None:
    ids = [rule.id for rule in rules]
    for index, rule_id in enumerate(ids):
        if rule_id in ids[:index]:
            return f"rule id {rule_id!r} is used by rules[{ids.index(rule_id)}] and rules[{index}]"
    return None


class RuleSet(BaseModel):
    """The rules of one silver table, in file order; `source` is the file they came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(pattern=SILVER_TABLE)
    rules: list[Rule] = Field(min_length=1)
    source: Path | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        if problem := _duplicate_ids(self.rules):
            raise ValueError(problem)
        return self

    @property
    def origin(self) -> str:
        return str(self.source or self.table)


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: str = Field(pattern=SILVER_TABLE)
    rules: list[dict[str, Any]] = Field(min_length=1)


def _fields_hint(model: type[BaseRule]) -> str:
    fields = model.model_fields
    required = [name for name, info in fields.items() if info.is_required()]
    optional = [name for name, info in fields.items() if not info.is_required() and name != "check"]
    actions = ", ".join(get_args(fields["action"].annotation))
    return (
        f"hint: a {fields['check'].default!r} rule needs {', '.join(required)}; "
        f"optional: {', '.join(optional)}; action is one of: {actions}"
    )


def _parse_rule(path: Path, index: int, raw: dict[str, Any]) -> BaseRule:
    where = (
        f"{path}: rule {raw['id']!r} (rules[{index}])" if "id" in raw else f"{path}: rules[{index}]"
    )
    known = ", ".join(CHECKS)
    if "check" not in raw:
        raise ConfigError(f"{where}: field 'check' is missing; set it to one of: {known}")
    model = CHECKS.get(str(raw["check"]))
    if model is None:
        raise ConfigError(f"{where}: unknown check {raw['check']!r}; use one of: {known}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        message = format_validation_error(exc, [(where, raw)])
        raise ConfigError(f"{message}\n  {_fields_hint(model)}") from None


def load_rules(path: Path) -> RuleSet:
    """Load and validate one rule file; every problem raises `ConfigError` naming file and rule."""
    data = read_yaml(path)
    try:
        shell = _RuleFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, [(path, data)])) from None
    rules = [_parse_rule(path, index, raw) for index, raw in enumerate(shell.rules)]
    if problem := _duplicate_ids(rules):
        raise ConfigError(f"{path}: {problem}; give every rule its own id")
    return RuleSet.model_validate({"table": shell.table, "rules": rules, "source": path})


def load_rule_dir(folder: Path) -> dict[str, RuleSet]:
    """Load every `*.yaml` in `folder`, keyed by table; a table may have only one file."""
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{folder}: no quality rule files (*.yaml) found")
    by_table: dict[str, RuleSet] = {}
    for path in files:
        rules = load_rules(path)
        if (earlier := by_table.get(rules.table)) is not None:
            raise ConfigError(
                f"{path}: table {rules.table!r} already has rules in {earlier.source}; "
                "keep one rule file per table"
            )
        by_table[rules.table] = rules
    return by_table


@dataclass(frozen=True)
class RuleResult:
    """What one rule found in one evaluation."""

    rule_id: str
    check: str
    action: str
    rows_checked: int
    rows_failed: int
    passed: bool
    message: str


@dataclass(frozen=True)
class QualityOutcome:
    """The rows to keep and to quarantine, and one result per rule.

    `kept` and `quarantined` are lazy views of one persisted evaluation, so writing both does
    not re-run the checks. The caller owns that cache: call `release()` (or use the outcome as
    a context manager) once both are written.
    """

    kept: DataFrame
    quarantined: DataFrame
    dropped_count: int
    results: list[RuleResult]
    rows_in: int = 0
    quarantined_count: int = 0
    _persisted: DataFrame | None = field(default=None, repr=False)

    @property
    def failed_gates(self) -> list[RuleResult]:
        return [r for r in self.results if r.action == "fail" and not r.passed]

    @property
    def kept_count(self) -> int:
        return self.rows_in - self.quarantined_count - self.dropped_count

    def dropped_rows(self) -> DataFrame:
        """The rows a `drop` rule removed (empty when the outcome has no evaluation behind it)."""
        if self._persisted is None:
            return self.kept.limit(0)
        return self._persisted.filter(F.col(_STATUS) == "drop")

    def release(self) -> None:
        """Unpersist the cached evaluation; `kept` and `quarantined` would be recomputed."""
        if self._persisted is not None:
            self._persisted.unpersist()

    def __enter__(self) -> QualityOutcome:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


@dataclass(frozen=True)
class _Probe:
    """A row-level rule wired into the frame: its failure flag column and reason expression."""

    rule: BaseRule
    flag: str
    reason: Column


def _text(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _show(schema: T.StructType, column: str) -> Column:
    """`column=value` for a reason; strings quoted, NULL spelled out."""
    value = F.col(column).cast("string")
    if isinstance(schema[column].dataType, T.StringType):
        value = F.concat(F.lit("'"), value, F.lit("'"))
    return F.concat(F.lit(f"{column}="), F.coalesce(value, F.lit("NULL")))


def _cases(cases: list[tuple[Column, str]]) -> Column:
    """The text of the first true condition (NULL when none is)."""
    first, *rest = cases
    chosen = F.when(first[0], F.lit(first[1]))
    for condition, text in rest:
        chosen = chosen.when(condition, F.lit(text))
    return chosen


def _range_cases(rule: RangeRule) -> list[tuple[Column, str]]:
    value = F.col(rule.column)
    cases: list[tuple[Column, str]] = []
    for bound, inclusive, name in (
        (rule.min, rule.min_inclusive, "minimum"),
        (rule.max, rule.max_inclusive, "maximum"),
    ):
        if bound is None:
            continue
        outside = value < F.lit(bound) if name == "minimum" else value > F.lit(bound)
        side = "below" if name == "minimum" else "above"
        cases.append((outside, f"is {side} the {name} {_text(bound)}"))
        if not inclusive:
            cases.append((value == F.lit(bound), f"equals the excluded {name} {_text(bound)}"))
    return cases


def _probe_range(df: DataFrame, rule: RangeRule) -> tuple[DataFrame, Column, Column]:
    cases = _range_cases(rule)
    failed = F.coalesce(reduce(or_, [condition for condition, _ in cases]), F.lit(False))
    return df, failed, F.concat_ws(" ", _show(df.schema, rule.column), _cases(cases))


def _probe_referential(
    df: DataFrame, rule: ReferentialRule, slot: int, ref: DataFrame
) -> tuple[DataFrame, Column, Column]:
    key, found = f"__dq_ref_key_{slot}", f"__dq_ref_found_{slot}"
    same = {c: f"__dq_ref_same_{slot}_{i}" for i, c in enumerate(rule.same)}
    keys = (
        ref.select(F.col(rule.ref_column).alias(key), *[F.col(c).alias(a) for c, a in same.items()])
        .distinct()
        .withColumn(found, F.lit(True))
    )
    paired = reduce(
        lambda a, b: a & b,
        [F.col(c) == F.col(a) for c, a in same.items()],
        F.col(rule.column) == F.col(key),
    )
    joined = df.join(keys, paired, "left").drop(key, *same.values())
    failed = F.col(rule.column).isNotNull() & F.col(found).isNull()
    where = f"is not in {rule.ref_table}.{rule.ref_column}"
    if rule.same:
        where += " of the same " + ", ".join(rule.same)
        shown = [_show(df.schema, c) for c in (rule.column, *rule.same)]
        return joined, failed, F.concat_ws(" ", F.concat_ws(", ", *shown), F.lit(where))
    return joined, failed, F.concat_ws(" ", _show(df.schema, rule.column), F.lit(where))


def _probe_unique(df: DataFrame, rule: UniqueRule, slot: int) -> tuple[DataFrame, Column, Column]:
    count = f"__dq_key_rows_{slot}"
    counted = df.withColumn(count, F.count(F.lit(1)).over(Window.partitionBy(*rule.columns)))
    complete = reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in rule.columns])
    key = F.concat_ws(", ", *[_show(df.schema, c) for c in rule.columns])
    reason = F.concat(key, F.lit(" appears "), F.col(count).cast("string"), F.lit(" times"))
    return counted, complete & (F.col(count) > 1), reason


def _probe_expression(df: DataFrame, rule: ExpressionRule) -> tuple[DataFrame, Column, Column]:
    verdict = F.expr(rule.expr)
    failed = F.coalesce(~verdict, F.lit(rule.null_fails))
    outcome = F.when(verdict.isNull(), F.lit("is null")).otherwise(F.lit("is false"))
    mentioned = [c for c in df.columns if re.search(rf"\b{re.escape(c)}\b", rule.expr)]
    values = F.concat_ws(", ", *[_show(df.schema, c) for c in mentioned])
    reason = F.concat_ws(" ", F.lit(f"`{rule.expr}`"), outcome, F.lit("for"), values)
    return df, failed, reason if mentioned else F.concat_ws(" ", F.lit(f"`{rule.expr}`"), outcome)


def _probe_anomaly(df: DataFrame, rule: AnomalyRule, slot: int) -> tuple[DataFrame, Column, Column]:
    median, mad = f"__dq_median_{slot}", f"__dq_mad_{slot}"
    group = Window.partitionBy(*rule.by)
    x = F.col(rule.column).cast("double")
    df = df.withColumn(median, F.percentile_approx(x, 0.5).over(group))
    df = df.withColumn(mad, F.percentile_approx(F.abs(x - F.col(median)), 0.5).over(group))
    z = F.abs(x - F.col(median)) / (F.lit(1.4826) * F.col(mad))
    failed = F.coalesce((F.col(mad) > 0) & (z > rule.threshold), F.lit(False))
    of_group = f" of {', '.join(rule.by)}" if rule.by else ""
    reason = F.concat_ws(
        " ",
        _show(df.schema, rule.column),
        F.lit("is"),
        F.format_number(z, 1),
        F.lit("robust z-scores from the median"),
        F.col(median).cast("string"),
        F.lit(f"of its group{of_group} (threshold {rule.threshold:g})"),
    )
    return df, failed, reason


def _probe_cross_check(
    df: DataFrame, rule: CrossCheckRule, slot: int, ref: DataFrame
) -> tuple[DataFrame, Column, Column]:
    """Pair each row with its partner (one per key), evaluate `expr`, keep only the verdict."""
    verdict = f"__dq_disagrees_{slot}"
    partner = ref.select(*[F.col(c).alias(f"ref_{c}") for c in rule.ref_columns])
    partner = partner.dropDuplicates([f"ref_{c}" for c in rule.keys.values()])
    paired = reduce(
        lambda a, b: a & b,
        [F.col(mine) == F.col(f"ref_{theirs}") for mine, theirs in rule.keys.items()],
    )
    joined = (
        df.join(partner, paired, "left")
        .withColumn(verdict, F.coalesce(F.expr(rule.expr), F.lit(False)))
        .drop(*[f"ref_{c}" for c in rule.ref_columns])
    )
    key = F.concat_ws(", ", *[_show(df.schema, c) for c in rule.keys])
    where = F.lit(f"disagrees with its partner in {rule.ref_table}: `{rule.expr}`")
    return joined, F.col(verdict), F.concat_ws(" ", key, where)


def _probe(
    df: DataFrame, rule: BaseRule, slot: int, refs: Mapping[str, DataFrame]
) -> tuple[DataFrame, Column, Column]:
    """Columns a row-level rule needs, its failure flag (never NULL) and its reason text."""
    match rule:
        case NotNullRule(columns=columns):
            failed = reduce(or_, [F.col(c).isNull() for c in columns])
            texts = [F.when(F.col(c).isNull(), F.lit(f"{c} is null")) for c in columns]
            return df, failed, F.concat_ws(", ", *texts)
        case RangeRule():
            return _probe_range(df, rule)
        case AllowedValuesRule(column=column, values=values):
            failed = F.coalesce(~F.col(column).isin(values), F.lit(False))
            allowed = ", ".join(_text(v) for v in values)
            text = F.lit(f"is not one of the allowed values {allowed}")
            return df, failed, F.concat_ws(" ", _show(df.schema, column), text)
        case UniqueRule():
            return _probe_unique(df, rule, slot)
        case ReferentialRule():
            return _probe_referential(df, rule, slot, refs[rule.ref_table])
        case ExpressionRule():
            return _probe_expression(df, rule)
        case AnomalyRule():
            return _probe_anomaly(df, rule, slot)
        case CrossCheckRule():
            return _probe_cross_check(df, rule, slot, refs[rule.ref_table])
    raise TypeError(f"{type(rule).__name__} is not a row-level rule")


def _is_row_level(rule: BaseRule, refs: Mapping[str, DataFrame]) -> bool:
    if isinstance(rule, REFERENCING):
        return rule.ref_table in refs
    return not isinstance(rule, FreshnessRule | VolumeRule)


def _attach_probes(
    df: DataFrame, rules: RuleSet, refs: Mapping[str, DataFrame]
) -> tuple[DataFrame, list[_Probe]]:
    probes: list[_Probe] = []
    flags: dict[str, Column] = {}
    for slot, rule in enumerate(rules.rules):
        if _is_row_level(rule, refs):
            df, failed, reason = _probe(df, rule, slot, refs)
            probes.append(_Probe(rule, f"__dq_fail_{slot}", reason))
            flags[probes[-1].flag] = failed
    return df.withColumns(flags), probes


def _any(probes: list[_Probe]) -> Column:
    return reduce(or_, [F.col(p.flag) for p in probes], F.lit(False))


def _failed_ids(probes: list[_Probe]) -> list[Column]:
    """Per rule: its id where the row failed it, else NULL."""
    return [F.when(F.col(p.flag), F.lit(p.rule.id)) for p in probes]


def _annotate(frame: DataFrame, probes: list[_Probe]) -> DataFrame:
    """Add the row's fate, warnings, flags, first quarantine rule id and joined reasons."""
    quarantine, drop, warn, flag = (
        [p for p in probes if p.rule.action == action]
        for action in ("quarantine", "drop", "warn", "flag")
    )
    fate = F.when(_any(quarantine), "quarantine").when(_any(drop), "drop").otherwise("keep")
    warned = _failed_ids(warn) or [F.lit(None).cast("string")]  # same type with no warn rule
    warnings = F.array_compact(F.array(*warned))
    reasons = [
        F.when(F.col(p.flag), F.concat(p.reason, F.lit(f" (rule {p.rule.id})"))) for p in quarantine
    ]
    first_rule = F.coalesce(*_failed_ids(quarantine), F.lit(None).cast("string"))
    if flag:
        marks = F.array(*[F.when(F.col(p.flag), F.lit(p.rule.flag_text)) for p in flag])
        before = F.col(FLAGS) if FLAGS in frame.columns else F.array().cast("array<string>")
        frame = frame.withColumn(FLAGS, F.array_compact(F.concat(before, marks)))
    return frame.withColumns(
        {
            _STATUS: fate,
            WARNINGS: warnings,
            RULE_ID: first_rule,
            REASON: F.concat_ws("; ", *reasons),
        }
    )


def _aggregations(rules: RuleSet, probes: list[_Probe]) -> list[Column]:
    """Every count and extreme the results need, for a single pass over the data."""
    status = F.col(_STATUS)
    aggs = [
        F.count(F.lit(1)).alias("rows"),
        F.count_if(status == "drop").alias("dropped"),
        F.count_if(status == "quarantine").alias("quarantined"),
    ]
    for p in probes:
        aggs.append(F.count_if(F.col(p.flag)).alias(f"{p.flag}_rows"))
        aggs.append(F.min(F.when(F.col(p.flag), p.reason)).alias(f"{p.flag}_example"))
    for slot, rule in enumerate(rules.rules):
        if isinstance(rule, FreshnessRule):
            aggs.append(F.max(rule.column).alias(f"__dq_newest_{slot}"))
    return aggs


def _check_inputs(df: DataFrame, rules: RuleSet, refs: Mapping[str, DataFrame]) -> None:
    """Fail early, naming the rule, when the data cannot be checked as declared."""
    reserved = [c for c in df.columns if c in (WARNINGS, RULE_ID, REASON) or c.startswith("__dq_")]
    if reserved:
        raise ValueError(f"input already has quality columns {reserved}; drop them first")
    for rule in rules.rules:
        where = f"{rules.origin}: rule {rule.id!r}"
        for column in rule.checked_columns:
            if column not in df.columns:
                raise ConfigError(
                    f"{where}: column {column!r} is not in the data; columns are: "
                    f"{', '.join(df.columns)}"
                )
        _check_rule_input(df, rule, refs, where)


def _check_rule_input(
    df: DataFrame, rule: BaseRule, refs: Mapping[str, DataFrame], where: str
) -> None:
    if isinstance(rule, FreshnessRule):
        kind = df.schema[rule.column].dataType
        if not isinstance(kind, _TIME_TYPES):
            raise ConfigError(f"{where}: freshness needs a date or timestamp column, not {kind}")
    ref = refs.get(rule.ref_table) if isinstance(rule, REFERENCING) else None
    if isinstance(rule, ReferentialRule) and ref is not None:
        for column in (rule.ref_column, *rule.same):
            if column not in ref.columns:
                raise ConfigError(f"{where}: {rule.ref_table} has no column {column!r}")
    if isinstance(rule, CrossCheckRule) and ref is not None:
        _check_cross_check(df, rule, ref, where)
    if isinstance(rule, ExpressionRule):
        try:
            kind = df.select(F.expr(rule.expr)).schema[0].dataType
        except AnalysisException as exc:
            problem = str(exc).strip().splitlines()[0]
            raise ConfigError(f"{where}: expr {rule.expr!r} is not valid here: {problem}") from None
        if not isinstance(kind, T.BooleanType):
            raise ConfigError(f"{where}: expr {rule.expr!r} must be boolean, it gives {kind}")


def _check_cross_check(df: DataFrame, rule: CrossCheckRule, ref: DataFrame, where: str) -> None:
    missing = [c for c in rule.ref_columns if c not in ref.columns]
    if missing:
        raise ConfigError(
            f"{where}: {rule.ref_table} has no column {', '.join(map(repr, missing))}; "
            f"its columns are: {', '.join(ref.columns)}"
        )
    clash = [f"ref_{c}" for c in rule.ref_columns if f"ref_{c}" in df.columns]
    if clash:
        raise ConfigError(f"{where}: the data already has {clash}, the names of the partner's")
    partner = [F.lit(None).cast(ref.schema[c].dataType).alias(f"ref_{c}") for c in rule.ref_columns]
    try:
        kind = df.select("*", *partner).select(F.expr(rule.expr)).schema[0].dataType
    except AnalysisException as exc:
        problem = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{where}: expr {rule.expr!r} is not valid here: {problem}") from None
    if not isinstance(kind, T.BooleanType):
        raise ConfigError(f"{where}: expr {rule.expr!r} must be boolean, it gives {kind}")


def _row_result(rule: BaseRule, probe: _Probe, totals: Row) -> RuleResult:
    rows, failed = totals["rows"], totals[f"{probe.flag}_rows"]
    if failed == 0:
        message = f"all {rows} rows pass"
    else:
        example = totals[f"{probe.flag}_example"]
        message = f"{failed} of {rows} rows failed ({_CONSEQUENCE[rule.action]}), e.g. {example}"
    return RuleResult(rule.id, rule.check, rule.action, rows, failed, failed == 0, message)


def _freshness_result(rule: FreshnessRule, newest: object, rows: int, day: dt.date) -> RuleResult:
    if newest is None:
        message = f"no non-null {rule.column} value, so nothing shows the data is fresh"
        return RuleResult(rule.id, rule.check, rule.action, rows, 0, False, message)
    newest_day = newest.date() if isinstance(newest, dt.datetime) else newest
    assert isinstance(newest_day, dt.date)
    age = (day - newest_day).days
    passed = age <= rule.max_age_days
    message = (
        f"newest {rule.column} is {_text(newest)}, {age} days before {day.isoformat()}; "
        f"{'within' if passed else 'over'} the limit of {rule.max_age_days} days"
    )
    return RuleResult(rule.id, rule.check, rule.action, rows, 0, passed, message)


def _volume_result(
    rule: VolumeRule, rows: int, history: Sequence[int], days: Sequence[int] | None = None
) -> RuleResult:
    """With `days` (the run's rows per delivery day, in order), each day is judged against
    the days before it, as a run per day would be (a run of one day too: the same counts
    whatever the grouping of days into runs); the run fails when any day fails."""
    if days is None:
        return _volume_day(rule, rows, history)
    results = [_volume_day(rule, n, [*history, *days[:i]]) for i, n in enumerate(days)]
    if len(results) == 1:
        (day,) = results
        return RuleResult(rule.id, rule.check, rule.action, rows, 0, day.passed, day.message)
    failed = [(i, r) for i, r in enumerate(results) if not r.passed]
    message = (
        f"day {failed[0][0] + 1} of {len(days)}: {failed[0][1].message}"
        if failed
        else f"each of {len(days)} days within bounds ({rows} rows)"
    )
    return RuleResult(rule.id, rule.check, rule.action, rows, 0, not failed, message)


def _volume_day(rule: VolumeRule, rows: int, history: Sequence[int]) -> RuleResult:
    recent = list(history)[-rule.trailing_runs :]
    if not recent:
        message = f"no history yet: {rows} rows this run"
        return RuleResult(rule.id, rule.check, rule.action, rows, 0, True, message)
    average = sum(recent) / len(recent)
    ratio = rows / average if average else (math.inf if rows else 1.0)
    upper = math.inf if rule.max_ratio is None else rule.max_ratio
    passed = rule.min_ratio <= ratio <= upper
    message = (
        f"{rows} rows is {ratio:.2f}x the average {average:.1f} of the last {len(recent)} runs; "
        f"expected {rule.min_ratio}x to {upper}x"
    )
    return RuleResult(rule.id, rule.check, rule.action, rows, 0, passed, message)


def _result(
    rule: BaseRule,
    slot: int,
    totals: Row,
    probes: Mapping[str, _Probe],
    logical_date: dt.date,
    volume_history: Sequence[int],
    volume_days: Sequence[int] | None = None,
) -> RuleResult:
    if rule.id in probes:
        return _row_result(rule, probes[rule.id], totals)
    if isinstance(rule, FreshnessRule):
        newest = totals[f"__dq_newest_{slot}"]
        return _freshness_result(rule, newest, totals["rows"], logical_date)
    if isinstance(rule, VolumeRule):
        return _volume_result(rule, totals["rows"], volume_history, volume_days)
    assert isinstance(rule, REFERENCING)
    message = (
        f"not checked: reference table {rule.ref_table} was not supplied (the table has no "
        f"data yet; in code, pass refs={{{rule.ref_table!r}: <DataFrame>}} to evaluate())"
    )
    return RuleResult(rule.id, rule.check, rule.action, 0, 0, False, message)


def evaluate(
    df: DataFrame,
    rules: RuleSet,
    *,
    logical_date: dt.date,
    refs: Mapping[str, DataFrame] | None = None,
    volume_history: Sequence[int] = (),
    volume_days: Sequence[int] | None = None,
) -> QualityOutcome:
    """Apply `rules` to `df` with one Spark job; the outcome holds a cache the caller releases.

    `refs` maps a `ref_table` name to its DataFrame; `volume_history` holds the row counts of
    previous runs (or days), oldest first; `volume_days` the rows per delivery day of a run
    over several days, so that each day is judged as a run of that day alone. The returned
    `QualityOutcome` keeps the annotated rows persisted (memory and disk) so that writing
    `kept` and `quarantined` reads them once; call `outcome.release()` (or use
    `with outcome:`) after writing both.
    """
    refs = refs or {}
    _check_inputs(df, rules, refs)
    frame, probes = _attach_probes(df, rules, refs)
    annotated = _annotate(frame, probes).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        totals = annotated.agg(*_aggregations(rules, probes)).first()
    except BaseException:
        annotated.unpersist()
        raise
    assert totals is not None
    by_id = {p.rule.id: p for p in probes}
    results = [
        _result(rule, slot, totals, by_id, logical_date, volume_history, volume_days)
        for slot, rule in enumerate(rules.rules)
    ]
    status = F.col(_STATUS)
    flagged = (
        [FLAGS] if FLAGS not in df.columns and any(p.rule.action == "flag" for p in probes) else []
    )
    return QualityOutcome(
        kept=annotated.filter(status == "keep").select(*df.columns, *flagged, WARNINGS),
        quarantined=annotated.filter(status == "quarantine").select(*df.columns, RULE_ID, REASON),
        dropped_count=totals["dropped"],
        results=results,
        rows_in=totals["rows"],
        quarantined_count=totals["quarantined"],
        _persisted=annotated,
    )


def results_rows(
    outcome: QualityOutcome,
    *,
    table: str,
    run_id: str,
    logical_date: dt.date,
    evaluated_at: dt.datetime | None = None,
    first_date: dt.date | None = None,
) -> list[dict[str, Any]]:
    """Rows for the `_dq` system table, one per rule result (`evaluated_at` defaults to now;
    `first_date`: the first date a range run covered, else the logical date)."""
    at = evaluated_at or dt.datetime.now(dt.UTC)
    return [
        {
            "run_id": run_id,
            "logical_date": logical_date,
            "first_date": first_date or logical_date,
            "table_name": table,
            "rule_id": r.rule_id,
            "check": r.check,
            "action": r.action,
            "rows_checked": r.rows_checked,
            "rows_failed": r.rows_failed,
            "passed": r.passed,
            "message": r.message,
            "evaluated_at": at,
        }
        for r in outcome.results
    ]
