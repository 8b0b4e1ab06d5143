"""Conformance: bronze rows of any plant -> typed, mapped, converted canonical rows (pure).

Every plant-specific thing (column names, date formats, decimal separator, Boolean words,
code maps, units, currency, time zone) comes from `conf/sources`; the expressions are
built from it, so there is one code path for all plants. Rows that cannot be conformed
carry their reasons in `_errors`; the caller quarantines them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from medlake import expressions
from medlake.entities import DECIMAL, Column, EntitySpec
from medlake.sources import REGEX_MARKER, EntitySource, PlantSource, day_month_order

PLANT_COLUMN = "_plant_id"
FX_LOOKBACK_DAYS = 7  # weekends and holidays have no rate: use the last one before
FX_LOOKAHEAD_DAYS = 45  # orders older than the first loaded rate: earliest rate, flagged


@dataclass(frozen=True)
class Refs:
    """Reference data a conformance needs: FX rates to the group currency, master-data xrefs."""

    group_currency: str
    fx: DataFrame | None = None  # rate_date, currency, rate_to_group
    fx_note: str = ""  # why rates may be missing in this run (e.g. fx_rates failed its gate)
    xref: Mapping[str, DataFrame] | None = None  # lookup -> plant_id, local_code, group_id
    # plausible dates: from this many years before to this many after the delivery date;
    # a date outside is kept and flagged implausible_date:<column>
    date_window: tuple[int, int] = (30, 10)


def _by_plant(plants: Mapping[str, PlantSource], value: dict[str, SparkColumn]) -> SparkColumn:
    expr: SparkColumn | None = None
    for plant_id in plants:
        branch = value[plant_id]
        expr = (
            F.when(F.col(PLANT_COLUMN) == plant_id, branch)
            if expr is None
            else expr.when(F.col(PLANT_COLUMN) == plant_id, branch)
        )
    assert expr is not None
    return expr


def _literal_map(pairs: dict[str, str | float]) -> SparkColumn:
    if not pairs:
        return F.create_map().cast("map<string,string>")
    return F.create_map(
        *chain.from_iterable((F.lit(k), F.lit(v)) for k, v in sorted(pairs.items()))
    )


def _raw(plants: Mapping[str, PlantSource], spec: EntitySpec, column: str) -> _Read:
    """The column's text at each plant, trimmed, '' and declared markers as missing: copied
    from its local column, a constant or an expression (conf/sources `fields`)."""
    value: dict[str, SparkColumn] = {}
    marker: dict[str, SparkColumn] = {}
    error: dict[str, SparkColumn] = {}
    for plant_id, source in plants.items():
        entity = source.entities[spec.source]
        rule = entity.fields.get(column)
        reasons: list[SparkColumn] = []

        def read(
            local: str, entity: EntitySource = entity, reasons: list[SparkColumn] = reasons
        ) -> SparkColumn:
            text, reason = _local(entity, local)
            if reason is not None:
                reasons.append(reason)
            return text

        mark = entity.decimal or source.delivery.decimal
        problems: list[SparkColumn] = []
        if rule is not None and rule.value is not None:
            text = F.lit(rule.value)
        elif rule is not None and rule.expr:
            node = expressions.parse(rule.expr)
            compiled = _compile(node, read, mark, problems)
            text = _as_text(compiled, mark) if _numeric(node) else compiled
        elif column in entity.targets:
            text = read(entity.targets[column])
        else:
            text = F.lit(None).cast("string")
        if rule is not None and rule.number == "extract":
            text = _extract_number(text, mark)
        value[plant_id] = text
        marker[plant_id] = F.coalesce(*reasons) if reasons else F.lit(None).cast("string")
        joined = F.concat_ws("; ", *problems) if problems else F.lit("")
        error[plant_id] = F.when(joined != "", F.concat(F.lit(f"{column}: "), joined))
    text = F.trim(_by_plant(plants, value))
    return _Read(F.when(text != "", text), _by_plant(plants, marker), _by_plant(plants, error))


@dataclass(frozen=True)
class _Read:
    text: SparkColumn  # the value's text, None when missing
    marker: SparkColumn  # reason code of a declared missing-value marker that was met
    error: SparkColumn  # why an expression could not compute the value (None: it could)


def _local(entity: EntitySource, local: str) -> tuple[SparkColumn, SparkColumn | None]:
    """A local column's trimmed text with its declared missing-value markers read as missing,
    and the reason code of the marker met (None when the column declares no markers)."""
    text = F.trim(F.col("_record").getItem(local))
    markers = entity.missing.get(local)
    if not markers:
        return text, None
    reason: SparkColumn | None = None
    for marker, code in markers.items():
        if marker.startswith(REGEX_MARKER):
            hit = text.rlike(marker.removeprefix(REGEX_MARKER))
        else:
            hit = text == marker.strip()
        reason = F.when(hit, F.lit(code)) if reason is None else reason.when(hit, F.lit(code))
    assert reason is not None
    return F.when(reason.isNull(), text), reason


def _number_in_text(decimal: str) -> tuple[str, str]:
    """Java regexes for the one number in a text such as `approx. 1,234.5 kg`: digits grouped
    in threes or not, an optional decimal part, a minus sign only at the start or after a
    space; text around it without digits. Two patterns (signed, unsigned), group 1."""
    group, point = (",", r"\.") if decimal == "." else (r"\.", ",")
    number = f"(?:[0-9]{{1,3}}(?:{group}[0-9]{{3}})+|[0-9]+)(?:{point}[0-9]+)?"
    suffix = r"(?:[^0-9.,][^0-9]*)?"  # ` kg`, `%`: no digit, not a decimal part
    return (
        f"^(?:[^0-9]*\\s)?(-{number}){suffix}$",  # a sign at the start or after a space
        f"^(?:[^0-9]*[^0-9.,\\-])?({number}){suffix}$",  # not `.5`, `,5`, `ASN-93`
    )


def _extract_number(text: SparkColumn, decimal: str) -> SparkColumn:
    """The one number in a text (`approx. 1,234.5 kg` -> 1234.5, grouping removed); the text
    unchanged when it holds none or several (`See ASN-93 (ID#:1281)`), so the parse
    quarantines it unless a missing-value marker says what it means."""
    signed, unsigned = _number_in_text(decimal)
    found = F.coalesce(
        F.nullif(F.regexp_extract(text, signed, 1), F.lit("")),
        F.nullif(F.regexp_extract(text, unsigned, 1), F.lit("")),
    )
    grouping = "," if decimal == "." else r"\."
    return F.when(found.isNotNull(), F.regexp_replace(found, grouping, "")).otherwise(text)


_NUMERIC_OPS = {"number", "round", "convert", "+", "-", "*", "/", "neg"}
_NUMBER = "decimal(30,10)"


def _numeric(node: expressions.Node) -> bool:
    return node.op in _NUMERIC_OPS or (node.op == "lit" and not isinstance(node.value, str))


def _as_text(number: SparkColumn, decimal: str) -> SparkColumn:
    """A computed number as the plant writes numbers: no trailing zeros, its decimal mark."""
    text = F.regexp_replace(
        F.regexp_replace(number.cast("string"), r"(\.[0-9]*?)0+$", "$1"), r"\.$", ""
    )
    return F.regexp_replace(text, r"\.", ",") if decimal == "," else text


def _compile(
    node: expressions.Node,
    read: Callable[[str], SparkColumn],
    decimal: str = ".",
    problems: list[SparkColumn] | None = None,
) -> SparkColumn:
    """The Spark column of an expression tree (`medlake.expressions`). Text read as a number
    follows the plant's decimal mark; a text that is not a number, or a division by zero,
    adds a reason to `problems` (the row is quarantined, never given a silent null)."""
    op, args = node.op, node.args
    found = problems if problems is not None else []

    def sub(n: expressions.Node) -> SparkColumn:
        return _compile(n, read, decimal, found)

    def num(n: expressions.Node) -> SparkColumn:
        value = sub(n)
        if _numeric(n) and n.op != "lit":
            return value
        if n.op == "lit":
            return value.try_cast(_NUMBER)
        usable = (
            F.when(~value.contains("."), F.regexp_replace(value, ",", "."))
            if decimal == ","
            else value
        )
        number = usable.try_cast(_NUMBER)
        found.append(
            F.when(
                value.isNotNull() & number.isNull(),
                F.format_string("'%s' is not a number in the plant's format", value),
            )
        )
        return number

    def text(n: expressions.Node) -> SparkColumn:
        value = sub(n)
        return _as_text(value, ".") if _numeric(n) and n.op != "lit" else value

    def literal(n: expressions.Node) -> Any:
        return n.value

    if op == "col":
        return read(str(node.value))
    if op == "lit":
        return F.lit(str(node.value))
    if op in ("+", "-", "*"):
        left, right = num(args[0]), num(args[1])
        return left + right if op == "+" else left - right if op == "-" else left * right
    if op == "/":
        divisor = num(args[1])
        found.append(F.when(divisor == 0, F.lit("division by zero")))
        return F.try_divide(num(args[0]), divisor)
    if op == "neg":
        return -num(args[0])
    if op == "number":
        return num(args[0])
    if op == "round":
        return F.round(num(args[0]), int(literal(args[1])))
    if op == "convert":
        factor = expressions.factor(str(literal(args[1])), str(literal(args[2])))
        return num(args[0]) * F.lit(str(factor)).cast(_NUMBER)
    if op == "concat":
        return F.concat(*map(text, args))
    if op == "coalesce":
        return F.coalesce(*map(text, args))
    if op in ("upper", "lower", "trim"):
        return getattr(F, op)(text(args[0]))  # type: ignore[no-any-return]
    if op == "substring":
        return F.substring(text(args[0]), int(literal(args[1])), int(literal(args[2])))
    if op == "split":
        part = F.split_part(
            text(args[0]), F.lit(str(literal(args[1]))), F.lit(int(literal(args[2])))
        )
        return F.when(part != "", part)
    if op == "regex":
        pattern = str(literal(args[1]))
        group = int(literal(args[2])) if len(args) > 2 else (1 if re.compile(pattern).groups else 0)
        extracted = F.regexp_extract(text(args[0]), pattern, group)
        return F.when(extracted != "", extracted)
    raise AssertionError(f"unhandled expression operation {op}")  # parse() admits no other


def _parse(
    plants: Mapping[str, PlantSource], spec: EntitySpec, c: Column, raw: SparkColumn
) -> SparkColumn:
    if c.type == "string":
        return raw
    if c.type in ("int", "decimal"):
        number = _by_plant(
            plants,
            {
                # a dot at a decimal-comma plant is a grouping or a typo: not a number
                p: F.when(~raw.contains("."), F.regexp_replace(raw, ",", "."))
                if (s.entities[spec.source].decimal or s.delivery.decimal) == ","
                else raw
                for p, s in plants.items()
            },
        )
        return number.try_cast("int" if c.type == "int" else DECIMAL)
    if c.type == "bool":
        return _by_plant(
            plants,
            {
                p: F.when(raw.isin(s.delivery.true_values), F.lit(True)).when(
                    raw.isin(s.delivery.false_values), F.lit(False)
                )
                for p, s in plants.items()
            },
        )
    stamp = _by_plant(plants, {p: _stamp(raw, _formats(s, spec, c)) for p, s in plants.items()})
    return F.to_date(stamp) if c.type == "date" else stamp


def _formats(source: PlantSource, spec: EntitySpec, c: Column) -> list[str]:
    """The date or timestamp patterns a plant's value of `c` is read with, in order."""
    rule = source.entities[spec.source].fields.get(c.name)
    if rule is not None and rule.formats:
        return list(rule.formats)
    return [source.delivery.date_format if c.type == "date" else source.delivery.datetime_format]


