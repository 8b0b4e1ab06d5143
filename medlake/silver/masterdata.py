"""Cross-plant master-data matching: one supplier or material, whatever each plant calls it."""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Method = Literal["steward", "registration", "global_ref", "name", "new"]
Status = Literal["unmatched", "ambiguous"]

# trailing words that only say what legal form a company has (compared after casefolding and
# after punctuation became spaces, so "Co., Ltd." is "co ltd" and "Sdn. Bhd." is "sdn bhd")
LEGAL_FORMS = frozenset(
    {
        "ag", "bhd", "berhad", "bv", "co", "company", "corp", "corporation", "gmbh", "inc",
        "incorporated", "kg", "kgaa", "limited", "llc", "llp", "ltd", "mbh", "nv", "ohg",
        "plc", "pte", "pty", "pvt", "sa", "sarl", "sdn", "se", "spa", "srl", "ug",
    }
)  # fmt: skip
# Chinese legal forms are suffixes of the name itself (no space before them); longest first
CHINESE_LEGAL_FORMS = (
    "股份有限公司", "有限责任公司", "有限責任公司", "有限公司", "股份公司", "公司",
)  # fmt: skip
# kinds of anchor key, in the order a group's anchor is chosen
_KIND_RANK = {"registration": 0, "global_ref": 1, "name": 2, "steward": 3, "record": 4}
_SAME_PLANT = "records of one plant never merge by name"
_NO_OVERRIDES: Mapping[tuple[str, str], str] = MappingProxyType({})


@dataclass(frozen=True)
class PartyRecord:
    """One plant's master record of a supplier (or material, customer...)."""

    plant_id: str
    local_code: str
    name: str | None
    registration_id: str | None  # tax or company registration id
    country: str | None
    extra_ref: str | None = None  # a group-wide reference some plants carry, e.g. global_ref


@dataclass(frozen=True)
class XrefRow:
    """Which group a plant's local code belongs to, and what linked it there."""

    plant_id: str
    local_code: str
    group_id: str
    method: Method
    match_key: str  # the normalised value that linked the record ("" for "new")
    name: str | None


@dataclass(frozen=True)
class Candidate:
    """A record a data steward should look at: it matched nothing, or more than one group."""

    plant_id: str
    local_code: str
    status: Status
    candidates: tuple[str, ...]  # group ids it could belong to (empty when unmatched)
    reason: str


@dataclass(frozen=True)
class MatchResult:
    xref: list[XrefRow]
    candidates: list[Candidate]


@dataclass(frozen=True)
class _Rec:
    """A record with its normalised match keys, computed once."""

    record: PartyRecord
    registration: str | None
    global_ref: str | None
    name: str | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.record.plant_id, self.record.local_code)

    @property
    def plant(self) -> str:
        return self.record.plant_id

    def strong_keys(self) -> list[str]:
        keys = [f"registration:{self.registration}"] if self.registration else []
        return keys + ([f"global_ref:{self.global_ref}"] if self.global_ref else [])


@dataclass(frozen=True)
class _Ambiguity:
    anchors: tuple[str, ...]
    reason: str


def normalise_name(name: str) -> str:
    """The form of a company name that plants' spellings share.

    NFKC (full-width letters and brackets become ASCII), casefold, every punctuation or symbol
    character becomes a space, trailing legal forms are removed (`LEGAL_FORMS` as words,
    `CHINESE_LEGAL_FORMS` as suffixes, repeatedly), whitespace is collapsed. A name that is
    nothing but a legal form keeps it. Diacritics are kept (Müller is not Muller).

    >>> normalise_name("SHENZHEN PRECISION PLASTICS CO., LTD.")
    'shenzhen precision plastics'
    >>> normalise_name("深圳精密塑胶有限公司")
    '深圳精密塑胶'
    """
    text = unicodedata.normalize("NFKC", name).casefold()
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    tokens = text.split()
    return " ".join(_strip_legal_forms(tokens) or tokens)


