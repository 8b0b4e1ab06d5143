"""Job `gold`: the scenario marts of the run's months, every KPI through the metric dictionary.

Reads each silver input there is at one pinned version, builds the facts
(medlake/gold/facts.py) with only the rows dated on or before the logical date, and replaces
the months of the run (plus `settle_days` before its first date) in the panorama, the
supplier scorecard and the cost-transmission marts; the metric catalogue is rewritten whole.
Running it again for the same dates leaves the same tables.

Partial sources: each fact and mart declares the silver tables it needs (required) and those
it can do without (optional). A fact or mart is computed for the plants that have rows in
every required input, and the result names the plants left out and why (`plants_missing`,
`notes`); a mart that no plant can be computed for is skipped (`marts_skipped`), its table
left as it is, and the others are still written. A missing optional input is read as empty
(the metrics and columns that come from it are absent or NULL, and a note says so). With no
mart to compute at all the job is not ready (`NotReadyError`, exit 75) and writes nothing.

Months without data: a plant's data of a fact ends on the earliest last delivery of its
dated inputs (never after the logical date). Its rows of the months after that month are
not computed, so a month after the data ends is never written (as ok, or as zero change);
the run's months that no input reaches are listed in `months_without_data` and emptied in
the marts. A row of a month its data does not cover to the month's last day carries that
date in `data_through` (NULL: a whole month of data).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from medlake.config import NotReadyError
from medlake.gold import cost as gold_cost
from medlake.gold import facts as gold_facts
from medlake.gold import panorama as gold_panorama
from medlake.gold import scorecard as gold_scorecard
from medlake.gold.metrics import load_dictionary
from medlake.gold.panorama import PanoramaConfig, load_gold_config, metric_catalogue, months_between
from medlake.gold.scorecard import ScorecardConfig, scoped_scorecards
from medlake.governance.access import load_access, load_plants
from medlake.io import CommitContext
from medlake.runtime import JobContext, JobResult, lineage_run

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from medlake.gold.facts import Holdings
    from medlake.gold.metrics import MetricDictionary

log = logging.getLogger("medlake.gold")

PANORAMA = "gold.supply_chain_panorama"
SCORECARD = "gold.supplier_scorecard"
CATALOGUE = "gold.metric_catalogue"
PRODUCT_COST = "gold.product_cost"
TRANSMISSION = "gold.cost_transmission"
COST_MARTS = (PRODUCT_COST, TRANSMISSION)
# the facts built from silver by medlake/gold/facts.py (product_costs comes from the cost marts)
SUPPLY_FACTS = set(gold_panorama.FACTS) - {"product_costs"}
COST_INPUTS = (*gold_cost.REQUIRED_INPUTS, *gold_cost.OPTIONAL_INPUTS)


@dataclass
class Outcome:
    """What the run could compute: the marts (table -> frame), the marts it skipped with the
    reason, the plants each mart left out with the required inputs they lack, and notes."""

    marts: dict[str, DataFrame] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    plants_missing: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        log.warning("gold: %s", text)
        self.notes.append(text)

    def skip(self, tables: tuple[str, ...], reason: str) -> None:
        for table in tables:
            self.skipped[table] = reason
        self.note(f"{', '.join(tables)} skipped: {reason}")

    def missing(self, mart: str, left_out: dict[str, list[str]]) -> None:
        """Record that `mart` lacks the plants of `left_out` (plant -> required tables)."""
        if not left_out:
            return
        plants = self.plants_missing.setdefault(mart, {})
        for plant, tables in left_out.items():
            plants[plant] = sorted({*plants.get(plant, []), *tables})


@dataclass
class Inputs:
    """The run's silver: tables by name (a missing one read as empty), what they hold, the
    facts built from them and, per fact, the date each plant's data of it ends."""

    held: Holdings
    tables: dict[str, DataFrame]
    regions: dict[str, str]  # plant -> region
    months: list[str]
    facts: dict[str, DataFrame] = field(default_factory=dict)
    ends: dict[str, dict[str, dt.date]] = field(default_factory=dict)
    persisted: list[DataFrame] = field(default_factory=list)  # unpersisted when the run ends

    def keep(self, df: DataFrame) -> DataFrame:
        """`df` persisted (several marts read it) until the run ends."""
        self.persisted.append(df.persist())
        return df


