"""The rule book: every check that can quarantine, drop, warn about, flag or fail a silver row,
per entity, rendered as `docs/quality-rules.md` (`python -m medlake.silver.rulebook`, or
`make docs`); a test fails when the page and the configuration differ.

Two kinds of check are listed per entity. Conformance (`conf/silver/<entity>.yaml`): a value
that cannot be typed, a mandatory column missing, a code, unit or currency the plant's mapping
does not know; these rows are quarantined under rule id `conformance` before anything else
runs. Quality rules (`conf/quality/<entity>.yaml`, kinds in `medlake/silver/quality.py`): run
on the latest version of each business key.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Mapping

from medlake.config import DEFAULT_CONF_DIR, SilverSettings
from medlake.entities import EntitySpec, load_specs
from medlake.silver.conform import FX_LOOKAHEAD_DAYS, FX_LOOKBACK_DAYS
from medlake.silver.quality import (
    AllowedValuesRule,
    AnomalyRule,
    BaseRule,
    CrossCheckRule,
    ExpressionRule,
    FreshnessRule,
    NotNullRule,
    RangeRule,
    ReferentialRule,
    RuleSet,
    UniqueRule,
    VolumeRule,
    load_rule_dir,
)

CONSEQUENCE = {
    "quarantine": "the row goes to `silver.<entity>__quarantine` with the rule id and reason",
    "drop": "the row is not kept; `_reconciliation` counts it as dropped",
    "warn": "kept; the rule id is added to `_dq_warnings`",
    "flag": "kept; the flag is added to `_flags`",
    "fail": "the entity is not promoted in this run (the gate fails, `_dq` says why)",
}


def _value(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _names(columns: Iterable[str]) -> str:
    return ", ".join(f"`{c}`" for c in columns)


def describe(rule: BaseRule) -> str:
    """What the rule holds true of a row (or of the table), in one line."""
    match rule:
        case NotNullRule(columns=columns):
            return f"{_names(columns)} present"
        case RangeRule(column=column, min=low, max=high):
            left = "" if low is None else f"{_value(low)} {'≤' if rule.min_inclusive else '<'} "
            right = "" if high is None else f" {'≤' if rule.max_inclusive else '<'} {_value(high)}"
            return f"{left}`{column}`{right}"
        case AllowedValuesRule(column=column, values=values):
            return f"`{column}` is one of {', '.join(_value(v) for v in values)}"
        case UniqueRule(columns=columns):
            return f"one row per ({_names(columns)})"
        case ReferentialRule(column=column, ref_table=table, ref_column=ref_column, same=same):
            scope = f" of the same {_names(same)}" if same else ""
            return f"`{column}` exists in `{table}.{ref_column}`{scope}"
        case FreshnessRule(column=column, max_age_days=days):
            return f"newest `{column}` at most {days} days before the run's date"
        case VolumeRule(min_ratio=low, max_ratio=high, trailing_runs=runs):
            upper = "" if high is None else f" and {high}x"
            return f"rows per day between {low}x{upper} the mean of the {runs} days before"
        case ExpressionRule(expr=expr):
            return f"`{expr}`" + (" (NULL fails)" if rule.null_fails else "")
        case AnomalyRule(column=column, by=by, threshold=threshold):
            group = f" per ({_names(by)})" if by else ""
            return f"`{column}` within {threshold:g} robust z-scores of its median{group}"
        case CrossCheckRule(ref_table=table, keys=keys, expr=expr):
            pairs = ", ".join(f"`{a}` = `{b}`" for a, b in keys.items())
            return f"agrees with its row in `{table}` ({pairs}): not `{expr}`"
    raise TypeError(f"no description for {type(rule).__name__}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


WINDOW = SilverSettings().date_window


def conformance(spec: EntitySpec) -> list[str]:
    """Why a row of this entity is quarantined before the quality rules run."""
    required = [c.name for c in spec.columns if c.name in spec.keys or c.missing == "reject"]
    typed = [c.name for c in spec.columns if c.type != "string"]
    lines = [f"{_names(required)} present (key or `missing: reject`)"] if required else []
    if typed:
        lines.append(f"values of {_names(typed)} parse as their type in the plant's format")
    lines.append(
        "a value the plant's mapping marks as missing (`missing` markers in conf/sources): "
        "null, kept, flagged `missing:<column>:<reason>`"
    )
    dates = [c.name for c in spec.columns if c.type in ("date", "datetime")]
    if dates:
        lines.append(
            f"{_names(dates)} within {WINDOW[0]} years before to {WINDOW[1]} years after the "
            "delivery date (`silver.plausible_years_before|after` in lakehouse.yaml): else "
            "kept, flagged `implausible_date:<column>`; a numeric date read by the mapping's "
            "stated day/month order that the other order would read differently: kept, "
            "flagged `ambiguous_date:<column>:<order>`"
        )
    for c in spec.columns:
        if c.missing == "flag":
            lines.append(f"`{c.name}` missing: kept, flagged `missing:{c.name}`")
        if c.missing == "impute":
            lines.append(
                f"`{c.name}` missing: kept, imputed, flagged `imputed:{c.name}:{c.impute_method}`"
            )
        if c.code:
            lines.append(f"`{c.name}` is a code the plant maps in `codes.{c.code}`")
        if c.is_unit:
            lines.append(f"`{c.name}` is a unit the plant maps in `units`")
            dependents = _names([*c.unit_of, *c.price_per])
            if dependents:
                lines.append(f"`{c.name}` present where {dependents} is given (to convert it)")
        if c.lookup:
            lines.append(
                f"`{c.name}` not in the group's {c.lookup} cross-reference: kept, flagged "
                f"`unmatched_{c.lookup}:{c.name}`"
            )
    if spec.money:
        amounts = _names(spec.money.amounts)
        if spec.money.currency != "plant":
            lines.append(f"`{spec.money.currency}` present where {amounts} is given")
        lines.append(
            f"{amounts} convert to group currency: an FX rate exists from {FX_LOOKBACK_DAYS} "
            f"days before to {FX_LOOKAHEAD_DAYS} days after `{spec.money.fx_date}` (a rate "
            "after that date only: kept, flagged `fx:rate_after_transaction_date`)"
        )
    return lines


def _entity(spec: EntitySpec, rules: RuleSet | None) -> list[str]:
    out = [f"### `{spec.table}`", "", f"{spec.description}. Key: {_names(spec.keys)}.", ""]
    out += ["Conformance (`medlake/conf/silver/" + spec.entity + ".yaml`), rule id `conformance`:"]
    out += [""] + [f"- {line}" for line in conformance(spec)] + [""]
    out += [
        f"Key conflicts, rule id `key_conflict`: rows with the same {_names(spec.keys)} and "
        "version that differ in content (text compared without padding and case) are all "
        "quarantined, with the differing columns and every row involved; exact duplicates "
        "are removed (one kept).",
        "",
    ]
    if rules is None:
        return [*out, "No quality rules.", ""]
    out += [
        f"Quality rules (`medlake/conf/quality/{spec.entity}.yaml`):",
        "",
        "| Rule | Check | Holds when | Action | Why |",
        "|---|---|---|---|---|",
    ]
    for rule in rules.rules:
        action = rule.action + (f" `{rule.flag_text}`" if rule.action == "flag" else "")
        out.append(
            f"| `{rule.id}` | {rule.check} | {_cell(describe(rule))} | {action} | "
            f"{_cell(rule.description or '')} |"
        )
    return [*out, ""]


def render(specs: Mapping[str, EntitySpec], rules: Mapping[str, RuleSet]) -> str:
    out = [
        "# Quality rules",
        "",
        "Generated by `python -m medlake.silver.rulebook` (`make docs`) from",
        "`medlake/conf/silver` and `medlake/conf/quality`; a test fails when this page and the",
        "configuration differ. Every reason a silver row can be quarantined, dropped, warned",
        "about, flagged or held back is on this page. Rule kinds and their exact semantics",
        "(NULLs pass every check but `not_null` and an expression with `null_fails`;",
        "quarantine beats drop) are in",
        "`medlake/silver/quality.py`; every evaluation is recorded per rule in `_dq`.",
        "",
        "What each action does:",
        "",
        *[f"- `{action}`: {text}" for action, text in CONSEQUENCE.items()],
        "",
        "## Entities",
        "",
    ]
    for name in sorted(specs):
        out += _entity(specs[name], rules.get(specs[name].table))
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    specs = load_specs(DEFAULT_CONF_DIR / "silver")
    sys.stdout.write(render(specs, load_rule_dir(DEFAULT_CONF_DIR / "quality")))


if __name__ == "__main__":
    main()
