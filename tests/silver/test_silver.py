"""Silver conformance on the simulator's dirty deliveries: dirt handled as documented, rows
reconciled, suppliers harmonised, amounts converted at the right day's rate, local times
converted to UTC across a daylight-saving change. Expected values come from the delivered
text, parsed here with the simulator's own plant formats (not the code under test)."""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import zoneinfo
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medlake.config import DEFAULT_CONF_DIR
from medlake.jobs import ingest as ingest_job
from medlake.jobs import silver as silver_job
from medlake.runtime import JobContext
from medlake_simulator.dirt import _BAD_DATES, _BAD_NUMBERS
from tests.conftest import copy_lake
from tests.silver.jobs import DATES, FORMATS, job_context, local


def make_ctx(
    spark: SparkSession, lake: Path, landing: Path, job: str, conf: Path | None = None, **kw: Any
) -> JobContext:
    return job_context(spark, lake, landing, job, DATES, conf, **kw)


def bronze_text(ctx: JobContext, entity: str, column: str) -> list[dict[str, Any]]:
    """Per bronze row: plant, file, row and the delivered text of one canonical column."""
    out = []
    frame = ctx.io.read(f"bronze.{entity}").select(
        "_plant_id", "_source_file", "_file_row", "_record"
    )
    for r in frame.collect():
        name = local(r["_plant_id"], entity, column)
        out.append(
            {
                "plant": r["_plant_id"],
                "file": r["_source_file"],
                "row": r["_file_row"],
                "text": r["_record"].get(name),
                "record": r["_record"],
            }
        )
    return out


def test_rows_read_equal_inserted_updated_duplicates_and_quarantined_per_entity_and_plant(
    built: dict[str, Any],
) -> None:
    ctx, recon = built["ctx"], built["summary"]["recon"]
    assert built["summary"]["exit_code"] == 0 and recon
    for r in recon:
        total = (
            r["rows_inserted"]
            + r["rows_updated"]
            + r["duplicates_removed"]
            + r["rows_conflicting"]
            + r["rows_quarantined"]
            + r["rows_dropped"]
            + r["rows_held"]
        )
        assert total == r["rows_read"] and r["balanced"] and not r["rows_held"], r
    # and the terms are what the tables hold: bronze in, silver and quarantine out
    for entity in ("purchase_orders", "stock_movements", "process_measurements", "customers"):
        source = f"{'erp' if entity in ('purchase_orders', 'customers') else 'wms' if entity == 'stock_movements' else 'mes'}__{entity}"
        bronze = {
            r[0]: r[1]
            for r in ctx.io.read(f"bronze.{source}").groupBy("_plant_id").count().collect()
        }
        silver = {
            r[0]: r[1]
            for r in ctx.io.read(f"silver.{entity}").groupBy("plant_id").count().collect()
        }
        quarantine = {
            r[0]: r[1]
            for r in ctx.io.read(f"silver.{entity}__quarantine")
            .groupBy("plant_id")
            .count()
            .collect()
        }
        for r in (x for x in recon if x["entity"] == entity):
            p = r["plant_id"]
            assert r["rows_read"] == bronze.get(p, 0)
            assert r["rows_inserted"] == silver.get(p, 0)  # first run into an empty table
            assert r["rows_quarantined"] + r["rows_conflicting"] == quarantine.get(p, 0)


def test_exact_and_near_duplicates_leave_one_row_per_business_key(built: dict[str, Any]) -> None:
    ctx = built["ctx"]
    for entity, keys in (
        ("stock_movements", ["movement_id"]),
        ("process_measurements", ["measurement_id"]),
        ("purchase_orders", ["po_number", "po_line"]),
    ):
        table = ctx.io.read(f"silver.{entity}")
        assert table.groupBy("plant_id", *keys).count().where("count > 1").count() == 0
    # a near duplicate (padded, upper-cased text) never replaces the original row
    padded = ctx.io.read("silver.stock_movements").where(F.col("lot") != F.trim("lot")).count()
    assert padded == 0


