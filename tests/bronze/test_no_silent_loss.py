"""Bad input never changes or loses data while the job exits 0: each case found by a hostile
probe is reproduced here and must end in an error, a flag or a quarantine with a reason.

(Key conflicts are in tests/silver/test_wide_extract.py, stale gold months in
tests/gold/test_partial_sources.py, duplicate YAML keys in tests/unit/test_config_strict.py.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from medlake.bronze.readers import TRUNCATED, FileSpec, read_file
from medlake.config import DEFAULT_CONF_DIR, ConfigError
from medlake.entities import check_source_mappings, load_specs
from medlake.jobs import ingest as ingest_job
from medlake.jobs import silver as silver_job
from medlake.silver.conform import Refs, conform
from medlake.sources import PlantSource, load_sources
from medlake_simulator.generate import generate
from tests.silver.jobs import job_context

SPECS = load_specs(DEFAULT_CONF_DIR / "silver")


# ----------------------------------------------------------------------------- configuration


def sz_copy(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of conf/sources with one text of SZ.yaml replaced; the SZ.yaml path."""
    folder = tmp_path / "sources"
    shutil.copytree(DEFAULT_CONF_DIR / "sources", folder)
    path = folder / "SZ.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, ln in enumerate(path.read_text("utf-8").splitlines(), 1) if text in ln)


def test_a_mapping_to_a_column_silver_does_not_have_is_an_error_naming_file_line_field(
    tmp_path: Path,
) -> None:
    # found: renaming ordered_qty to ordered_quantity emptied ordered_qty in every SZ row
    path = sz_copy(tmp_path, "订购数量: ordered_qty", "订购数量: ordered_quantity")
    with pytest.raises(ConfigError) as caught:
        check_source_mappings(load_sources(path.parent), SPECS, {"SZ": path})
    message = str(caught.value)
    line = line_of(path, "订购数量: ordered_quantity")
    assert f"{path}: line {line}: field 'entities.erp__purchase_orders.columns.订购数量'" in message
    assert "silver.purchase_orders has no column 'ordered_quantity'" in message
    assert "did you mean 'ordered_qty'?" in message


def test_a_required_column_without_a_source_is_an_error_before_anything_runs(
    tmp_path: Path,
) -> None:
    path = sz_copy(
        tmp_path,
        "      采购订单号: po_number\n      行号: po_line\n      供应商编码",
        "      行号: po_line\n      供应商编码",
    )
    with pytest.raises(
        ConfigError, match=r"maps nothing to po_number, required by silver\.purchase_orders"
    ):
        check_source_mappings(load_sources(path.parent), SPECS, {"SZ": path})


def test_the_shipped_mappings_pass_the_strict_check() -> None:
    check_source_mappings(load_sources(DEFAULT_CONF_DIR / "sources"), SPECS)


def test_numeric_formats_without_a_stated_day_month_order_are_refused(tmp_path: Path) -> None:
    path = sz_copy(
        tmp_path,
        "      生效日期: valid_from\n  erp__purchase_orders:",
        "      生效日期: valid_from\n    fields:\n      valid_from: {formats: [dd-MM-yyyy, yyyy/MM/dd]}\n"
        "  erp__purchase_orders:",
    )
    with pytest.raises(ConfigError, match=r"need `order: day_first`.*10-09-2014"):
        load_sources(path.parent)


# ----------------------------------------------------------------------------- readers


CSV = FileSpec("csv", "utf-8", ",", ("date", "rate"))


def test_a_file_cut_inside_its_last_field_is_quarantined_as_possibly_truncated() -> None:
    # found: an FX rate 0.6399 cut to 0.63 reached silver.fx_rates
    content = b"date,rate\n2026-01-02,0.6401\n2026-01-03,0.63"
    parsed = read_file(content, CSV)
    assert [r for _, r in parsed.rows] == [{"date": "2026-01-02", "rate": "0.6401"}]
    assert parsed.errors == [(2, "2026-01-03,0.63", TRUNCATED)]
    jsonl = FileSpec("jsonl", "utf-8", ",", ("date", "rate"))
    parsed = read_file(
        b'{"date": "2026-01-02", "rate": "0.6401"}\n{"date": "2026-01-03", "rate": 0.63}', jsonl
    )
    assert len(parsed.rows) == 1 and parsed.errors[0][2] == TRUNCATED


