"""The source simulator: determinism, contracts, dirt rates, genealogy and planted signals.

Every expectation is computed here from the delivered files, read independently of the
generator's own writer, and compared with the documented rates and the answer file.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from medlake_simulator import docs
from medlake_simulator.contracts import ENTITIES, entity, local_name
from medlake_simulator.generate import generate
from medlake_simulator.pii import cn_id_valid
from medlake_simulator.plants import PLANTS, Plant, plant
from tests import REPO

START = dt.date(2026, 1, 1)
DAYS = 120


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "out"
    generate(out, start=START, days=DAYS, scale=1.0, seed=11, progress=False)
    return out


@pytest.fixture(scope="module")
def answers(data: Path) -> dict[str, Any]:
    return dict(json.loads((data / "_truth" / "answers.json").read_text()))


# ---------------------------------------------------------------------- an independent reader


def raw_rows(path: Path, p: Plant) -> list[dict[str, Any]]:
    """Rows of one delivered file keyed by the local column names, values as delivered."""
    if p.file_format == "parquet":
        return pq.read_table(path).to_pylist()
    raw = path.read_bytes()
    try:
        text = raw.decode(p.encoding)
    except UnicodeDecodeError:
        text = raw.decode("utf-8")
    if p.file_format == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(csv.DictReader(io.StringIO(text), delimiter=p.delimiter))


def parse_date(value: Any, p: Plant) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.datetime.strptime(value, p.date_format).date()
    except ValueError:
        return None


def parse_datetime(value: Any, p: Plant) -> dt.datetime | None:
    if isinstance(value, dt.datetime) or value is None:
        return value
    try:
        return dt.datetime.strptime(value, p.datetime_format)
    except ValueError:
        return None


def parse_number(value: Any, p: Plant) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value.replace(",", ".") if p.decimal_comma else value)
    except ValueError:
        return None


def rows(data: Path, code: str, key: str) -> list[dict[str, Any]]:
    """All delivered rows of an entity at a plant, keyed by canonical names, with `_day`."""
    p = plant(code)
    e = entity(key)
    names = {local_name(p, f): f.name for f in e.fields}
    out = []
    for folder in sorted((data / code).iterdir()):
        path = next(folder.glob(f"{key}.*"))
        for raw in raw_rows(path, p):
            row = {names.get(k, k): v for k, v in raw.items()}
            row["_day"] = dt.date.fromisoformat(folder.name)
            out.append(row)
    return out


# ---------------------------------------------------------------------- determinism and contracts


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_arguments_give_byte_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    args = {"start": START, "days": 4, "scale": 0.5, "progress": False}
    generate(tmp_path / "a", seed=5, **args)  # type: ignore[arg-type]
    generate(tmp_path / "b", seed=5, **args)  # type: ignore[arg-type]
    generate(tmp_path / "c", seed=6, **args)  # type: ignore[arg-type]
    generate(tmp_path / "d", seed=5, workers=2, **args)  # type: ignore[arg-type]
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert len(a) > 100
    assert a == b
    assert digest(tmp_path / "d") == a  # the number of worker processes changes nothing
    assert a.keys() == c.keys() and a != c


def test_one_delivery_folder_per_plant_per_day_with_every_entity(data: Path) -> None:
    for p in PLANTS:
        folders = sorted(f.name for f in (data / p.code).iterdir())
        assert folders == [(START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
        ext = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}[p.file_format]
        assert sorted(f.name for f in (data / p.code / folders[0]).iterdir()) == sorted(
            f"{e.key}.{ext}" for e in ENTITIES
        )


def test_docs_sources_md_is_the_rendered_contract() -> None:
    assert (REPO / "docs" / "sources.md").read_text(encoding="utf-8") == docs.render(), (
        "docs/sources.md is stale: run `make docs`"
    )


def test_every_file_has_exactly_the_documented_local_columns(data: Path) -> None:
    day = (START + dt.timedelta(days=3)).isoformat()
    for p in PLANTS:
        for e in ENTITIES:
            path = next((data / p.code / day).glob(f"{e.key}.*"))
            expected = [local_name(p, f) for f in e.fields]
            if p.file_format == "parquet":
                assert pq.read_schema(path).names == expected, path
            elif p.file_format == "jsonl":
                for line in path.read_text(encoding="utf-8").splitlines()[:3]:
                    assert list(json.loads(line)) == expected, path
            else:
                header = path.read_bytes().decode(p.encoding).splitlines()[0]
                assert header.split(p.delimiter) == expected, path


def test_chinese_plants_write_gb18030_with_chinese_headers_and_german_uses_semicolons(
    data: Path,
) -> None:
    day = (START + dt.timedelta(days=5)).isoformat()
    raw = (data / "SZ" / day / "erp__purchase_orders.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert raw.decode("gb18030").startswith("采购订单号,")
    german = (data / "TU" / day / "erp__purchase_orders.csv").read_text(encoding="utf-8")
    assert german.startswith("Bestellnummer;Position;")
    assert any("," in line.split(";")[8] for line in german.splitlines()[1:])  # decimal comma


# ---------------------------------------------------------------------- dirt


def transactional_rows(data: Path) -> tuple[int, list[tuple[Plant, Any, list[dict[str, Any]]]]]:
    total, per_file = 0, []
    for p in PLANTS:
        for e in ENTITIES:
            if e.cadence == "snapshot":
                continue
            for folder in sorted((data / p.code).iterdir()):
                file_rows = raw_rows(next(folder.glob(f"{e.key}.*")), p)
                total += len(file_rows)
                per_file.append((p, e, file_rows))
    return total, per_file


def within(observed: int, trials: int, rate: float) -> bool:
    """Observed count inside 4 binomial standard deviations of the documented rate."""
    mean = trials * rate
    return abs(observed - mean) <= 4 * math.sqrt(trials * rate * (1 - rate)) + 2


def test_each_dirt_kind_appears_at_its_documented_rate(data: Path) -> None:
    dirt = json.loads((data / "_truth" / "dirt.json").read_text())
    rates = dirt["rates"]
    total, per_file = transactional_rows(data)
    exact = missing = bad_dates = 0
    date_cells = 0
    for p, e, file_rows in per_file:
        seen: Counter[str] = Counter(json.dumps(r, sort_keys=True, default=str) for r in file_rows)
        exact += sum(n - 1 for n in seen.values())
        key = local_name(p, e.fields[[f.name for f in e.fields].index(e.keys[-1])])
        missing += sum(1 for r in file_rows if r.get(key) in (None, ""))
        if p.file_format != "parquet":
            for f in e.fields:
                if f.type == "date":
                    name = local_name(p, f)
                    for r in file_rows:
                        value = r.get(name)
                        if value not in (None, ""):
                            date_cells += 1
                            bad_dates += parse_date(value, p) is None
    clean = total - exact  # rows before duplication
    # exact duplicates: identical rows in one file (independent random rows never collide)
    assert within(exact, clean, rates["exact_duplicate"]), (exact, clean)
    assert within(missing, clean, rates["missing_mandatory"]), (missing, clean)
    assert bad_dates > 0
    assert bad_dates <= clean * rates["unparseable_date"] * 2 + 10


def test_late_corrections_resend_po_lines_with_a_higher_version(data: Path) -> None:
    versions: dict[tuple[str, str], set[int]] = defaultdict(set)
    total = 0
    for p in PLANTS:
        for r in rows(data, p.code, "erp__purchase_orders"):
            version = parse_number(r["record_version"], p)
            if r["po_number"] and version is not None:
                versions[(p.code, r["po_number"])].add(int(version))
                total += 1
    corrected = sum(1 for v in versions.values() if v == {1, 2})
    assert 0.01 * len(versions) <= corrected <= 0.035 * len(versions)


def test_one_off_dirt_truncated_line_wrong_encoding_and_schema_drift(data: Path) -> None:
    truncated = []
    for p in (q for q in PLANTS if q.file_format == "csv"):
        for path in (data / p.code).rglob("*.csv"):
            text = path.read_bytes().decode("utf-8", errors="replace")
            if text and not text.endswith("\n"):
                truncated.append(path.relative_to(data))
    assert len(truncated) == 1 and truncated[0].parts[0] == "PN"

    utf8_in_gb_plant = []
    for path in (data / "SU").rglob("*.csv"):
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if any(ord(ch) > 127 for ch in raw.decode("utf-8")):
            utf8_in_gb_plant.append(path.relative_to(data))
    assert [str(p) for p in utf8_in_gb_plant] == [
        f"SU/{START + dt.timedelta(days=1)}/erp__materials.csv"
    ]

    drifted = sorted(
        f.parent.name
        for f in (data / "GW").rglob("erp__goods_receipts.jsonl")
        if any("temperatureLoggerId" in line for line in f.read_text().splitlines()[:1])
    )
    with_rows = sorted(
        f.parent.name for f in (data / "GW").rglob("erp__goods_receipts.jsonl") if f.stat().st_size
    )
    middle = (START + dt.timedelta(days=DAYS // 2)).isoformat()
    assert drifted and all(d >= middle for d in drifted)
    assert [d for d in with_rows if d >= middle] == drifted


def test_the_same_supplier_is_spelled_differently_across_plants(data: Path) -> None:
    names_by_tax: dict[str, set[str]] = defaultdict(set)
    for p in PLANTS:
        day_rows = [r for r in rows(data, p.code, "erp__suppliers") if r["_day"] == START]
        for r in day_rows:
            if r["tax_id"]:
                names_by_tax[r["tax_id"]].add(r["supplier_name"])
    assert max(len(v) for v in names_by_tax.values()) >= 3
    assert any(
        any("有限公司" in n for n in v) and any(n.isascii() for n in v)
        for v in names_by_tax.values()
    )


# ---------------------------------------------------------------------- genealogy


def test_every_consumed_lot_was_received_before_use(data: Path) -> None:
    for p in PLANTS:
        received: dict[str, dt.datetime | None] = {}
        for r in rows(data, p.code, "erp__goods_receipts"):
            if r.get("supplier_lot"):  # posted_at may be unparseable dirt: then no time check
                received.setdefault(
                    r["supplier_lot"].strip(), parse_datetime(r.get("posted_at"), p)
                )
        # the WMS books every accepted receipt too (covers a receipt row lost to a truncated file)
        receipt_word = {"zh": "采购入库", "de": "WE", "en": "GR"}[p.lang]
        for r in rows(data, p.code, "wms__stock_movements"):
            if r.get("movement_type") == receipt_word and r.get("lot"):
                received.setdefault(r["lot"], parse_datetime(r.get("moved_at"), p))
        produced = {
            r["lot_number"]
            for r in rows(data, p.code, "mes__production_lots")
            if r.get("lot_number")
        }
        # a production-lot row whose key was blanked (dirt) is still known from its inspections
        produced |= {
            str(r["inspection_id"]).rsplit("-", 1)[0]
            for r in rows(data, p.code, "qc__production_inspections")
            if r.get("inspection_id")
        }
        consumptions = rows(data, p.code, "mes__lot_genealogy")
        assert consumptions
        for r in consumptions:
            if not r.get("component_lot") or not r.get("finished_lot"):
                continue  # dirt: missing key
            at = parse_datetime(r["consumed_at"], p)
            assert r["component_lot"] in received, (p.code, r)
            when = received[r["component_lot"]]
            if at is not None and when is not None:
                assert when < at, (p.code, r)
            assert r["finished_lot"] in produced, (p.code, r)


# ---------------------------------------------------------------------- personal data labels


def test_pii_labels_point_at_the_exact_values_in_the_files(data: Path) -> None:
    labels = [
        json.loads(line)
        for part in sorted((data / "_truth" / "pii_labels").glob("*.jsonl"))
        for line in part.read_text().splitlines()
    ]
    assert {p.name for p in (data / "_truth" / "pii_labels").iterdir()} == {
        f"{p.code}.jsonl" for p in PLANTS
    }
    kinds = Counter(label["entity_type"] for label in labels)
    assert {"PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "CN_RESIDENT_ID", "ADDRESS"} <= set(kinds)
    cache: dict[str, list[dict[str, Any]]] = {}
    for label in labels[:: max(1, len(labels) // 3000)]:
        code = label["file"].split("/")[0]
        if label["file"] not in cache:
            cache[label["file"]] = raw_rows(data / label["file"], plant(code))
        text = cache[label["file"]][label["row"] - 1][label["column"]]
        assert text[label["start"] : label["end"]] == label["value"], label
        if label["entity_type"] == "CN_RESIDENT_ID":
            assert cn_id_valid(label["value"])


# ---------------------------------------------------------------------- planted signals


def test_degraded_supplier_on_time_rate_really_drops(data: Path, answers: dict[str, Any]) -> None:
    pivot = dt.date.fromisoformat(answers["otd_degrade_date"])
    before: list[bool] = []
    after: list[bool] = []
    others: list[bool] = []
    for code, supplier in answers["otd_supplier_codes"].items():
        p = plant(code)
        pos = {
            r["po_number"]: r
            for r in rows(data, code, "erp__purchase_orders")
            if r.get("po_number")
        }
        for r in rows(data, code, "erp__goods_receipts"):
            po = pos.get(r.get("po_number"))
            got = parse_date(r.get("receipt_date"), p)
            if po is None or got is None or r["_day"] == START:
                continue
            due = parse_date(po["due_date"], p)
            if due is None:
                continue
            on_time = abs((got - due).days) <= 2
            if po["supplier_code"] == supplier:
                (after if due >= pivot else before).append(on_time)
            else:
                others.append(on_time)
    assert len(before) >= 20 and len(after) >= 20
    assert sum(before) / len(before) >= 0.85
    assert sum(after) / len(after) <= 0.70
    assert sum(others) / len(others) >= 0.85


def test_bad_supplier_lot_raises_incoming_rejects_in_process_failures_and_complaints(
    data: Path, answers: dict[str, Any]
) -> None:
    code = answers["bad_lot_plant"]
    p = plant(code)
    bad = answers["bad_lot"]
    inspections = [r for r in rows(data, code, "qc__incoming_inspections") if r.get("supplier_lot")]
    bad_rate = [
        (parse_number(r["rejected_qty"], p) or 0) / (parse_number(r["inspected_qty"], p) or 1)
        for r in inspections
        if r["supplier_lot"] == bad
    ]
    normal = [
        (parse_number(r["rejected_qty"], p) or 0) / (parse_number(r["inspected_qty"], p) or 1)
        for r in inspections
        if r["supplier_lot"] != bad
    ]
    assert bad_rate and bad_rate[0] > 4 * statistics.mean(normal)

    affected = {
        r["finished_lot"]
        for r in rows(data, code, "mes__lot_genealogy")
        if r.get("component_lot") == bad
    }
    assert affected and affected == set(answers["bad_lot_finished_lots"])
    inspections_ip = [
        r
        for r in rows(data, code, "qc__production_inspections")
        if str(r.get("inspection_id", "")).endswith("-IP")
    ]

    def fail_rate(lots: list[dict[str, Any]]) -> float:
        pairs = [
            (parse_number(r["failed_qty"], p), parse_number(r["inspected_qty"], p)) for r in lots
        ]
        usable = [(f, n) for f, n in pairs if f is not None and n is not None and 0 <= f <= n]
        return sum(f for f, _ in usable) / sum(n for _, n in usable)

    hit = [r for r in inspections_ip if r["lot_number"] in affected]
    rest = [r for r in inspections_ip if r["lot_number"] not in affected and r["inspection_id"]]
    assert fail_rate(hit) > 2.5 * fail_rate(rest)

    shipped = Counter(r["lot"] for r in rows(data, code, "wms__shipments") if r.get("lot"))
    complaints = Counter(r["lot"] for r in rows(data, code, "crm__complaints") if r.get("lot"))
    hit_units = sum(shipped[lot] for lot in affected)
    rest_units = sum(n for lot, n in shipped.items() if lot not in affected)
    assert hit_units > 0, "no device built with the bad lot was shipped"
    hit_rate = sum(complaints[lot] for lot in affected) / hit_units
    rest_rate = sum(n for lot, n in complaints.items() if lot not in affected) / rest_units
    assert hit_rate > 3 * rest_rate


def test_process_parameter_drifts_before_failures_rise(data: Path, answers: dict[str, Any]) -> None:
    code, equipment = answers["drift_plant"], answers["drift_equipment"]
    p = plant(code)
    drift_start = dt.date.fromisoformat(answers["drift_start"])
    failure_date = dt.date.fromisoformat(answers["drift_failure_date"])
    values: dict[str, list[float]] = {"before": [], "between": []}
    lots_on_equipment: dict[str, dt.date] = {}
    for r in rows(data, code, "mes__process_measurements"):
        if r.get("equipment_id") != equipment or r.get("parameter") != answers["drift_parameter"]:
            continue
        value = parse_number(r["value"], p)
        if value is None or value > 1000:  # outlier dirt
            continue
        lots_on_equipment[r["lot_number"]] = r["_day"]
        if r["_day"] < drift_start:
            values["before"].append(value)
        elif r["_day"] < failure_date:
            values["between"].append(value)
    assert statistics.mean(values["between"]) > statistics.mean(values["before"]) + 1.0
    fails = {"early": [0, 0], "late": [0, 0]}
    for r in rows(data, code, "qc__production_inspections"):
        if r.get("lot_number") in lots_on_equipment and str(r.get("inspection_id", "")).endswith(
            "-IP"
        ):
            bucket = fails[
                "late" if lots_on_equipment[r["lot_number"]] >= failure_date else "early"
            ]
            failed, inspected = (
                parse_number(r["failed_qty"], p),
                parse_number(r["inspected_qty"], p),
            )
            if failed is not None and inspected is not None and 0 <= failed <= inspected:
                bucket[0] += int(failed)
                bucket[1] += int(inspected)
    assert fails["late"][0] / fails["late"][1] > 2.5 * fails["early"][0] / fails["early"][1]


def test_component_price_increase_shows_in_purchase_prices(
    data: Path, answers: dict[str, Any]
) -> None:
    pivot = dt.date.fromisoformat(answers["price_date"])
    ratios = []
    for code, material in answers["price_material_codes"].items():
        p = plant(code)
        prices: dict[str, list[float]] = {"before": [], "after": []}
        for r in rows(data, code, "erp__purchase_orders"):
            ordered = parse_date(r.get("order_date"), p)
            price = parse_number(r.get("unit_price"), p)
            if r.get("material_code") == material and ordered and price:
                prices["after" if ordered >= pivot else "before"].append(price)
        if len(prices["before"]) >= 3 and len(prices["after"]) >= 3:
            ratios.append(statistics.median(prices["after"]) / statistics.median(prices["before"]))
    assert ratios
    assert all(abs(r - (1 + answers["price_increase"])) < 0.06 for r in ratios), ratios


def test_complaint_cluster_has_one_fault_signature_in_its_window(
    data: Path, answers: dict[str, Any]
) -> None:
    lo, hi = (dt.date.fromisoformat(d) for d in answers["cluster_window"])
    inside = outside = 0
    for code, product in answers["cluster_product_codes"].items():
        fault = answers["cluster_fault_codes"][code]
        p = plant(code)
        for r in rows(data, code, "crm__complaints"):
            day = parse_date(r.get("received_date"), p)
            if r.get("product_code") == product and r.get("fault_code") == fault and day:
                if lo <= day <= hi:
                    inside += 1
                else:
                    outside += 1
    days_inside = (hi - lo).days + 1
    assert inside / days_inside > 5 * (outside / (DAYS - days_inside) + 0.01)


def test_engineering_change_lowers_the_field_failure_rate(
    data: Path, answers: dict[str, Any]
) -> None:
    eco = dt.date.fromisoformat(answers["eco_date"])
    end = START + dt.timedelta(days=DAYS)
    exposure = {"pre": 0.0, "post": 0.0}
    repairs = {"pre": 0, "post": 0}
    for code, product in answers["eco_product_codes"].items():
        p = plant(code)
        produced = {
            r["lot_number"]: parse_date(r["production_date"], p)
            for r in rows(data, code, "mes__production_lots")
            if r.get("lot_number") and r.get("product_code") == product
        }
        serial_lot = {}
        for r in rows(data, code, "wms__shipments"):
            made = produced.get(r.get("lot"))
            shipped = parse_date(r.get("ship_date"), p)
            if made and shipped and r.get("serial"):
                group = "post" if made >= eco else "pre"
                exposure[group] += (end - shipped).days
                serial_lot[r["serial"]] = group
        for r in rows(data, code, "svc__service_orders"):
            group = serial_lot.get(r.get("serial"))
            if group:
                repairs[group] += 1
    pre_rate = repairs["pre"] / exposure["pre"]
    post_rate = repairs["post"] / exposure["post"]
    assert post_rate < 0.6 * pre_rate, (repairs, exposure)


def test_demand_follows_the_planted_trend_and_season(data: Path, answers: dict[str, Any]) -> None:
    daily: Counter[dt.date] = Counter()
    for p in PLANTS:
        for r in rows(data, p.code, "erp__sales_orders"):
            day = parse_date(r.get("order_date"), p)
            qty = parse_number(r.get("qty"), p)
            if day and qty and 0 < qty < 1000:
                daily[day] += qty

    def expected(day: dt.date) -> float:
        years = (day - START).days / 365.0
        season = 1 + answers["demand_season_amplitude"] * math.sin(
            2 * math.pi * (day.timetuple().tm_yday - 80) / 365.0
        )
        return (1 + answers["demand_trend_per_year"] * years) * season

    first = [START + dt.timedelta(days=i) for i in range(28)]
    last = [START + dt.timedelta(days=DAYS - 28 + i) for i in range(28)]
    observed = sum(daily[d] for d in last) / sum(daily[d] for d in first)
    predicted = sum(expected(d) for d in last) / sum(expected(d) for d in first)
    assert predicted > 1.2
    assert abs(observed / predicted - 1) < 0.12, (observed, predicted)


def test_rows_grow_linearly_with_scale(tmp_path: Path) -> None:
    def daily_rows(folder: Path, scale: float) -> int:
        generate(folder, start=START, days=20, scale=scale, seed=3, progress=False)
        summary = json.loads((folder / "_truth" / "summary.json").read_text())
        return sum(
            v for k, v in summary["rows"].items() if entity(k.split("/")[1]).cadence == "daily"
        )

    ratio = daily_rows(tmp_path / "large", 3.0) / daily_rows(tmp_path / "small", 1.0)
    assert 2.5 < ratio < 3.5, ratio


def test_component_price_increase_propagates_through_the_bom(
    data: Path, answers: dict[str, Any]
) -> None:
    pivot = dt.date.fromisoformat(answers["price_date"])
    checked = 0
    for code, expected in answers["price_product_cost_increase"].items():
        p = plant(code)
        material = answers["price_material_codes"][code]
        prices: dict[str, list[float]] = {"before": [], "after": []}
        for r in rows(data, code, "erp__purchase_orders"):
            ordered = parse_date(r.get("order_date"), p)
            price = parse_number(r.get("unit_price"), p)
            if r.get("material_code") == material and ordered and price:
                per_unit = price / 10 if r.get("uom") == "BOX" else price
                prices["after" if ordered >= pivot else "before"].append(per_unit)
        if len(prices["before"]) < 3 or len(prices["after"]) < 3:
            continue
        delta = statistics.median(prices["after"]) - statistics.median(prices["before"])
        boms = [
            r
            for r in rows(data, code, "erp__boms")
            if r["_day"] == START and r["component_code"] == material
        ]
        for line in boms:
            observed = parse_number(line["qty_per"], p) * delta  # cost increase per device
            assert observed == pytest.approx(expected[line["product_code"]], rel=0.15), (code, line)
            checked += 1
    assert checked >= 3


def test_remaining_dirt_kinds_are_present_at_plausible_rates(data: Path) -> None:
    total, per_file = transactional_rows(data)
    near = bad_numbers = bad_qty = 0
    for p, e, file_rows in per_file:
        normalised = Counter(
            json.dumps(
                {k: v.strip().casefold() if isinstance(v, str) else v for k, v in r.items()},
                sort_keys=True,
                default=str,
            )
            for r in file_rows
        )
        exact = Counter(json.dumps(r, sort_keys=True, default=str) for r in file_rows)
        near += sum(n - 1 for n in normalised.values()) - sum(n - 1 for n in exact.values())
        if p.file_format != "parquet":
            for f in e.fields:
                if f.type == "decimal" and f.name not in e.keys:
                    name = local_name(p, f)
                    bad_numbers += sum(
                        1
                        for r in file_rows
                        if r.get(name) not in (None, "") and parse_number(r[name], p) is None
                    )
        for f in e.fields:
            if f.name in ("ordered_qty", "received_qty"):
                name = local_name(p, f)
                for r in file_rows:
                    value = parse_number(r.get(name), p)
                    bad_qty += value is not None and (value < 0 or value > 100_000)
    assert within(near, total, 0.003), (near, total)
    assert 0 < bad_numbers <= total * 0.003 * 2
    assert bad_qty > 0

    mismatched = outliers = receipts = measurements = 0
    for p in PLANTS:
        pos = {
            r["po_number"]: r
            for r in rows(data, p.code, "erp__purchase_orders")
            if r.get("po_number")
        }
        for r in rows(data, p.code, "erp__goods_receipts"):
            po = pos.get(r.get("po_number"))
            if po is not None:
                receipts += 1
                mismatched += r.get("uom") != po.get("uom")
        for r in rows(data, p.code, "mes__process_measurements"):
            value, usl = parse_number(r.get("value"), p), parse_number(r.get("usl"), p)
            if value is not None and usl:
                measurements += 1
                outliers += value > 3 * usl
    assert within(mismatched, receipts, 0.01), (mismatched, receipts)
    assert within(outliers, measurements, 0.005), (outliers, measurements)


def test_stock_movements_balance_with_on_hand_for_every_lot(data: Path) -> None:
    last = START + dt.timedelta(days=DAYS - 1)
    for p in PLANTS:
        moved: Counter[tuple[str, str]] = Counter()
        by_id = {
            r.get("movement_id") or id(r): r for r in rows(data, p.code, "wms__stock_movements")
        }
        for r in by_id.values():  # one row per movement id: delivered duplicates collapse
            qty = parse_number(r.get("qty"), p)
            if r.get("material_code") and r.get("lot") and qty is not None:
                moved[(r["material_code"].strip(), r["lot"].strip())] += qty
        on_hand = {
            (r["material_code"], r["lot"]): parse_number(r["qty"], p)
            for r in rows(data, p.code, "wms__on_hand")
            if r["_day"] == last and r.get("lot") and r.get("material_code")
        }
        mismatched = [k for k, q in on_hand.items() if q is not None and abs(moved[k] - q) > 1e-3]
        # movements hit by dirt (negative or x1000 quantities, ~0.2% of rows) explain a few lots
        assert len(mismatched) <= 0.05 * len(on_hand) + 3, (p.code, len(mismatched), len(on_hand))
        negative = [k for k, q in moved.items() if q < -1e-3]
        assert len(negative) <= 0.05 * len(moved) + 3, (p.code, len(negative), len(moved))


def test_serials_are_unique_and_udis_carry_valid_gtins_lots_and_serials(data: Path) -> None:
    from medlake_simulator.pii import gtin_valid

    for p in PLANTS:
        serials = Counter(
            r["serial"] for r in rows(data, p.code, "wms__shipments") if r.get("serial")
        )
        duplicated = [s for s, n in serials.items() if n > 1]
        # exact duplicate rows (dirt) repeat a serial within one shipment file only
        assert len(duplicated) <= 0.01 * len(serials) + 2, duplicated[:5]
        gtins = {
            r["product_code"]: r["gtin"]
            for r in rows(data, p.code, "plm__products")
            if r["_day"] == START
        }
        assert all(gtin_valid(g) for g in gtins.values())
        unknown = total = 0
        for r in rows(data, p.code, "crm__complaints"):
            udi = r.get("udi") or ""
            if not udi.startswith("(01)") or not r.get("serial"):
                continue
            assert gtin_valid(udi[4:18]) and udi[18:22] == "(17)" and udi[28:32] == "(10)", udi
            assert f"(10){r['lot'].strip()}(21){r['serial'].strip()}" in udi
            total += 1
            unknown += r["serial"] not in serials  # its shipment row lost the serial (dirt)
        assert total and unknown <= 0.03 * total + 1


def test_devices_ship_only_after_their_lot_is_finished_and_rejected_lots_are_never_used(
    data: Path,
) -> None:
    for p in PLANTS:
        finished = {}
        for r in rows(data, p.code, "mes__work_orders"):
            done = parse_datetime(r.get("finished_at"), p)
            if r.get("wo_number") and done:
                finished[r["wo_number"]] = done
        lot_done = {
            r["lot_number"]: finished.get(r["wo_number"])
            for r in rows(data, p.code, "mes__production_lots")
            if r.get("lot_number") and r.get("wo_number")
        }
        shipment_word = {"zh": "销售出库", "de": "WA", "en": "GI-SHIP"}[p.lang]
        for r in rows(data, p.code, "wms__stock_movements"):
            at = parse_datetime(r.get("moved_at"), p)
            done = lot_done.get(r.get("lot"))
            if r.get("movement_type") == shipment_word and at and done:
                assert done < at, (p.code, r)
        reject_word = {"zh": "不合格", "de": "abgelehnt", "en": "REJECT"}[p.lang]
        rejected = {
            r["supplier_lot"]
            for r in rows(data, p.code, "qc__incoming_inspections")
            if r.get("result") == reject_word
        }
        material_of = {
            r["supplier_lot"]: r["material_code"]
            for r in rows(data, p.code, "qc__incoming_inspections")
            if r.get("supplier_lot")
        }
        assert rejected
        for r in rows(data, p.code, "mes__lot_genealogy"):
            assert r.get("component_lot") not in rejected, r
            if r.get("component_lot") in material_of and r.get("component_code"):
                assert material_of[r["component_lot"]].strip() == r["component_code"].strip(), r


def test_every_structured_personal_value_is_labelled(data: Path) -> None:
    labelled = {
        (label["file"], label["row"], label["column"])
        for part in (data / "_truth" / "pii_labels").glob("*.jsonl")
        for label in map(json.loads, part.read_text().splitlines())
    }
    day = (START + dt.timedelta(days=2)).isoformat()
    checked = 0
    for p in PLANTS:
        for e in ENTITIES:
            columns = [local_name(p, f) for f in e.fields if f.pii and f.pii != "FREE_TEXT"]
            if not columns:
                continue
            path = next((data / p.code / day).glob(f"{e.key}.*"))
            for i, r in enumerate(raw_rows(path, p), start=1):
                for column in columns:
                    if r.get(column):
                        assert (str(path.relative_to(data)), i, column) in labelled
                        checked += 1
    assert checked > 100


def test_generate_refuses_to_replace_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a simulator output folder"):
        generate(tmp_path, start=START, days=1, scale=0.2, seed=1, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_killing_generate_leaves_no_worker_processes_behind(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    import psutil

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "medlake_simulator.cli", "generate", "--out", str(out)]
    cmd += ["--start", "2026-01-01", "--days", "300", "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    while not any(out.glob("*/2026-01-0[2-9]")):  # the workers have written days
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    children = parent.children(recursive=True)
    assert len(children) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert alive == [], f"orphaned workers still running: {[p.cmdline() for p in alive]}"


def test_identity_maps_give_every_delivered_supplier_and_material_one_real_entity(
    data: Path, answers: dict[str, Any]
) -> None:
    checks = (
        ("supplier_identity", "erp__suppliers", "supplier_code"),
        ("material_identity", "erp__materials", "material_code"),
    )
    members: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for kind, key, code_field in checks:
        delivered = {
            p.code: {r[code_field]: r for r in rows(data, p.code, key) if r["_day"] == START}
            for p in PLANTS
        }
        mapped = [(p, c) for codes in answers[kind].values() for p, c in codes.items()]
        # a bijection: every delivered code belongs to exactly one entity of the map
        assert sorted(mapped) == sorted((p, c) for p, codes in delivered.items() for c in codes)
        members[kind] = {
            name: [{**delivered[p][c], "_plant": p} for p, c in codes.items()]
            for name, codes in answers[kind].items()
        }

    tax_ids = []
    for name, found in members["supplier_identity"].items():
        assert len({r["country"] for r in found}) == 1, name
        taxes = {r["tax_id"] or None for r in found}
        assert len(taxes) == 1, (name, taxes)
        tax_ids += [t for t in taxes if t]
        for r in found:
            if plant(r["_plant"]).lang == "zh":
                assert not r["supplier_name"].isascii(), (name, r)
            else:  # English and German spellings start with the same word
                assert r["supplier_name"].split()[0].casefold() == name.split()[0].casefold()
    assert len(tax_ids) == len(set(tax_ids)) > 0

    refs = []
    for key, found in members["material_identity"].items():
        assert len({r["category"] for r in found}) == 1, key
        by_lang: dict[str, set[str]] = defaultdict(set)
        for r in found:
            by_lang[plant(r["_plant"]).lang].add(r["description"])
        assert all(len(v) == 1 for v in by_lang.values()), (key, by_lang)
        found_refs = {r["global_ref"] for r in found if r["_plant"] in ("GW", "MN")}
        if found[0]["category"] == "finished":
            assert found_refs <= {None}, key
        else:
            assert len(found_refs) == 1 and None not in found_refs, (key, found_refs)
            refs += list(found_refs)
    assert len(refs) == len(set(refs)) > 0