def run(ctx: JobContext) -> JobResult:

    conf = ctx.settings.conf_dir
    dictionary = load_dictionary(conf)
    pano_conf = load_gold_config(conf, "panorama", PanoramaConfig)
    score_conf = load_gold_config(conf, "scorecard", ScorecardConfig)
    as_of = ctx.logical_date
    first = min(ctx.dates) - dt.timedelta(days=pano_conf.settle_days)
    months = months_between(first, as_of)

    with lineage_run(ctx) as recorder:
        names = sorted(
            {*gold_facts.inputs_of(SUPPLY_FACTS), *gold_scorecard.OPTIONAL_INPUTS, *COST_INPUTS}
        )
        tables, versions = _read_pinned(ctx, names)
        dated = {n for n in tables if "partition_month" in ctx.registry.get(n).partition_by}
        held = gold_facts.Holdings.of(tables, dated, as_of)
        for name in names:  # a missing input reads as empty: only optional ones are used so
            if name not in tables:
                tables[name] = ctx.spark.createDataFrame([], ctx.registry.get(name).spark_schema)
        silver = Inputs(held, tables, gold_facts.plant_regions(conf), months)
        fctx = gold_facts.FactContext(
            spark=ctx.spark,
            as_of=as_of,
            regions=silver.regions,
            params={"safety_stock_days": pano_conf.safety_stock_days.model_dump()},
        )
        out = Outcome()
        commit = CommitContext(job=ctx.job, run_id=ctx.run_id, logical_date=as_of)
        written: dict[str, int] = {}
        rows: dict[str, int] = {}
        try:
            _facts(silver, fctx, dictionary, out)
            _cost_marts(ctx, silver, dictionary, out)
            _panorama(silver, dictionary, pano_conf, out)
            _scorecard(ctx, silver, dictionary, score_conf, out)
            if not out.marts:
                reasons = sorted({f"{t}: {why}" for t, why in out.skipped.items()})
                raise NotReadyError(
                    "gold has no mart to compute: "
                    + "; ".join(reasons)
                    + ". Run `lakehouse run silver --date D` for the sources first"
                )
            for table, df in out.marts.items():
                # computed once: the table layer reads the frame for files, stats and checks
                framed = _stamp(ctx, table, df, as_of).localCheckpoint(eager=True)
                result = ctx.io.replace_partitions(
                    table, framed, partition={"month": months}, ctx=commit
                )
                written[table], rows[table] = result.version, result.rows_written
        finally:
            for df in silver.persisted:
                df.unpersist()
        catalogue = _catalogue(ctx, dictionary)
        result = ctx.io.overwrite(CATALOGUE, catalogue, ctx=commit)
        written[CATALOGUE], rows[CATALOGUE] = result.version, result.rows_written
        _lineage(ctx, versions, written)
        for table, version in sorted(versions.items()):
            recorder.read_table(table, version)
        for table, version in sorted(written.items()):
            recorder.wrote(table, version)
    empty = _months_without_data(held, months)
    if empty:
        out.note(
            f"no input has data in {', '.join(empty)} (silver ends {_last_data(held)}): "
            "those months are not computed and hold no rows"
        )
    return JobResult.of(
        ctx,
        {
            "run_id": ctx.run_id,
            "as_of_date": as_of,
            "months": months,
            "months_without_data": empty,
            "marts_written": sorted(written),
            "marts_skipped": sorted(out.skipped),
            "rows_written": rows,
            "versions_written": written,
            "plants_missing": out.plants_missing,
            "data_through": {
                fact: {p: d.isoformat() for p, d in sorted(by_plant.items())}
                for fact, by_plant in sorted(silver.ends.items())
            },
            "metric_versions": dictionary.versions(m.id for m in dictionary),
            "notes": out.notes,
        },
    )


def _read_pinned(ctx: JobContext, names: list[str]) -> tuple[dict[str, DataFrame], dict[str, int]]:
    """Each input that has been written at its current version (one consistent snapshot for
    the whole run); the others are left out."""

    tables, versions = {}, {}
    for name in names:
        version = ctx.io.version(name)
        if version is None:
            continue
        tables[name] = ctx.io.read(name, version=version)
        versions[name] = version
    return tables, versions


