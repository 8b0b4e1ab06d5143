"""A real-shaped extract is onboarded by configuration alone: one wide CSV of purchase-order
lines feeds purchase orders, goods receipts, suppliers and materials; an ECB reference-rate
file feeds the FX rates. No preprocessing.

The extract is written here in the shape public procurement and delivery extracts have (one
row per order line with vendor, scheduled and delivered dates, pack sizes, prices, weights
and freight), with their defects: three date spellings in one column (`2-Jun-19`,
`8/27/2019`, `10-09-2019`, month first), marker texts where a value was never captured
(`Date Not Captured`, `N/A - From RDC`, `See ASN-93 (ID#:1281)`, `Freight Included in
Commodity Cost`), numbers with grouping commas, one line id given twice with different
quantities (a key conflict) and one line delivered twice identically (a duplicate). It is
independent of the simulator. Expected values are computed from the rows the test wrote.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import SparkSession

from medlake.jobs import gold as gold_job
from medlake.jobs import ingest as ingest_job
from medlake.jobs import silver as silver_job
from tests.conf_copy import copy_conf
from tests.silver.jobs import job_context

DELIVERY = dt.date(2019, 4, 30)
VENDORS = ["RDC", "Aurobindo Pharma", "Orgenics, Ltd", "Trinity Biotech"]  # RDC is the largest
PRODUCTS = [  # (product group, item description): the material is group + first word
    ("ARV", "Lamivudine 150mg tablets, 60 Tabs"),
    ("ARV", "Nevirapine 200mg tablets, 60 Tabs"),
    ("HRDT", "Determine HIV-1/2 test kit, 100 Tests"),
    ("ANTM", "Artemether/Lumefantrine 20/120mg, 24 Tabs"),
]
MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    )
}
HEADER = [
    "ID",
    "PO / SO #",
    "ASN/DN #",
    "Vendor",
    "Product Group",
    "Item Description",
    "PO Sent to Vendor Date",
    "Scheduled Delivery Date",
    "Delivered to Client Date",
    "Unit of Measure (Per Pack)",
    "Line Item Quantity",
    "Pack Price",
    "Weight (Kilograms)",
    "Freight Cost (USD)",
]

WX_YAML = """\
# A procurement extract: one wide file, onboarded by configuration only.
plant: {id: WX, name: Wide extract, country: US, region: AMER, jurisdiction: US,
        timezone: America/New_York, currency: USD}
delivery:
  format: csv
  encoding: utf-8
  date_format: yyyy-MM-dd
  datetime_format: yyyy-MM-dd HH:mm:ss
  true_values: ['Yes']
  false_values: ['No']
units:
  EA: {unit: EA, factor: 1}
x-dates: &dates {formats: ['d-MMM-yy', 'M/d/yyyy', 'M-d-yyyy'], order: month_first}
x-material: &material
  expr: "concat(col('Product Group'), '-', upper(split(col('Item Description'), ' ', 1)))"
x-units: &units
  expr: "number(col('Line Item Quantity')) * number(col('Unit of Measure (Per Pack)'))"
