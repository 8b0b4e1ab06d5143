"""The silver build's plan: which entities first, in which order, and whether every plant's
mapping can feed them (a configuration error is reported before any data is read)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medlake.config import ConfigError
from medlake.entities import EntitySpec
from medlake.silver.quality import RuleSet
from medlake.sources import PlantSource

FIRST = ("fx_rates", "suppliers", "materials")  # everything else converts or looks up by them


def check_mappings(
    specs: Mapping[str, EntitySpec], sources: Mapping[str, PlantSource], entities: Sequence[str]
) -> None:
    """Every plant that delivers an entity maps its key and mandatory columns; otherwise
    every row would be quarantined as 'missing', which is a configuration error."""

    problems = []
    for name in entities:
        spec = specs[name]
        needed = [c.name for c in spec.columns if c.name in spec.keys or c.missing == "reject"]
        for plant_id, source in sources.items():
            entity = source.entities.get(spec.source)
            if entity is None:
                continue
            missing = [c for c in needed if c not in entity.sourced()]
            if missing:
                problems.append(
                    f"conf/sources/{plant_id}.yaml: entities.{spec.source}.columns maps no "
                    f"local column to {', '.join(missing)} (required by conf/silver/{name}.yaml)"
                )
    if problems:
        raise ConfigError("incomplete source mapping:\n  " + "\n  ".join(problems))


def needs(names: list[str], rules: Mapping[str, RuleSet]) -> dict[str, set[str]]:
    """The entities of `names` that each entity's quality rules read (referential rules and
    cross-checks name them in `ref_table`)."""
    found = {}
    for n in names:
        ruleset = rules.get(f"silver.{n}")
        read = {
            str(getattr(r, "ref_table", "")).removeprefix("silver.")
            for r in (ruleset.rules if ruleset else [])
        }
        found[n] = read & set(names)
    return found


def order(names: list[str], rules: Mapping[str, RuleSet]) -> list[str]:
    """FX rates and master data first, then every entity after the tables its rules read."""
    needed = needs(names, rules)
    ordered = [e for e in FIRST if e in names]
    rest = sorted(e for e in names if e not in FIRST)
    while rest:
        ready = next((e for e in rest if needed[e] <= set(ordered) | {e}), rest[0])
        ordered.append(ready)
        rest.remove(ready)
    return ordered