def _facts(
    silver: Inputs, fctx: gold_facts.FactContext, dictionary: MetricDictionary, out: Outcome
) -> None:
    """The supply facts there are inputs for, into `silver.facts`: each for the plants that
    have its required inputs, in the months their data reaches (persisted: several marts
    read them)."""

    held = silver.held
    for name in sorted(SUPPLY_FACTS):
        fact = gold_facts.get(name)
        plants = held.having(fact.required)
        if not plants:
            metrics = ", ".join(m.id for m in dictionary.for_fact(name)) or "none"
            out.note(
                f"fact {name} not computed: {_why(held, fact.required)}; "
                f"its KPIs are absent from the panorama ({metrics})"
            )
            continue
        left_out = _note_plants(held, f"fact {name}", fact.required, fact.optional, plants, out)
        out.missing(PANORAMA, left_out)
        silver.ends[name] = held.ends(fact.inputs, plants)
        built = gold_facts.build_facts({name}, silver.tables, fctx)[name]
        silver.facts[name] = silver.keep(gold_cost.covered(built, silver.ends[name]))


def _cost_marts(
    ctx: JobContext, silver: Inputs, dictionary: MetricDictionary, out: Outcome
) -> None:
    """gold.product_cost and gold.cost_transmission for the plants with a BOM and purchase
    orders, and the panorama's fact product_costs; skipped when no plant has both."""

    held = silver.held
    plants = held.having(gold_cost.REQUIRED_INPUTS)
    if not plants:
        out.skip(COST_MARTS, _why(held, gold_cost.REQUIRED_INPUTS))
        return
    left_out = _note_plants(
        held,
        " and ".join(COST_MARTS),
        gold_cost.REQUIRED_INPUTS,
        gold_cost.OPTIONAL_INPUTS,
        plants,
        out,
    )
    for mart in (*COST_MARTS, PANORAMA):  # the panorama's cost KPIs too
        out.missing(mart, left_out)
    ends = silver.ends["product_costs"] = held.ends(COST_INPUTS, plants)
    tables, as_of = silver.tables, F.lit(ctx.logical_date)
    costs = gold_cost.cost_facts(
        boms=tables["silver.boms"],
        purchase_orders=tables["silver.purchase_orders"].where(F.col("order_date") <= as_of),
        standard_costs=tables["silver.standard_costs"],
        sales_orders=tables["silver.sales_orders"].where(F.col("order_date") <= as_of),
        start_month=silver.months[0],
        end_month=silver.months[-1],
        ends=ends,
    )
    no_sales = sorted(plants - held.having(["silver.sales_orders"]))
    products = silver.keep(gold_cost.without_sales(costs.product_costs, no_sales))  # + panorama
    versions = _versions_map(dictionary, "product_costs")
    regions = F.create_map(*[F.lit(x) for kv in sorted(silver.regions.items()) for x in kv])
    silver.facts["product_costs"] = products.withColumn("region", regions[F.col("plant_id")])
    out.marts[PRODUCT_COST] = products.withColumn("metric_versions", versions)
    out.marts[TRANSMISSION] = costs.cost_contributions.withColumn("metric_versions", versions)


def _panorama(
    silver: Inputs, dictionary: MetricDictionary, conf: PanoramaConfig, out: Outcome
) -> None:
    """The panorama from the facts there are; skipped when there is none."""

    facts = {n: f for n, f in silver.facts.items() if n in gold_panorama.FACTS}
    if not facts:
        inputs = sorted({t for f in gold_panorama.FACTS for t in gold_facts.get(f).required})
        out.skip((PANORAMA,), f"no fact can be computed: {_why(silver.held, inputs)}")
        return
    out.marts[PANORAMA] = gold_panorama.panorama(
        dictionary, facts, conf.grains, silver.months, ends=silver.ends, regions=silver.regions
    )


