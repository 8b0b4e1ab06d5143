"""`lakehouse sources check`: profile a delivered file against its plant's mapping (dry run)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from medlake.argtypes import iso_date
from medlake.config import ConfigError, Settings

EXIT_FINDINGS = 1  # the file would be refused or some of its rows quarantined


def add_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sources",
        help="onboarding: check a plant's mapping and profile a file against it",
        description="Source mappings (conf/sources/<PLANT>.yaml) and the files they read.",
    )
    ssub = p.add_subparsers(dest="sources_command", required=True, metavar="ACTION")
    c = ssub.add_parser(
        "check",
        help="profile a file against its mapping without writing anything",
        description="Validate every mapping against the silver model, then read FILE as plant "
        "PLANT delivers it and conform it as the silver build would, in memory: columns "
        "found and missing, values per column, date formats seen and ambiguous dates, "
        "missing-value markers met, duplicate and conflicting keys, and every reason a row "
        "would be quarantined. Nothing is written. Exit code 1 when the file would be "
        "refused or rows quarantined (docs/onboarding.md).",
    )
    c.add_argument("--plant", required=True, help="plant id (conf/sources/<PLANT>.yaml)")
    c.add_argument("--file", required=True, type=Path, help="the delivered file to profile")
    c.add_argument(
        "--date", type=iso_date, help="delivery date the file stands for (default: today)"
    )
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    # lazy: Spark and the table layer cost seconds; only this command needs them
    from medlake.entities import check_source_mappings, load_specs  # noqa: PLC0415
    from medlake.silver.profile import profile_file  # noqa: PLC0415
    from medlake.sources import load_sources  # noqa: PLC0415
    from medlake.spark import build_spark  # noqa: PLC0415

    conf = settings.conf_dir
    sources = load_sources(conf / "sources")
    specs = load_specs(conf / "silver")
    check_source_mappings(sources, specs, conf / "sources")
    if args.plant not in sources:
        raise ConfigError(
            f"unknown plant {args.plant}; configured plants: {', '.join(sources)} "
            "(add conf/sources/<PLANT>.yaml to onboard one)"
        )
    if not args.file.is_file():
        raise ConfigError(f"{args.file}: no such file")
    spark = build_spark(settings, app_name="medlake-sources-check")
    profile = profile_file(
        spark,
        args.file,
        args.plant,
        sources[args.plant],
        specs,
        settings.group.currency,
        delivery_date=args.date,
    )
    if args.format == "json":
        print(json.dumps(dataclasses.asdict(profile), indent=2, default=str, ensure_ascii=False))
    else:
        print(render(profile))
    findings = profile.file_error or any(e.quarantined + e.conflicts for e in profile.entities)
    return EXIT_FINDINGS if findings or profile.read_errors else 0


def render(p: Any) -> str:
    """The profile as text: the file, then one block per entity it feeds."""
    out = [
        f"{p.path.name} ({p.format}) as delivered by {p.plant}: {p.rows} data rows",
        f"  columns found: {', '.join(p.header) or '-'}",
    ]
    if p.missing_columns:
        out.append(f"  MISSING configured columns: {', '.join(p.missing_columns)}")
    if p.extra_columns:
        out.append(f"  not mapped (ignored): {', '.join(p.extra_columns)}")
    if p.file_error:
        out.append(f"  FILE REFUSED: {p.file_error}")
    for reason, n, example in p.read_errors:
        out.append(f"  {n} rows quarantined at ingest: {reason}  e.g. {example}")
    for e in p.entities:
        out.append("")
        out.append(
            f"{e.entity} -> {e.table}: {e.rows} rows, {e.usable} usable, "
            f"{e.quarantined + e.conflicts} would be quarantined ({e.conflicts} in key conflicts)"
            + (f", {e.needs_fx} need FX rates (not looked up here)" if e.needs_fx else "")
        )
        width = max((len(k) for k in e.filled), default=0)
        for column, n in e.filled.items():
            out.append(f"  {column.ljust(width)}  {n} values, {e.rows - n} missing")
        for column, formats in e.date_formats.items():
            seen = ", ".join(f"{f}: {n}" for f, n in formats.items())
            out.append(f"  {column} read by format: {seen}")
        for flag, n in e.flags.items():
            out.append(f"  flag {flag}: {n} rows")
        out.append(
            f"  keys: {e.duplicates} exact duplicates (removed), "
            f"{e.conflicts} rows in conflict (quarantined)"
            if e.duplicates or e.conflicts
            else "  keys: unique"
        )
        for example in e.conflict_examples:
            out.append(f"    conflict: {example}")
        for reason, n, example in e.reasons:
            out.append(f"  {n} x {reason}" + (f"  e.g. {example}" if example != reason else ""))
    return "\n".join(out)
