"""Multi-level BOM explosion: every purchased component of every product, with its quantity path.

A BOM line says how much of a component goes into one unit of a product at a plant. When the
component has a BOM of its own at the same plant it is a subassembly, and its lines are
exploded in turn (one join per level, up to `max_depth`), multiplying quantities along the
path. A component without a BOM at the plant is a leaf: it is bought, and its price is what
the cost roll-up reads. Before the first `valid_from` of a subassembly's BOM the subassembly
itself is the leaf (priced as bought, or visibly without a cost), so no path silently
disappears.

Validity: several versions of a line are told apart by `valid_from`; a version holds from its
`valid_from` until the next version's (`valid_to`, exclusive; null = still valid). A path
holds where every line on it holds, so each exploded row carries the intersection of its
lines' intervals. `valid_on(d)` selects the rows in effect on a day; the cost facts use the
last day of the month, so a change during a month counts for the whole month.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

QTY_TYPE = "decimal(24,12)"  # extended quantity: two levels of silver's 6-decimal qty_per, exact
DEFAULT_MAX_DEPTH = 10
BEGINNING = dt.date(1900, 1, 1)  # a line without valid_from has always been valid
_EXAMPLES = 5  # paths named in an error


class BomError(ValueError):
    """A BOM that cannot be exploded: a cycle, or deeper than the configured maximum."""


class BomCycleError(BomError):
    """A component that (through its subassemblies) contains itself."""


class BomDepthError(BomError):
    """A BOM with more levels than `max_depth`."""


def explode_bom(boms: DataFrame, *, max_depth: int = DEFAULT_MAX_DEPTH) -> DataFrame:
    """Every (plant, product, purchased component, path) of `silver.boms`, with the quantity.

    Returns one row per path from a product (every `product_code` that has a BOM, including
    subassemblies, which are flagged `is_subassembly`) down to a leaf component:
    `plant_id, product_code, product_group_id, component_code, component_group_id,
    extended_qty` (component units per product unit: the product of `qty_per` along the path),
    `level` (1 = a direct line), `path` (codes from the product to the component),
    `valid_from, valid_to` (the interval in which every line on the path holds; valid_to is
    exclusive, null when open) and `is_subassembly` (the product is itself a component of
    another BOM at the plant). A component reached by two paths appears twice.

    Raises `BomCycleError` naming the plant and the looping path when a component contains
    itself, and `BomDepthError` when a path is longer than `max_depth` levels. Each level
    runs one small Spark job to decide whether to go on.

    >>> rows = explode_bom(spark.table("boms"), max_depth=8)  # doctest: +SKIP
    >>> rows.where(valid_on(dt.date(2026, 5, 31))).groupBy("product_code").count()  # doctest: +SKIP
    """
    if max_depth < 1:
        raise ValueError(f"max_depth must be 1 or more, got {max_depth}")
    lines = _versioned_lines(boms).localCheckpoint()
    # renamed columns: the joins below must not resolve both sides to the same lineage
    parents = lines.groupBy(
        F.col("plant_id").alias("_parent_plant"), F.col("product_code").alias("_parent")
    ).agg(F.min("valid_from").alias("_parent_from"))  # its BOM exists from then on
    used = lines.select(
        F.col("plant_id").alias("_used_plant"), F.col("component_code").alias("_used")
    ).distinct()

    frontier = lines.select(
        "plant_id",
        "product_code",
        "product_group_id",
        "component_code",
        "component_group_id",
        F.col("qty_per").alias("extended_qty"),
        F.lit(1).alias("level"),
        F.array("product_code", "component_code").alias("path"),
        "valid_from",
        "valid_to",
    )
    _raise_on_cycles(frontier.where(F.col("product_code") == F.col("component_code")))
    leaves: list[DataFrame] = []
    for level in range(1, max_depth + 1):
        marked = frontier.join(
            F.broadcast(parents),
            (F.col("plant_id") == F.col("_parent_plant"))
            & (F.col("component_code") == F.col("_parent")),
            "left",
        )
        made = F.col("_parent").isNotNull()
        # bought: no BOM at the plant, or the time before the component's BOM begins
        bought = marked.where(~made | (F.col("valid_from") < F.col("_parent_from"))).withColumn(
            "valid_to",
            F.when(made, F.least("valid_to", "_parent_from")).otherwise(F.col("valid_to")),
        )
        leaves.append(bought.drop("_parent_plant", "_parent", "_parent_from"))
        exploding = marked.where(
            made & (F.col("valid_to").isNull() | (F.col("valid_to") > F.col("_parent_from")))
        )
        deeper = _expand(exploding.drop("_parent_plant", "_parent", "_parent_from"), lines)
        _raise_on_cycles(deeper.where(F.col("_cycle")))
        frontier = deeper.drop("_cycle").localCheckpoint()
        if frontier.isEmpty():
            break
        if level == max_depth:
            examples = [
                _arrow(r["plant_id"], r["path"]) for r in frontier.limit(_EXAMPLES).collect()
            ]
            raise BomDepthError(
                f"the BOM has more than max_depth={max_depth} levels, e.g. "
                + "; ".join(examples)
                + "; raise max_depth if the structure is real"
            )
    exploded = leaves[0]
    for part in leaves[1:]:
        exploded = exploded.unionByName(part)
    return exploded.join(
        used,
        (F.col("plant_id") == F.col("_used_plant")) & (F.col("product_code") == F.col("_used")),
        "left",
    ).select(*exploded.columns, F.col("_used").isNotNull().alias("is_subassembly"))


def valid_on(day: dt.date | Column) -> Column:
    """Condition selecting exploded rows whose every line holds on `day`."""
    when = F.lit(day) if isinstance(day, dt.date) else day
    return (F.col("valid_from") <= when) & (F.col("valid_to").isNull() | (F.col("valid_to") > when))


def _versioned_lines(boms: DataFrame) -> DataFrame:
    """BOM lines with their validity interval [valid_from, next version's valid_from)."""
    version = Window.partitionBy("plant_id", "product_code", "component_code").orderBy("valid_from")
    return (
        boms.select(
            "plant_id",
            "product_code",
            "product_group_id",
            "component_code",
            "component_group_id",
            F.col("qty_per").cast(QTY_TYPE).alias("qty_per"),
            F.coalesce(F.col("valid_from"), F.lit(BEGINNING)).alias("valid_from"),
        )
        .where(F.col("product_code").isNotNull() & F.col("component_code").isNotNull())
        .withColumn("valid_to", F.lead("valid_from").over(version))
    )


def _expand(frontier: DataFrame, lines: DataFrame) -> DataFrame:
    """One level down: each subassembly row joined to the lines of the subassembly's BOM that
    overlap it in time; `_cycle` marks rows whose new component is already on the path."""
    f, ln = frontier.alias("f"), lines.alias("l")
    overlap = (F.col("l.valid_from") < F.coalesce(F.col("f.valid_to"), F.lit(dt.date.max))) & (
        F.col("f.valid_from") < F.coalesce(F.col("l.valid_to"), F.lit(dt.date.max))
    )
    joined = f.join(
        ln,
        (F.col("f.plant_id") == F.col("l.plant_id"))
        & (F.col("f.component_code") == F.col("l.product_code"))
        & overlap,
    )
    return joined.select(
        F.col("f.plant_id").alias("plant_id"),
        F.col("f.product_code").alias("product_code"),
        F.col("f.product_group_id").alias("product_group_id"),
        F.col("l.component_code").alias("component_code"),
        F.col("l.component_group_id").alias("component_group_id"),
        (F.col("f.extended_qty") * F.col("l.qty_per")).cast(QTY_TYPE).alias("extended_qty"),
        (F.col("f.level") + 1).alias("level"),
        F.concat(F.col("f.path"), F.array(F.col("l.component_code"))).alias("path"),
        F.greatest(F.col("f.valid_from"), F.col("l.valid_from")).alias("valid_from"),
        F.least(F.col("f.valid_to"), F.col("l.valid_to")).alias("valid_to"),  # least skips null
        F.array_contains(F.col("f.path"), F.col("l.component_code")).alias("_cycle"),
    )


def _raise_on_cycles(cycles: DataFrame) -> None:
    found = cycles.select("plant_id", "path").limit(_EXAMPLES).collect()
    if found:
        paths = "; ".join(_arrow(r["plant_id"], r["path"]) for r in found)
        raise BomCycleError(
            f"the BOM contains a cycle (a component that contains itself): {paths}; "
            "fix the BOM lines in the plant's ERP (silver.boms)"
        )


def _arrow(plant_id: str, path: list[str]) -> str:
    return f"{plant_id}: " + " > ".join(path)