def _stamp(raw: SparkColumn, formats: list[str]) -> SparkColumn:
    tried = [F.try_to_timestamp(raw, F.lit(f)) for f in formats]
    return tried[0] if len(tried) == 1 else F.coalesce(*tried)


def _ambiguous(
    plants: Mapping[str, PlantSource],
    spec: EntitySpec,
    c: Column,
    raw: SparkColumn,
    parsed: SparkColumn,
) -> SparkColumn:
    """A flag for a numeric date whose day and month could be swapped (10-09-2014): read by
    the plant's declared order, and counted so that a wrong order is noticed."""
    branches: dict[str, SparkColumn] = {}
    for p, s in plants.items():
        rule = s.entities[spec.source].fields.get(c.name)
        formats = list(rule.formats) if rule else []
        numeric = [f for f in formats if day_month_order(f)]
        if not numeric:
            branches[p] = F.lit(None).cast("string")
            continue
        named = [f for f in formats if not day_month_order(f)]
        by_name = _stamp(raw, named) if named else F.lit(None)
        order = day_month_order(numeric[0])
        branches[p] = F.when(
            by_name.isNull()
            & (F.dayofmonth(parsed) <= 12)
            & (F.dayofmonth(parsed) != F.month(parsed)),
            F.lit(f"ambiguous_date:{c.name}:{order}"),
        )
    return _by_plant(plants, branches)


