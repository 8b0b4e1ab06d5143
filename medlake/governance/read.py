"""The governed read path: tables and SQL by role, with the access policy applied and audited."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pyspark.sql import DataFrame, Row, SparkSession

from medlake.config import Settings, load_settings
from medlake.entities import full_registry
from medlake.governance.access import (
    AccessDenied,
    AccessPolicy,
    ReadPlan,
    load_access,
    load_plants,
)
from medlake.governance.audit import AuditEvent, AuditTrail
from medlake.governance.identity import SignedIn, sign_in
from medlake.governance.sqlcheck import QueryError, check_analysed, check_query
from medlake.io import TableIO, TableNotFoundError
from medlake.sources import PlantInfo
from medlake.spark import build_spark
from medlake.tables import Registry

__all__ = [
    "AuditRecorder",
    "Lakehouse",
    "QueryError",
    "QueryResult",
    "apply_plan",
    "rewrite_tables",
]

VIEW_PREFIX = "governed__"
MAX_QUERY_IN_AUDIT = 4000
Via = Literal["table", "sql", "query"]

_TOKEN = re.compile(
    r"""(?P<space>\s+|--[^\n]*|/\*.*?\*/)
      |(?P<string>[rR]?'(?:\\.|[^'\\])*'|[rR]?"(?:\\.|[^"\\])*")
      |(?P<quoted>`(?:[^`]|``)*`)
      |(?P<word>[A-Za-z0-9_]+)
      |(?P<dot>\.)
      |(?P<other>.)""",
    re.DOTALL | re.VERBOSE,
)


class AuditRecorder(Protocol):
    """Where read events go: `medlake.governance.audit.AuditTrail`, or a stand-in in tests."""

    def record(self, events: Sequence[AuditEvent]) -> Any: ...


@dataclass(frozen=True)
class QueryResult:
    """Rows returned by `Lakehouse.fetch`, with their column names."""

    columns: tuple[str, ...]
    rows: list[Row]


@dataclass(frozen=True)
class _Read:
    plan: ReadPlan
    version: int


def apply_plan(plan: ReadPlan, df: DataFrame) -> DataFrame:
    """Rows filtered first (the filter may use a column the role does not see), then projected."""
    if plan.where_sql:
        df = df.where(plan.where_sql)
    return df.selectExpr(*plan.select_sql)


class Lakehouse:
    """Registered tables as one role may see them; every read is audited.

    >>> lh = Lakehouse.open(purpose="monthly complaint KPIs")  # signed in: doctest: +SKIP
    >>> lh.table("silver.complaints").groupBy("plant_id").count()               # doctest: +SKIP
    >>> lh.sql("SELECT fault_code, count(*) FROM silver.complaints GROUP BY 1")  # doctest: +SKIP

    `open()` signs the caller in (`medlake.governance.identity.sign_in`: the token from
    `lakehouse login` or $LAKEHOUSE_TOKEN, and a role the identity holds); the audit trail
    records that identity. Every table is read through its `ReadPlan`
    (medlake.governance.access): rows outside the role's plants are filtered before any
    column is projected, masked columns are replaced, denied columns are left out. Each
    `table()` and `sql()` call writes one audit event per table it touches before it returns.
    Their DataFrames are lazy, so those events carry `row_count=None` (nothing has been
    counted yet); `fetch()` and `lakehouse query` collect the result and record the number
    of rows returned.

    `sql()` runs in a session of its own (the caller's temporary views are invisible to it,
    SQL on file paths is switched off) and accepts only what `sqlcheck` allows: read-only
    queries over registered tables, each replaced by its governed view, with allowed
    functions; every refusal is audited (action `refused`). This path enforces the policy
    for reads by table name; it does not replace storage permissions, which must keep
    analysts away from the files themselves. A `Lakehouse` is not meant to be shared between
    threads.
    """

    def __init__(
        self,
        *,
        who: SignedIn,
        settings: Settings,
        spark: SparkSession,
        registry: Registry,
        policy: AccessPolicy,
        plants: Mapping[str, PlantInfo],
        purpose: str | None = None,
        trail: AuditRecorder | None = None,
    ) -> None:
        policy.role(who.role)
        self.who = who
        self.role = who.role
        self.principal = who.principal
        self.settings = settings
        self.registry = registry
        self.policy = policy
        self.plants = dict(plants)
        self.purpose = purpose
        # a session of its own: the caller's temp views are invisible, file paths are no tables
        self._spark = spark.newSession()
        self._spark.conf.set("spark.sql.runSQLOnFiles", "false")
        self._io = TableIO(self._spark, settings, registry)
        self._trail: AuditRecorder = trail or AuditTrail(settings, registry)

    @classmethod
    def open(
        cls,
        *,
        role: str | None = None,
        token: str | None = None,
        act_as: str | None = None,
        settings: Settings | None = None,
        spark: SparkSession | None = None,
        purpose: str | None = None,
        who: SignedIn | None = None,
    ) -> Lakehouse:
        """Sign in (`token`, else $LAKEHOUSE_TOKEN, else the `lakehouse login` token file) as
        `role` (default: the identity's only role), load the policy, registry and plants from
        `settings.conf_dir`, all before any Spark session is started. `who`: a caller that
        has already signed in (the query service)."""

        settings = settings or load_settings()
        policy = load_access(settings.conf_dir)
        if who is None:
            who = sign_in(
                settings,
                role=role,
                token=token,
                act_as=act_as,
                purpose=purpose,
                via="Lakehouse.open",
                policy=policy,
            )
        registry = full_registry(settings.conf_dir)
        plants = load_plants(settings.conf_dir)
        policy.check(registry, plants)
        if spark is None:
            spark = build_spark(settings, app_name="lakehouse-governed-read")
        return cls(
            who=who,
            settings=settings,
            spark=spark,
            registry=registry,
            policy=policy,
            plants=plants,
            purpose=purpose,
        )

    @property
    def spark(self) -> SparkSession:
        """The governed session (its SQL cannot read files by path)."""
        return self._spark

    # ----------------------------------------------------------------- reads

    def tables(self) -> list[str]:
        """The registered tables this role may read (sorted)."""
        return self.policy.readable(self.role, self.registry, self.plants)

    def plan(self, name: str) -> ReadPlan:
        """What this role gets from table `name` (raises `AccessDenied` when nothing)."""
        return self.policy.plan(self.role, self.registry.get(name), self.plants)

    def table(
        self, name: str, *, version: int | None = None, details: Mapping[str, Any] | None = None
    ) -> DataFrame:
        """The table as this role may see it, now or as of `version`; audited (row_count None),
        with `details` (what the caller computes from it) in the event. A refusal is audited
        too."""
        try:
            read, df = self._governed(name, version)
        except (AccessDenied, QueryError) as exc:
            self.refuse(exc, via="table", table=name, details=details)
            raise
        self._record([read], via="table", row_count=None, details=details)
        return df

    def sql(self, query: str) -> DataFrame:
        """Run a SELECT over registered tables, each read through its governed view; audited
        once per table (row_count None: the DataFrame is lazy), or once as refused."""
        df, reads = self._checked(query, via="sql")
        self._record(reads, via="sql", row_count=None, query=query)
        return df

    def fetch(self, query: str, *, limit: int | None = None) -> QueryResult:
        """Run `query`, collect at most `limit` rows and audit the number of rows returned."""
        df, reads = self._checked(query, via="query")
        try:
            rows = (df.limit(limit) if limit is not None else df).collect()
        except Exception as exc:  # the tables were read: audited, with what went wrong
            failure = {"error": type(exc).__name__}
            self._record(reads, via="query", row_count=None, query=query, details=failure)
            raise
        self._record(reads, via="query", row_count=len(rows), query=query, result=df.columns)
        return QueryResult(tuple(df.columns), rows)

    def refuse(
        self,
        reason: BaseException | str,
        *,
        via: str,
        table: str | None = None,
        query: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Audit a refused read: who, as which role, for what purpose, what was asked (the
        query or filter text) and why it was refused."""
        recorded: dict[str, Any] = {"via": via, "reason": str(reason), **(details or {})}
        if query is not None:
            recorded["query"] = query[:MAX_QUERY_IN_AUDIT]
        self._trail.record(
            [
                AuditEvent(
                    action="refused",
                    table_name=table or "(query)",
                    principal=self.principal,
                    role=self.role,
                    purpose=self.purpose,
                    row_count=0,
                    details=recorded,
                )
            ]
        )

    # ----------------------------------------------------------------- internals

    def _checked(self, query: str, *, via: Via) -> tuple[DataFrame, list[_Read]]:
        try:
            return self._compile(query)
        except (AccessDenied, QueryError) as exc:
            self.refuse(exc, via=via, query=query)
            raise

    def _governed(self, name: str, version: int | None) -> tuple[_Read, DataFrame]:
        plan = self.plan(name)
        pinned = self._io.version(name) if version is None else version
        if pinned is None:
            raise TableNotFoundError(f"{name}: the table has not been written yet")
        return _Read(plan, pinned), apply_plan(plan, self._io.read(name, version=pinned))

    def _compile(self, query: str) -> tuple[DataFrame, list[_Read]]:
        inspected = check_query(self._spark, query)
        relations, ctes = inspected.relations, inspected.ctes
        tables: set[str] = set()  # registered tables the query names (lower case)
        for parts in relations:
            key = ".".join(parts).lower()
            if len(parts) == 1 and key in ctes:
                if key in self.registry:
                    raise QueryError(f"the query's WITH clause {key!r} hides the table {key}")
                continue
            if key not in self.registry:
                raise QueryError(self._unknown(".".join(parts)))
            tables.add(key)
        views = {name: VIEW_PREFIX + name.replace(".", "__") for name in sorted(tables)}
        clash = sorted(set(views.values()) & ctes)
        if clash:
            raise QueryError(f"the query's WITH clause may not be named {', '.join(clash)}")
        for name in views:
            self.plan(name)  # every table is allowed before any is read
        reads: list[_Read] = []
        try:
            for name, view in views.items():
                read, df = self._governed(name, None)
                df.createOrReplaceTempView(view)
                reads.append(read)
            rewritten = rewrite_tables(query, views)
            left = check_query(self._spark, rewritten).relations
            known = {*views.values(), *ctes}
            stray = sorted({".".join(p) for p in left if ".".join(p).lower() not in known})
            if stray:
                raise QueryError(f"could not read {', '.join(stray)} through the governed path")
            # only read-only operators were parsed, so analysing it runs nothing
            result = self._spark.sql(rewritten)
            check_analysed(result, views.values())
        finally:
            for view in views.values():
                self._spark.catalog.dropTempView(view)
        return result, reads

    def _unknown(self, name: str) -> str:
        readable = self.tables()
        close = difflib.get_close_matches(name.lower(), [t.name for t in self.registry], n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return (
            f"unknown table {name!r} in the query; {hint}the query may name registered tables "
            f"only; role {self.role!r} may read {len(readable)}: {', '.join(readable[:12])}"
            + (", ..." if len(readable) > 12 else "")
        )

    def _record(
        self,
        reads: Sequence[_Read],
        *,
        via: Via,
        row_count: int | None,
        query: str | None = None,
        result: Sequence[str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """One event per table read, appended in one commit (nothing when no table was read).

        `columns` are the columns the role's view of the table offers (a query may use fewer);
        `details` names the call, the masked and left-out columns, the query and its result
        columns."""
        events = []
        for read in reads:
            recorded: dict[str, Any] = {
                "via": via,
                "masked": list(read.plan.masked),
                "denied": list(read.plan.denied),
                **(details or {}),
            }
            if query is not None:
                recorded["query"] = query[:MAX_QUERY_IN_AUDIT]
                recorded["tables_in_query"] = [r.plan.table for r in reads]
            if result is not None:
                recorded["result_columns"] = list(result)
            events.append(
                AuditEvent(
                    action="read",
                    table_name=read.plan.table,
                    principal=self.principal,
                    role=self.role,
                    table_version=read.version,
                    columns=read.plan.columns,
                    row_filter=read.plan.where_sql,
                    purpose=self.purpose,
                    row_count=row_count,
                    details=recorded,
                )
            )
        if events:
            self._trail.record(events)


# --------------------------------------------------------------------- SQL inspection


def _part(token: str) -> str:
    return token[1:-1].replace("``", "`") if token.startswith("`") else token


def rewrite_tables(query: str, views: Mapping[str, str]) -> str:
    """Replace each table name (`silver.complaints`, `` `silver`.`complaints` ``, also as a
    column qualifier) by its view; strings and comments are left alone."""
    tokens = [(m.lastgroup or "other", m.group()) for m in _TOKEN.finditer(query)]
    out: list[str] = []
    i = 0
    previous = ""  # kind of the last significant token
    while i < len(tokens):
        kind, text = tokens[i]
        if kind not in ("word", "quoted") or previous == "dot":
            out.append(text)
            previous = previous if kind == "space" else kind
            i += 1
            continue
        # a chain of names: part (. part)*, spaces and comments allowed around the dots
        ends, parts, j = [i], [_part(text)], i + 1
        while True:
            k = j
            while k < len(tokens) and tokens[k][0] == "space":
                k += 1
            if k >= len(tokens) or tokens[k][0] != "dot":
                break
            k += 1
            while k < len(tokens) and tokens[k][0] == "space":
                k += 1
            if k >= len(tokens) or tokens[k][0] not in ("word", "quoted"):
                break
            parts.append(_part(tokens[k][1]))
            ends.append(k)
            j = k + 1
        for n in range(len(parts), 0, -1):
            view = views.get(".".join(parts[:n]).lower())
            if view is not None:
                out.append(view)
                i = ends[n - 1] + 1
                break
        else:
            out.append(text)
            i += 1
        previous = "word"
    return "".join(out)
