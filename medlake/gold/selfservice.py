"""Self-service metric queries: one metric of the dictionary by dimensions, computed from the
silver rows a signed-in role may read (the governed read path), so a regional role gets its
own plants' figures. Used by `lakehouse metrics query` in process and by the query service.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from medlake.config import Settings
from medlake.gold import facts as gold_facts
from medlake.gold.metrics import Metric, compute, load_dictionary
from medlake.gold.panorama import PanoramaConfig, load_gold_config
from medlake.governance.read import Lakehouse, QueryResult
from medlake.governance.sqlcheck import QueryError, check_condition, check_names


def metric_query(
    lh: Lakehouse,
    settings: Settings,
    metric_id: str,
    *,
    by: Sequence[str],
    where: str | None = None,
    as_of: dt.date | None = None,
) -> tuple[Metric, QueryResult]:
    """The metric's values by `by` over the fact rows that pass `where`, read as `lh`'s role.

    `by` and `where` are what the analyst wrote: they are checked like governed SQL before
    anything is read (`QueryError`, audited as refused with the text). Raises `AccessDenied`
    or `TableNotFoundError` for an input the role may not read or that does not exist, and
    Spark's `ParseException` / `AnalysisException` for a condition that does not parse or
    names a column the role does not see."""

    metric = load_dictionary(settings.conf_dir).get(metric_id)
    fact = gold_facts.get(metric.spec.fact)
    asked: dict[str, Any] = {"metric": metric.id, "by": list(by), "where": where}
    try:
        check_names(by, what="--by")
        if where:
            check_condition(lh.spark, where, what="--where")
    except QueryError as exc:
        lh.refuse(exc, via="metrics", details=asked)
        raise
    tables = {name: lh.table(name, details=asked) for name in fact.inputs}
    ctx = gold_facts.FactContext(
        spark=lh.spark,
        as_of=as_of or dt.datetime.now(dt.UTC).date(),
        regions=gold_facts.plant_regions(settings.conf_dir),
        params=fact_params(settings),
    )
    rows = fact.build(tables, ctx)
    if where:
        rows = rows.where(where)
    values = compute([metric], rows, by).drop("metric_id")
    return metric, QueryResult(tuple(values.columns), values.orderBy(*by).collect())


def metric_title(metric: Metric) -> str:
    """The line shown above a metric's values."""
    return f"{metric.id} v{metric.version}: {metric.spec.name.en} ({metric.spec.unit})"


def fact_params(settings: Settings) -> dict[str, Any]:
    """The facts' parameters from the gold configuration (safety-stock days)."""
    conf = load_gold_config(settings.conf_dir, "panorama", PanoramaConfig)
    return {"safety_stock_days": conf.safety_stock_days.model_dump()}