def test_late_corrections_leave_the_highest_record_version(built: dict[str, Any]) -> None:
    ctx = built["ctx"]
    latest: dict[tuple[str, str, str], int] = {}
    for r in ctx.io.read("bronze.erp__purchase_orders").collect():
        rec, p = r["_record"], r["_plant_id"]
        number = rec.get(local(p, "erp__purchase_orders", "po_number"))
        line = rec.get(local(p, "erp__purchase_orders", "po_line"))
        version = rec.get(local(p, "erp__purchase_orders", "record_version"))
        if number and line and version and version.strip().isdigit() and line.strip().isdigit():
            key = (p, number.strip(), str(int(line)))
            latest[key] = max(latest.get(key, 0), int(version))
    corrected = {k: v for k, v in latest.items() if v > 1}
    assert corrected, "the simulator re-sends some lines with a higher version"
    stored = {
        (r["plant_id"], r["po_number"], str(r["po_line"])): r["record_version"]
        for r in ctx.io.read("silver.purchase_orders").collect()
    }
    for key, version in corrected.items():
        if key in stored:
            assert stored[key] == version, key


def test_missing_keys_and_unparseable_values_are_quarantined_with_a_reason(
    built: dict[str, Any],
) -> None:
    ctx = built["ctx"]
    entity = "wms__stock_movements"
    quarantine = {
        (r["_source_file"], r["_file_row"]): r["reason"]
        for r in ctx.io.read("silver.stock_movements__quarantine").collect()
    }
    expected_missing = [
        (b["file"], b["row"]) for b in bronze_text(ctx, entity, "movement_id") if not b["text"]
    ]
    assert expected_missing
    for key in expected_missing:
        assert "movement_id is missing (mandatory)" in quarantine[key]
    bad_dates = [
        (b["file"], b["row"], b["text"])
        for e in ("erp__purchase_orders", "wms__shipments")
        for column in (("order_date",) if e == "erp__purchase_orders" else ("ship_date",))
        for b in bronze_text(ctx, e, column)
        if b["text"] in _BAD_DATES
    ]
    bad_numbers = [
        (b["file"], b["row"], b["text"])
        for b in bronze_text(ctx, "mes__process_measurements", "value")
        if b["text"] in _BAD_NUMBERS
    ]
    everything = {}
    for e in ("purchase_orders", "shipments", "process_measurements"):
        for r in ctx.io.read(f"silver.{e}__quarantine").collect():
            everything[(r["_source_file"], r["_file_row"])] = r["reason"]
    assert bad_dates or bad_numbers
    for file, row, text in bad_dates + bad_numbers:
        assert f"'{text}' is not" in everything[(file, row)]


def _delivered_number(plant: str, text: str | None) -> Decimal | None:
    """The delivered text as a number, read with the plant's decimal mark; None if it is not."""
    if text is None or not text.strip():
        return None
    cleaned = text.strip().replace(",", ".") if FORMATS[plant].decimal_comma else text.strip()
    try:
        return Decimal(cleaned)
    except ArithmeticError:
        return None


def test_quantities_of_nothing_or_less_are_quarantined_by_their_entitys_rule(
    built: dict[str, Any],
) -> None:
    """The simulator makes the first quantity of some rows negative; every entity's rule file
    quarantines them (sales orders, work orders and inspections had no rule before)."""
    ctx = built["ctx"]
    checked = {
        "sales_orders": ("erp__sales_orders", "qty", "qty_positive"),
        "work_orders": ("mes__work_orders", "planned_qty", "planned_qty_positive"),
        "production_inspections": (
            "qc__production_inspections",
            "inspected_qty",
            "inspected_qty_positive",
        ),
        "purchase_orders": ("erp__purchase_orders", "ordered_qty", "ordered_qty_positive"),
    }
    found = 0
    for entity, (source, column, rule_id) in checked.items():
        not_positive = set()
        for b in bronze_text(ctx, source, column):
            number = _delivered_number(b["plant"], b["text"])
            if number is not None and number <= 0:
                not_positive.add((b["file"], b["row"]))
        quarantine = ctx.io.read(f"silver.{entity}__quarantine").collect()
        ruled = {(r["_source_file"], r["_file_row"]) for r in quarantine if r["rule_id"] == rule_id}
        # every row the rule took is one delivered with a quantity of nothing or less ...
        assert ruled <= not_positive, entity
        # ... and none of those is in silver (a duplicate or an older version may be gone)
        kept = ctx.io.read(f"silver.{entity}").where(F.col(column) <= 0).count()
        assert kept == 0, entity
        for r in quarantine:
            if r["rule_id"] == rule_id:
                assert (
                    "is below the minimum 0" in r["reason"] or "equals the excluded" in r["reason"]
                )
        found += len(ruled)
    assert found, "the simulator plants negative quantities (bad_quantity, 0.2% of rows)"