def test_control_totals_vouch_for_an_unterminated_file_and_catch_a_lost_row() -> None:
    utf16 = FileSpec("csv", "utf-16", ",", ("date", "rate"))  # ends in b"\n\x00": terminated
    assert len(read_file("date,rate\n2026-01-02,0.6401\n".encode("utf-16-le"), utf16).rows) == 1
    content = b"date,rate\n2026-01-02,0.6401\n2026-01-03,0.6399"
    vouched = FileSpec("csv", "utf-8", ",", ("date", "rate"), expected_rows=2, vouched=True)
    assert len(read_file(content, vouched).rows) == 2 and not read_file(content, vouched).errors
    # a row count alone does not vouch for the last field: 0.6399 may have been 0.63991
    counted = FileSpec("csv", "utf-8", ",", ("date", "rate"), expected_rows=2)
    assert read_file(content, counted).errors == [(2, "2026-01-03,0.6399", TRUNCATED)]
    short = FileSpec("csv", "utf-8", ",", ("date", "rate"), expected_rows=3)
    parsed = read_file(content, short)
    assert parsed.rows == [] and len(parsed.errors) == 2
    assert (
        parsed.file_error is not None
        and "has 2 data rows, its control total says 3" in parsed.file_error
    )


def test_a_parquet_file_missing_a_column_counts_and_keeps_every_row() -> None:
    # found: the manifest said one row read where the file held fourteen
    buffer = io.BytesIO()
    pq.write_table(pa.table({"date": [f"2026-01-{d:02d}" for d in range(1, 15)]}), buffer)
    parsed = read_file(buffer.getvalue(), FileSpec("parquet", "utf-8", ",", ("date", "rate")))
    assert parsed.file_error is not None and "rate" in parsed.file_error
    assert len(parsed.errors) == 14 and '"2026-01-14"' in parsed.errors[-1][1]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_delivery_without_rows_is_empty_in_every_format(fmt: str) -> None:
    spec = FileSpec(fmt, "utf-8", ",", ("date", "rate"))
    variants = [b"", b"\n\n"] if fmt != "parquet" else [b""]
    if fmt == "csv":
        variants.append(b"date,rate\r\n")
    if fmt == "parquet":
        buffer = io.BytesIO()
        pq.write_table(
            pa.table({"date": pa.array([], pa.string()), "rate": pa.array([], pa.string())}), buffer
        )
        variants.append(buffer.getvalue())
    for content in variants:
        parsed = read_file(content, spec)
        assert parsed.empty and parsed.file_error is None, content


# ----------------------------------------------------------------------------- conformance


def test_dates_outside_the_plausible_window_are_flagged(spark: SparkSession) -> None:
    # found: dates in 2099 and 1900 passed without a flag
    source = load_sources(DEFAULT_CONF_DIR / "sources")["GW"]
    local = {v: k for k, v in source.entities["erp__fx_rates"].columns.items()}
    schema = "_plant_id string, _delivery_date date, _source_file string, _file_row int, _file_version int, _record map<string,string>"
    day = dt.date(2026, 3, 2)
    rows = [
        (
            "GW",
            day,
            "f",
            n,
            1,
            {
                local["rate_date"]: text,
                local["from_currency"]: "USD",
                local["to_currency"]: "EUR",
                local["rate"]: "0.9",
            },
        )
        for n, text in enumerate(["2099-01-01", "1900-01-01", "2026-03-01", "1996-03-03"], 1)
    ]
    bronze = spark.createDataFrame(rows, schema)
    out = conform(bronze, SPECS["fx_rates"], {"GW": source}, Refs("EUR"), run_id="t")
    flags = {r["_file_row"]: r["_flags"] for r in out.collect()}
    # the default window: 30 years before to 10 years after the delivery date (lakehouse.yaml)
    assert flags == {
        1: ["implausible_date:rate_date"],
        2: ["implausible_date:rate_date"],
        3: [],
        4: [],
    }


# ----------------------------------------------------------------------------- empty deliveries


PLANTS = {"GW": "erp__fx_rates.jsonl", "SZ": "erp__fx_rates.csv", "MN": "erp__fx_rates.parquet"}
DAY = dt.date(2026, 3, 2)


