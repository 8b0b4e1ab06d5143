"""Lineage recorder: `_lineage` rows, OpenLineage events through file and HTTP, config."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from medlake.config import DEFAULT_CONF_DIR, ConfigError, read_yaml
from medlake.lineage import (
    FileEmitter,
    HttpEmitter,
    LineageRecorder,
    NullEmitter,
    emitter_from_config,
    event_json,
    openlineage_run_id,
    sha256_file,
)

ROOT = "/srv/lake"
DAY = dt.date(2024, 3, 1)
NOW = dt.datetime(2024, 3, 2, 1, 30, 15, 250000, tzinfo=dt.UTC)
SHA_A = hashlib.sha256(b"plant SZ orders").hexdigest()
SHA_B = hashlib.sha256(b"plant MX orders").hexdigest()


def make_recorder(emitter: Any = None, **kwargs: Any) -> LineageRecorder:
    args: dict[str, Any] = {
        "job": "silver_orders",
        "run_id": "scheduled__2024-03-01T00:00:00+00:00",
        "logical_date": DAY,
        "storage_root": ROOT,
        "emitter": emitter or NullEmitter(),
        "clock": lambda: NOW,
    }
    return LineageRecorder(**{**args, **kwargs})


def record_typical_run(rec: LineageRecorder) -> None:
    rec.read_table("bronze.sap__vbak", 7)
    rec.read_table("silver.plant", None)
    rec.read_file("file:///landing/SZ/orders_20240301.csv", SHA_A)
    rec.read_file("file:///landing/MX/orders_20240301.csv", SHA_B)
    rec.wrote("silver.orders", 12, columns={"order_id": "string", "amount": "decimal(18,4)"})
    rec.wrote("silver.orders__quarantine", 3)


# --- _lineage rows ------------------------------------------------------------------------


def test_when_two_targets_and_four_sources_then_rows_are_their_cross_product() -> None:
    rec = make_recorder()
    record_typical_run(rec)
    targets = [("silver.orders", 12), ("silver.orders__quarantine", 3)]
    sources = [
        ("bronze.sap__vbak", "table", "7"),
        ("silver.plant", "table", None),
        ("file:///landing/SZ/orders_20240301.csv", "file", SHA_A),
        ("file:///landing/MX/orders_20240301.csv", "file", SHA_B),
    ]
    expected = [
        {
            "target_table": table,
            "target_version": version,
            "source": source,
            "source_kind": kind,
            "source_version": source_version,
            "job": "silver_orders",
            "run_id": "scheduled__2024-03-01T00:00:00+00:00",
            "logical_date": DAY,
            "recorded_at": NOW,
            "recorded_date": dt.date(2024, 3, 2),
        }
        for (table, version), (source, kind, source_version) in itertools.product(targets, sources)
    ]
    assert rec.rows() == expected


def test_rows_have_exactly_the_columns_of_the_lineage_system_table() -> None:
    tables = read_yaml(DEFAULT_CONF_DIR / "tables" / "system.yaml")["tables"]
    declared = next(t for t in tables if t["name"] == "_lineage")["columns"]
    rec = make_recorder()
    rec.read_table("bronze.sap__vbak", 1)
    rec.wrote("silver.orders", 2)
    (row,) = rec.rows()
    assert list(row) == [column["name"] for column in declared]


def test_when_clock_is_not_utc_then_recorded_at_and_date_are_utc() -> None:
    morning_in_shanghai = dt.datetime(2024, 3, 2, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    rec = make_recorder(clock=lambda: morning_in_shanghai)
    rec.read_table("a", 1)
    rec.wrote("b", 1)
    (row,) = rec.rows()
    assert row["recorded_at"] == dt.datetime(2024, 3, 1, 23, 0, tzinfo=dt.UTC)
    assert row["recorded_at"].utcoffset() == dt.timedelta(0)
    assert row["recorded_date"] == dt.date(2024, 3, 1)


def test_when_nothing_was_read_or_written_then_there_are_no_rows() -> None:
    rec = make_recorder()
    rec.wrote("gold.calendar", 1)
    assert rec.rows() == []


def test_when_same_source_is_recorded_twice_then_it_counts_once() -> None:
    rec = make_recorder()
    rec.read_table("bronze.sap__vbak", 7)
    rec.read_table("bronze.sap__vbak", 7)
    rec.wrote("silver.orders", 12)
    rec.wrote("silver.orders", 12)
    assert [(r["target_version"], r["source"]) for r in rec.rows()] == [(12, "bronze.sap__vbak")]


def test_when_same_table_is_read_at_two_versions_then_recording_refuses() -> None:
    rec = make_recorder()
    rec.read_table("bronze.sap__vbak", 7)
    with pytest.raises(ValueError, match=r"'bronze.sap__vbak' recorded twice .* '7' and '8'"):
        rec.read_table("bronze.sap__vbak", 8)


@pytest.mark.parametrize("checksum", ["abc", SHA_A.upper(), "sha256:" + SHA_A, SHA_A + "0"])
def test_when_checksum_is_not_hex_sha256_then_read_file_refuses(checksum: str) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex digits"):
        make_recorder().read_file("file:///landing/x.csv", checksum)


def test_sha256_file_matches_hashlib_over_the_bytes(tmp_path: Path) -> None:
    data = b"x" * 3_000_001
    path = tmp_path / "orders.csv"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


# --- run ids ------------------------------------------------------------------------------


def test_when_run_id_is_a_uuid_then_it_is_the_openlineage_run_id() -> None:
    given = "3B452093-782C-4EF2-9C0C-AAFE2AA6F34D"
    assert openlineage_run_id("any_job", given) == given.lower()


def test_when_run_id_is_not_a_uuid_then_a_stable_uuid5_per_job_is_derived() -> None:
    run_id = "scheduled__2024-03-01T00:00:00+00:00"
    first = openlineage_run_id("silver_orders", run_id)
    assert uuid.UUID(first).version == 5
    assert first == openlineage_run_id("silver_orders", run_id)
    assert first != openlineage_run_id("silver_supplier", run_id)
    assert make_recorder().openlineage_run_id == first


# --- file emitter -------------------------------------------------------------------------


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ours(facets: dict[str, Any]) -> dict[str, Any]:
    """Run facets without the `tags` facet the OpenLineage client adds (its own version)."""
    return {key: facet for key, facet in facets.items() if key != "tags"}


def symlink(event_dataset: dict[str, Any]) -> list[dict[str, Any]]:
    identifiers: list[dict[str, Any]] = (
        event_dataset["facets"].get("symlinks", {}).get("identifiers", [])
    )
    return identifiers


def test_file_emitter_writes_start_then_complete_with_datasets_and_versions(
    tmp_path: Path,
) -> None:
    emitter = FileEmitter(tmp_path / "openlineage")
    rec = make_recorder(emitter)
    rec.start()
    record_typical_run(rec)
    rec.complete()

    events = read_events(tmp_path / "openlineage" / "silver_orders.jsonl")
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert (emitter.sent, emitter.failures) == (2, 0)
    run_ids = {e["run"]["runId"] for e in events}
    assert run_ids == {openlineage_run_id("silver_orders", "scheduled__2024-03-01T00:00:00+00:00")}
    for event in events:
        assert event["eventTime"] == "2024-03-02T01:30:15.250Z"
        assert event["job"]["namespace"] == "medlake"
        assert event["job"]["name"] == "silver_orders"
        assert event["schemaURL"].startswith("https://openlineage.io/spec/")
        assert event["producer"] == "urn:medlake:lakehouse"
        nominal = event["run"]["facets"]["nominalTime"]
        assert nominal["nominalStartTime"] == "2024-03-01T00:00:00.000Z"
        assert nominal["nominalEndTime"] == "2024-03-02T00:00:00.000Z"
        assert event["run"]["facets"]["medlake_run"]["runId"] == (
            "scheduled__2024-03-01T00:00:00+00:00"
        )
    assert events[0]["inputs"] == events[0]["outputs"] == []

    complete = events[1]
    inputs = [
        (d["namespace"], d["name"], d["facets"].get("version", {}).get("datasetVersion"))
        for d in complete["inputs"]
    ]
    assert inputs == [
        ("file", "/srv/lake/bronze/sap__vbak", "7"),
        ("file", "/srv/lake/silver/plant", None),
        ("file", "/landing/SZ/orders_20240301.csv", SHA_A),
        ("file", "/landing/MX/orders_20240301.csv", SHA_B),
    ]
    assert [symlink(d) for d in complete["inputs"]] == [
        [{"namespace": "medlake", "name": "bronze.sap__vbak", "type": "TABLE"}],
        [{"namespace": "medlake", "name": "silver.plant", "type": "TABLE"}],
        [],
        [],
    ]
    outputs = [
        (d["namespace"], d["name"], d["facets"]["version"]["datasetVersion"])
        for d in complete["outputs"]
    ]
    assert outputs == [
        ("file", "/srv/lake/silver/orders", "12"),
        ("file", "/srv/lake/silver/orders__quarantine", "3"),
    ]
    assert [symlink(d)[0]["name"] for d in complete["outputs"]] == [
        "silver.orders",
        "silver.orders__quarantine",
    ]
    schema = complete["outputs"][0]["facets"]["schema"]
    assert schema["fields"] == [
        {"name": "order_id", "type": "string"},
        {"name": "amount", "type": "decimal(18,4)"},
    ]
    assert "schema" not in complete["outputs"][1]["facets"]


def test_every_facet_names_its_producer_and_schema(tmp_path: Path) -> None:
    rec = make_recorder(FileEmitter(tmp_path))
    record_typical_run(rec)
    rec.fail("boom")
    (event,) = read_events(tmp_path / "silver_orders.jsonl")
    datasets = event["inputs"] + event["outputs"]
    assert event["run"]["facets"]["tags"]["tags"][0]["key"] == "openlineage_client_version"
    facets = [*ours(event["run"]["facets"]).values()]
    facets += [facet for d in datasets for facet in d["facets"].values()]
    # run: nominalTime, errorMessage, medlake_run; inputs: symlinks + version, symlinks,
    # version, version; outputs: symlinks + version + schema, symlinks + version
    assert len(facets) == 3 + (2 + 1 + 1 + 1) + (3 + 2)
    for facet in facets:
        assert facet["_producer"] == "urn:medlake:lakehouse"
        assert facet["_schemaURL"].startswith(
            ("https://openlineage.io/spec/facets/", "urn:medlake:lineage:facets:")
        )


def test_file_emitter_writes_start_then_fail_with_the_error_message(tmp_path: Path) -> None:
    rec = make_recorder(FileEmitter(tmp_path))
    rec.start()
    rec.read_table("bronze.sap__vbak", 7)
    rec.fail("SchemaMismatchError: column amount is string", stack_trace="Traceback ...")

    events = read_events(tmp_path / "silver_orders.jsonl")
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    error = events[1]["run"]["facets"]["errorMessage"]
    assert error["message"] == "SchemaMismatchError: column amount is string"
    assert error["programmingLanguage"] == "python"
    assert error["stackTrace"] == "Traceback ..."
    assert "errorMessage" not in events[0]["run"]["facets"]


def test_when_logical_date_is_missing_then_no_nominal_time_facet(tmp_path: Path) -> None:
    rec = make_recorder(FileEmitter(tmp_path), logical_date=None)
    rec.start()
    (event,) = read_events(tmp_path / "silver_orders.jsonl")
    assert list(ours(event["run"]["facets"])) == ["medlake_run"]


def test_file_emitter_appends_runs_of_the_same_job_to_one_file(tmp_path: Path) -> None:
    emitter = FileEmitter(tmp_path)
    for run_id in ("manual__1", "manual__2"):
        rec = make_recorder(emitter, run_id=run_id)
        rec.start()
        rec.complete()
    events = read_events(tmp_path / "silver_orders.jsonl")
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"] * 2
    assert len({e["run"]["runId"] for e in events}) == 2


def test_when_file_emitter_cannot_write_then_it_warns_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_folder = tmp_path / "taken"
    not_a_folder.write_text("a file where the folder should be")
    emitter = FileEmitter(not_a_folder)
    with caplog.at_level(logging.WARNING, logger="medlake.lineage"):
        make_recorder(emitter).start()
    assert (emitter.sent, emitter.failures) == (0, 1)
    assert "START event for job 'silver_orders' not emitted" in caplog.text


# --- HTTP emitter -------------------------------------------------------------------------


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status: ClassVar[int] = 201

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadingHTTPServer]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    _Collector.received = []
    _Collector.status = 201
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def base_url(httpd: ThreadingHTTPServer) -> str:
    host, port = httpd.server_address[:2]
    return f"http://{host!s}:{port}"


def test_http_emitter_posts_each_event_as_json_with_bearer_key(
    server: ThreadingHTTPServer,
) -> None:
    emitter = HttpEmitter(base_url(server) + "/", api_key="s3cret", timeout_s=5)
    rec = make_recorder(emitter)
    rec.start()
    record_typical_run(rec)
    rec.complete()

    assert (emitter.sent, emitter.failures) == (2, 0)
    assert [r["method"] for r in _Collector.received] == ["POST", "POST"]
    assert [r["path"] for r in _Collector.received] == ["/api/v1/lineage"] * 2
    headers = _Collector.received[0]["headers"]
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"
    bodies = [json.loads(r["body"]) for r in _Collector.received]
    assert [b["eventType"] for b in bodies] == ["START", "COMPLETE"]
    bodies[1]["run"]["facets"] = ours(bodies[1]["run"]["facets"])
    assert bodies[1] == event_json(rec.event("COMPLETE"))


def test_http_emitter_without_key_sends_no_authorization(server: ThreadingHTTPServer) -> None:
    make_recorder(HttpEmitter(base_url(server))).start()
    (request,) = _Collector.received
    assert "Authorization" not in request["headers"]


def test_when_server_answers_500_then_http_emitter_warns_and_counts(
    server: ThreadingHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    _Collector.status = 500
    emitter = HttpEmitter(base_url(server), api_key="s3cret")
    with caplog.at_level(logging.WARNING, logger="medlake.lineage"):
        make_recorder(emitter).complete()
    assert (emitter.sent, emitter.failures) == (0, 1)
    assert "500" in caplog.text
    assert "s3cret" not in caplog.text


def test_when_port_is_closed_then_http_emitter_warns_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    emitter = HttpEmitter(f"http://127.0.0.1:{port}", timeout_s=2)
    rec = make_recorder(emitter)
    with caplog.at_level(logging.WARNING, logger="medlake.lineage"):
        rec.start()
        rec.fail("boom")
    assert (emitter.sent, emitter.failures) == (0, 2)
    warnings = [r for r in caplog.records if r.name == "medlake.lineage"]
    assert [r.levelno for r in warnings] == [logging.WARNING] * 2
    assert f"127.0.0.1:{port}/api/v1/lineage" in warnings[0].getMessage()


def test_http_emitter_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpEmitter("file:///etc/passwd")


# --- configuration ------------------------------------------------------------------------


def test_when_no_lineage_block_then_file_emitter_under_the_project(tmp_path: Path) -> None:
    emitter = emitter_from_config(None, tmp_path)
    assert isinstance(emitter, FileEmitter)
    assert emitter.folder == tmp_path / "var" / "openlineage"


def test_file_transport_keeps_an_absolute_folder(tmp_path: Path) -> None:
    emitter = emitter_from_config({"transport": "file", "folder": str(tmp_path / "ol")}, Path("/x"))
    assert isinstance(emitter, FileEmitter)
    assert emitter.folder == tmp_path / "ol"


def test_none_transport_gives_a_null_emitter(tmp_path: Path) -> None:
    assert isinstance(emitter_from_config({"transport": "none"}, tmp_path), NullEmitter)


def test_http_transport_reads_the_key_from_the_named_environment_variable(
    server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MEDLAKE_OL_KEY", "from-env")
    block = {"transport": "http", "url": base_url(server), "api_key_env": "MEDLAKE_OL_KEY"}
    emitter = emitter_from_config({**block, "timeout_s": 3}, tmp_path)
    assert isinstance(emitter, HttpEmitter)
    assert emitter.timeout_s == 3
    make_recorder(emitter).start()
    assert _Collector.received[0]["headers"]["Authorization"] == "Bearer from-env"


def test_when_http_has_no_url_then_config_error_names_the_field_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"field 'url' is required .* transport is 'http'"):
        emitter_from_config({"transport": "http"}, tmp_path)


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"transport": "kafka"}, "transport"),
        ({"transport": "http", "url": "marquez:5000"}, "url"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"api_key": "s3cret"}, "api_key"),
    ],
)
def test_when_lineage_block_is_invalid_then_config_error_names_the_field(
    block: dict[str, Any], field: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=f"lineage settings: field '{field}'"):
        emitter_from_config(block, tmp_path)