def test_process_outliers_are_flagged_and_kept(built: dict[str, Any]) -> None:
    ctx = built["ctx"]
    rows = (
        ctx.io.read("silver.process_measurements")
        .select("plant_id", "parameter", "value", "_flags")
        .collect()
    )
    by_group: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        by_group[(r["plant_id"], r["parameter"])].append(float(r["value"]))
    outliers = [
        r
        for r in rows
        if abs(float(r["value"]))
        > 5 * abs(statistics.median(by_group[(r["plant_id"], r["parameter"])]))
    ]
    assert outliers, "the simulator plants 10x measurement outliers"
    assert all("anomaly:value:robust_z" in r["_flags"] for r in outliers)


def test_same_real_supplier_gets_one_group_id_across_plants(built: dict[str, Any]) -> None:
    ctx, answers = built["ctx"], built["answers"]
    xref = {
        (r["plant_id"], r["local_code"]): r for r in ctx.io.read("silver.supplier_xref").collect()
    }
    tax = {
        (r["plant_id"], r["supplier_code"]): r["tax_id"]
        for r in ctx.io.read("silver.suppliers").collect()
    }
    owner_of_group: dict[str, str] = {}
    for supplier, codes in answers["supplier_identity"].items():
        groups = {xref[(p, c)]["group_id"] for p, c in codes.items()}
        for g in groups:  # precision: a group never mixes two real suppliers
            assert owner_of_group.setdefault(g, supplier) == supplier
        if any(tax.get((p, c)) for p, c in codes.items()):
            assert len(groups) == 1, supplier  # registered suppliers link across all plants
    linked = [x for x in xref.values() if x["method"] == "registration"]
    assert linked
    # silver rows carry the group id of the supplier that delivered
    po = ctx.io.read("silver.purchase_orders").select(
        "plant_id", "supplier_code", "supplier_group_id"
    )
    for r in po.distinct().collect():
        assert r["supplier_group_id"] == xref[(r["plant_id"], r["supplier_code"])]["group_id"]


def test_amounts_convert_with_the_rate_of_the_transaction_day(built: dict[str, Any]) -> None:
    ctx = built["ctx"]
    quotes: dict[tuple[dt.date, str], list[Decimal]] = defaultdict(list)  # every plant's quote
    for r in ctx.io.read("bronze.erp__fx_rates").collect():
        p, rec = r["_plant_id"], r["_record"]
        fmt = FORMATS[p]
        day_text = rec[local(p, "erp__fx_rates", "rate_date")]
        pattern = fmt.date_format if fmt.file_format != "parquet" else "%Y-%m-%d"
        try:  # dirt: a few dates and numbers do not parse; those rows are quarantined
            day = dt.datetime.strptime(day_text or "", pattern).date()
            rate = Decimal(rec[local(p, "erp__fx_rates", "rate")].replace(",", "."))
        except (ValueError, ArithmeticError, AttributeError):
            continue
        src = rec[local(p, "erp__fx_rates", "from_currency")]
        dst = rec[local(p, "erp__fx_rates", "to_currency")]
        if dst == "EUR":
            quotes[(day, src)].append(rate)
    checked = 0
    for r in ctx.io.read("silver.supplier_invoices").collect():
        if r["currency"] == "EUR":
            assert r["amount_group"] == r["amount"] and r["fx_rate_to_group"] == 1
            continue
        quoted = quotes.get((r["invoice_date"], r["currency"]))
        if not quoted:
            continue
        # plants quote with 4 (CSV) or 6 (JSON) decimals: within half a last digit of a quote
        low, high = min(quoted) - Decimal("0.00005"), max(quoted) + Decimal("0.00005")
        assert low <= r["fx_rate_to_group"] <= high
        assert abs(r["amount_group"] - r["amount"] * r["fx_rate_to_group"]) < Decimal("0.01")
        checked += 1
    assert checked > 0