@pytest.fixture(scope="module")
def landed(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """FX rates of three plants (JSON Lines, CSV, Parquet) landed and built into silver."""
    root = tmp_path_factory.mktemp("empty")
    landing = root / "landing"
    generate(landing, start=DAY, days=1, scale=0.1, seed=3, progress=False)
    for plant_dir in landing.iterdir():
        if plant_dir.name not in PLANTS:
            shutil.rmtree(plant_dir) if plant_dir.is_dir() else plant_dir.unlink()
            continue
        for path in (plant_dir / DAY.isoformat()).iterdir():
            if path.name != PLANTS[plant_dir.name]:
                path.unlink()
    lake = root / "lake"
    plants = sorted(PLANTS)
    ingest_job.run(job_context(spark, lake, landing, "ingest", [DAY], plants=plants))
    silver = job_context(
        spark, lake, landing, "silver", [DAY], plants=plants, entities=["fx_rates"]
    )
    silver_job.run(silver)
    return {"root": root, "landing": landing, "lake": lake, "plants": plants, "ctx": silver}


def silver_rates(ctx: Any) -> dict[str, int]:
    rows = ctx.io.read("silver.fx_rates").groupBy("plant_id").count().collect()
    return {r["plant_id"]: r["count"] for r in rows}


def test_an_empty_redelivery_is_refused_by_default_and_retracts_nothing(
    spark: SparkSession, landed: dict[str, Any]
) -> None:
    # found: an empty JSON Lines re-delivery retracted silver rows; an empty CSV was refused
    before = silver_rates(landed["ctx"])
    assert set(before) == set(PLANTS) and all(before.values())
    for plant, name in PLANTS.items():
        (landed["landing"] / plant / DAY.isoformat() / name).write_bytes(b"")
    ingest = job_context(
        spark, landed["lake"], landed["landing"], "ingest", [DAY], plants=landed["plants"]
    )
    result = ingest_job.run(ingest)
    statuses = {m["source_file"]: (m["status"], m["message"]) for m in result["manifest"]}
    for plant, name in PLANTS.items():
        status, message = statuses[f"{plant}/{DAY}/{name}"]
        assert status == "quarantined" and message.startswith("empty delivery: no rows")
        assert f"conf/sources/{plant}.yaml" in message
    assert len(result["refused_files"]) == 3 and result.exit_code == 0
    silver_job.run(landed["ctx"])
    assert silver_rates(landed["ctx"]) == before
    recon = landed["ctx"].io.read("_reconciliation").where("entity = 'fx_rates'").collect()
    assert all(r["rows_retracted"] == 0 for r in recon)


def test_nothing_today_is_accepted_where_the_contract_says_so_and_retracts_nothing(
    spark: SparkSession, landed: dict[str, Any]
) -> None:
    conf = landed["root"] / "conf-nothing-today"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    for plant, name in PLANTS.items():
        path = conf / "sources" / f"{plant}.yaml"
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace(f"file: {name}\n", f"file: {name}\n    empty: nothing_today\n")
        )
        target = landed["landing"] / plant / DAY.isoformat() / name
        if name.endswith(".parquet"):  # 0 rows, a schema: also empty
            buffer = io.BytesIO()
            pq.write_table(pa.table({"RATE_DATE": pa.array([], pa.string())}), buffer)
            target.write_bytes(buffer.getvalue())
        else:
            target.write_bytes(b"\n")
    before = silver_rates(landed["ctx"])
    bronze_before = landed["ctx"].io.read("bronze.erp__fx_rates").count()
    ingest = job_context(
        spark,
        landed["lake"],
        landed["landing"],
        "ingest",
        [DAY],
        conf=conf,
        plants=landed["plants"],
    )
    result = ingest_job.run(ingest)
    fx = [m for m in result["manifest"] if m["entity"] == "erp__fx_rates"]
    assert len(fx) == 3
    for m in fx:
        assert (m["status"], m["rows_read"]) == ("ingested", 0)
        assert "nothing today" in m["message"]
    assert ingest.io.read("bronze.erp__fx_rates").count() == bronze_before
    # found in review: a forced re-run wrote the empty file over the landed rows
    forced = job_context(
        spark,
        landed["lake"],
        landed["landing"],
        "ingest",
        [DAY],
        conf=conf,
        plants=landed["plants"],
        force=True,
    )
    ingest_job.run(forced)
    assert forced.io.read("bronze.erp__fx_rates").count() == bronze_before
    silver_job.run(landed["ctx"])
    assert silver_rates(landed["ctx"]) == before