def _problem(raw: SparkColumn, parsed: SparkColumn, c: Column) -> SparkColumn:
    what = {
        "int": "a whole number",
        "decimal": "a number",
        "date": "a date",
        "datetime": "a date and time",
        "bool": "a yes/no value",
    }.get(c.type, c.type)
    return F.when(
        raw.isNotNull() & parsed.isNull(),
        F.format_string(f"{c.name}: '%s' is not {what} in the plant's format", raw),
    )


def conform(
    bronze: DataFrame,
    spec: EntitySpec,
    plants: Mapping[str, PlantSource],
    refs: Refs,
    *,
    run_id: str,
) -> DataFrame:
    """Canonical rows with `_errors` (array of reasons; empty when the row is usable) and the
    delivered text of every canonical column in `_text` (for the quarantine)."""
    plants = {p: s for p, s in plants.items() if spec.source in s.entities}
    raws = {c.name: _raw(plants, spec, c.name) for c in spec.columns}
    df = bronze.select(
        "_plant_id",
        "_delivery_date",
        "_source_file",
        "_file_row",
        "_file_version",
        F.create_map(
            *chain.from_iterable(
                (F.lit(k), F.coalesce(v.text, F.concat(F.lit("(missing: "), v.marker, F.lit(")"))))
                for k, v in raws.items()
            )
        ).alias("_text"),
        *[v.text.alias(f"__raw_{k}") for k, v in raws.items()],
        *[v.marker.alias(f"__mark_{k}") for k, v in raws.items()],
        *[v.error.alias(f"__fail_{k}") for k, v in raws.items()],
    )
    errors: list[SparkColumn] = []
    flags: list[SparkColumn] = []
    values: dict[str, SparkColumn] = {}
    earliest, latest = refs.date_window
    for c in spec.columns:
        raw, marker = F.col(f"__raw_{c.name}"), F.col(f"__mark_{c.name}")
        parsed = _parse(plants, spec, c, raw)
        errors.append(_problem(raw, parsed, c))
        errors.append(F.col(f"__fail_{c.name}"))
        # a declared marker: the value is missing for a stated reason, counted as a flag
        flags.append(
            F.when(raw.isNull() & marker.isNotNull(), F.concat(F.lit(f"missing:{c.name}:"), marker))
        )
        if c.missing == "reject":
            errors.append(
                F.when(
                    raw.isNull(),
                    F.concat(
                        F.lit(f"{c.name} is missing (mandatory)"),
                        F.coalesce(F.concat(F.lit(": marked "), marker), F.lit("")),
                    ),
                )
            )
        elif c.missing == "flag":
            flags.append(F.when(raw.isNull() & marker.isNull(), F.lit(f"missing:{c.name}")))
        elif c.missing == "impute":
            flags.append(F.when(raw.isNull(), F.lit(f"imputed:{c.name}:{c.impute_method}")))
            parsed = F.coalesce(parsed, F.lit(c.impute).try_cast(_spark_type(c)))
        if c.type in ("date", "datetime"):
            day = F.to_date(parsed)
            flags.append(
                F.when(
                    (day < F.add_months(F.col("_delivery_date"), -12 * earliest))
                    | (day > F.add_months(F.col("_delivery_date"), 12 * latest)),
                    F.lit(f"implausible_date:{c.name}"),
                )
            )
            flags.append(_ambiguous(plants, spec, c, raw, parsed))
        values[c.name] = parsed
    df = df.select(
        "*",
        *[v.alias(f"__val_{k}") for k, v in values.items()],
        F.array_compact(F.array(*errors)).alias("_errors"),
        F.array_compact(F.array(*flags)).alias("_flags")
        if flags
        else F.array().cast("array<string>").alias("_flags"),
    )
    df = _codes(df, spec, plants)
    df = _units(df, spec, plants)
    df = _lookups(df, spec, refs)
    df = _times(df, spec, plants)
    df = _money(df, spec, plants, refs)
    return _finish(df, spec, run_id)


