"""Cross-plant master-data matching, on hand-made records and on the simulator's suppliers."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from medlake.silver.masterdata import (
    MatchResult,
    PartyRecord,
    XrefRow,
    match_parties,
    normalise_name,
    stabilise,
)
from medlake_simulator.contracts import entity, local_name
from medlake_simulator.generate import generate
from medlake_simulator.plants import PLANTS, Plant

Key = tuple[str, str]


def rec(
    plant: str, code: str, name: str | None, tax: str | None = None, ref: str | None = None
) -> PartyRecord:
    return PartyRecord(plant, code, name, tax, None, ref)


def expected_id(anchor: str, prefix: str = "SUP") -> str:
    return f"{prefix}-{hashlib.sha256(anchor.encode('utf-8')).hexdigest()[:10]}"


def groups(result: MatchResult) -> dict[str, set[Key]]:
    out: dict[str, set[Key]] = defaultdict(set)
    for row in result.xref:
        out[row.group_id].add((row.plant_id, row.local_code))
    return dict(out)


def partition(result: MatchResult) -> set[frozenset[Key]]:
    return {frozenset(members) for members in groups(result).values()}


def reported(result: MatchResult) -> dict[Key, tuple[str, tuple[str, ...]]]:
    return {(c.plant_id, c.local_code): (c.status, c.candidates) for c in result.candidates}


# ---------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Shenzhen Precision Plastics Co., Ltd.", "shenzhen precision plastics"),
        ("SHENZHEN PRECISION PLASTICS CO LTD", "shenzhen precision plastics"),
        ("Penang Circuit Works Sdn. Bhd.", "penang circuit works"),
        ("Kedah Rubber Components Sdn Bhd", "kedah rubber components"),
        ("Schwarzwald Feinmechanik GmbH & Co. KG", "schwarzwald feinmechanik"),
        ("Bodensee Sensorik AG", "bodensee sensorik"),
        ("  Great   Lakes Silicone,   Inc ", "great lakes silicone"),
        ("Minnesota Battery Systems Incorporated", "minnesota battery systems"),
        ("Ｔｗｉｎ Ｃｉｔｉｅｓ Ｌａｂｅｌｓ，ＬＬＣ", "twin cities labels"),  # full-width
        ("深圳精密塑胶有限公司", "深圳精密塑胶"),
        ("博登湖传感器股份有限公司", "博登湖传感器"),
        ("博登湖传感器股份公司", "博登湖传感器"),
        ("明尼苏达电池系统公司", "明尼苏达电池系统"),
        ("深圳精密塑胶（有限公司）", "深圳精密塑胶"),  # full-width brackets
        ("Co-Operative Medical Ltd", "co operative medical"),  # only trailing forms go
        ("GmbH", "gmbh"),  # nothing but a legal form: kept
    ],
)
def test_normalise_name_drops_case_punctuation_and_legal_forms(raw: str, expected: str) -> None:
    assert normalise_name(raw) == expected


# ---------------------------------------------------------------------- the rules


def test_when_tax_id_is_shared_then_spelling_variants_form_one_group() -> None:
    records = [
        rec("SZ", "GYS0045", "深圳精密塑胶有限公司", "91440300 123456789x"),
        rec("GW", "SUP-0038", "Shenzhen Precision Plastics Co., Ltd.", "91440300123456789X"),
        rec("TU", "LIEF-0031", "Shenzhen Precision Plastics", " 91440300123456789X"),
        rec("MN", "VEND0073", "Shenzhen Precision Plastics", "DE123456789"),  # another company
    ]
    result = match_parties(records, prefix="SUP")
    assert groups(result) == {
        expected_id("registration:91440300123456789X"): {
            ("SZ", "GYS0045"),
            ("GW", "SUP-0038"),
            ("TU", "LIEF-0031"),
        },
        expected_id("registration:DE123456789"): {("MN", "VEND0073")},
    }
    methods = {(r.plant_id, r.method, r.match_key) for r in result.xref}
    assert ("SZ", "registration", "91440300123456789X") in methods
    # a different tax id is a different company, even with the same name
    assert reported(result) == {("MN", "VEND0073"): ("unmatched", ())}


def test_when_names_differ_in_legal_form_case_or_punctuation_then_one_group() -> None:
    records = [
        rec("PN", "PNV0010", "Shannon Micro Motors Ltd."),
        rec("GW", "SUP-0087", "SHANNON MICRO MOTORS LTD"),
        rec("MN", "VEND0010", "Shannon Micro Motors Limited"),
        rec("TU", "LIEF-0044", "Shannon Micro Motors"),
        rec("MN", "VEND0011", "Shannon Micro Motion Inc."),
    ]
    result = match_parties(records, prefix="SUP")
    assert groups(result)[expected_id("name:shannon micro motors")] == {
        ("PN", "PNV0010"),
        ("GW", "SUP-0087"),
        ("MN", "VEND0010"),
        ("TU", "LIEF-0044"),
    }
    assert {r.method for r in result.xref if r.local_code != "VEND0011"} == {"name"}
    assert reported(result) == {("MN", "VEND0011"): ("unmatched", ())}


def test_when_chinese_names_differ_only_in_legal_form_then_one_group() -> None:
    records = [
        rec("SZ", "GYS0017", "吉打橡胶组件有限公司"),
        rec("SU", "SU-V0052", "吉打橡胶组件股份有限公司"),
        rec("PN", "PNV0052", "Kedah Rubber Components Sdn Bhd"),
        rec("GW", "SUP-0010", "KEDAH RUBBER COMPONENTS SDN BHD"),
    ]
    result = match_parties(records, prefix="SUP")
    assert partition(result) == {
        frozenset({("SZ", "GYS0017"), ("SU", "SU-V0052")}),
        frozenset({("PN", "PNV0052"), ("GW", "SUP-0010")}),
    }
    assert expected_id("name:吉打橡胶组件") in groups(result)
    assert result.candidates == []  # both groups span two plants


def test_steward_override_beats_a_tax_id_match_and_can_join_an_existing_group() -> None:
    records = [
        rec("SZ", "GYS0001", "深圳精密塑胶有限公司", "91440300123456789X"),
        rec("GW", "SUP-0001", "Shenzhen Precision Plastics Ltd", "91440300123456789X"),
        rec("MN", "VEND0001", "Shenzhen Precision Plastics Inc", "91440300123456789X"),
        rec("SU", "SU-V0001", "深圳精密塑胶厂"),  # no tax id, another spelling: no match
    ]
    tax_group = expected_id("registration:91440300123456789X")
    steward = {("MN", "VEND0001"): "us-reseller", ("SU", "SU-V0001"): tax_group}
    result = match_parties(records, prefix="SUP", steward=steward)
    assert groups(result) == {
        tax_group: {("SZ", "GYS0001"), ("GW", "SUP-0001"), ("SU", "SU-V0001")},
        expected_id("steward:us-reseller"): {("MN", "VEND0001")},
    }
    pinned = {(r.plant_id, r.method, r.match_key) for r in result.xref if r.method == "steward"}
    assert pinned == {("MN", "steward", "us-reseller"), ("SU", "steward", tax_group)}
    assert result.candidates == []  # a steward's decision is not reported again


def test_when_a_name_points_to_two_tax_id_groups_then_it_is_reported_ambiguous() -> None:
    records = [
        rec("GW", "SUP-1", "Acme Medical Ltd", "IE1234567W"),
        rec("MN", "VEND1", "ACME MEDICAL INC", "12-3456789"),
        rec("PN", "PNV1", "Acme Medical Sdn Bhd"),
    ]
    result = match_parties(records, prefix="SUP")
    assert partition(result) == {
        frozenset({("GW", "SUP-1")}),
        frozenset({("MN", "VEND1")}),
        frozenset({("PN", "PNV1")}),
    }
    ie, us = expected_id("registration:IE1234567W"), expected_id("registration:12-3456789")
    assert reported(result)[("PN", "PNV1")] == ("ambiguous", tuple(sorted((ie, us))))
    assert groups(result)[expected_id("record:PN/PNV1")] == {("PN", "PNV1")}


def test_two_records_of_one_plant_never_merge_by_name() -> None:
    records = [
        rec("PN", "PNV1", "Acme Medical Ltd"),
        rec("PN", "PNV2", "ACME MEDICAL LIMITED"),
        rec("GW", "SUP-9", "Acme Medical"),
        rec("MN", "VEND1", "Bolt Works Inc", "12-0000001"),
        rec("MN", "VEND2", "Bolt Works LLC"),  # the plant already has a Bolt Works in the group
        rec("GW", "SUP-8", "Bolt Works"),
    ]
    result = match_parties(records, prefix="SUP")
    own = {k: expected_id(f"record:{k[0]}/{k[1]}") for k in [("PN", "PNV1"), ("PN", "PNV2")]}
    own["GW", "SUP-9"] = expected_id("record:GW/SUP-9")
    bolt = expected_id("registration:12-0000001")
    assert groups(result)[bolt] == {("MN", "VEND1"), ("GW", "SUP-8")}
    assert reported(result) == {
        ("PN", "PNV1"): ("ambiguous", tuple(sorted([own["PN", "PNV2"], own["GW", "SUP-9"]]))),
        ("PN", "PNV2"): ("ambiguous", tuple(sorted([own["PN", "PNV1"], own["GW", "SUP-9"]]))),
        ("GW", "SUP-9"): ("ambiguous", tuple(sorted([own["PN", "PNV1"], own["PN", "PNV2"]]))),
        ("MN", "VEND2"): ("ambiguous", (bolt,)),
    }


def test_a_record_that_matches_nothing_is_reported_unmatched_with_the_keys_tried() -> None:
    records = [
        rec("SZ", "GYS0066", "五大湖硅胶公司"),
        rec("MN", "VEND0066", "Great Lakes Silicone Inc"),
        rec("GW", "SUP-0017", "GREAT LAKES SILICONE INC"),
        rec("TU", "LIEF-0001", None),
        rec("PN", "PNV0001", "Penang Circuit Works", "C1234567890"),
    ]
    result = match_parties(records, prefix="SUP")
    by_key = {(c.plant_id, c.local_code): c for c in result.candidates}
    assert set(by_key) == {("SZ", "GYS0066"), ("TU", "LIEF-0001"), ("PN", "PNV0001")}
    assert all(c.status == "unmatched" and c.candidates == () for c in by_key.values())
    assert "name '五大湖硅胶'" in by_key["SZ", "GYS0066"].reason
    assert "registration id 'C1234567890'" in by_key["PN", "PNV0001"].reason
    assert "no registration id, global_ref or name" in by_key["TU", "LIEF-0001"].reason
    assert {r.method for r in result.xref if r.plant_id in ("SZ", "TU", "PN")} == {"new"}


def test_global_ref_links_materials_and_names_attach_the_plants_without_it() -> None:
    records = [
        rec("GW", "GWY-01021", "Silicone seal ring", ref="GP-0009"),
        rec("MN", "PN-01042", "SILICONE SEAL RING", ref=" gp-0009"),
        rec("PN", "PNM01015", "Silicone seal ring"),
        rec("TU", "MAT-01027", "Silikondichtring"),
    ]
    result = match_parties(records, prefix="MAT")
    assert groups(result) == {
        expected_id("global_ref:GP-0009", "MAT"): {
            ("GW", "GWY-01021"),
            ("MN", "PN-01042"),
            ("PN", "PNM01015"),
        },
        expected_id("name:silikondichtring", "MAT"): {("TU", "MAT-01027")},
    }
    methods = {r.local_code: r.method for r in result.xref}
    assert methods == {
        "GWY-01021": "global_ref",
        "PN-01042": "global_ref",
        "PNM01015": "name",
        "MAT-01027": "new",
    }


MIXED = [
    rec("SZ", "GYS1", "深圳精密塑胶有限公司", "91440300123456789X"),
    rec("GW", "SUP-1", "Shenzhen Precision Plastics Co., Ltd.", "91440300123456789X"),
    rec("PN", "PNV1", "SHENZHEN PRECISION PLASTICS CO LTD"),
    rec("PN", "PNV2", "Shannon Micro Motors Ltd."),
    rec("GW", "SUP-2", "SHANNON MICRO MOTORS LTD"),
    rec("SZ", "GYS2", "香农微电机有限公司"),
    rec("GW", "SUP-3", "Acme Medical Ltd", "IE1234567W"),
    rec("MN", "VEND3", "ACME MEDICAL INC", "12-3456789"),
    rec("PN", "PNV3", "Acme Medical"),
    rec("TU", "LIEF-1", None),
]


def test_result_does_not_depend_on_the_order_of_the_records() -> None:
    steward = {("SZ", "GYS2"): "shannon"}
    first = match_parties(MIXED, prefix="SUP", steward=steward)
    for seed in range(5):
        shuffled = list(MIXED)
        random.Random(seed).shuffle(shuffled)
        assert match_parties(shuffled, prefix="SUP", steward=steward) == first


def test_group_ids_are_hashes_of_the_anchor_and_stable_when_others_come_and_go() -> None:
    first = match_parties(MIXED, prefix="SUP")
    assert match_parties(MIXED, prefix="SUP") == first
    assert groups(first)[expected_id("registration:91440300123456789X")] == {
        ("SZ", "GYS1"),
        ("GW", "SUP-1"),
        ("PN", "PNV1"),
    }
    assert ("SUP-" + hashlib.sha256(b"name:shannon micro motors").hexdigest()[:10]) in groups(first)
    # a member leaving (or joining) a group does not change the group's id
    fewer = match_parties([r for r in MIXED if r.local_code not in ("PNV1", "SUP-2")], prefix="SUP")
    assert set(groups(fewer)) == set(groups(first))


def test_two_records_with_the_same_plant_and_code_are_refused() -> None:
    with pytest.raises(ValueError, match="two records for plant 'GW' local code 'SUP-1'"):
        match_parties([rec("GW", "SUP-1", "A"), rec("GW", "SUP-1", "B")], prefix="SUP")


# ---------------------------------------------------------------------- the simulator's suppliers

DAY = dt.date(2026, 1, 1)
CHINESE = ("SZ", "SU")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("md") / "out"
    generate(out, start=DAY, days=2, scale=0.3, seed=3, progress=False)
    return out


def read_file(path: Path, p: Plant) -> list[dict[str, Any]]:
    if p.file_format == "parquet":
        table: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return table
    text = path.read_text(encoding=p.encoding)
    if p.file_format == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(csv.DictReader(io.StringIO(text), delimiter=p.delimiter))


def delivered_suppliers(out: Path) -> list[PartyRecord]:
    e = entity("erp__suppliers")
    records = []
    for p in PLANTS:
        path = next((out / p.code / DAY.isoformat()).glob("erp__suppliers.*"))
        for raw in read_file(path, p):
            row = {f.name: raw.get(local_name(p, f)) for f in e.fields}
            records.append(
                PartyRecord(
                    p.code,
                    str(row["supplier_code"]),
                    row["supplier_name"],
                    row["tax_id"] or None,
                    row["country"] or None,
                )
            )
    return records


def test_simulated_suppliers_match_precisely_and_stewards_close_the_chinese_gap(
    simulated: Path,
) -> None:
    answers = json.loads((simulated / "_truth" / "answers.json").read_text(encoding="utf-8"))
    identity: dict[str, dict[str, str]] = answers["supplier_identity"]
    truth = {(p, c): name for name, codes in identity.items() for p, c in codes.items()}
    records = delivered_suppliers(simulated)
    assert {(r.plant_id, r.local_code) for r in records} == set(truth)
    taxed = {truth[r.plant_id, r.local_code] for r in records if r.registration_id}
    codes = {name: set(c.items()) for name, c in identity.items()}

    result = match_parties(records, prefix="SUP")
    formed = groups(result)
    group_of = {k: gid for gid, members in formed.items() for k in members}
    # precision: no group mixes two real suppliers
    assert all(len({truth[k] for k in members}) == 1 for members in formed.values())
    # every supplier with a tax id is one group across all its plants
    assert all(len({group_of[k] for k in codes[name]}) == 1 for name in taxed)

    # without a tax id, Chinese names cannot meet Latin ones: predicted from the truth alone
    untaxed = [name for name in identity if name not in taxed]
    latin = {n: {k for k in codes[n] if k[0] not in CHINESE} for n in untaxed}
    chinese = {n: {k for k in codes[n] if k[0] in CHINESE} for n in untaxed}
    predicted_gap = {k for n in untaxed if latin[n] for k in chinese[n]}
    predicted_alone = {k for n in untaxed if len(chinese[n]) == 1 for k in chinese[n]}
    predicted_alone |= {k for n, c in codes.items() if len({p for p, _ in c}) == 1 for k in c}
    gap = {
        k
        for n in untaxed
        for k in chinese[n]
        if latin[n] and group_of[k] != group_of[next(iter(latin[n]))]
    }
    assert all(len({group_of[k] for k in latin[n]}) <= 1 for n in untaxed)  # Latin names link
    assert gap == predicted_gap
    assert {k for k, (status, _) in reported(result).items() if status == "unmatched"} == (
        predicted_alone
    )
    assert not any(status == "ambiguous" for status, _ in reported(result).values())
    print(  # the numbers for the report (pytest -s)
        f"\nsuppliers={len(identity)} records={len(records)} groups={len(formed)} "
        f"unlinked_chinese={sorted(gap)} unmatched={sorted(predicted_alone)}"
    )

    steward = {k: group_of[next(iter(latin[truth[k]]))] for k in gap}
    fixed = match_parties(records, prefix="SUP", steward=steward)
    fixed_groups = groups(fixed)
    assert len(fixed_groups) == len(identity)
    assert {frozenset(m) for m in fixed_groups.values()} == {frozenset(c) for c in codes.values()}
    assert set(fixed_groups) == set(formed) - {group_of[k] for k in gap}  # ids unchanged
    assert sum(r.method == "steward" for r in fixed.xref) == len(gap)


def _x(plant: str, code: str, group: str) -> XrefRow:
    return XrefRow(plant, code, group, "name", "acme", "Acme")


def test_stabilise_keeps_the_id_of_a_group_whose_anchor_changed() -> None:
    before = [_x("SZ", "S1", "SUP-old"), _x("SU", "S9", "SUP-old")]
    # a tax id appeared: the same two codes now form a group anchored (and named) otherwise
    now = [_x("SZ", "S1", "SUP-new"), _x("SU", "S9", "SUP-new"), _x("PN", "P3", "SUP-new")]
    assert {(r.plant_id, r.local_code, r.group_id) for r in stabilise(now, before)} == {
        ("SZ", "S1", "SUP-old"),
        ("SU", "S9", "SUP-old"),
        ("PN", "P3", "SUP-old"),
    }


def test_stabilise_keeps_codes_missing_from_todays_snapshot() -> None:
    before = [_x("SZ", "S1", "SUP-a"), _x("PN", "P7", "SUP-b")]
    now = [_x("SZ", "S1", "SUP-a")]
    assert sorted((r.plant_id, r.local_code, r.group_id) for r in stabilise(now, before)) == [
        ("PN", "P7", "SUP-b"),
        ("SZ", "S1", "SUP-a"),
    ]


def test_stabilise_gives_an_old_id_to_one_group_only() -> None:
    # two groups merged: the majority id wins; then that group splits again
    before = [_x("SZ", "S1", "A"), _x("SU", "S2", "A"), _x("PN", "P1", "B")]
    merged = stabilise([_x("SZ", "S1", "N"), _x("SU", "S2", "N"), _x("PN", "P1", "N")], before)
    assert {r.group_id for r in merged} == {"A"}
    split = stabilise([_x("SZ", "S1", "X"), _x("SU", "S2", "X"), _x("PN", "P1", "Y")], merged)
    ids = {(r.plant_id, r.local_code): r.group_id for r in split}
    assert ids[("SZ", "S1")] == ids[("SU", "S2")] == "A"  # the larger part keeps the id
    assert ids[("PN", "P1")] == "Y"  # the other keeps its own, not a second "A"