def test_a_team_may_make_refused_files_fail_the_run(
    spark: SparkSession, landed: dict[str, Any]
) -> None:
    conf = landed["root"] / "conf-strict"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    base = conf / "lakehouse.yaml"
    base.write_text(
        base.read_text(encoding="utf-8").replace(
            "landing:\n  root: var/deliveries",
            "landing:\n  fail_on_refused: true\n  root: var/deliveries",
        )
    )
    target = landed["landing"] / "SZ" / DAY.isoformat() / "erp__fx_rates.csv"
    target.write_bytes(b"\xff\xfe not gb18030 at all \x80\n")
    ingest = job_context(
        spark, landed["lake"], landed["landing"], "ingest", [DAY], conf=conf, plants=["SZ"]
    )
    result = ingest_job.run(ingest)
    assert result.exit_code == 1
    assert [f.split(" ")[0] for f in result["refused_files"]] == [f"SZ/{DAY}/erp__fx_rates.csv"]
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    manifest = ingest.io.read("_bronze_manifest").where(f"sha256 = '{digest}'").collect()
    assert len(manifest) == 1 and "not valid gb18030" in manifest[0]["message"]


def test_gates_after_a_range_run_find_its_results_for_each_date_it_covered(
    spark: SparkSession, landed: dict[str, Any]
) -> None:
    # found: `gates` after a range run said "silver has not run"
    from medlake.jobs import gates as gates_job

    before = DAY - dt.timedelta(days=1)  # no run of its own: only the range below covers it
    days = [before, DAY, DAY + dt.timedelta(days=1)]  # a range run: logical date DAY + 1
    ctx = job_context(
        spark,
        landed["lake"],
        landed["landing"],
        "silver",
        days,
        plants=landed["plants"],
        entities=["fx_rates"],
    )
    silver_job.run(ctx)
    gates = gates_job.run(
        job_context(
            spark, landed["lake"], landed["landing"], "gates", [before], plants=landed["plants"]
        )
    )
    assert not any("silver has not run" in g for g in gates.failed_gates), dict(gates)
    assert gates["rules_evaluated"] > 0, dict(gates)


def conform_receipts(spark: SparkSession, decimal: str, values: list[dict[str, str]]) -> list[Any]:
    """Goods receipts of a plant whose quantity is computed and whose weight is extracted."""
    source = PlantSource.model_validate(
        {
            "plant": {
                "id": "XT",
                "name": "x",
                "country": "US",
                "region": "AMER",
                "jurisdiction": "US",
                "timezone": "UTC",
                "currency": "USD",
            },
            "delivery": {
                "format": "csv",
                "decimal": decimal,
                "date_format": "yyyy-MM-dd",
                "datetime_format": "yyyy-MM-dd HH:mm:ss",
                "true_values": ["Y"],
                "false_values": ["N"],
            },
            "units": {"EA": {"unit": "EA", "factor": 1}},
            "entities": {
                "erp__goods_receipts": {
                    "file": "r.csv",
                    "columns": {"id": "receipt_id", "day": "receipt_date", "w": "weight_kg"},
                    "fields": {
                        "received_qty": {"expr": "number(col('q')) / number(col('pack'))"},
                        "uom": {"value": "EA"},
                        "weight_kg": {"number": "extract"},
                    },
                }
            },
        }
    )
    schema = "_plant_id string, _delivery_date date, _source_file string, _file_row int, _file_version int, _record map<string,string>"
    rows = [
        ("XT", dt.date(2026, 3, 2), "r.csv", n, 1, {"id": str(n), "day": "2026-03-01", **v})
        for n, v in enumerate(values, 1)
    ]
    out = conform(
        spark.createDataFrame(rows, schema),
        SPECS["goods_receipts"],
        {"XT": source},
        Refs("EUR"),
        run_id="t",
    )
    return sorted(out.collect(), key=lambda r: r["_file_row"])