def _spark_type(c: Column) -> str:
    return {
        "int": "int",
        "decimal": DECIMAL,
        "date": "date",
        "datetime": "timestamp",
        "bool": "boolean",
    }.get(c.type, "string")


def _add_error(df: DataFrame, problem: SparkColumn) -> DataFrame:
    return df.withColumn("_errors", F.array_compact(F.concat(F.col("_errors"), F.array(problem))))


def _codes(df: DataFrame, spec: EntitySpec, plants: Mapping[str, PlantSource]) -> DataFrame:
    for c in spec.columns:
        if not c.code:
            continue
        table = _literal_map(
            {f"{p}|{k}": v for p, s in plants.items() for k, v in s.code_map(c.code).items()}
        )
        df = df.withColumn(f"__local_{c.name}", F.col(f"__val_{c.name}"))
        local = F.col(f"__local_{c.name}")
        mapped = F.element_at(table, F.concat(F.col(PLANT_COLUMN), F.lit("|"), local))
        df = df.withColumn(f"__val_{c.name}", mapped)
        df = _add_error(
            df,
            F.when(
                local.isNotNull() & mapped.isNull(),
                F.format_string(
                    f"{c.name}: unknown {c.code} code '%s' at plant %s; map it in "
                    f"conf/sources/<plant>.yaml codes.{c.code}",
                    local,
                    F.col(PLANT_COLUMN),
                ),
            ),
        )
    return df


