"""The process boundary: an unprivileged OS account reads nothing of the storage root or the
secret store, and still gets its governed answers through the query service."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from pyspark.sql import Row, SparkSession

from medlake.config import DEFAULT_CONF_DIR, Settings
from medlake.entities import full_registry
from medlake.governance import identity
from medlake.governance.audit import AuditTrail
from medlake.io import CommitContext, TableIO
from medlake.queryserver import QueryService, make_server
from tests.conftest import make_settings
from tests.identities import ADMIN, Identities, write_identities
from tests.integration.test_governed_read import _complaints

NOBODY = 65534  # uid and gid of `nobody` on Debian
CLEAR = "王秀英"  # a clear personal value in a vault and in bronze

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="switching to an unprivileged account needs root (CI runs as root)"
)


@dataclass
class Boundary:
    base: Path
    settings: Settings
    identities: Identities
    url: str
    service: QueryService
    keys: Path
    client: Path  # medlake/client.py, copied where the unprivileged account can read it


def _rows(spark: SparkSession, registry: Any, name: str, rows: list[dict[str, Any]]) -> Any:
    schema = registry.get(name).spark_schema
    return spark.createDataFrame([Row(**r) for r in rows], schema).select(*schema.fieldNames())


@pytest.fixture(scope="module")
def boundary(spark: SparkSession) -> Iterator[Boundary]:
    base = Path(tempfile.mkdtemp(prefix="medlake-boundary-"))
    base.chmod(0o755)  # others may enter the folder, so the lake's own mode is what protects it
    settings = make_settings(base / "lake")
    registry = full_registry(DEFAULT_CONF_DIR)
    io = TableIO(spark, settings, registry)
    ctx = CommitContext(job="test_query_service", run_id="r1")
    now = dt.datetime(2026, 3, 2, 8, 0)
    io.append(
        "silver.complaints", _rows(spark, registry, "silver.complaints", _complaints()), ctx=ctx
    )
    vault = [
        {
            "token": "PERSON_cn_00000000000000aa",
            "entity_type": "PERSON",
            "value": CLEAR,
            "first_table": "silver.customers",
            "first_run_id": "r1",
            "recorded_at": now,
        }
    ]
    io.append("_vault_cn", _rows(spark, registry, "_vault_cn", vault), ctx=ctx)
    delivered = [
        {
            "_plant_id": "SZ",
            "_delivery_date": now.date(),
            "delivery_month": "2026-03",
            "_source_system": "crm",
            "_source_file": "SZ/x.csv",
            "_file_sha256": "0" * 64,
            "_file_version": 1,
            "_file_row": 1,
            "_record": {"contact": CLEAR},
            "_ingested_at": now,
            "_run_id": "r1",
        }
    ]
    io.append(
        "bronze.crm__complaints",
        _rows(spark, registry, "bronze.crm__complaints", delivered),
        ctx=ctx,
    )
    secrets = base / "secrets"
    secrets.mkdir(mode=0o700)
    keys = secrets / "pseudonym-keys.yaml"
    keys.write_text(yaml.safe_dump({"pseudonym_keys": {"cn": "ab" * 32}}))
    keys.chmod(0o600)
    identities = write_identities(secrets)
    client_dir = base / "client"
    client_dir.mkdir(mode=0o755)
    client = Path(shutil.copy(Path(__file__).parents[2] / "medlake" / "client.py", client_dir))
    client.chmod(0o644)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKEHOUSE_IDENTITIES", str(identities.path))
        # the service's own token: a request without one must never be answered as the service
        mp.setenv("LAKEHOUSE_TOKEN", identities.token(ADMIN))
        service = QueryService(settings, spark=spark)
        server = make_server(service, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            yield Boundary(base, settings, identities, url, service, keys, client)
        finally:
            server.shutdown()
            server.server_close()
            shutil.rmtree(base, ignore_errors=True)


def _as_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _run_as_nobody(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_python_for_nobody(), "-I", *args],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **env},
        cwd=cwd,
        preexec_fn=_as_nobody,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@functools.cache
def _python_for_nobody() -> str:
    """An interpreter the unprivileged account may run: this one when its folders are open to
    everyone, else the system's (the client needs the standard library of Python 3.10+)."""
    check = "import sys; assert sys.version_info >= (3, 10)"
    for python in (os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/local/bin/python3"):
        try:
            done = subprocess.run(
                [python, "-I", "-c", check],
                preexec_fn=_as_nobody,
                capture_output=True,
                check=False,
            )
        except OSError:  # missing, or not executable by nobody
            continue
        if done.returncode == 0:
            return python
    raise AssertionError("no Python 3.10+ that the account nobody may run: install python3")


PROBE = """
import json, os, sys
out = {}
for name, path in json.loads(sys.argv[1]).items():
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        out[name] = "read"
    except PermissionError:
        out[name] = "denied"
print(json.dumps(out))
"""


def test_an_unprivileged_account_cannot_read_keys_vaults_bronze_or_any_table(
    boundary: Boundary,
) -> None:
    root = Path(boundary.settings.storage_root)
    vault = next((root / "_system" / "_vault_cn").rglob("*.parquet"))
    bronze = next((root / "bronze").rglob("*.parquet"))
    silver = next((root / "silver").rglob("*.parquet"))
    assert CLEAR in json.dumps(pq.read_table(vault).to_pylist(), ensure_ascii=False, default=str)
    targets = {
        "storage root": root,
        "vault file": vault,
        "bronze file": bronze,
        "silver file": silver,
        "pseudonym keys": boundary.keys,
        "identity directory": boundary.identities.path,
        "secret store": boundary.keys.parent,
    }
    probe = _run_as_nobody(
        ["-c", PROBE, json.dumps({k: str(v) for k, v in targets.items()})],
        {},
        boundary.client.parent,
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == dict.fromkeys(targets, "denied")
    assert oct(root.stat().st_mode & 0o777) == "0o700"  # made private by the table layer


def test_the_unprivileged_analyst_gets_her_governed_rows_through_the_service_and_nothing_else(
    boundary: Boundary,
) -> None:
    token = boundary.identities.token("analyst_cn")
    env = {"LAKEHOUSE_TOKEN": token}

    def client(*args: str, with_env: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        argv = [str(boundary.client), "--server", boundary.url, "--format", "json", *args]
        return _run_as_nobody(argv, with_env, boundary.client.parent)

    done = client(
        "--purpose",
        "weekly review",
        "query",
        "SELECT complaint_id, narrative FROM silver.complaints ORDER BY 1",
    )
    assert done.returncode == 0, done.stderr
    expected = sorted(
        [
            {"complaint_id": r["complaint_id"], "narrative": "<masked>"}  # free text: masked
            for r in _complaints()
            if r["plant_id"] in {"SU", "SZ"}  # China's plants only
        ],
        key=lambda r: r["complaint_id"],
    )
    assert json.loads(done.stdout) == expected

    refused = {
        "SELECT * FROM _vault_cn": "never readable",
        "SELECT * FROM bronze.crm__complaints": "never readable",
        "EXECUTE IMMEDIATE 'SELECT * FROM _vault_cn'": "EXECUTE IMMEDIATE is not allowed",
        f"SELECT * FROM parquet.`{boundary.settings.storage_root}/_system/_vault_cn`": "",
    }
    for query, message in refused.items():
        done = client("query", query)
        assert done.returncode == 2, (query, done.stdout, done.stderr)
        assert message in done.stderr and CLEAR not in done.stdout + done.stderr, query
    done = client("--role", "quality_engineer", "query", "SELECT 1 AS one")
    assert done.returncode == 2 and "does not hold role 'quality_engineer'" in done.stderr
    done = client("query", "SELECT 1 AS one", with_env={})
    assert done.returncode == 2 and "not signed in" in done.stderr
    done = client("whoami")
    assert json.loads(done.stdout)["principal"] == "analyst_cn"

    events = AuditTrail(boundary.settings).events()
    reads = [e for e in events if e["action"] == "read" and e["principal"] == "analyst_cn"]
    assert [(e["table_name"], e["row_count"], e["purpose"]) for e in reads] == [
        ("silver.complaints", len(expected), "weekly review")
    ]
    refusals = [e for e in events if e["action"] == "refused"]
    assert len(refusals) == len(refused) + 1  # + the role she does not hold
    assert all(e["principal"] == "analyst_cn" for e in refusals)


def test_a_request_is_signed_in_from_its_own_token_never_the_services(boundary: Boundary) -> None:
    """The service runs with an administrator's token in its environment (the fixture sets
    one): a request without a token, or with a bad one, must not borrow it."""
    service = boundary.service
    status, body = service.respond("/v1/query", None, {"sql": "SELECT 1 AS one"}, "remote:10.0.0.9")
    assert status == 401 and body["error"].startswith("not signed in")
    (event,) = [
        e for e in AuditTrail(boundary.settings).events() if e["principal"] == "remote:10.0.0.9"
    ]
    assert event["action"] == "refused"  # recorded for the caller's address, not the service
    status, body = service.respond("/v1/query", "mlk1.e30.c2lnw6k", {"sql": "SELECT 1 AS one"})
    assert status == 401 and "signature" in body["error"]  # a non-ASCII signature
    status, body = service.respond("/v1/whoami", "", {})
    assert status == 401
    status, body = service.respond("/v1/query", "mlk1.e30.c2ln", {"sql": "SELECT 1 AS one"})
    assert status == 401 and "signature" in body["error"]
    token = boundary.identities.token("analyst_eu")
    status, body = service.respond("/v1/query", token, {"sql": 42})
    assert (status, body) == (400, {"error": "sql must be a non-empty string"})
    status, body = service.respond("/v1/nope", token, {})
    assert status == 404
    status, body = service.respond("/v1/metric", token, {"metric": "no_such_metric"})
    assert status == 400 and "no_such_metric" in body["error"]
    status, body = service.respond(
        "/v1/query", token, {"sql": "SELECT 1 / 0 AS x FROM silver.complaints"}
    )
    assert status == 500 and body == {"error": "the query failed while running (DIVIDE_BY_ZERO)"}
    status, body = service.respond("/v1/whoami", token, {})
    assert (status, body["principal"], body["role"]) == (200, "analyst_eu", "analyst_eu")


def _raw(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    import http.client

    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/v1/query", skip_accept_encoding=True)
    for key, value in headers.items():
        conn.putheader(key, value)
    conn.endheaders(body)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_malformed_requests_get_an_answer_and_the_service_keeps_serving(boundary: Boundary) -> None:
    token = boundary.identities.token("analyst_cn")
    auth = {"Authorization": f"Bearer {token}"}
    assert _raw(boundary.url, b"{}", {**auth, "Content-Length": "-1"})[0] == 413
    assert _raw(boundary.url, b"{}", {**auth, "Content-Length": "abc"})[0] == 413
    deep = b"[" * 100_000
    assert _raw(boundary.url, deep, {**auth, "Content-Length": str(len(deep))})[0] == 400
    status, body = _raw(
        boundary.url, b'{"sql": "SELECT 1 AS one"}', {**auth, "Content-Length": "26"}
    )
    assert (status, body["rows"]) == (200, [[1]])


def test_a_password_is_checked_by_the_service_and_guessing_is_paused(boundary: Boundary) -> None:
    from medlake.client import Client, ServiceError
    from tests.identities import PASSWORD, TWO_ROLES

    client = Client(boundary.url, token="unused")
    answer = client.login(TWO_ROLES, PASSWORD, hours=1)
    assert sorted(answer["roles"]) == ["analyst_cn", "auditor"]
    assert Client(boundary.url, token=answer["token"], role="auditor").whoami()["role"] == "auditor"
    with pytest.raises(ServiceError, match="at most 24 hours"):
        client.login(TWO_ROLES, PASSWORD, hours=24 * 30)
    for _ in range(5):
        with pytest.raises(ServiceError, match="unknown identity or wrong password"):
            client.login(TWO_ROLES, "a wrong guess of a password")
    with pytest.raises(ServiceError, match="paused after 5 failures"):
        client.login(TWO_ROLES, PASSWORD)  # even the right one, for a while
    refused = [
        e["principal"]
        for e in AuditTrail(boundary.settings).events()
        if e["action"] == "refused" and json.loads(e["details"])["via"] == "service /v1/login"
    ]
    assert refused == [f"unverified:{TWO_ROLES}"] * 7
    identity._failures.clear()  # the pause lives in this process: end it for other tests