x-on-other-shipment: &elsewhere {'re:^See (ASN|DN)-': on_other_shipment}
entities:
  erp__suppliers:
    file: scms_extract.csv
    columns: {Vendor: [supplier_code, supplier_name]}
    fields: {country: {value: US}}
  erp__materials:
    file: scms_extract.csv
    columns: {Item Description: description, Product Group: category}
    fields: {material_code: *material, uom: {value: EA}}
  erp__purchase_orders:
    file: scms_extract.csv
    columns: {'PO / SO #': po_number, ID: po_line, Vendor: supplier_code,
              Scheduled Delivery Date: due_date, Freight Cost (USD): freight_cost}
    fields:
      material_code: *material
      order_date:
        <<: *dates
        expr: "coalesce(col('PO Sent to Vendor Date'), col('Scheduled Delivery Date'))"
      due_date: *dates
      ordered_qty: *units
      uom: {value: EA}
      unit_price: {expr: "number(col('Pack Price')) / number(col('Unit of Measure (Per Pack)'))"}
      currency: {value: USD}
      freight_cost: {number: extract}
    missing:
      PO Sent to Vendor Date: {Date Not Captured: not_captured, N/A - From RDC: from_rdc}
      Freight Cost (USD):
        <<: *elsewhere
        Freight Included in Commodity Cost: included_in_commodity
        Invoiced Separately: invoiced_separately
  erp__goods_receipts:
    file: scms_extract.csv
    columns: {ID: [receipt_id, po_line], 'PO / SO #': po_number,
              Delivered to Client Date: receipt_date, Weight (Kilograms): weight_kg}
    fields:
      receipt_date: *dates
      received_qty: *units
      uom: {value: EA}
      weight_kg: {number: extract}
    missing:
      Weight (Kilograms):
        <<: *elsewhere
        Weight Captured Separately: captured_separately
  erp__fx_rates:
    file: eurofxref-hist.csv
    format: reference-rates-csv
    columns: {Date: rate_date, Currency: from_currency, Base: to_currency, InverseRate: rate}
    fields: {rate_date: {formats: [yyyy-MM-dd]}}
"""


def spell(day: dt.date, i: int) -> str:
    """Three spellings in one column, as the extract mixes them."""
    if i % 3 == 0:
        return f"{day.day}-{day:%b}-{day:%y}"  # 2-Jun-19
    if i % 3 == 1:
        return f"{day.month}/{day.day}/{day.year}"  # 8/27/2019
    return f"{day.month:02d}-{day.day:02d}-{day.year}"  # 10-09-2019 (month first)


def read_spelled(text: str) -> dt.date:
    if "/" in text:
        m, d, y = text.split("/")
        return dt.date(int(y), int(m), int(d))
    a, b, c = text.split("-")
    if b in MONTHS:
        return dt.date(2000 + int(c), MONTHS[b], int(a))
    return dt.date(int(c), int(a), int(b))


def extract_rows(seed: int = 11) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(1, 241):
        vendor = VENDORS[0] if rng.random() < 0.45 else rng.choice(VENDORS[1:])
        group, item = PRODUCTS[i % len(PRODUCTS)]
        ordered = dt.date(2019, 1, 7) + dt.timedelta(days=rng.randrange(0, 45))
        due = ordered + dt.timedelta(days=rng.randrange(20, 40))
        arrived = due + dt.timedelta(days=rng.choice([-9, -5, -3, -1, 0, 0, 1, 2, 3, 6, 12]))
        if vendor == "RDC":
            sent = "N/A - From RDC"
        elif i % 17 == 0:
            sent = "Date Not Captured"
        else:
            sent = spell(ordered, i + 1)
        pack = rng.choice([30, 60, 100, 240])
        weight = rng.choice(
            [f"{rng.randrange(5, 3000):,}", "Weight Captured Separately", f"See ASN-{i} (ID#:{i})"]
        )
        freight = rng.choice(
            [
                f"{rng.randrange(100, 20000):,}.{rng.randrange(0, 100):02d}",
                "Freight Included in Commodity Cost",
                "Invoiced Separately",
                f"See DN-{i + 7} (ID#:{i + 7})",
            ]
        )
        rows.append(
            {
                "ID": str(i),
                "PO / SO #": f"SCMS-{1000 + i // 3}",
                "ASN/DN #": f"ASN-{i // 4}",  # shared by several different lines: not a key
                "Vendor": vendor,
                "Product Group": group,
                "Item Description": item,
                "PO Sent to Vendor Date": sent,
                "Scheduled Delivery Date": spell(due, i),
                "Delivered to Client Date": spell(arrived, i + 2),
                "Unit of Measure (Per Pack)": str(pack),
                "Line Item Quantity": str(rng.randrange(1, 500)),
                "Pack Price": f"{rng.randrange(100, 9000) / 100:.2f}",
                "Weight (Kilograms)": weight,
                "Freight Cost (USD)": freight,
            }
        )
    rows.append(dict(rows[40]))  # the same line delivered twice: a duplicate
    conflict = dict(rows[90])
    conflict["Line Item Quantity"] = str(int(conflict["Line Item Quantity"]) + 6300)
    rows.append(conflict)  # the same line id with another quantity: a conflict
    return rows


def ecb_file(first: dt.date, last: dt.date) -> str:
    """Reference rates in the ECB's layout (USD per 1 EUR), every weekday."""
    lines = ["Date,USD,JPY,"]
    day = last
    while day >= first:
        if day.weekday() < 5:
            usd = Decimal("1.1") + Decimal(day.toordinal() % 50) / 1000
            lines.append(f"{day.isoformat()},{usd},125.1,")
        day -= dt.timedelta(days=1)
    return "\n".join(lines) + "\n"