def test_number_extraction_takes_one_number_and_never_guesses(spark: SparkSession) -> None:
    # found in review: 'See ASN-93 (ID#:1281)' became -93, '12,5 USD' 125, '10-20' 10
    cases = {
        "1,523": Decimal("1523"),
        "approx. 1,234.5 kg": Decimal("1234.5"),
        "-12 kg": Decimal("-12"),
        "12.5": Decimal("12.5"),
        "See ASN-93 (ID#:1281)": None,
        "12,5 USD": None,
        "10-20": None,
        ".5 kg": None,
        "Weight Captured Separately": None,
    }
    rows = conform_receipts(spark, ".", [{"q": "10", "pack": "2", "w": w} for w in cases])
    for (text, expected), row in zip(cases.items(), rows, strict=True):
        assert row["weight_kg"] == expected, (text, row["weight_kg"])
        if expected is None:  # not a number and no marker says why: quarantined
            assert any(e.startswith(f"weight_kg: '{text}'") for e in row["_errors"]), row["_errors"]
    rows = conform_receipts(spark, ",", [{"q": "10", "pack": "4", "w": "1.523,5 kg"}])
    assert rows[0]["weight_kg"] == Decimal("1523.5") and rows[0]["received_qty"] == Decimal("2.5")


def test_an_expression_on_text_that_is_not_a_number_quarantines_the_row(
    spark: SparkSession,
) -> None:
    # found in review: number('abc') and a division by zero gave a silent null
    rows = conform_receipts(
        spark,
        ",",
        [
            {"q": "abc", "pack": "2", "w": "1"},
            {"q": "10", "pack": "0", "w": "1"},
            {"q": "12,5", "pack": "5", "w": "1"},
            {"q": "1.234", "pack": "1", "w": "1"},  # a dot at a decimal-comma plant
        ],
    )
    assert rows[0]["received_qty"] is None
    assert "received_qty: 'abc' is not a number in the plant's format" in rows[0]["_errors"]
    assert "received_qty: division by zero" in rows[1]["_errors"]
    assert rows[2]["received_qty"] == Decimal("2.5") and rows[2]["_errors"] == []
    assert "received_qty: '1.234' is not a number in the plant's format" in rows[3]["_errors"]


SHARED_YAML = """\
plant: {id: XS, name: x, country: US, region: AMER, jurisdiction: US, timezone: UTC, currency: USD}
delivery: {format: csv, date_format: yyyy-MM-dd, datetime_format: yyyy-MM-dd HH:mm:ss,
           true_values: ['Y'], false_values: ['N']}
entities:
  erp__suppliers:
    file: wide.csv
    columns: {Vendor: [supplier_code, supplier_name]}
  erp__materials:
    file: wide.csv
    columns: {Item: material_code, Vendr: description}   # a typo: the file has no Vendr
"""


def test_a_column_one_entity_of_a_shared_file_lacks_refuses_that_entity_alone(
    spark: SparkSession, tmp_path: Path
) -> None:
    # found in review: one entity's typo refused every entity reading the file
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    for path in (conf / "sources").glob("*.yaml"):
        path.unlink()
    (conf / "sources" / "XS.yaml").write_text(SHARED_YAML, encoding="utf-8")
    folder = tmp_path / "landing" / "XS" / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "wide.csv").write_text("Vendor,Item\nAcme,M-1\nBeta,M-2\nAcme,M-3\n")
    ctx = job_context(spark, tmp_path / "lake", tmp_path / "landing", "ingest", [DAY], conf=conf)
    result = ingest_job.run(ctx)
    by_entity = {m["entity"]: m for m in result["manifest"]}
    suppliers, materials = by_entity["erp__suppliers"], by_entity["erp__materials"]
    assert (suppliers["status"], suppliers["rows_ingested"]) == ("ingested", 3)
    assert (materials["status"], materials["rows_quarantined"]) == ("quarantined", 3)
    assert "header lacks columns ['Vendr'] that erp__materials reads" in materials["message"]
    assert not materials["extra_columns"] and not suppliers["extra_columns"]
    assert ctx.io.read("bronze.erp__suppliers").count() == 3
    kept = ctx.io.read("_bronze_quarantine").where("entity = 'erp__materials'").collect()
    assert sorted(r["file_row"] for r in kept) == [1, 2, 3]
    assert all('"Item":"M-' in r["raw"] for r in kept)