def _units(df: DataFrame, spec: EntitySpec, plants: Mapping[str, PlantSource]) -> DataFrame:
    for c in spec.columns:
        if not c.is_unit:
            continue
        factor_map = _literal_map(
            {f"{p}|{u}": str(m.factor) for p, s in plants.items() for u, m in s.units.items()}
        )
        unit_map = _literal_map(
            {f"{p}|{u}": m.unit for p, s in plants.items() for u, m in s.units.items()}
        )
        df = df.withColumn(f"__local_{c.name}", F.col(f"__val_{c.name}"))
        local = F.col(f"__local_{c.name}")
        key = F.concat(F.col(PLANT_COLUMN), F.lit("|"), local)
        factor = F.element_at(factor_map, key).cast(DECIMAL)
        df = df.withColumn(f"__val_{c.name}", F.element_at(unit_map, key))
        df = _add_error(
            df,
            F.when(
                local.isNotNull() & factor.isNull(),
                F.format_string(
                    f"{c.name}: unknown unit '%s' at plant %s; "
                    "add it to conf/sources/<plant>.yaml units",
                    local,
                    F.col(PLANT_COLUMN),
                ),
            ),
        )
        for dependent in (*c.unit_of, *c.price_per):
            df = _add_error(
                df,
                F.when(
                    local.isNull() & F.col(f"__val_{dependent}").isNotNull(),
                    F.lit(f"{c.name} is missing, so {dependent} cannot be converted"),
                ),
            )
        for q in c.unit_of:
            df = df.withColumn(f"__src_{q}", F.col(f"__val_{q}")).withColumn(
                f"__val_{q}", (F.col(f"__val_{q}") * factor).cast(DECIMAL)
            )
        for p in c.price_per:
            df = df.withColumn(f"__src_{p}", F.col(f"__val_{p}")).withColumn(
                f"__val_{p}", (F.col(f"__val_{p}") / factor).cast(DECIMAL)
            )
    return df