def _scorecard(
    ctx: JobContext,
    silver: Inputs,
    dictionary: MetricDictionary,
    conf: ScorecardConfig,
    out: Outcome,
) -> None:
    """The supplier scorecard of every scope, for the plants with receipt and purchase
    lines; a component whose fact is missing is NULL; skipped without those lines."""

    held, facts, ends = silver.held, silver.facts, silver.ends
    lacking = [f for f in gold_scorecard.REQUIRED_FACTS if f not in facts]
    if lacking:
        needed = sorted({t for f in lacking for t in gold_facts.get(f).required})
        out.skip((SCORECARD,), f"needs the facts {', '.join(lacking)}: {_why(held, needed)}")
        return
    components = conf.component_facts(dictionary)
    for component, fact_name in sorted(components.items()):
        if fact_name not in facts:
            out.note(f"{SCORECARD}: component {component} is NULL (fact {fact_name} not computed)")
    used = sorted(f for f in {*gold_scorecard.REQUIRED_FACTS, *components.values()} if f in facts)
    plants = frozenset(ends["receipt_lines"])
    required = sorted(
        {t for f in gold_scorecard.REQUIRED_FACTS for t in gold_facts.get(f).required}
    )
    out.missing(SCORECARD, _note_plants(held, SCORECARD, required, (), plants, out))
    score_ends = {p: min(ends[f][p] for f in used if p in ends[f]) for p in sorted(plants)}
    scopes = load_access(ctx.settings.conf_dir).row_scopes(load_plants(ctx.settings.conf_dir))
    out.marts[SCORECARD] = scoped_scorecards(
        dictionary,
        {n: facts[n] for n in used},
        conf,
        silver.months,
        silver.tables["silver.suppliers"],
        scopes,
        ends=score_ends,
    )


def _why(held: Holdings, required: tuple[str, ...] | list[str]) -> str:
    """Why no plant has every table of `required`: which are not written, which empty."""

    absent = [t for t in required if t not in held.plants]
    empty = [t for t in required if t in held.plants and not held.plants[t]]
    parts = []
    if absent:
        parts.append(f"{', '.join(absent)} not written yet")
    if empty:
        parts.append(f"{', '.join(empty)} empty")
    if not parts:  # every table has rows, but no plant has them all
        parts.append(
            "no plant has rows in all of "
            + "; ".join(f"{t} ({', '.join(sorted(held.plants[t]))})" for t in required)
        )
    return f"needs {', '.join(required)}: " + "; ".join(parts)


def _note_plants(
    held: Holdings,
    what: str,
    required: tuple[str, ...] | list[str],
    optional: tuple[str, ...],
    plants: frozenset[str],
    out: Outcome,
) -> dict[str, list[str]]:
    """Note the plants with silver data that `what` leaves out (lacking required inputs) and
    those it computes without an optional input; return the first (plant -> tables)."""

    left_out = held.lacking(required, held.every_plant - plants)
    if left_out:
        out.note(
            f"{what} computed for {', '.join(sorted(plants))}; left out: "
            + "; ".join(f"{p} (no rows in {', '.join(t)})" for p, t in left_out.items())
        )
    thin = {t: sorted(plants - held.having([t])) for t in optional}
    thin = {t: p for t, p in thin.items() if p}
    if thin:
        out.note(
            f"{what} without "
            + "; ".join(f"{t} at {', '.join(p)}" for t, p in thin.items())
            + " (read as empty: what comes from it is absent)"
        )
    return left_out


def _months_without_data(held: Holdings, months: list[str]) -> list[str]:
    """The run's months after the month the last data of every dated input ends in."""

    last = _last_data(held)
    return [m for m in months if last is None or m > f"{last:%Y-%m}"]


def _last_data(held: Holdings) -> dt.date | None:
    days = [min(d, held.as_of) for plants in held.last.values() for d in plants.values()]
    return max(days, default=None)


def _versions_map(dictionary: MetricDictionary, fact: str) -> Any:
    """{metric id: version} of the active metrics of `fact`, as a map column."""

    pairs = sorted((m.id, m.version) for m in dictionary.for_fact(fact))
    return F.create_map(*[F.lit(x) for pair in pairs for x in pair])


def _stamp(ctx: JobContext, table: str, df: DataFrame, as_of: dt.date) -> DataFrame:
    """The table's columns in declared order, with the run's as-of date and run id.

    A column whose type differs from the declared one only in the nullability of its
    elements (an array of literals holds no NULL) is not cast: the optimizer drops such a
    cast, and a checkpoint of a plan whose output types then differ from the analysed ones
    makes Spark log the whole plan as a warning (LogicalRDD, about 2 KB per table)."""

    spec = ctx.registry.get(table)
    columns = {c.name for c in spec.columns}
    if "as_of_date" in columns:
        df = df.withColumn("as_of_date", F.lit(as_of))
    df = df.withColumn("_run_id", F.lit(ctx.run_id))
    actual = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    return df.select(
        *[
            F.col(c.name)
            if actual.get(c.name) == c.data_type.simpleString()
            else F.col(c.name).cast(c.data_type)
            for c in spec.columns
        ]
    )


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
