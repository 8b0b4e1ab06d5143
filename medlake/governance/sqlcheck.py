"""What an analyst's SQL may contain: an allow-list over Spark's own plans, not a deny-list
over text.

Two checks, both on trees Spark builds itself:

- `check_query` on the *parsed* plan, before anything runs: every operator must be a
  read-only relational one (projection, filter, join, aggregate, window, set operations,
  sort, limit, CTE, inline values); every function must be a built-in of an allowed group
  (aggregate, string, date, math, ... — not `reflect`, `java_method`, `input_file_name`,
  `raise_error`, `current_user`, XML/XPath, Avro or Protobuf readers), called by its plain
  name. Commands, `SET`, DDL, DML, `EXECUTE IMMEDIATE` (SQL text no check can see until it
  runs), table-valued functions (`read_files`, `range`), `IDENTIFIER(...)` and time travel
  are refused. Subqueries are checked like the query around them.
- `check_analysed` on the *analysed* plan, after the governed views are resolved: every
  relation must be one of the governed views (or inline values), and nothing outside them may
  call reflection, read file names or run a user-defined function.

`check_condition` applies the same function allow-list to a filter an analyst writes
(`lakehouse metrics query --where`), with no subqueries at all.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from py4j.java_gateway import JavaObject
from pyspark.sql import DataFrame, SparkSession


class QueryError(ValueError):
    """A query the governed path cannot run: not a SELECT, unknown table, refused construct."""


# Operators of a parsed query that only read and reshape rows.
PARSED_NODES = frozenset(
    {
        "Project", "Filter", "Aggregate", "Join", "LateralJoin", "Union", "Intersect", "Except",
        "Distinct", "Deduplicate", "Sort", "GlobalLimit", "LocalLimit", "Offset", "Tail",
        "SubqueryAlias", "UnresolvedSubqueryColumnAliases", "UnresolvedRelation",
        "UnresolvedWith", "OneRowRelation", "LocalRelation", "UnresolvedInlineTable",
        "WithWindowDefinition", "Window", "UnresolvedHaving", "Generate", "Pivot", "Unpivot",
        "Sample", "RepartitionByExpression", "Repartition", "UnresolvedHint", "PipeOperator",
    }
)  # fmt: skip
# The same after analysis; relations must be governed views (checked separately).
ANALYSED_NODES = frozenset(
    {
        "Project", "Filter", "Aggregate", "Join", "Union", "Intersect", "Except", "Distinct",
        "Deduplicate", "Sort", "GlobalLimit", "LocalLimit", "Offset", "Tail", "SubqueryAlias",
        "View", "OneRowRelation", "LocalRelation", "Window", "Generate", "Expand", "Sample",
        "RepartitionByExpression", "Repartition", "ResolvedHint", "WithCTE", "CTERelationDef",
        "CTERelationRef", "Pivot", "Unpivot", "LateralJoin",
    }
)  # fmt: skip
# Built-in function groups (Spark's ExpressionInfo.getGroup) whose functions compute on values.
ALLOWED_GROUPS = frozenset(
    {
        "agg_funcs", "array_funcs", "bitwise_funcs", "collection_funcs", "conditional_funcs",
        "conversion_funcs", "csv_funcs", "datetime_funcs", "generator_funcs", "hash_funcs",
        "json_funcs", "lambda_funcs", "map_funcs", "math_funcs", "predicate_funcs",
        "sketch_funcs", "string_funcs", "struct_funcs", "url_funcs", "variant_funcs",
        "window_funcs",
    }
)  # fmt: skip
# From the other groups, only these (misc_funcs holds reflection, file names, users, errors).
ALLOWED_EXTRA = frozenset({"typeof", "monotonically_increasing_id", "uuid"})
# Expressions the analysed plan may not hold outside a governed view, besides the classes of
# every function that is not allowed (refused_expressions): user-defined functions.
ANALYSED_REFUSED = frozenset(
    {
        "CallMethodViaReflection", "TryReflect", "InputFileName", "InputFileBlockStart",
        "InputFileBlockLength", "ScalaUDF", "PythonUDF", "ScalaUDAF", "ScalaAggregator",
    }
)  # fmt: skip
# Friendlier messages for what people try most.
REFUSED_NODES = {
    "InsertIntoStatement": "writes are not allowed",
    "InsertIntoDir": "writes are not allowed",
    "Call": "procedure calls are not allowed",
    "PlanWithUnresolvedIdentifier": "IDENTIFIER(...) table names are not allowed",
    "ExpressionWithUnresolvedIdentifier": "IDENTIFIER(...) names are not allowed",
    "RelationTimeTravel": "time travel in SQL is not supported; use table(name, version=N)",
    "UnresolvedExecuteImmediate": (
        "EXECUTE IMMEDIATE is not allowed: it runs SQL text that no check sees before it runs"
    ),
    "UnresolvedTableValuedFunction": (
        "table-valued functions (read_files, range, ...) are not allowed: read registered tables"
    ),
}
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Inspection:
    """What a checked query names: its tables (name parts) and its WITH names (lower case)."""

    relations: list[tuple[str, ...]] = field(default_factory=list)
    ctes: set[str] = field(default_factory=set)


def _seq(scala_seq: Any) -> list[Any]:
    return [scala_seq.apply(i) for i in range(scala_seq.size())]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def failure_condition(exc: BaseException) -> str:
    """What to tell an analyst about a query that failed while running: Spark's error
    condition (DIVIDE_BY_ZERO) or the Java exception's class, never the message, which can
    carry whatever the failing expression read."""
    condition = getattr(exc, "getCondition", None)
    if callable(condition) and condition():
        return str(condition())
    java = getattr(exc, "java_exception", None)
    if java is not None:
        return str(java.getClass().getName())
    return type(exc).__name__


class _Jvm:
    """Spark's parser, function registry and the plan classes the checks test against."""

    def __init__(self, spark: SparkSession) -> None:
        session: Any = spark
        state = session._jsparkSession.sessionState()
        self.parser = state.sqlParser()
        self.registry = state.functionRegistry()
        lang = session._jvm.java.lang

        def cls(name: str) -> Any:
            return lang.Class.forName(f"org.apache.spark.sql.catalyst.{name}")

        self.command = cls("plans.logical.Command")
        self.subquery = cls("expressions.SubqueryExpression")
        self.expression = cls("expressions.Expression")
        self.plan = cls("plans.logical.LogicalPlan")
        self.data_type = lang.Class.forName("org.apache.spark.sql.types.DataType")
        self.iterable = lang.Class.forName("scala.collection.Iterable")
        self.option = lang.Class.forName("scala.Option")
        self.product = lang.Class.forName("scala.Product")

    def members(self, node: Any) -> tuple[list[Any], list[Any]]:
        """Every expression and plan a tree node holds, wherever it holds them: its children,
        and also maps, sequences, options and tuples of its fields (window definitions,
        `|> SET` replacements, CTE definitions), which `children` and `expressions` miss."""
        expressions: list[Any] = []
        plans: list[Any] = []
        pending = [(item, 0) for item in _items(node.productIterator())]
        while pending:
            item, depth = pending.pop()
            if not isinstance(item, JavaObject) or depth > 8:
                continue
            if self.expression.isInstance(item):
                expressions.append(item)
            elif self.plan.isInstance(item):
                plans.append(item)
            elif self.data_type.isInstance(item):
                continue
            elif self.iterable.isInstance(item):
                pending += [(x, depth + 1) for x in _items(item.iterator())]
            elif self.option.isInstance(item):
                if item.isDefined():
                    pending.append((item.get(), depth + 1))
            elif self.product.isInstance(item):
                pending += [(x, depth + 1) for x in _items(item.productIterator())]
        return expressions, plans