def test_local_times_become_utc_and_local_dates_across_daylight_saving(
    built: dict[str, Any],
) -> None:
    ctx = built["ctx"]
    silver = {
        (r["_source_file"], r["_file_row"]): r
        for r in ctx.io.read("silver.stock_movements").collect()
    }
    for b in bronze_text(ctx, "wms__stock_movements", "moved_at"):
        row = silver.get((b["file"], b["row"]))
        if row is None or b["text"] is None:
            continue
        plant = FORMATS[b["plant"]]
        pattern = plant.datetime_format if plant.file_format != "parquet" else "%Y-%m-%d %H:%M:%S"
        wall = dt.datetime.strptime(b["text"], pattern)
        utc = wall.replace(tzinfo=zoneinfo.ZoneInfo(plant.timezone)).astimezone(dt.UTC)
        assert row["moved_at"] == utc.replace(tzinfo=None), (b, row["moved_at"])
        assert row["moved_at_local_date"] == wall.date()
    # both sides of the change were seen for Berlin: offsets +1 h before, +2 h after 03-29
    offsets = {
        dt.datetime.strptime(b["text"], FORMATS["TU"].datetime_format)
        .replace(tzinfo=zoneinfo.ZoneInfo("Europe/Berlin"))
        .utcoffset()
        for b in bronze_text(ctx, "wms__stock_movements", "moved_at")
        if b["plant"] == "TU" and b["text"] and (b["file"], b["row"]) in silver
    }
    assert offsets == {dt.timedelta(hours=1), dt.timedelta(hours=2)}


def test_rerunning_the_same_dates_leaves_the_same_tables(
    built: dict[str, Any], spark: SparkSession
) -> None:
    ctx = built["ctx"]
    names = ["silver.purchase_orders", "silver.suppliers", "silver.stock_movements__quarantine"]
    ignore = ["_run_id"]
    before = {n: sorted(map(str, ctx.io.read(n).drop(*ignore).collect())) for n in names}
    again = make_ctx(
        spark,
        built["root"] / "lake",
        built["landing"],
        "silver",
        entities=["fx_rates", "suppliers", "materials", "purchase_orders", "stock_movements"],
    )
    again.run_id = "silver-2"
    summary = silver_job.run(again)
    assert all(r["rows_inserted"] == 0 for r in summary["recon"])
    assert {n: sorted(map(str, ctx.io.read(n).drop(*ignore).collect())) for n in names} == before


def test_a_failed_gate_stops_promotion_and_names_the_rule(
    built: dict[str, Any], spark: SparkSession, tmp_path: Path
) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    (conf / "quality" / "customers.yaml").write_text(
        "table: silver.customers\nrules:\n"
        "  - {id: every_customer_is_a_hospital, check: allowed_values, column: customer_type,"
        " values: [HOSPITAL], action: fail}\n",
        encoding="utf-8",
    )
    ctx = make_ctx(
        spark,
        built["root"] / "lake",
        built["landing"],
        "silver",
        conf=conf,
        entities=["customers"],
    )
    ctx.run_id = "silver-gate"
    version = ctx.io.version("silver.customers")
    summary = silver_job.run(ctx)
    assert summary["exit_code"] == 1
    assert any("every_customer_is_a_hospital" in f for f in summary["failed_gates"])
    assert ctx.io.version("silver.customers") == version  # not promoted
    dq = ctx.io.read("_dq").where(F.col("run_id") == "silver-gate").collect()
    assert [(r["rule_id"], r["passed"]) for r in dq] == [("every_customer_is_a_hospital", False)]
    # nothing promoted, and still every row read is accounted for: the usable ones are held
    recon = summary["recon"]
    assert recon and all(not r["promoted"] and r["balanced"] for r in recon)
    for r in recon:
        assert r["rows_inserted"] == r["rows_updated"] == 0, r
        assert r["rows_held"] == (
            r["rows_read"] - r["duplicates_removed"] - r["rows_conflicting"] - r["rows_quarantined"]
        )
    assert sum(r["rows_held"] for r in recon) > 0


def test_material_base_units_are_canonical_and_keep_the_delivered_unit(
    built: dict[str, Any],
) -> None:
    ctx = built["ctx"]
    delivered = {
        (b["plant"], b["record"].get(local(b["plant"], "erp__materials", "material_code"))): b[
            "text"
        ]
        for b in bronze_text(ctx, "erp__materials", "uom")
    }
    rows = ctx.io.read("silver.materials").collect()
    assert rows
    for r in rows:
        text = delivered[(r["plant_id"], r["material_code"])]
        if text is None or not text.strip():
            assert r["uom"] is None and r["uom_source"] is None, r
            continue
        # every plant maps EA/PCS/ST and BOX (of 10) to EA in medlake/conf/sources
        assert (r["uom"], r["uom_source"]) == ("EA", text.strip()), r


