"""Re-identification and erasure through the vaults: permitted roles only, with a purpose,
always audited; an erased subject leaves no clear value in any vault file and is never
vaulted again."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from medlake.cli import main
from medlake.config import DEFAULT_CONF_DIR, load_settings
from medlake.governance import vault
from medlake.governance.audit import AuditTrail
from medlake.governance.classes import load_classes
from medlake.governance.identity import os_user
from medlake.governance.keys import Keys
from medlake.governance.masking import Masker
from medlake.governance.subjects import NotPermittedError, erase, reidentify
from medlake.io import CommitContext
from medlake.runtime import JobContext
from tests.identities import ADMIN, Identities, as_role

KEY = bytes(range(32))
PURPOSE = "recall R-2026-014: contact affected patients"


@pytest.fixture
def lake(spark: SparkSession, tmp_path: Path) -> tuple[JobContext, dict[str, str]]:
    """A vault holding two Shenzhen contacts, written as silver writes it."""
    settings = load_settings(
        "test",
        overrides={
            "storage": {"root": str(tmp_path / "lake")},
            "landing": {"root": str(tmp_path / "landing")},
        },
    )
    ctx = JobContext(settings=settings, job="silver", dates=[dt.date(2026, 3, 1)], run_id="r1")
    ctx._spark = spark
    masker = Masker(load_classes(), Keys({"cn": KEY}), {"SZ": "cn"})
    df = spark.createDataFrame(
        [("SZ", "王秀英"), ("SZ", "Lim Wei Ming")], "plant_id string, contact_name string"
    )
    masked = masker.mask(df, {"contact_name": ("pii.person_name", "string")}).localCheckpoint()
    commit = CommitContext(job="silver", run_id="r1", logical_date=dt.date(2026, 3, 1))
    vault.store(ctx.io, masker.vault_rows(masked), ["cn"], table="silver.customers", ctx=commit)
    tokens = {r["contact_name"]: r["_vault"][0]["value"] for r in masked.collect()}
    return ctx, {value: token for token, value in tokens.items()}


def test_a_permitted_role_with_a_purpose_reidentifies_and_is_audited(
    lake: tuple[JobContext, dict[str, str]],
) -> None:
    ctx, tokens = lake
    subject = reidentify(
        ctx.settings, who=as_role("quality_engineer"), token=tokens["王秀英"], purpose=PURPOSE
    )
    assert subject.value == "王秀英"
    assert subject.jurisdiction == "cn"
    event = AuditTrail(ctx.settings).events()[-1]
    assert event["action"] == "reidentify"
    assert event["role"] == "quality_engineer"
    assert event["purpose"] == PURPOSE
    assert event["table_name"] == "_vault_cn"
    assert event["row_count"] == 1


@pytest.mark.parametrize(
    ("role", "purpose", "message"),
    [
        ("analyst_cn", PURPOSE, "may not reidentify"),
        ("group_analyst", PURPOSE, "may not reidentify"),
        ("quality_engineer", "because", "purpose of at least"),
    ],
)
def test_reidentification_is_refused_and_the_refusal_audited(
    lake: tuple[JobContext, dict[str, str]], role: str, purpose: str, message: str
) -> None:
    ctx, tokens = lake
    with pytest.raises(NotPermittedError, match=message):
        reidentify(ctx.settings, who=as_role(role), token=tokens["王秀英"], purpose=purpose)
    event = AuditTrail(ctx.settings).events()[-1]
    assert (event["action"], event["role"]) == ("reidentify_refused", role)
    assert AuditTrail(ctx.settings).verify().ok


def test_erasure_removes_the_value_from_every_vault_file_for_good(
    lake: tuple[JobContext, dict[str, str]], tmp_path: Path
) -> None:
    ctx, tokens = lake
    with pytest.raises(NotPermittedError, match="may not erase"):
        erase(
            ctx.settings, who=as_role("quality_engineer"), token=tokens["王秀英"], purpose=PURPOSE
        )
    removed = erase(
        ctx.settings,
        who=as_role("data_steward"),
        token=tokens["王秀英"],
        purpose="DSR-2026-0042 erasure",
    )
    assert removed.vault_rows == 1
    files = [p for p in (tmp_path / "lake" / "_system" / "_vault_cn").rglob("*") if p.is_file()]
    assert files
    contents = [
        json.dumps(pq.read_table(p).to_pylist(), ensure_ascii=False, default=str)
        if p.suffix == ".parquet"
        else p.read_text(encoding="utf-8", errors="replace")
        for p in files
    ]
    assert not any("王秀英" in text for text in contents)  # data files, log, checkpoints
    assert any("Lim Wei Ming" in text for text in contents)  # the other subject stays
    after = reidentify(
        ctx.settings, who=as_role("data_steward"), token=tokens["王秀英"], purpose=PURPOSE
    )
    assert after.value is None
    # silver running again over the same delivery does not bring the subject back
    masker = Masker(load_classes(), Keys({"cn": KEY}), {"SZ": "cn"})
    df = ctx.spark.createDataFrame([("SZ", "王秀英")], "plant_id string, contact_name string")
    masked = masker.mask(df, {"contact_name": ("pii.person_name", "string")})
    commit = CommitContext(job="silver", run_id="r2", logical_date=dt.date(2026, 3, 2))
    added = vault.store(
        ctx.io, masker.vault_rows(masked), ["cn"], table="silver.customers", ctx=commit
    )
    assert added == {"cn": 0}
    actions = [e["action"] for e in AuditTrail(ctx.settings).events()]
    assert "erase_refused" in actions
    assert "erase" in actions


def test_a_regional_role_may_not_reach_another_jurisdictions_vault(
    lake: tuple[JobContext, dict[str, str]], tmp_path: Path
) -> None:
    ctx, tokens = lake
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    access = conf / "governance" / "access.yaml"
    text = access.read_text(encoding="utf-8")
    # give the EU analyst the permission: it still covers no Chinese plant
    access.write_text(
        text.replace(
            "rows: {countries: [IE, DE]}\n    permissions: []",
            "rows: {countries: [IE, DE]}\n    permissions: [reidentify]",
        ),
        encoding="utf-8",
    )
    assert "permissions: [reidentify]" in access.read_text(encoding="utf-8")
    settings = ctx.settings.model_copy(update={"conf_dir": conf})
    with pytest.raises(NotPermittedError, match="does not read the rows of every cn plant"):
        reidentify(settings, who=as_role("analyst_eu"), token=tokens["王秀英"], purpose=PURPOSE)
    with pytest.raises(NotPermittedError, match="unknown role"):
        reidentify(settings, who=as_role("intern"), token=tokens["王秀英"], purpose=PURPOSE)
    actions = [e["action"] for e in AuditTrail(settings).events()[-2:]]
    assert actions == ["reidentify_refused", "reidentify_refused"]


def test_a_claimed_role_is_refused_and_audited_and_only_an_administrator_acts_for_another(
    lake: tuple[JobContext, dict[str, str]],
    identities: Identities,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The finding: a regional analyst claimed quality_engineer and got a clear name."""
    ctx, tokens = lake
    monkeypatch.setattr("medlake.cli.load_settings", lambda *a, **k: ctx.settings)
    ask = ["governance", "reidentify", "--token", tokens["王秀英"], "--purpose", PURPOSE]
    identities.sign_in(monkeypatch, "analyst_cn")
    assert main([*ask, "--role", "quality_engineer"]) == 2
    err = capsys.readouterr().err
    assert "'analyst_cn' does not hold role 'quality_engineer'" in err and "王秀英" not in err
    assert main([*ask, "--as", "quality_engineer"]) == 2  # acting for another: admins only
    assert "only an administrator may" in capsys.readouterr().err
    monkeypatch.setenv("LAKEHOUSE_PRINCIPAL", "quality_engineer")  # forging the audited name
    assert main([*ask]) == 2
    assert "LAKEHOUSE_PRINCIPAL" in capsys.readouterr().err
    monkeypatch.delenv("LAKEHOUSE_PRINCIPAL")
    monkeypatch.setenv("LAKEHOUSE_TOKEN", "mlk1.eyJzdWIiOiJxdWFsaXR5X2VuZ2luZWVyIn0.Zm9yZ2Vk")
    assert main([*ask]) == 2  # a token made up by the caller
    assert "signature does not match" in capsys.readouterr().err
    refused = [e for e in AuditTrail(ctx.settings).events() if e["action"] == "refused"]
    assert [(e["principal"], e["role"]) for e in refused] == [
        ("analyst_cn", "quality_engineer"),
        ("analyst_cn", None),
        (f"os:{os_user()}", None),
        ("unverified:quality_engineer", None),  # what the forged token claimed
    ]
    assert all(json.loads(e["details"])["reason"] for e in refused)
    assert not [e for e in AuditTrail(ctx.settings).events() if e["action"] == "reidentify"]

    identities.sign_in(monkeypatch, ADMIN)  # an administrator acts for the quality engineer
    assert main([*ask, "--as", "quality_engineer"]) == 0
    assert "王秀英" in capsys.readouterr().out
    events = AuditTrail(ctx.settings).events()
    assert [(e["action"], e["principal"]) for e in events[-2:]] == [
        ("impersonate", f"{ADMIN} as quality_engineer"),
        ("reidentify", f"{ADMIN} as quality_engineer"),
    ]
    assert AuditTrail(ctx.settings).verify().ok
