"""Personal data in silver: nothing clear reaches a silver (or gold) file, every pseudonym can
be traced back through its jurisdiction's vault, device identifiers survive the masking, the
governance scan passes on the pipeline's output and catches a declassified column, and a
missing key stops the job before anything is written. Personal values come from the
simulator's label file, device identifiers from the delivered rows (not from the code under
test)."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from medlake.config import DEFAULT_CONF_DIR
from medlake.governance.keys import SecretError
from medlake.jobs import scan as scan_job
from medlake.jobs import silver as silver_job
from tests.conftest import copy_lake
from tests.fragments import fragments, leaks, texts_in, words_in
from tests.silver.jobs import DATES, SOURCES, job_context, local

VAULTS = ("_vault_cn", "_vault_eu", "_vault_my", "_vault_us")
# label columns of the structured contact fields (local names); the rest are free texts
STRUCTURED = {
    local(plant, entity, column)
    for plant in SOURCES
    for entity, columns in {
        "erp__suppliers": ("contact_name", "contact_phone", "contact_email"),
        "erp__customers": ("contact_name", "contact_phone", "contact_email"),
        "mes__operators": ("operator_name",),
    }.items()
    for column in columns
}


def labels(landing: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((landing / "_truth" / "pii_labels").glob("*.jsonl")):
        out += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return out


def data_files(lake: Path) -> list[Path]:
    """Every file of every silver and gold table (data files, committed or not, and logs),
    of the system tables roles may read, and the logs of the vaults (the vault data files
    hold the clear values by design; bronze and its quarantine keep deliveries as sent)."""
    system = [
        p
        for table in (lake / "_system").iterdir()
        if table.name != "_bronze_quarantine"
        for p in (
            table.rglob("*")
            if not table.name.startswith("_vault_") or table.name == "_vault_erasures"
            else (table / "_delta_log").rglob("*")
        )
    ]
    layers = [p for layer in ("silver", "gold") for p in (lake / layer).rglob("*")]
    return sorted(p for p in layers + system if p.is_file())


def decoded_text(path: Path) -> str:
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False, default=str)
    return path.read_text(encoding="utf-8", errors="replace")


def test_no_labelled_personal_value_is_in_any_silver_gold_or_readable_system_file(
    built: dict[str, Any],
) -> None:
    values = {label["value"] for label in labels(built["landing"])}
    assert len(values) > 300  # the simulator planted enough to make this meaningful
    files = data_files(built["root"] / "lake")
    assert any(p.suffix == ".parquet" for p in files)
    gold = built["root"] / "lake" / "gold"
    assert any(p.suffix == ".parquet" and gold in p.parents for p in files)  # gold is covered
    leaks: dict[str, list[str]] = defaultdict(list)
    for path in files:
        raw = path.read_bytes()
        text = decoded_text(path)
        for value in values:
            if value.encode("utf-8") in raw or value in text:
                leaks[value].append(str(path.relative_to(built["root"])))
    assert not leaks, f"{len(leaks)} personal values found, e.g. {next(iter(leaks.items()))}"


# Fragments of planted values that silver and gold may hold as ordinary vocabulary, each with
# the reason; every other fragment of three or more characters is a partial leak.
VOCABULARY = {
    "paul": "also a place: Saint Paul, Minnesota, in customer names (Saint Paul General Hospital)",
    "klinikum": "German for hospital: the organisation in an e-mail domain, and customer names",
    "freiburg": "a city: the organisation in an e-mail domain (uniklinik-freiburg.de), customers",
    "penang": "a state of Malaysia: an e-mail domain (pantai-penang.com.my), supplier names",
}


def test_no_fragment_of_a_planted_value_is_in_any_silver_or_gold_file(
    built: dict[str, Any],
) -> None:
    """Partial leaks: the start of an e-mail left before an umlaut, a surname left beside a
    masked given name. Every text cell of every silver and gold Parquet file and every
    string of their Delta logs is split into words (Latin) and searched (Chinese)."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for label in labels(built["landing"]):
        for fragment in fragments(label["entity_type"], label["value"]):
            wanted[fragment].add(label["value"])
    assert len(wanted) > 300
    lake = built["root"] / "lake"
    texts = texts_in(sorted(p for layer in ("silver", "gold") for p in (lake / layer).rglob("*")))
    assert len(texts) > 1000
    found = leaks(texts, wanted, VOCABULARY)
    assert not found, f"{len(found)} fragments of personal values found: {found}"
    # the exceptions are still needed: a word that no longer occurs comes off the list
    assert all(word in words_in(texts) for word in VOCABULARY)


def test_every_pseudonym_traces_back_to_the_delivered_value_through_its_vault(
    built: dict[str, Any],
) -> None:
    ctx = built["ctx"]
    vault = {r["token"]: r["value"] for name in VAULTS for r in ctx.io.read(name).collect()}
    # expected: the delivered contact name of each customer, from bronze
    delivered = {}
    for r in ctx.io.read("bronze.erp__customers").collect():
        plant, rec = r["_plant_id"], r["_record"]
        delivered[(plant, rec[local(plant, "erp__customers", "customer_code")].strip())] = rec[
            local(plant, "erp__customers", "contact_name")
        ]
    rows = ctx.io.read("silver.customers").collect()
    assert rows
    for row in rows:
        token = row["contact_name"]
        jurisdiction = token.split("_")[1]
        country = SOURCES[row["plant_id"]].plant.country
        assert jurisdiction == {"CN": "cn", "MY": "my", "IE": "eu", "DE": "eu", "US": "us"}[country]
        assert vault[token].strip() == delivered[(row["plant_id"], row["customer_code"])].strip()