def _lookups(df: DataFrame, spec: EntitySpec, refs: Refs) -> DataFrame:
    for c in spec.columns:
        if not c.lookup:
            continue
        xref = (refs.xref or {}).get(c.lookup)
        if xref is None:
            df = df.withColumn(f"__grp_{c.name}", F.lit(None).cast("string"))
            continue
        right = xref.select(
            F.col("plant_id").alias(f"__xp_{c.name}"),
            F.col("local_code").alias(f"__xc_{c.name}"),
            F.col("group_id").alias(f"__grp_{c.name}"),
        )
        df = df.join(
            F.broadcast(right),
            (F.col("_plant_id") == F.col(f"__xp_{c.name}"))
            & (F.col(f"__val_{c.name}") == F.col(f"__xc_{c.name}")),
            "left",
        ).drop(f"__xp_{c.name}", f"__xc_{c.name}")
        df = df.withColumn(
            "_flags",
            F.array_compact(
                F.concat(
                    F.col("_flags"),
                    F.array(
                        F.when(
                            F.col(f"__val_{c.name}").isNotNull()
                            & F.col(f"__grp_{c.name}").isNull(),
                            F.lit(f"unmatched_{c.lookup}:{c.name}"),
                        )
                    ),
                )
            ),
        )
    return df


def _times(df: DataFrame, spec: EntitySpec, plants: Mapping[str, PlantSource]) -> DataFrame:
    zone = _by_plant(plants, {p: F.lit(s.plant.timezone) for p, s in plants.items()})
    for c in spec.columns:
        if c.type != "datetime":
            continue
        local = F.col(f"__val_{c.name}")
        df = df.withColumn(f"__day_{c.name}", F.to_date(local)).withColumn(
            f"__val_{c.name}", F.to_utc_timestamp(local, zone)
        )
    return df


def _money(
    df: DataFrame, spec: EntitySpec, plants: Mapping[str, PlantSource], refs: Refs
) -> DataFrame:
    if not spec.money:
        return df
    m = spec.money
    if m.currency == "plant":
        currency = _by_plant(plants, {p: F.lit(s.plant.currency) for p, s in plants.items()})
        df = df.withColumn("__val_currency", currency)
    cur = F.col(f"__val_{'currency' if m.currency == 'plant' else m.currency}")
    day = F.col(f"__val_{m.fx_date}")
    if refs.fx is None:
        df = df.withColumn(
            "__fx", F.when(cur == refs.group_currency, F.lit(1)).cast("decimal(18,8)")
        )
    else:
        df = _as_of_rate(df, refs.fx, cur, day, refs.group_currency)
    for a in m.amounts:
        df = df.withColumn(f"__grp_amt_{a}", (F.col(f"__val_{a}") * F.col("__fx")).cast(DECIMAL))
        df = _add_error(
            df,
            F.when(
                cur.isNull() & F.col(f"__val_{a}").isNotNull(),
                F.lit(f"the currency is missing, so {a} cannot be converted"),
            ),
        )
    return _add_error(
        df,
        F.when(
            cur.isNotNull() & day.isNotNull() & F.col("__fx").isNull(),
            F.format_string(
                f"no FX rate %s->{refs.group_currency} from 7 days before to 45 days after %s "
                f"({m.fx_date}); "
                + (refs.fx_note or "load the rates (erp__fx_rates) for that date"),
                cur,
                day.cast("string"),
            ),
        ),
    )


