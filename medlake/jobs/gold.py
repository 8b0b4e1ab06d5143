"""Job `gold`: the scenario marts of the run's months, every KPI through the metric dictionary.

Reads each silver input at one pinned version, builds the facts (medlake/gold/facts.py)
with only the rows dated on or before the logical date, and replaces the months of the run
(plus `settle_days` before its first date) in the panorama, the supplier scorecard and the
cost-transmission marts; the metric catalogue is rewritten whole. Running it again for the
same dates leaves the same tables.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from medlake.config import ConfigError
from medlake.gold import facts as gold_facts
from medlake.gold.cost import cost_facts
from medlake.gold.facts import plant_regions
from medlake.gold.metrics import load_dictionary
from medlake.gold.panorama import (
    PanoramaConfig,
    load_gold_config,
    metric_catalogue,
    months_between,
    panorama,
)
from medlake.gold.scorecard import ScorecardConfig, scoped_scorecards
from medlake.governance.access import load_access, load_plants
from medlake.io import CommitContext
from medlake.runtime import JobContext, JobResult, lineage_run

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from medlake.gold.metrics import MetricDictionary

PANORAMA = "gold.supply_chain_panorama"
SCORECARD = "gold.supplier_scorecard"
CATALOGUE = "gold.metric_catalogue"
PRODUCT_COST = "gold.product_cost"
TRANSMISSION = "gold.cost_transmission"
SUPPLY_FACTS = {"receipt_lines", "inspection_lots", "purchase_lines", "inventory_days", "wip_days"}
COST_INPUTS = ("silver.boms", "silver.standard_costs", "silver.sales_orders")


def run(ctx: JobContext) -> JobResult:

    conf = ctx.settings.conf_dir
    dictionary = load_dictionary(conf)
    pano_conf = load_gold_config(conf, "panorama", PanoramaConfig)
    score_conf = load_gold_config(conf, "scorecard", ScorecardConfig)
    as_of = ctx.logical_date
    first = min(ctx.dates) - dt.timedelta(days=pano_conf.settle_days)
    months = months_between(first, as_of)

    with lineage_run(ctx) as recorder:
        names = sorted({*gold_facts.inputs_of(SUPPLY_FACTS), "silver.suppliers", *COST_INPUTS})
        tables, versions = _read_pinned(ctx, names)
        fctx = gold_facts.FactContext(
            spark=ctx.spark,
            as_of=as_of,
            regions=gold_facts.plant_regions(conf),
            params={"safety_stock_days": pano_conf.safety_stock_days.model_dump()},
        )
        facts = {
            n: df.persist() for n, df in gold_facts.build_facts(SUPPLY_FACTS, tables, fctx).items()
        }
        marts = _marts(ctx, dictionary, facts, tables, months, score_conf, pano_conf.grains)
        commit = CommitContext(job=ctx.job, run_id=ctx.run_id, logical_date=as_of)
        written: dict[str, int] = {}
        rows: dict[str, int] = {}
        for table, df in marts.items():
            # computed once: the table layer reads the frame for files, stats and checks
            framed = _stamp(ctx, table, df, as_of).localCheckpoint(eager=True)
            result = ctx.io.replace_partitions(
                table, framed, partition={"month": months}, ctx=commit
            )
            written[table], rows[table] = result.version, result.rows_written
        catalogue = _catalogue(ctx, dictionary)
        result = ctx.io.overwrite(CATALOGUE, catalogue, ctx=commit)
        written[CATALOGUE], rows[CATALOGUE] = result.version, result.rows_written
        for df in facts.values():
            df.unpersist()
        _lineage(ctx, versions, written)
        for table, version in sorted(versions.items()):
            recorder.read_table(table, version)
        for table, version in sorted(written.items()):
            recorder.wrote(table, version)
    return JobResult.of(
        ctx,
        {
            "run_id": ctx.run_id,
            "as_of_date": as_of,
            "months": months,
            "rows_written": rows,
            "versions_written": written,
            "metric_versions": dictionary.versions(m.id for m in dictionary),
        },
    )


def _read_pinned(ctx: JobContext, names: list[str]) -> tuple[dict[str, DataFrame], dict[str, int]]:
    """Each input at its current version (one consistent snapshot for the whole run)."""

    tables, versions = {}, {}
    for name in names:
        version = ctx.io.version(name)
        if version is None:
            raise ConfigError(
                f"{name} has not been written yet: run `lakehouse run silver --date D` for the "
                "dates to compute before `lakehouse run gold`"
            )
        tables[name] = ctx.io.read(name, version=version)
        versions[name] = version
    return tables, versions


def _marts(
    ctx: JobContext,
    dictionary: MetricDictionary,
    facts: dict[str, DataFrame],
    tables: dict[str, DataFrame],
    months: list[str],
    score_conf: Any,
    grains: list[list[str]],
) -> dict[str, DataFrame]:

    as_of = F.lit(ctx.logical_date)
    costs = cost_facts(
        boms=tables["silver.boms"],
        purchase_orders=tables["silver.purchase_orders"].where(F.col("order_date") <= as_of),
        standard_costs=tables["silver.standard_costs"],
        sales_orders=tables["silver.sales_orders"].where(F.col("order_date") <= as_of),
        start_month=months[0],
        end_month=months[-1],
    )
    regions = F.create_map(
        *[F.lit(x) for kv in sorted(plant_regions(ctx.settings.conf_dir).items()) for x in kv]
    )
    product_costs = costs.product_costs.withColumn("region", regions[F.col("plant_id")])
    pano = panorama(dictionary, {**facts, "product_costs": product_costs}, grains, months)
    plants = load_plants(ctx.settings.conf_dir)
    scopes = load_access(ctx.settings.conf_dir).row_scopes(plants)
    suppliers = tables["silver.suppliers"]
    cards = scoped_scorecards(dictionary, facts, score_conf, months, suppliers, scopes)
    cost_versions = _versions_map(dictionary, "product_costs")
    return {
        PANORAMA: pano,
        SCORECARD: cards,
        PRODUCT_COST: costs.product_costs.withColumn("metric_versions", cost_versions),
        TRANSMISSION: costs.cost_contributions.withColumn("metric_versions", cost_versions),
    }


def _versions_map(dictionary: MetricDictionary, fact: str) -> Any:
    """{metric id: version} of the active metrics of `fact`, as a map column."""

    pairs = sorted((m.id, m.version) for m in dictionary.for_fact(fact))
    return F.create_map(*[F.lit(x) for pair in pairs for x in pair])


def _stamp(ctx: JobContext, table: str, df: DataFrame, as_of: dt.date) -> DataFrame:
    """The table's columns in declared order, with the run's as-of date and run id."""

    spec = ctx.registry.get(table)
    columns = {c.name for c in spec.columns}
    if "as_of_date" in columns:
        df = df.withColumn("as_of_date", F.lit(as_of))
    df = df.withColumn("_run_id", F.lit(ctx.run_id))
    return df.select(*[F.col(c.name).cast(c.data_type) for c in spec.columns])


def _catalogue(ctx: JobContext, dictionary: MetricDictionary) -> DataFrame:

    spec = ctx.registry.get(CATALOGUE)
    return ctx.spark.createDataFrame(metric_catalogue(dictionary), spec.spark_schema)


def _lineage(ctx: JobContext, read: dict[str, int], written: dict[str, int]) -> None:
    """Every gold table version comes from every silver version read (one snapshot)."""
    rows: list[dict[str, Any]] = []
    for table, version in sorted(written.items()):
        edges = ctx.edges()
        for source, source_version in sorted(read.items()):
            edges.read_table(source, source_version)
        edges.wrote(table, version)
        rows += edges.rows()
    ctx.record_edges(rows)


if __name__ == "__main__":  # spark-submit medlake/jobs/gold.py --date D [...]
    from medlake.cli import submit

    submit("gold")
