"""`what-if`: the products whose material cost a component price change moves, read as a role."""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import re
import sys
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from medlake.argtypes import iso_date, positive_int
from medlake.cli.governance import print_result
from medlake.cli.identity import add_identity_args, signed_in
from medlake.config import Settings
from medlake.gold.cost import BomError, explode_bom, monthly_unit_costs, what_if
from medlake.governance.access import AccessDenied, UnknownRoleError
from medlake.governance.read import Lakehouse, QueryResult
from medlake.io import TableNotFoundError

EXIT_USER_ERROR = 2
EXIT_DATA_ERROR = 1
DEFAULT_PURPOSE = "what-if: cost transmission of a component price change"
_CHANGE = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)%$")
# silver columns the what-if reads, per table
NEEDED: Mapping[str, tuple[str, ...]] = {
    "silver.boms": (
        "plant_id",
        "product_code",
        "product_group_id",
        "component_code",
        "component_group_id",
        "qty_per",
        "valid_from",
    ),
    "silver.purchase_orders": (
        "plant_id",
        "material_code",
        "material_group_id",
        "order_date",
        "ordered_qty",
        "unit_price_group",
    ),
    "silver.standard_costs": (
        "plant_id",
        "material_code",
        "material_group_id",
        "valid_from",
        "std_unit_cost_group",
    ),
    "silver.sales_orders": ("plant_id", "product_code", "order_date", "qty", "unit_price_group"),
    "silver.materials": ("plant_id", "material_code", "material_group_id", "description"),
}
TABLE_COLUMNS = (  # --format table: the main columns; csv and json carry every column
    "plant_id",
    "product_code",
    "component_code",
    "extended_qty",
    "cost_month",
    "material_cost_group",
    "new_material_cost_group",
    "cost_delta_group",
    "cost_delta_pct",
    "avg_price_group",
    "margin_pct",
    "new_margin_pct",
    "units_sold_12m",
    "annual_exposure_group",
)


class WhatIfInputError(ValueError):
    """A what-if the data cannot answer as asked: unknown component, hidden columns."""


def parse_change(text: str) -> Decimal:
    """A relative change written in percent, as a fraction: "+8%" -> 0.08, "-2.5%" -> -0.025.

    Strict: the percent sign is required (a bare "8" could mean 8 % or 800 %), no spaces
    inside, and a change of -100 % or less (a price of zero or below) is refused.
    """
    match = _CHANGE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(
            f"expected a relative change in percent such as +8%, -2.5% or 12%, got {text!r}"
        )
    try:
        value = Decimal(match[1] + match[2]) / 100
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= -1:
        raise argparse.ArgumentTypeError(
            f"a change of {text} would make the price zero or negative; use more than -100%"
        )
    return value


def add_cli(subparsers: Any) -> None:
    """Register `what-if --component C --change +8% --from DATE --role R [--plant P] ...`."""
    p = subparsers.add_parser(
        "what-if",
        help="products whose material cost a component price change moves, and by how much",
        description="Roll a relative price change of one purchased component (from a date) "
        "through the multi-level BOMs in effect on that date: each impacted plant and product "
        "with the component's quantity per unit, the current material cost per unit (unit "
        "costs of the last month before the date, EUR), the new cost, the cost delta per unit, "
        "the margin before and after where a selling price is known, and the delta over the "
        "units sold in the 12 months before the date. Products that do not contain the "
        "component are not listed. Silver is read as --role through the governed, audited "
        "read path. Exit 2 for a component that matches nothing or a role that may not read "
        "the inputs.",
    )
    p.add_argument(
        "--component",
        required=True,
        metavar="CODE|GROUP_ID",
        help="plant-local material code (matched at every plant using it unless --plant) "
        "or group material id",
    )
    p.add_argument(
        "--change",
        required=True,
        type=parse_change,
        metavar="PERCENT",
        help="relative price change in percent, e.g. +8%% (a decrease: --change=-2.5%%)",
    )
    p.add_argument(
        "--from",
        dest="from_date",
        required=True,
        type=iso_date,
        metavar="YYYY-MM-DD",
        help="first day the changed price applies",
    )
    p.add_argument("--plant", help="only this plant (group plant id, e.g. SU)")
    add_identity_args(p)
    p.add_argument("--purpose", default=DEFAULT_PURPOSE, help="why the data is read (audit trail)")
    p.add_argument(
        "--max-depth", type=positive_int, default=10, help="deepest BOM explored (default 10)"
    )
    p.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="table shows the main columns; csv and json every column",
    )
    p.set_defaults(func=cmd_what_if)


