"""Masking operators, pseudonym keys and the column masker: Spark and Python forms agree."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path

import pytest
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medlake.config import DEFAULT_CONF_DIR, ConfigError
from medlake.governance.classes import Classes, load_classes
from medlake.governance.keys import SecretError, load_keys
from medlake.governance.masking import VAULT, Masker
from medlake.governance.operators import (
    KeyColumns,
    Pseudonymiser,
    Target,
    hmac_pads,
    operator,
    token_column,
)

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
NAMES = ["周鹏", "Sarah Peterson", "Jürgen Müller", "Émilie Dubois", "O'Brien, Seán"]


def hand_token(key: bytes, entity: str, jurisdiction: str, normalised: str) -> str:
    digest = hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{entity}_{jurisdiction}_{digest[:16]}"


def test_pseudonym_is_the_keyed_hmac_of_the_normalised_value() -> None:
    p = Pseudonymiser("cn", KEY)
    assert p.token("PERSON", "  Sarah   PETERSON ") == hand_token(
        KEY, "PERSON", "cn", "sarah peterson"
    )
    assert p.token("PHONE_NUMBER", "+86 138-1234 5678") == hand_token(
        KEY, "PHONE_NUMBER", "cn", "8613812345678"
    )
    # a key per jurisdiction: the same person never links across a border
    assert p.token("PERSON", "周鹏") != Pseudonymiser("eu", KEY).token("PERSON", "周鹏")
    assert p.token("PERSON", "周鹏") != Pseudonymiser("cn", OTHER).token("PERSON", "周鹏")


def keyed(df: DataFrame, key: bytes, jurisdiction: str) -> tuple[DataFrame, KeyColumns]:
    """The frame with the jurisdiction and HMAC pads of `key` as columns."""
    ipad, opad = hmac_pads(key)
    df = df.select(
        "*", F.lit(jurisdiction).alias("j"), F.lit(ipad).alias("i"), F.lit(opad).alias("o")
    )
    return df, KeyColumns(F.col("j"), F.col("i"), F.col("o"))


@pytest.mark.parametrize("entity", ["PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "CN_RESIDENT_ID"])
def test_spark_builtin_hmac_equals_python_hmac(spark: SparkSession, entity: str) -> None:
    values = [*NAMES, " +49 162 5895279 ", "11010519491231002x", "Max.Mustermann@Web.DE", None]
    key = KEY * 3  # a key longer than the SHA-256 block is hashed first
    df, keys = keyed(spark.createDataFrame([(v,) for v in values], "v string"), key, "eu")
    got = [r[0] for r in df.select(token_column(entity, F.col("v"), keys)).collect()]
    p = Pseudonymiser("eu", key)
    assert got == [None if v is None else p.token(entity, v) for v in values]


def test_a_value_with_nothing_left_after_normalising_gets_no_token(spark: SparkSession) -> None:
    df, keys = keyed(spark.createDataFrame([("-",), ("n/a",)], "v string"), KEY, "cn")
    assert [r[0] for r in df.select(token_column("PHONE_NUMBER", F.col("v"), keys)).collect()] == [
        None,
        None,
    ]


def test_the_key_never_appears_in_the_query_plan(spark: SparkSession) -> None:
    from medlake.governance.keys import Keys

    masker = Masker(load_classes(), Keys({"cn": KEY}), {"SZ": "cn"})
    df = spark.createDataFrame([("SZ", "周鹏")], "plant_id string, contact_name string")
    masked = masker.mask(df, {"contact_name": ("pii.person_name", "string")})
    execution = masked._jdf.queryExecution()
    utils = spark.sparkContext._jvm.PythonSQLUtils  # what DataFrame.explain prints
    plan = "".join(utils.explainString(execution, mode) for mode in ("extended", "formatted"))
    ipad, opad = hmac_pads(KEY)
    for secret in (KEY, ipad, opad):
        assert secret.hex() not in plan.lower()
    assert masked.first()["contact_name"] == hand_token(KEY, "PERSON", "cn", "周鹏")


@pytest.mark.parametrize(
    ("name", "params", "value", "expected"),
    [
        ("partial_mask", {}, "13812345678", "138****5678"),
        (
            "partial_mask",
            {"keep_start": 0, "keep_end": 4},
            "DE89370400440532013000",
            "*" * 18 + "3000",
        ),
        ("partial_mask", {}, "12345", "*****"),  # too short to keep anything
        ("redact", {}, "Hauptstraße 12, 80331 München", "<ADDRESS>"),
        ("generalise", {"keep": 2}, "80331", "80"),
    ],
)
def test_operator_forms_agree(
    spark: SparkSession, name: str, params: dict[str, int], value: str, expected: str
) -> None:
    op, p = operator(name), Pseudonymiser("eu", KEY)
    target = Target("ADDRESS", "string", params)
    assert op.text(value, target, p) == expected
    df, keys = keyed(spark.createDataFrame([(value,)], "v string"), KEY, "eu")
    assert df.select(op.column(F.col("v"), target, keys)).first()[0] == expected


def test_generalise_keeps_the_year_of_a_date_and_drop_keeps_nothing(spark: SparkSession) -> None:
    df, keys = keyed(
        spark.createDataFrame([(dt.date(1961, 7, 23), "x")], "d date, s string"), KEY, "eu"
    )
    row = df.select(
        operator("generalise").column(F.col("d"), Target("DATE", "date"), keys).alias("g"),
        operator("drop").column(F.col("s"), Target("PERSON", "string"), keys).alias("x"),
    ).first()
    assert row["g"] == dt.date(1961, 1, 1)
    assert row["x"] is None


def test_unknown_operator_names_the_registered_ones() -> None:
    with pytest.raises(KeyError, match="pseudonym"):
        operator("hash")


def test_masker_masks_columns_and_delivered_texts_and_vaults_clear_values(
    spark: SparkSession,
) -> None:
    from medlake.governance.keys import Keys

    masker = Masker(load_classes(), Keys({"cn": KEY, "eu": OTHER}), {"SZ": "cn", "TU": "eu"})
    df = spark.createDataFrame(
        [
            ("SZ", "S1", "周鹏", "zp@163.com", {"contact_name": "周鹏", "supplier_code": "S1"}),
            ("TU", "T1", "Frank Meier", None, {"contact_name": "Frank Meier"}),
            ("TU", "T2", None, None, {"supplier_code": "T2"}),
        ],
        "plant_id string, supplier_code string, contact_name string, contact_email string,"
        " _text map<string,string>",
    )
    columns = {
        "contact_name": ("pii.person_name", "string"),
        "contact_email": ("pii.email", "string"),
    }
    out = masker.mask(df, columns, text_map="_text").localCheckpoint()
    rows = {r["supplier_code"]: r for r in out.collect()}
    zp = hand_token(KEY, "PERSON", "cn", "周鹏")
    fm = hand_token(OTHER, "PERSON", "eu", "frank meier")
    assert rows["S1"]["contact_name"] == zp
    assert rows["S1"]["contact_email"] == hand_token(KEY, "EMAIL_ADDRESS", "cn", "zp@163.com")
    assert rows["S1"]["_text"] == {"contact_name": zp, "supplier_code": "S1"}
    assert rows["T1"]["contact_name"] == fm
    assert rows["T1"]["_text"] == {"contact_name": fm}
    assert rows["T2"]["contact_name"] is None
    assert rows["T2"]["_text"] == {"supplier_code": "T2"}
    vault = {tuple(r) for r in masker.vault_rows(out).collect()}
    assert vault == {
        ("cn", zp, "PERSON", "周鹏"),
        ("cn", rows["S1"]["contact_email"], "EMAIL_ADDRESS", "zp@163.com"),
        ("eu", fm, "PERSON", "Frank Meier"),
    }
    clear = {"周鹏", "zp@163.com", "Frank Meier"}
    kept = out.drop(VAULT).collect()
    assert not {str(v) for r in kept for v in r.asDict().values()} & clear


def test_missing_key_names_the_variable_and_the_secret_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LAKEHOUSE_PSEUDONYM_KEY_EU", raising=False)
    monkeypatch.delenv("LAKEHOUSE_SECRETS_FILE", raising=False)
    with pytest.raises(SecretError, match=r"LAKEHOUSE_PSEUDONYM_KEY_EU.*LAKEHOUSE_SECRETS_FILE"):
        load_keys(["eu"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not-hex-at-all", "not hexadecimal"),
        ("ab" * 16 + "a", r"odd number of hex digits \(33\)"),
        ("ab" * 8, "has 8 bytes"),
    ],
)
def test_malformed_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("LAKEHOUSE_PSEUDONYM_KEY_CN", value)
    with pytest.raises(SecretError, match=message):
        load_keys(["cn"])


def test_secret_file_outside_the_repository_and_env_precedence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(yaml.safe_dump({"pseudonym_keys": {"cn": KEY.hex(), "eu": KEY.hex()}}))
    monkeypatch.setenv("LAKEHOUSE_SECRETS_FILE", str(secrets))
    monkeypatch.delenv("LAKEHOUSE_PSEUDONYM_KEY_CN", raising=False)
    monkeypatch.setenv("LAKEHOUSE_PSEUDONYM_KEY_EU", OTHER.hex())
    keys = load_keys(["cn", "eu"], project_root=Path(__file__).parents[3])
    assert keys["cn"] == KEY
    assert keys["eu"] == OTHER  # the environment wins
    assert "00" not in repr(keys)  # never printed


def test_secret_file_inside_the_repository_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).parents[3]
    monkeypatch.setenv("LAKEHOUSE_SECRETS_FILE", str(root / "medlake" / "conf" / "secrets.yaml"))
    with pytest.raises(SecretError, match="inside the git repository"):
        load_keys(["cn"], project_root=root)


def test_secret_file_outside_any_git_repository_is_read_wherever_the_home_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "srv" / "medlake"  # a home that is no repository: its files are fine
    secrets = home / "secrets.yaml"
    secrets.parent.mkdir(parents=True)
    secrets.write_text(yaml.safe_dump({"pseudonym_keys": {"cn": KEY.hex()}}))
    monkeypatch.setenv("LAKEHOUSE_SECRETS_FILE", str(secrets))
    monkeypatch.delenv("LAKEHOUSE_PSEUDONYM_KEY_CN", raising=False)
    assert load_keys(["cn"], project_root=home)["cn"] == KEY
    (home / ".git").mkdir()  # the same file once the folder is a git work tree
    with pytest.raises(SecretError, match="inside the git repository"):
        load_keys(["cn"], project_root=home)


def test_every_registered_column_has_a_declared_class() -> None:
    from medlake.entities import full_registry

    load_classes(DEFAULT_CONF_DIR).check(full_registry(DEFAULT_CONF_DIR))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["classes"]["pii.phone"].pop("operator"), "needs a masking operator"),
        (lambda d: d["jurisdictions"]["cn"]["countries"].append("DE"), "DE is in both"),
        (lambda d: d["classes"]["public"].update(sensitivity=9), "sensitivity"),
    ],
)
def test_broken_classes_file_says_what_is_wrong(
    tmp_path: Path, change: object, message: str
) -> None:
    data = yaml.safe_load((DEFAULT_CONF_DIR / "governance" / "classes.yaml").read_text())
    change(data)  # type: ignore[operator]
    (tmp_path / "governance").mkdir()
    (tmp_path / "governance" / "classes.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_classes(tmp_path)


def test_a_country_without_jurisdiction_is_a_configuration_error() -> None:
    classes: Classes = load_classes(DEFAULT_CONF_DIR)
    with pytest.raises(ConfigError, match="'JP' belongs to no jurisdiction"):
        classes.jurisdiction_of("JP")


def test_a_broken_secret_file_is_reported_without_echoing_its_content(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets.yaml"
    secret = "9f2c4e0a1b3d5f7e" * 4
    secrets.write_text(f"pseudonym_keys:\n  cn: {secret}: x\n")
    monkeypatch.setenv("LAKEHOUSE_SECRETS_FILE", str(secrets))
    monkeypatch.delenv("LAKEHOUSE_PSEUDONYM_KEY_CN", raising=False)
    with pytest.raises(SecretError, match="not valid YAML at line 2") as caught:
        load_keys(["cn"])
    assert "9f2c" not in str(caught.value)


@pytest.mark.parametrize(
    ("column_type", "classification", "message"),
    [
        ("date", "pii.person_name", "pseudonym needs a string column"),
        ("string", "pii.birth_date", "generalise to a year needs a date"),
    ],
)
def test_an_operator_that_cannot_mask_the_column_type_is_a_configuration_error(
    column_type: str, classification: str, message: str
) -> None:
    from medlake.tables import Registry, TableSpec

    table = TableSpec.model_validate(
        {
            "name": "silver.patients",
            "layer": "silver",
            "description": "test table",
            "owner": "test",
            "columns": [
                {
                    "name": "who",
                    "type": column_type,
                    "description": "x",
                    "classification": classification,
                }
            ],
        }
    )
    with pytest.raises(ConfigError, match=message):
        load_classes(DEFAULT_CONF_DIR).check(Registry([table]))