def test_the_same_person_gets_the_same_token_in_every_table_of_a_jurisdiction(
    built: dict[str, Any],
) -> None:
    ctx = built["ctx"]
    key = bytes.fromhex(hashlib.sha256(b"test-key-cn").hexdigest())  # tests/conftest.py
    vault = {r["token"]: r["value"] for r in ctx.io.read("_vault_cn").collect()}
    by_name: dict[str, set[str]] = defaultdict(set)
    # recomputed here by hand: HMAC-SHA256 of the normalised name with the CN key
    for table, column in (
        ("silver.suppliers", "contact_name"),
        ("silver.operators", "operator_name"),
    ):
        for row in ctx.io.read(table).where("plant_id IN ('SZ', 'SU')").collect():
            token = row[column]
            normalised = " ".join(vault[token].split()).lower()
            digest = hmac.new(key, normalised.encode(), hashlib.sha256).hexdigest()[:16]
            assert token == f"PERSON_cn_{digest}"
            by_name[normalised].add(token)
    assert by_name
    assert all(len(tokens) == 1 for tokens in by_name.values())


def test_device_identifiers_in_narratives_survive_masking(built: dict[str, Any]) -> None:
    ctx = built["ctx"]
    checked = 0
    silver = {
        (r["plant_id"], r["complaint_id"]): r["narrative"]
        for r in ctx.io.read("silver.complaints").collect()
    }
    for r in ctx.io.read("bronze.crm__complaints").collect():
        plant, rec = r["_plant_id"], r["_record"]
        key = (plant, (rec[local(plant, "crm__complaints", "complaint_id")] or "").strip())
        text = rec[local(plant, "crm__complaints", "narrative")]
        if key not in silver or not text:
            continue
        for column in ("udi", "lot", "serial"):
            value = rec[local(plant, "crm__complaints", column)]
            if value and value.strip() in text:
                assert value.strip() in silver[key], f"{column} {value} masked in {key}"
                checked += 1
    assert checked >= 5


def test_governance_scan_passes_on_the_pipeline_output(built: dict[str, Any]) -> None:
    ctx = built["ctx"]
    scan = job_context(ctx.spark, built["root"] / "lake", built["landing"], "scan", DATES)
    summary = scan_job.run(scan)
    assert summary["failed_gates"] == []
    assert summary["columns_scanned"] > 100
    dq = scan.io.read("_dq").where("check = 'pii_scan'").collect()
    assert len(dq) == summary["columns_scanned"]


def test_a_personal_column_classified_as_internal_fails_the_scan(
    built: dict[str, Any], spark: SparkSession, tmp_path: Path
) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    spec = conf / "silver" / "customers.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace(
            "classification: pii.phone", "classification: internal"
        ),
        encoding="utf-8",
    )
    lake = tmp_path / "lake"
    copy_lake(built["root"] / "lake", lake, "bronze", "_system")
    silver_job.run(
        job_context(spark, lake, built["landing"], "silver", DATES, conf, entities=["customers"])
    )
    summary = scan_job.run(job_context(spark, lake, built["landing"], "scan", DATES, conf))
    assert summary["exit_code"] == 1
    [message] = summary["failed_gates"]
    assert "silver.customers.contact_phone (internal)" in message
    assert "PHONE_NUMBER" in message
    assert "set its classification" in message


def test_a_missing_key_stops_silver_before_anything_is_written(
    built: dict[str, Any], spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAKEHOUSE_PSEUDONYM_KEY_EU")
    monkeypatch.delenv("LAKEHOUSE_SECRETS_FILE", raising=False)
    lake = tmp_path / "lake"
    shutil.copytree(built["root"] / "lake" / "bronze", lake / "bronze")
    ctx = job_context(spark, lake, built["landing"], "silver", DATES)
    with pytest.raises(SecretError, match="LAKEHOUSE_PSEUDONYM_KEY_EU"):
        silver_job.run(ctx)
    assert not (lake / "silver").exists()
    assert not (lake / "_system").exists()


def test_detection_quality_command_on_the_delivered_narratives(
    built: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from medlake.cli.evaluate import add_cli

    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    args = parser.parse_args(["evaluate", "--landing", str(built["landing"])])
    assert args.func(args, built["ctx"].settings) == 0
    out = capsys.readouterr().out
    labelled = Counter(
        label["entity_type"]
        for label in labels(built["landing"])
        if label["column"] not in STRUCTURED
    )
    for entity, n in labelled.items():  # every planted type is scored, with its own count
        assert re.search(rf"^{entity}\s+{n}\s", out, re.MULTILINE), (entity, n, out)
    assert "overlapped by a prediction: 0" in out