def _strip_legal_forms(tokens: list[str]) -> list[str]:
    kept = list(tokens)
    while kept:
        last = kept.pop()
        if last in LEGAL_FORMS:
            continue
        stem = next((last[: -len(f)] for f in CHINESE_LEGAL_FORMS if last.endswith(f)), None)
        if stem is None:
            return [*kept, last]
        if stem:
            kept.append(stem)
    return kept


def normalise_id(value: str | None) -> str | None:
    """A registration id or reference without whitespace, upper case; None when empty."""
    if value is None:
        return None
    return "".join(value.split()).upper() or None


def group_id(prefix: str, anchor: str) -> str:
    """`<prefix>-` and the first 10 hex characters of the SHA-256 of the anchor key."""
    return f"{prefix}-{hashlib.sha256(anchor.encode('utf-8')).hexdigest()[:10]}"


def match_parties(
    records: Sequence[PartyRecord],
    *,
    prefix: str,
    steward: Mapping[tuple[str, str], str] = _NO_OVERRIDES,
) -> MatchResult:
    """Group the plants' records of the same real entity and give each group a stable id.

    Rules, in order:

    1. Steward overrides win. `steward[(plant_id, local_code)]` is either the id of a group
       this run forms from rules 2-4 (the record joins it) or a label of the steward's own
       (records with the same label form a group). A pinned record's own keys link nothing.
    2. Same registration id (`normalise_id`) -> same group, also within one plant.
    3. Same `extra_ref` (`normalise_id`) -> same group; 2 and 3 link transitively.
    4. A record with neither key joins by `normalise_name`: the one group of rules 2-3 with a
       member of that name, else the other keyless records of that name. Records of the SAME
       plant never merge by name (a plant's own master holds each entity once), so the name
       is ambiguous when it points to two groups of rules 2-3, when the group already holds a
       record of the plant, or when one plant has two keyless records of that name: each such
       record gets its own group and is reported `ambiguous` with the candidate group ids.
    5. Otherwise a record forms a new group; records whose group holds no other plant are
       reported `unmatched` with the keys that were tried. Nothing is guessed.

    Group id: `group_id(prefix, anchor)`, the anchor being the group's smallest key, by kind
    first (`registration:<id>`, `global_ref:<ref>`, `name:<normalised>`, `steward:<label>`,
    and `record:<plant>/<code>`, which anchors a record that has no key or whose name is
    ambiguous) and then by value. A steward pin never changes the id of the group it joins.
    Ids depend only on the records, not on their order; rows come sorted by plant and code.

    >>> a = PartyRecord("GW", "SUP-1", "Acme Ltd", None, "IE")
    >>> b = PartyRecord("MN", "V9", "ACME LIMITED", None, "IE")
    >>> {row.group_id for row in match_parties([a, b], prefix="SUP").xref} == {
    ...     group_id("SUP", "name:acme")}
    True
    """
    recs = _prepare(records)
    free = [r for r in recs if r.key not in steward]
    groups = _link_keys([r for r in free if r.strong_keys()])
    ambiguous = _link_names([r for r in free if not r.strong_keys()], groups)
    formed = {group_id(prefix, anchor): anchor for anchor in groups}
    _pin([r for r in recs if r.key in steward], steward, groups, formed)
    ids = _ids(prefix, groups)
    xref = [
        _xref_row(r, members, ids[a], steward) for a, members in groups.items() for r in members
    ]
    report = _report(groups, ambiguous, ids, steward)
    return MatchResult(sorted(xref, key=lambda x: (x.plant_id, x.local_code)), report)


def _prepare(records: Sequence[PartyRecord]) -> list[_Rec]:
    seen: set[tuple[str, str]] = set()
    recs = []
    for r in sorted(records, key=lambda x: (x.plant_id, x.local_code)):
        if (r.plant_id, r.local_code) in seen:
            raise ValueError(
                f"two records for plant {r.plant_id!r} local code {r.local_code!r}: "
                "pass one record per (plant_id, local_code)"
            )
        seen.add((r.plant_id, r.local_code))
        name = normalise_name(r.name) if r.name else None
        recs.append(
            _Rec(r, normalise_id(r.registration_id), normalise_id(r.extra_ref), name or None)
        )
    return recs