def _as_of_rate(
    df: DataFrame, fx: DataFrame, cur: SparkColumn, day: SparkColumn, group: str
) -> DataFrame:
    """The latest rate on or up to 7 days before the transaction date (weekends, holidays);
    for dates before the first known rate, the earliest rate up to 45 days later, flagged."""
    df = (
        df.withColumn("__row", F.monotonically_increasing_id())
        .withColumn("__cur", cur)
        .withColumn("__day", day)
    )
    rates = fx.select(
        F.col("currency").alias("__fx_cur"),
        F.col("rate_date").alias("__fx_day"),
        F.col("rate_to_group").alias("__fx_rate"),
    )
    joined = df.join(
        F.broadcast(rates),
        (F.col("__cur") == F.col("__fx_cur"))
        & (F.col("__fx_day") <= F.date_add(F.col("__day"), FX_LOOKAHEAD_DAYS))
        & (F.col("__fx_day") >= F.date_sub(F.col("__day"), FX_LOOKBACK_DAYS)),
        "left",
    )
    after = F.col("__fx_day") > F.col("__day")
    best = Window.partitionBy("__row").orderBy(
        after.asc_nulls_last(),
        F.when(after, F.col("__fx_day")).asc_nulls_last(),
        F.col("__fx_day").desc_nulls_last(),
    )
    joined = joined.withColumn("__rank", F.row_number().over(best)).where("__rank = 1")
    in_group = F.col("__cur") == group
    rate = F.when(in_group, F.lit(1)).otherwise(F.col("__fx_rate"))
    late = F.when(~in_group & after, F.lit("fx:rate_after_transaction_date"))
    return (
        joined.withColumn("__fx", rate.cast("decimal(18,8)"))
        .withColumn("_flags", F.array_compact(F.concat("_flags", F.array(late))))
        .drop("__row", "__cur", "__day", "__fx_cur", "__fx_day", "__fx_rate", "__rank")
    )


def _finish(df: DataFrame, spec: EntitySpec, run_id: str) -> DataFrame:
    """Name the canonical columns as the table declares them."""
    quantities = {q for c in spec.columns for q in c.unit_of} | {
        p for c in spec.columns for p in c.price_per
    }
    amounts = set(spec.money.amounts) if spec.money else set()
    out = [F.col("_plant_id").alias("plant_id")]
    if spec.partition_date:
        day_col = (
            f"__day_{spec.partition_date}"
            if spec.column(spec.partition_date).type == "datetime"
            else f"__val_{spec.partition_date}"
        )
        out.append(F.date_format(F.col(day_col), "yyyy-MM").alias("partition_month"))
    for c in spec.columns:
        out.append(F.col(f"__val_{c.name}").alias(c.name))
        if c.type == "datetime":
            out.append(F.col(f"__day_{c.name}").alias(f"{c.name}_local_date"))
        elif c.code or c.is_unit:
            suffix = "_local" if c.code else "_source"
            out.append(F.col(f"__local_{c.name}").alias(f"{c.name}{suffix}"))
        elif c.name in quantities:
            out.append(F.col(f"__src_{c.name}").alias(f"{c.name}_source"))
        if c.lookup:
            out.append(F.col(f"__grp_{c.name}").alias(c.group_id_column))
        if c.name in amounts:
            out.append(F.col(f"__grp_amt_{c.name}").alias(f"{c.name}_group"))
    if spec.money:
        if spec.money.currency == "plant":
            out.append(F.col("__val_currency").alias("currency"))
        out.append(F.col("__fx").alias("fx_rate_to_group"))
    seq = (
        F.col(f"__val_{spec.sequence}").cast("bigint") if spec.sequence else F.lit(0).cast("bigint")
    )
    days = F.datediff(F.col("_delivery_date"), F.lit(dt.date(1970, 1, 1)))
    out += [
        (
            F.coalesce(seq, F.lit(0)) * 10_000_000
            + days.cast("bigint") * 100
            + F.col("_file_version")
        ).alias("_seq"),
        *map(F.col, ["_flags", "_delivery_date", "_source_file", "_file_row"]),
        F.lit(run_id).alias("_run_id"),
        F.col("_errors"),
        F.col("_text"),
    ]
    return df.select(*out)