def _items(iterator: Any) -> list[Any]:
    found = []
    while iterator.hasNext():
        found.append(iterator.next())
    return found


def _allowed(name: str, group: str) -> bool:
    return group in ALLOWED_GROUPS or name in ALLOWED_EXTRA


_REGISTRY: dict[str, tuple[tuple[str, str, str], ...]] = {}


def _registry(spark: SparkSession) -> tuple[tuple[str, str, str], ...]:
    """(name, group, implementing class) of every function in the registry, listed once per
    Spark release (about a quarter second of JVM calls): the built-ins are fixed by the
    release; a function a session adds later is not allowed by name and, run as a
    user-defined function, refused by class (ANALYSED_REFUSED)."""
    if spark.version not in _REGISTRY:
        _REGISTRY[spark.version] = _list_registry(spark)
    return _REGISTRY[spark.version]


def _list_registry(spark: SparkSession) -> tuple[tuple[str, str, str], ...]:
    jvm = _Jvm(spark)
    found = []
    for identifier in _items(jvm.registry.listFunction().iterator()):
        info = jvm.registry.lookupFunction(identifier)
        if info.isDefined():
            found.append(
                (
                    str(info.get().getName()).lower(),
                    str(info.get().getGroup()),
                    str(info.get().getClassName()),
                )
            )
    return tuple(sorted(found))


@functools.cache
def _split(functions: tuple[tuple[str, str, str], ...]) -> tuple[frozenset[str], frozenset[str]]:
    allowed = frozenset(n for n, group, _ in functions if _allowed(n, group))
    used = {c for n, group, c in functions if _allowed(n, group)}
    refused = frozenset(
        c.rsplit(".", 1)[-1] for n, group, c in functions if not _allowed(n, group)
    ) - {c.rsplit(".", 1)[-1] for c in used}
    return allowed, refused | ANALYSED_REFUSED


def allowed_functions(spark: SparkSession) -> frozenset[str]:
    """The built-in functions governed SQL may call: those of ALLOWED_GROUPS, and ALLOWED_EXTRA."""
    return _split(_registry(spark))[0]