def cmd_what_if(args: argparse.Namespace, settings: Settings) -> int:

    try:
        who = signed_in(args, settings, via="gold what-if")
        args.role = who.role
        lakehouse = Lakehouse.open(who=who, settings=settings, purpose=args.purpose)
        frames = _read_inputs(lakehouse, args.plant)
    except (AccessDenied, UnknownRoleError, TableNotFoundError, WhatIfInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except AnalysisException as exc:
        print(f"error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        exploded = explode_bom(frames["silver.boms"], max_depth=args.max_depth).cache()
    except BomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA_ERROR
    month = _month_before(args.from_date)
    costs = monthly_unit_costs(
        frames["silver.purchase_orders"],
        frames["silver.standard_costs"],
        start_month=month,
        end_month=month,
    )
    result = what_if(
        exploded,
        costs,
        frames["silver.sales_orders"],
        component=args.component,
        change=args.change,
        from_date=args.from_date,
        plant=args.plant,
    ).orderBy("plant_id", "product_code", "component_code")
    rows = result.collect()
    if not rows:
        try:
            print(_nothing_impacted(args, exploded, frames), file=sys.stderr)
        except WhatIfInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        return 0
    note = _ambiguity_note(args.component, rows)
    if note:
        print(note, file=sys.stderr)
    if args.format == "table":
        shown = [
            Row(**{c: _rounded(c, r[c]) for c in TABLE_COLUMNS}) for r in rows
        ]  # from the collected rows: the result is computed once
        print_result(QueryResult(TABLE_COLUMNS, shown), "table")
    else:
        print_result(QueryResult(tuple(result.columns), rows), args.format)
    return 0


def _read_inputs(lakehouse: Any, plant: str | None) -> dict[str, DataFrame]:
    """The silver inputs as the role sees them; refuses when a needed column is hidden."""
    if plant is not None and plant not in lakehouse.plants:
        raise WhatIfInputError(
            f"unknown plant {plant!r}; configured plants: {', '.join(sorted(lakehouse.plants))}"
        )
    frames: dict[str, DataFrame] = {}
    for name, columns in NEEDED.items():
        plan = lakehouse.plan(name)
        hidden = [c for c in columns if c in plan.denied or c in plan.masked]
        if hidden:
            raise WhatIfInputError(
                f"role {lakehouse.role!r} does not see {name} column(s) {', '.join(hidden)} "
                "(denied or masked by conf/governance/access.yaml), which the what-if needs; "
                "use a role that may read prices and costs"
            )
        frame = lakehouse.table(name).select(*columns)
        frames[name] = frame.where(F.col("plant_id") == plant) if plant else frame
    return frames


def _rounded(column: str, value: Any) -> Any:
    return round(value, 4) if column.endswith("_pct") and value is not None else value


def _month_before(day: dt.date) -> str:
    first = day.replace(day=1) - dt.timedelta(days=1)
    return first.strftime("%Y-%m")


def _nothing_impacted(
    args: argparse.Namespace, exploded: DataFrame, frames: Mapping[str, DataFrame]
) -> str:
    """Why no product is impacted; raises WhatIfInputError when the component is unknown."""
    code = args.component
    where = f" at plant {args.plant}" if args.plant else ""
    boms = frames["silver.boms"]
    made = [
        r["plant_id"]
        for r in boms.where(F.col("product_code") == code).select("plant_id").distinct().collect()
    ]
    if made:
        parts = sorted(
            {
                r["component_code"]
                for r in exploded.where(F.col("product_code") == code)
                .select("component_code")
                .collect()
            }
        )
        raise WhatIfInputError(
            f"{code} is made in-house (it has a BOM at {', '.join(sorted(made))}); a price "
            f"change applies to a purchased component, e.g. one of its parts: "
            f"{', '.join(parts[:10])}"
        )
    matches = (F.col("component_code") == code) | (F.col("component_group_id") == code)
    if exploded.where(matches).limit(1).count():
        return (
            f"no BOM in effect on {args.from_date}{where} contains {code} "
            "(it appears only in BOM lines valid at other times): no product is impacted"
        )
    materials = frames["silver.materials"]
    known = (F.col("material_code") == code) | (F.col("material_group_id") == code)
    plants = sorted({r["plant_id"] for r in materials.where(known).select("plant_id").collect()})
    if plants:
        return (
            f"{code} is a material of {', '.join(plants)} but no BOM{where} contains it: "
            "no product is impacted"
        )
    raise WhatIfInputError(_unknown(code, where, args.role, exploded, materials))


def _unknown(code: str, where: str, role: str, exploded: DataFrame, materials: DataFrame) -> str:
    candidates: dict[str, str] = {}  # code or group id -> what it is
    for r in materials.select("plant_id", "material_code", "description").collect():
        label = f"{r['description']} at {r['plant_id']}" if r["description"] else r["plant_id"]
        candidates.setdefault(r["material_code"], label)
    for r in (
        exploded.select("plant_id", "component_code", "component_group_id").distinct().collect()
    ):
        candidates.setdefault(r["component_code"], f"component at {r['plant_id']}")
        if r["component_group_id"]:
            candidates.setdefault(r["component_group_id"], f"group id of {r['component_code']}")
    by_case = {c.casefold(): c for c in candidates}
    close = difflib.get_close_matches(code.casefold(), list(by_case), n=5, cutoff=0.5)
    hint = (
        "; close codes: " + ", ".join(f"{by_case[c]} ({candidates[by_case[c]]})" for c in close)
        if close
        else ""
    )
    return (
        f"component {code!r} matches no plant-local material code and no group material id "
        f"in silver.boms or silver.materials{where} as role {role!r} may read them{hint}"
    )


def _ambiguity_note(component: str, rows: list[Any]) -> str | None:
    """A local code that names different group materials at different plants."""
    groups: dict[str, set[str]] = {}
    for r in rows:
        if r["component_code"] == component:
            groups.setdefault(r["component_group_id"] or "?", set()).add(r["plant_id"])
    if len(groups) < 2:
        return None
    named = ", ".join(f"{g} at {', '.join(sorted(p))}" for g, p in sorted(groups.items()))
    return (
        f"note: {component} is a local code that names different group materials ({named}); "
        "use --plant or a group material id to pick one"
    )