def _anchor(keys: list[str]) -> str:
    def rank(key: str) -> tuple[int, str]:
        kind, _, value = key.partition(":")
        return (_KIND_RANK[kind], value)

    return min(keys, key=rank)


def _link_keys(keyed: list[_Rec]) -> dict[str, list[_Rec]]:
    """Rules 2 and 3: connected components of shared registration ids and references."""
    parent = list(range(len(keyed)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, r in enumerate(keyed):
        for key in r.strong_keys():
            parent[find(i)] = find(first.setdefault(key, i))
    components: dict[int, list[_Rec]] = defaultdict(list)
    for i, r in enumerate(keyed):
        components[find(i)].append(r)
    return {
        _anchor([k for r in members for k in r.strong_keys()]): members
        for members in components.values()
    }


def _link_names(
    loose: list[_Rec], groups: dict[str, list[_Rec]]
) -> dict[tuple[str, str], _Ambiguity]:
    """Rule 4 for records without registration id or reference; returns the ambiguous ones."""
    keyed_by_name: dict[str, set[str]] = defaultdict(set)
    for anchor, members in groups.items():
        for r in members:
            if r.name:
                keyed_by_name[r.name].add(anchor)
    by_name: dict[str, list[_Rec]] = defaultdict(list)
    for r in loose:
        if r.name:
            by_name[r.name].append(r)
        else:
            groups[_own_anchor(r)] = [r]
    ambiguous: dict[tuple[str, str], _Ambiguity] = {}
    for name, recs in by_name.items():
        ambiguous.update(_place_by_name(name, recs, sorted(keyed_by_name[name]), groups))
    return ambiguous


def _place_by_name(
    name: str, recs: list[_Rec], targets: list[str], groups: dict[str, list[_Rec]]
) -> dict[tuple[str, str], _Ambiguity]:
    if len(targets) > 1:
        why = f"name {name!r} belongs to {len(targets)} groups linked by registration id or ref"
        return _alone(recs, targets, why, groups)
    if targets:
        return _join(name, recs, targets[0], groups)
    if max(Counter(r.plant for r in recs).values()) > 1:
        why = f"{_SAME_PLANT}: a plant has several records named {name!r}"
        own = [_own_anchor(r) for r in recs]
        ambiguous: dict[tuple[str, str], _Ambiguity] = {}
        for r in recs:
            ambiguous |= _alone([r], [a for a in own if a != _own_anchor(r)], why, groups)
        return ambiguous
    groups[f"name:{name}"] = list(recs)
    return {}


def _join(
    name: str, recs: list[_Rec], target: str, groups: dict[str, list[_Rec]]
) -> dict[tuple[str, str], _Ambiguity]:
    """Join the one group of rules 2-3 with that name, unless two records of a plant would."""
    per_plant = Counter(r.plant for r in recs)
    taken = {r.plant for r in groups[target]}
    ambiguous: dict[tuple[str, str], _Ambiguity] = {}
    for r in recs:
        if r.plant in taken:
            why = f"{_SAME_PLANT}: the group named {name!r} already holds a {r.plant} record"
            ambiguous |= _alone([r], [target], why, groups)
        elif per_plant[r.plant] > 1:
            why = f"{_SAME_PLANT}: {r.plant} has several records named {name!r}"
            ambiguous |= _alone([r], [target], why, groups)
        else:
            groups[target].append(r)
    return ambiguous


def _own_anchor(r: _Rec) -> str:
    return f"record:{r.plant}/{r.record.local_code}"


def _alone(
    recs: list[_Rec], candidates: Sequence[str], reason: str, groups: dict[str, list[_Rec]]
) -> dict[tuple[str, str], _Ambiguity]:
    """Give each record a group of its own and note the groups it could have joined."""
    for r in recs:
        groups[_own_anchor(r)] = [r]
    return {r.key: _Ambiguity(tuple(candidates), reason) for r in recs}


def _pin(
    pinned: list[_Rec],
    steward: Mapping[tuple[str, str], str],
    groups: dict[str, list[_Rec]],
    formed: Mapping[str, str],
) -> None:
    """Rule 1: a steward value naming a formed group joins it, any other value is a label."""
    for r in pinned:
        value = steward[r.key]
        groups.setdefault(formed.get(value, f"steward:{value}"), []).append(r)


def _ids(prefix: str, groups: Mapping[str, list[_Rec]]) -> dict[str, str]:
    ids = {anchor: group_id(prefix, anchor) for anchor in groups}
    if len(set(ids.values())) < len(ids):
        raise RuntimeError(f"two {prefix} groups hash to the same id; lengthen the id")
    return ids


def _xref_row(
    r: _Rec, members: list[_Rec], gid: str, steward: Mapping[tuple[str, str], str]
) -> XrefRow:
    method, key = _method(r, [m for m in members if m.key != r.key and m.key not in steward])
    if r.key in steward:
        method, key = "steward", steward[r.key]
    rec = r.record
    return XrefRow(rec.plant_id, rec.local_code, gid, method, key, rec.name)


def _method(r: _Rec, others: list[_Rec]) -> tuple[Method, str]:
    """What links `r` to the other (not pinned) members of its group."""
    if r.registration and any(m.registration == r.registration for m in others):
        return "registration", r.registration
    if r.global_ref and any(m.global_ref == r.global_ref for m in others):
        return "global_ref", r.global_ref
    if r.name and any(m.name == r.name and m.plant != r.plant for m in others):
        return "name", r.name
    return "new", ""


def _report(
    groups: Mapping[str, list[_Rec]],
    ambiguous: Mapping[tuple[str, str], _Ambiguity],
    ids: Mapping[str, str],
    steward: Mapping[tuple[str, str], str],
) -> list[Candidate]:
    out = [
        Candidate(p, c, "ambiguous", tuple(sorted(ids[a] for a in amb.anchors)), amb.reason)
        for (p, c), amb in ambiguous.items()
    ]
    for members in groups.values():
        if len({m.plant for m in members}) == 1:
            out += [
                Candidate(r.plant, r.record.local_code, "unmatched", (), _tried(r))
                for r in members
                if r.key not in ambiguous and r.key not in steward
            ]
    return sorted(out, key=lambda x: (x.plant_id, x.local_code))


def _tried(r: _Rec) -> str:
    keys = [
        f"{label} {value!r}"
        for label, value in (
            ("registration id", r.registration),
            ("global_ref", r.global_ref),
            ("name", r.name),
        )
        if value
    ]
    if not keys:
        return "no registration id, global_ref or name to match on"
    return f"no record of another plant shares its {', '.join(keys)}"


def stabilise(current: Sequence[XrefRow], previous: Sequence[XrefRow]) -> list[XrefRow]:
    """Keep group ids stable from run to run, and keep what earlier runs knew.

    A group id is derived from its anchor key, which can change (a name-only group gains a
    tax id); gold tables and scorecards key on it, so a group that holds a local code that
    an earlier run placed keeps the id that code had (the one most of its members had, if
    they differ). Local codes missing from today's snapshot keep their earlier mapping: a
    backfill of an old date must not shrink the cross-reference.
    """
    before = {(r.plant_id, r.local_code): r for r in previous}
    members: dict[str, list[str]] = {}
    for row in current:
        old = before.get((row.plant_id, row.local_code))
        members.setdefault(row.group_id, []).append(old.group_id if old else "")
    fresh = set(members)
    rename: dict[str, str] = {}
    taken: set[str] = set()
    # the largest groups choose first; an old id goes to one group only
    for group, olds in sorted(members.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        ranked = Counter(o for o in olds if o).most_common()
        for old_id, _ in sorted(ranked, key=lambda kv: (-kv[1], kv[0])):
            if old_id not in taken and (old_id == group or old_id not in fresh - {group}):
                rename[group] = old_id
                taken.add(old_id)
                break
    for group in fresh - rename.keys():
        if group in taken:  # its id now names the group an earlier run knew by it
            rename[group] = f"{group}-2"
    out = [
        XrefRow(
            r.plant_id,
            r.local_code,
            rename.get(r.group_id, r.group_id),
            r.method,
            r.match_key,
            r.name,
        )
        for r in current
    ]
    seen = {(r.plant_id, r.local_code) for r in current}
    out += [r for key, r in sorted(before.items()) if key not in seen]
    return out
