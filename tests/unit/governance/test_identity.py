"""Identities bound to roles: passwords, tokens, the directory file, sign-in and its refusals."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from medlake.cli import main
from medlake.config import Settings, load_settings
from medlake.governance.access import load_access
from medlake.governance.audit import AuditTrail
from medlake.governance.identity import (
    AuthError,
    Directory,
    Identity,
    IdentityConfigError,
    check_password,
    hash_password,
    job_principal,
    os_user,
    sign_in,
)
from tests.identities import ADMIN, PASSWORD, TWO_ROLES, Identities


def _refusals(settings: Settings) -> list[tuple[str, str | None, str]]:
    return [
        (e["principal"], e["role"], json.loads(e["details"])["reason"])
        for e in AuditTrail(settings).events()
        if e["action"] == "refused"
    ]


# --------------------------------------------------------------------- passwords


def test_a_password_is_kept_as_a_salted_scrypt_hash_that_only_the_password_matches() -> None:
    stored = hash_password(PASSWORD)
    scheme, log2n, r, p, salt, digest = stored.split("$")
    assert (scheme, PASSWORD in stored) == ("scrypt", False)
    # recomputed here with hashlib directly, from the parameters the hash carries
    raw_salt = base64.urlsafe_b64decode(salt + "=" * (-len(salt) % 4))
    n = 1 << int(log2n)
    expected = hashlib.scrypt(
        PASSWORD.encode(), salt=raw_salt, n=n, r=int(r), p=int(p), maxmem=2**26, dklen=32
    )
    assert base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)) == expected
    assert check_password(PASSWORD, stored)
    assert not check_password(PASSWORD + "!", stored)
    assert hash_password(PASSWORD) != stored  # a fresh salt every time
    with pytest.raises(IdentityConfigError, match="at least 12"):
        hash_password("short")


# --------------------------------------------------------------------- tokens


def test_a_token_names_its_identity_until_it_expires_and_cannot_be_altered(
    identities: Identities,
) -> None:
    directory = identities.directory
    token, expires = directory.issue("analyst_cn", hours=2)
    assert directory.verify(token).name == "analyst_cn"
    with pytest.raises(AuthError, match="expired"):
        directory.verify(token, now=expires + dt.timedelta(seconds=1))
    prefix, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == "analyst_cn" and claims["exp"] - claims["iat"] == 7200
    claims["sub"] = "data_steward"  # the analyst edits the name in her own token
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(AuthError, match="signature does not match"):
        directory.verify(f"{prefix}.{forged}.{signature}")
    other = Directory(directory.path, os.urandom(32), directory.identities)
    with pytest.raises(AuthError, match="signature does not match"):
        other.verify(token)  # a token signed with another directory's key
    with pytest.raises(AuthError, match="not a medlake token"):
        directory.verify("eyJhbGciOi.J9.x")


def test_revoking_refuses_earlier_tokens_and_a_removed_identity_signs_in_no_more(
    identities: Identities,
) -> None:
    directory = identities.directory
    token = identities.token("analyst_us")
    directory.revoke("analyst_us")
    with pytest.raises(AuthError, match="revoked"):
        directory.verify(token, now=dt.datetime.now(dt.UTC))
    token = identities.token("auditor")
    del directory.identities["auditor"]
    with pytest.raises(AuthError, match="unknown or disabled identity 'auditor'"):
        directory.verify(token)


# --------------------------------------------------------------------- the directory file


def test_the_directory_file_is_refused_when_others_can_read_it_or_it_holds_a_clear_password(
    identities: Identities,
) -> None:
    path = identities.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(Directory.load(path).identities) == len(identities.directory.identities)
    path.chmod(0o644)
    with pytest.raises(IdentityConfigError, match=r"mode 644.*chmod 600"):
        Directory.load(path)
    path.chmod(0o600)
    data = yaml.safe_load(path.read_text())
    data["identities"][TWO_ROLES]["password"] = PASSWORD
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(IdentityConfigError, match="must be a scrypt hash") as err:
        Directory.load(path)
    assert PASSWORD not in str(err.value)
    data["identities"][TWO_ROLES] = {"roles": ["auditor"], "group": "x"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(IdentityConfigError, match=r"unknown keys \['group'\]"):
        Directory.load(path)
    with pytest.raises(IdentityConfigError, match="does not exist"):
        Directory.load(path.with_name("missing.yaml"))


def test_without_a_directory_the_error_names_the_variable(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAKEHOUSE_IDENTITIES", raising=False)
    monkeypatch.setenv("LAKEHOUSE_TOKEN", "mlk1.x.y")
    with pytest.raises(IdentityConfigError, match=r"\$LAKEHOUSE_IDENTITIES"):
        sign_in(settings, via="test")


# --------------------------------------------------------------------- signing in


def test_sign_in_binds_the_identity_to_a_role_it_holds_and_audits_every_refusal(
    settings: Settings, identities: Identities, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AuthError, match="not signed in"):
        sign_in(settings, via="test")
    identities.sign_in(monkeypatch, "analyst_eu")
    who = sign_in(settings, via="test")  # the only role it holds
    assert (who.principal, who.role, who.actor) == ("analyst_eu", "analyst_eu", "analyst_eu")
    with pytest.raises(AuthError, match="does not hold role 'group_analyst'"):
        sign_in(settings, role="group_analyst", via="test")
    identities.sign_in(monkeypatch, TWO_ROLES)
    with pytest.raises(AuthError, match=r"holds 2 roles \(analyst_cn, auditor\)"):
        sign_in(settings, via="test")
    assert sign_in(settings, role="auditor", via="test").role == "auditor"
    with pytest.raises(AuthError, match="only an administrator"):
        sign_in(settings, act_as="data_steward", via="test")
    monkeypatch.setenv("LAKEHOUSE_PRINCIPAL", "data_steward")
    with pytest.raises(AuthError, match="LAKEHOUSE_PRINCIPAL"):
        sign_in(settings, role="auditor", via="test")
    monkeypatch.delenv("LAKEHOUSE_PRINCIPAL")
    assert [(p, r) for p, r, _ in _refusals(settings)] == [
        (f"os:{os_user()}", None),
        ("analyst_eu", "group_analyst"),
        (TWO_ROLES, None),
        (TWO_ROLES, None),
        (TWO_ROLES, "auditor"),
    ]

    identities.sign_in(monkeypatch, ADMIN)
    acting = sign_in(settings, act_as="analyst_us", via="test")
    assert (acting.principal, acting.role) == (f"{ADMIN} as analyst_us", "analyst_us")
    (event,) = [e for e in AuditTrail(settings).events() if e["action"] == "impersonate"]
    assert event["principal"] == f"{ADMIN} as analyst_us"
    assert json.loads(event["details"])["administrator"] == ADMIN
    assert AuditTrail(settings).verify().ok


# --------------------------------------------------------------------- the command line


def test_cli_add_login_whoami_and_a_wrong_password(
    settings: Settings,
    identities: Identities,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setattr("medlake.cli.load_settings", lambda *a, **k: settings)
    token_file = tmp_path / "home" / "token"
    monkeypatch.setenv("LAKEHOUSE_TOKEN_FILE", str(token_file))
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase 42\n"))
    assert main(["identity", "add", "maria.rossi", "--role", "analyst_eu", "--password-stdin"]) == 0
    assert "maria.rossi" in Directory.load(identities.path).identities
    assert "a long passphrase" not in identities.path.read_text()

    monkeypatch.setattr("sys.stdin", io.StringIO("not her password\n"))
    assert main(["login", "--user", "maria.rossi", "--password-stdin"]) == 2
    assert "unknown identity or wrong password" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase 42\n"))
    assert main(["login", "--user", "nobody.here", "--password-stdin"]) == 2
    assert "unknown identity or wrong password" in capsys.readouterr().err
    assert not token_file.exists()

    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase 42\n"))
    assert main(["login", "--user", "maria.rossi", "--password-stdin", "--hours", "1"]) == 0
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    capsys.readouterr()
    assert main(["whoami"]) == 0
    assert "maria.rossi (user), acting as analyst_eu" in capsys.readouterr().out
    assert main(["logout"]) == 0 and not token_file.exists()

    actions = [(e["action"], e["principal"]) for e in AuditTrail(settings).events()]
    assert actions == [
        ("identity_add", f"os:{os_user()}"),
        ("refused", "unverified:maria.rossi"),
        ("refused", "unverified:nobody.here"),
        ("login", "maria.rossi"),
    ]


def test_the_demo_writes_a_directory_with_a_service_and_a_user_per_role_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlake_simulator.demo import DEMO_SERVICE, demo_identities

    for name in ("LAKEHOUSE_IDENTITIES", "LAKEHOUSE_TOKEN", "LAKEHOUSE_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings("test").model_copy(update={"home": tmp_path})
    path = demo_identities(settings)
    assert path == tmp_path / "var" / "secrets" / "identities.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    directory = Directory.load(path)
    roles = sorted(load_access(settings.conf_dir).roles)
    for role in roles:
        token = (path.parent / "tokens" / f"demo.{role}.token").read_text()
        assert directory.verify(token).roles == (role,)
    service = Path(os.environ["LAKEHOUSE_TOKEN_FILE"])
    assert service.name == f"{DEMO_SERVICE}.token"
    assert directory.verify(service.read_text()).kind == "service"
    assert os.environ["LAKEHOUSE_IDENTITIES"] == str(path)
    before = path.read_bytes(), service.read_bytes()
    monkeypatch.delenv("LAKEHOUSE_IDENTITIES")
    demo_identities(settings)  # a second demo run keeps the directory and its valid tokens
    assert (path.read_bytes(), service.read_bytes()) == before


def test_a_job_records_the_service_identity_of_its_token_else_the_os_account(
    settings: Settings, identities: Identities, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAKEHOUSE_TOKEN_FILE")
    assert job_principal(settings) == os_user()
    identities.directory.put(Identity("svc-nightly", "service", ("data_steward",)))
    identities.directory.save()
    identities.sign_in(monkeypatch, "svc-nightly")
    assert job_principal(settings) == "svc-nightly"
    monkeypatch.setenv("LAKEHOUSE_TOKEN", identities.token("svc-nightly")[:-2] + "xx")
    with pytest.raises(AuthError, match="signature"):
        job_principal(settings)
    assert [p for p, _, _ in _refusals(settings)] == ["unverified:svc-nightly"]