def test_receipts_in_another_unit_than_their_order_line_are_flagged(
    built: dict[str, Any],
) -> None:
    ctx = built["ctx"]
    order_unit = {}
    for b in bronze_text(ctx, "erp__purchase_orders", "uom"):
        rec, p = b["record"], b["plant"]
        number = rec.get(local(p, "erp__purchase_orders", "po_number"))
        line = rec.get(local(p, "erp__purchase_orders", "po_line"))
        if number and line and b["text"]:
            order_unit[(p, number, line)] = b["text"]
    mismatched = set()
    for b in bronze_text(ctx, "erp__goods_receipts", "uom"):
        rec, p = b["record"], b["plant"]
        key = (
            p,
            rec.get(local(p, "erp__goods_receipts", "po_number")),
            rec.get(local(p, "erp__goods_receipts", "po_line")),
        )
        if key in order_unit and order_unit[key] != b["text"]:
            mismatched.add((b["file"], b["row"]))
    flagged = {
        (r["_source_file"], r["_file_row"])
        for r in ctx.io.read("silver.goods_receipts").collect()
        if "uom_differs_from_order" in r["_flags"]
    }
    assert mismatched, "the simulator books about 1% of receipts in the other unit"
    assert flagged == mismatched


def test_a_corrected_redelivery_without_a_record_withdraws_it_from_silver(
    built: dict[str, Any], spark: SparkSession, tmp_path: Path
) -> None:
    import csv
    import io

    lake, landing = tmp_path / "lake", tmp_path / "landing"
    copy_lake(built["root"] / "lake", lake)
    shutil.copytree(built["landing"], landing)
    day, entity = DATES[2], "wms__stock_movements"
    relative = f"PN/{day.isoformat()}/{entity}.csv"
    ctx = make_ctx(spark, lake, landing, "silver")
    stored = ctx.io.read("silver.stock_movements").where(F.col("_source_file") == relative)
    from_file = sorted(r["movement_id"] for r in stored.collect())
    path = landing / relative
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    column = local("PN", entity, "movement_id")
    once = [k for k in from_file if sum(r[column] == k for r in rows) == 1]
    withdrawn = once[0]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(r for r in rows if r[column] != withdrawn)
    path.write_text(out.getvalue(), encoding="utf-8")
    total = ctx.io.read("silver.stock_movements").count()

    for job, module in (("ingest", ingest_job), ("silver", silver_job)):
        run = make_ctx(spark, lake, landing, job, plants=["PN"], entities=["stock_movements"])
        run.dates, run.run_id = [day], f"{job}-redelivery"
        summary = module.run(run)
    after = ctx.io.read("silver.stock_movements")
    assert after.count() == total - 1
    still = sorted(
        r["movement_id"] for r in after.where(F.col("_source_file") == relative).collect()
    )
    assert still == [k for k in from_file if k != withdrawn]
    (recon,) = [r for r in summary["recon"] if r["entity"] == "stock_movements"]
    assert recon["rows_retracted"] == 1 and recon["balanced"], recon
    assert recon["rows_read"] == len(rows) - 1


def test_every_table_is_found_by_a_plain_parquet_reader_with_one_file_per_partition(
    built: dict[str, Any],
) -> None:
    """No hidden partition folders (`_x=`, `.x=`): pyarrow's dataset discovery finds every
    file Delta lists; and however many deliveries built it, a bronze or silver partition
    holds one file (replacements rewrite their partition instead of adding to it)."""
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    ctx: JobContext = built["ctx"]
    checked = 0
    for spec in ctx.io.registry:
        if ctx.io.version(spec.name) is None:
            continue
        root = Path(ctx.io.location(spec.name))
        live = {Path(u).resolve() for u in DeltaTable(str(root)).file_uris()}
        found = ds.dataset(str(root), format="parquet", partitioning="hive").files
        missing = live - {Path(f).resolve() for f in found}
        assert not missing, f"{spec.name}: plain Parquet discovery misses {sorted(missing)[:2]}"
        if spec.layer in ("bronze", "silver"):
            per_partition: dict[Path, int] = defaultdict(int)
            for path in live:
                per_partition[path.parent] += 1
            crowded = {str(p): n for p, n in per_partition.items() if n > 1}
            assert not crowded, f"{spec.name}: partitions with several files: {crowded}"
        checked += 1
    assert checked > 40  # bronze, silver, quarantine and system tables were all written