def usd_per_eur(day: dt.date) -> Decimal:
    while day.weekday() >= 5:  # the last rate before a weekend day (7-day look-back)
        day -= dt.timedelta(days=1)
    return Decimal("1.1") + Decimal(day.toordinal() % 50) / 1000


@pytest.fixture(scope="module")
def onboarded(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("wide")
    conf = copy_conf(root / "conf", {})
    for path in (conf / "sources").glob("*.yaml"):
        path.unlink()  # this group has one source: the extract
    (conf / "sources" / "WX.yaml").write_text(WX_YAML, encoding="utf-8")
    landing = root / "landing"
    folder = landing / "WX" / DELIVERY.isoformat()
    folder.mkdir(parents=True)
    rows = extract_rows()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    (folder / "scms_extract.csv").write_text(out.getvalue(), encoding="utf-8")
    (folder / "eurofxref-hist.csv").write_text(
        ecb_file(dt.date(2018, 12, 20), DELIVERY), encoding="utf-8"
    )
    lake = root / "lake"
    ingest = ingest_job.run(job_context(spark, lake, landing, "ingest", [DELIVERY], conf=conf))
    ctx = job_context(spark, lake, landing, "silver", [DELIVERY], conf=conf)
    silver = silver_job.run(ctx)
    # the receipts fall in January to April: gold over those months, as of their end
    months = [dt.date(2019, 1, 1) + dt.timedelta(days=d) for d in range(120)]
    gold = gold_job.run(job_context(spark, lake, landing, "gold", months, conf=conf))
    return {"ctx": ctx, "rows": rows, "ingest": ingest, "silver": silver, "gold": gold}


def table(onboarded: dict[str, Any], name: str) -> list[Any]:
    return onboarded["ctx"].io.read(name).collect()  # type: ignore[no-any-return]


def test_every_row_of_the_one_file_lands_in_bronze_for_each_entity_it_feeds(
    onboarded: dict[str, Any],
) -> None:
    manifest = onboarded["ingest"]["manifest"]
    extract = [m for m in manifest if m["source_file"].endswith("scms_extract.csv")]
    assert sorted(m["entity"] for m in extract) == [
        "erp__goods_receipts",
        "erp__materials",
        "erp__purchase_orders",
        "erp__suppliers",
    ]
    delivered = len(onboarded["rows"])
    for m in extract:
        assert (m["status"], m["rows_read"], m["rows_ingested"]) == (
            "ingested",
            delivered,
            delivered,
        )
        assert len(table(onboarded, f"bronze.{m['entity']}")) == delivered


def test_reconciliation_accounts_for_every_row_with_duplicates_and_conflicts_apart(
    onboarded: dict[str, Any],
) -> None:
    recon = {r["entity"]: r for r in table(onboarded, "_reconciliation")}
    delivered = len(onboarded["rows"])
    for entity in ("purchase_orders", "goods_receipts"):
        r = recon[entity]
        assert r["balanced"] and r["rows_read"] == delivered
        # line 41 twice, identical: one duplicate; line 91 twice, different: two conflicting
        assert (r["duplicates_removed"], r["rows_conflicting"]) == (1, 2)
        assert r["rows_inserted"] == delivered - 3 - r["rows_quarantined"]
    vendors = Counter(row["Vendor"] for row in onboarded["rows"])
    suppliers = recon["suppliers"]
    assert suppliers["rows_inserted"] == len(vendors)
    assert suppliers["duplicates_removed"] == sum(vendors.values()) - len(vendors)
    assert suppliers["rows_conflicting"] == 0


def test_a_key_conflict_is_quarantined_with_both_versions(onboarded: dict[str, Any]) -> None:
    rows = [
        r
        for r in table(onboarded, "silver.purchase_orders__quarantine")
        if r["rule_id"] == "key_conflict"
    ]
    assert len(rows) == 2
    line = onboarded["rows"][90]
    quantities = {int(line["Line Item Quantity"]), int(line["Line Item Quantity"]) + 6300}
    pack = int(line["Unit of Measure (Per Pack)"])
    assert {Decimal(r["record"]["ordered_qty"]) for r in rows} == {q * pack for q in quantities}
    assert all("po_line=91" in r["reason"] and "ordered_qty" in r["reason"] for r in rows)
    silver = [r for r in table(onboarded, "silver.purchase_orders") if r["po_line"] == 91]
    assert silver == []  # nobody decided which version is right: neither is promoted


def test_marked_values_are_null_with_their_reason_and_the_lines_are_kept(
    onboarded: dict[str, Any],
) -> None:
    written = {int(r["ID"]): r for r in onboarded["rows"][:240]}
    receipts = {r["receipt_id"]: r for r in table(onboarded, "silver.goods_receipts")}
    orders = {r["po_line"]: r for r in table(onboarded, "silver.purchase_orders")}
    assert set(orders) == set(written) - {91}  # every RDC line reached silver
    for i, row in written.items():
        if i == 91:
            continue
        receipt, order = receipts[str(i)], orders[i]
        weight = row["Weight (Kilograms)"]
        if weight == "Weight Captured Separately":
            assert receipt["weight_kg"] is None
            assert "missing:weight_kg:captured_separately" in receipt["_flags"]
        elif weight.startswith("See ASN-"):
            assert receipt["weight_kg"] is None
            assert "missing:weight_kg:on_other_shipment" in receipt["_flags"]
        else:
            assert receipt["weight_kg"] == Decimal(weight.replace(",", ""))
        reasons = {
            "Freight Included in Commodity Cost": "included_in_commodity",
            "Invoiced Separately": "invoiced_separately",
        }
        freight = row["Freight Cost (USD)"]
        if freight in reasons or freight.startswith("See DN-"):
            assert order["freight_cost"] is None
            reason = reasons.get(freight, "on_other_shipment")
            assert f"missing:freight_cost:{reason}" in order["_flags"]
        else:
            assert order["freight_cost"] == Decimal(freight.replace(",", ""))
        sent = row["PO Sent to Vendor Date"]
        due = read_spelled(row["Scheduled Delivery Date"])
        assert order["due_date"] == due
        assert receipt["receipt_date"] == read_spelled(row["Delivered to Client Date"])
        if sent in ("N/A - From RDC", "Date Not Captured"):
            assert order["order_date"] == due  # the configured fallback
        else:
            assert order["order_date"] == read_spelled(sent)
        pack = int(row["Unit of Measure (Per Pack)"])
        assert order["ordered_qty"] == int(row["Line Item Quantity"]) * pack
        price = Decimal(row["Pack Price"]) / pack
        assert abs(order["unit_price"] - price) < Decimal("0.000001")
        expected = order["unit_price"] / usd_per_eur(order["order_date"])
        assert abs(order["unit_price_group"] - expected) < Decimal("0.0001")


def test_ambiguous_month_first_dates_are_read_by_the_declared_order_and_counted(
    onboarded: dict[str, Any],
) -> None:
    orders = {r["po_line"]: r for r in table(onboarded, "silver.purchase_orders")}
    for i, row in enumerate(onboarded["rows"][:240], start=1):
        if i == 91:
            continue
        text = row["Scheduled Delivery Date"]
        day = read_spelled(text)
        numeric = not any(m in text for m in MONTHS)
        ambiguous = numeric and day.day <= 12 and day.day != day.month
        flagged = "ambiguous_date:due_date:month_first" in orders[i]["_flags"]
        assert flagged == ambiguous, (text, orders[i]["_flags"])


def test_on_time_delivery_per_supplier_matches_an_independent_computation(
    onboarded: dict[str, Any],
) -> None:
    groups = {
        r["supplier_code"]: r["supplier_group_id"] for r in table(onboarded, "silver.suppliers")
    }
    expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for i, row in enumerate(onboarded["rows"][:240], start=1):
        if i == 91:
            continue
        arrived = read_spelled(row["Delivered to Client Date"])
        offset = (arrived - read_spelled(row["Scheduled Delivery Date"])).days
        cell = expected[(groups[row["Vendor"]], f"{arrived:%Y-%m}")]
        cell[0] += int(-3 <= offset <= 2)  # conf/metrics otd: 3 days early to 2 days late
        cell[1] += 1
    got = {
        (r["supplier_group_id"], r["month"]): (r["numerator"], r["denominator"])
        for r in table(onboarded, "gold.supply_chain_panorama")
        if r["metric_id"] == "otd" and r["grain"] == "supplier_group_id+month"
    }
    assert got == {k: (float(v[0]), float(v[1])) for k, v in expected.items()}


def test_sources_check_profiles_the_file_without_writing_anything(
    spark: SparkSession, onboarded: dict[str, Any]
) -> None:
    from medlake.entities import load_specs
    from medlake.silver.profile import profile_file
    from medlake.sources import load_sources

    ctx = onboarded["ctx"]
    conf = ctx.settings.conf_dir
    path = ctx.landing / "WX" / DELIVERY.isoformat() / "scms_extract.csv"
    before = {
        t: ctx.io.version(t) for t in ("bronze.erp__purchase_orders", "silver.purchase_orders")
    }
    source = load_sources(conf / "sources")["WX"]
    profile = profile_file(
        spark, path, "WX", source, load_specs(conf / "silver"), "EUR", delivery_date=DELIVERY
    )
    assert {t: ctx.io.version(t) for t in before} == before  # nothing written
    assert profile.rows == len(onboarded["rows"]) and profile.extra_columns == ["ASN/DN #"]
    orders = next(e for e in profile.entities if e.entity == "erp__purchase_orders")
    assert (orders.duplicates, orders.conflicts) == (1, 2)
    assert orders.conflict_examples == ["po_number=SCMS-1030, po_line=91"]
    texts = [row["Scheduled Delivery Date"] for row in onboarded["rows"]]
    named = sum(any(m in t for m in MONTHS) for t in texts)
    slashed = sum("/" in t for t in texts)
    assert orders.date_formats["due_date"] == {
        "d-MMM-yy (unambiguous)": named,
        "M/d/yyyy (month_first)": slashed,
        "M-d-yyyy (month_first)": len(texts) - named - slashed,
    }
    ambiguous = sum(
        not any(m in t for m in MONTHS)
        and read_spelled(t).day <= 12
        and read_spelled(t).day != read_spelled(t).month
        for t in texts
    )
    assert orders.flags["ambiguous_date:due_date:month_first"] == ambiguous
    marked = Counter(row["Freight Cost (USD)"] for row in onboarded["rows"])
    assert orders.flags["missing:freight_cost:invoiced_separately"] == marked["Invoiced Separately"]
    assert orders.needs_fx == orders.rows  # USD amounts; the profile looks up no rates