def refused_expressions(spark: SparkSession) -> frozenset[str]:
    """Expression classes an analysed query may not hold outside a governed view: those that
    implement every built-in function not allowed (so a function reached in a way the
    parsed-plan check did not see is still refused), and user-defined functions."""
    return _split(_registry(spark))[1]


def check_query(spark: SparkSession, query: str) -> Inspection:
    """Parse `query` and check every operator and function; the tables and WITH names it uses.
    Nothing runs: a `QueryError` says what is not allowed."""
    jvm = _Jvm(spark)
    try:
        plan = jvm.parser.parsePlan(query)
    except Exception as exc:
        raise QueryError(f"the query does not parse: {first_line(exc)}") from None
    allowed = allowed_functions(spark)
    found = Inspection()
    plans = [plan]
    while plans:
        node = plans.pop()
        kind = node.getClass().getSimpleName()
        if jvm.command.isInstance(node) or node.getClass().getName().startswith(
            "org.apache.spark.sql.execution"
        ):
            raise QueryError(f"only SELECT queries are allowed here, not {kind}")
        if kind in REFUSED_NODES:
            raise QueryError(REFUSED_NODES[kind])
        if kind not in PARSED_NODES:
            raise QueryError(f"{kind} is not allowed in governed queries (read-only SELECT only)")
        if kind == "UnresolvedRelation":
            found.relations.append(tuple(str(p) for p in _seq(node.multipartIdentifier())))
        elif kind == "UnresolvedWith":
            found.ctes.update(str(pair._1()).lower() for pair in _seq(node.cteRelations()))
        expressions, children = jvm.members(node)  # the CTE bodies among them
        plans += children
        plans += _check_expressions(jvm, expressions, allowed, subqueries=True)
    return found


def check_condition(spark: SparkSession, condition: str, *, what: str = "the condition") -> None:
    """Check a filter an analyst wrote (a SQL boolean expression): allowed functions only, no
    subquery; `QueryError` naming `what` otherwise."""
    jvm = _Jvm(spark)
    try:
        expression = jvm.parser.parseExpression(condition)
    except Exception as exc:
        raise QueryError(f"{what} does not parse: {first_line(exc)}") from None
    try:
        _check_expressions(jvm, [expression], allowed_functions(spark), subqueries=False)
    except QueryError as exc:
        raise QueryError(f"{what}: {exc}") from None


def check_names(names: Collection[str], *, what: str) -> None:
    """Column names an analyst passes (`--by`): plain identifiers only."""
    bad = [n for n in names if not _PLAIN_NAME.match(n)]
    if bad:
        raise QueryError(f"{what}: {', '.join(map(repr, bad))} is not a plain column name")


def _check_expressions(
    jvm: _Jvm, expressions: list[Any], allowed: frozenset[str], *, subqueries: bool
) -> list[Any]:
    """Check expressions and their children; the plans of their subqueries, to check next."""
    plans = []
    while expressions:
        expression = expressions.pop()
        kind = expression.getClass().getSimpleName()
        if kind in REFUSED_NODES:
            raise QueryError(REFUSED_NODES[kind])
        if jvm.subquery.isInstance(expression) and not subqueries:
            raise QueryError("subqueries are not allowed here")
        if kind == "UnresolvedFunction":
            parts = [str(p) for p in _seq(expression.nameParts())]
            name = parts[-1].lower()
            if len(parts) > 1:
                raise QueryError(f"function {'.'.join(parts)}(): call built-ins by plain name")
            if name not in allowed:
                raise QueryError(f"function {name}() is not allowed in governed queries")
        inner, held = jvm.members(expression)
        expressions += inner
        if held and not subqueries:
            raise QueryError("subqueries are not allowed here")
        plans += held
    return plans


def check_analysed(df: DataFrame, governed_views: Collection[str]) -> None:
    """Every relation of `df`'s analysed plan is a governed view (its inside is trusted: the
    access policy built it) or inline values; every operator and expression outside them is
    read-only relational work."""
    jvm = _Jvm(df.sparkSession)
    refused = refused_expressions(df.sparkSession)
    views = {v.lower() for v in governed_views}
    plans = [df._jdf.queryExecution().analyzed()]
    while plans:
        node = plans.pop()
        kind = node.getClass().getSimpleName()
        if kind == "View":
            identifier = node.desc().identifier()
            name = str(identifier.table()).lower()
            temporary = node.isTempView() and not identifier.database().isDefined()
            if name not in views or not temporary:
                raise QueryError(f"the query reads view {name!r}, which is not governed")
            continue  # the governed view: built by the policy, not by the query
        if kind not in ANALYSED_NODES:
            raise QueryError(f"the analysed query holds {kind}, which is not allowed")
        expressions, children = jvm.members(node)
        plans += children
        while expressions:
            expression = expressions.pop()
            ekind = expression.getClass().getSimpleName()
            if ekind in refused:
                raise QueryError(f"the analysed query calls {ekind}, which is not allowed")
            inner, held = jvm.members(expression)
            expressions += inner
            plans += held
