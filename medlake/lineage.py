"""Record what one job run read and wrote, as `_lineage` rows and OpenLineage run events.

Events are the typed RunEvents of the `openlineage-python` client, sent through its
transports, and follow the spec so that standard tools (Marquez, DataHub, a broker's
consumers) can join them with other producers' events:

- **Dataset names** (https://openlineage.io/docs/spec/naming): a Delta table is named by where
  it lives, `file` + `/abs/path/bronze/erp__fx_rates` on a local disk, `s3://bucket` +
  `key/of/the/table` on object storage; its logical name (`bronze.erp__fx_rates`) is kept in a
  `symlinks` facet. Output datasets carry their declared columns in a `schema` facet.
- **Run ids**: one OpenLineage run per try, so a retried Airflow task (same product run id,
  next try number) is a new run with its own START and COMPLETE/FAIL; the product's run id and
  the try are kept in the `medlake_run` run facet.
- **Every run ends**: a job killed with SIGTERM sends ABORT on its way out
  (`abort_on_sigterm`), and a run that still never ended (SIGKILL, a lost machine) is closed
  with ABORT by the next run of the same job (`LineageRecorder.close_orphaned_runs`).
- **Small events**: ingestion reads thousands of files; its event names the landing root once,
  with the files per target table and the manifest version in the `medlake_delivery` facet.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import signal
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlparse

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    DatasetFacet,
    InputDatasetFacet,
    RunFacet,
    dataset_version_dataset,
    error_message_run,
    nominal_time_run,
    schema_dataset,
    symlinks_dataset,
)
from openlineage.client.serde import Serde
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import (
    ApiKeyTokenProvider,
    HttpConfig,
    HttpTransport,
    TokenProvider,
)
from openlineage.client.transport.transport import Transport
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medlake.config import TASK_ID_VAR, TRY_NUMBER_VAR, ConfigError, format_validation_error
from medlake.tables import Registry

LOGGER = logging.getLogger("medlake.lineage")

DEFAULT_PRODUCER = "urn:medlake:lakehouse"
DEFAULT_JOB_NAMESPACE = "medlake"
DEFAULT_FOLDER = "var/openlineage"
DEFAULT_ORPHAN_AFTER_HOURS = 24.0
FILE_NAMESPACE = "file"
TABLE_SYMLINK_TYPE = "TABLE"
# Where a job finds the try number of its Airflow task: LakehouseJob passes the first to the
# job (spark-submit's environment, the shared driver's per-task variables); the second is what
# Airflow's task runner exports to every task's process.
AIRFLOW_TRY_NUMBER_VAR = "AIRFLOW_CTX_TRY_NUMBER"
# Fixed namespace for deriving OpenLineage run ids from the project's run ids (uuid5).
RUN_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:medlake:lineage:run")
HTTP_ENDPOINT = "api/v1/lineage"
# One retry on a dropped connection or a gateway error, then give up: an event is not worth
# holding a job up for (the default of the client is five retries with back-off).
HTTP_RETRY = {
    "total": 1,
    "connect": 1,
    "read": 1,
    "backoff_factor": 0.2,
    "status_forcelist": [502, 503, 504],
    "allowed_methods": ["POST"],
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ENDED = frozenset({"COMPLETE", "FAIL", "ABORT"})

EventType = Literal["START", "COMPLETE", "FAIL", "ABORT"]
SourceKind = Literal["table", "file"]
TransportKind = Literal["file", "http", "client", "none"]


# --- custom facets ------------------------------------------------------------------------

RUN_FACET_SCHEMA_URL = "urn:medlake:lineage:facets:1-0-0:MedlakeRunFacet"
DELIVERY_FACET_SCHEMA_URL = "urn:medlake:lineage:facets:1-0-0:MedlakeDeliveryInputFacet"
# JSON Schemas of the custom facets (each on top of the spec's base facet), for consumers and
# for the tests that validate the events.
CUSTOM_FACET_SCHEMAS: dict[str, dict[str, Any]] = {
    RUN_FACET_SCHEMA_URL: {
        "type": "object",
        "properties": {
            "runId": {"type": "string", "minLength": 1},
            "tryNumber": {"type": "integer", "minimum": 1},
        },
        "required": ["runId"],
    },
    DELIVERY_FACET_SCHEMA_URL: {
        "type": "object",
        "properties": {
            "files": {"type": "integer", "minimum": 0},
            "filesPerTable": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
            },
            "manifest": {
                "type": "object",
                "properties": {
                    "table": {"type": "string"},
                    "namespace": {"type": "string"},
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                },
                "required": ["table", "namespace", "name", "version"],
            },
        },
        "required": ["files", "filesPerTable"],
    },
}


@attr.define
class MedlakeRunFacet(RunFacet):
    """The product's run id (shared by every try of an Airflow task) and the try this is."""

    runId: str  # noqa: N815
    tryNumber: int | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return RUN_FACET_SCHEMA_URL


@attr.define
class ManifestReference:
    """The `_bronze_manifest` table version that lists each delivered file of the run."""

    table: str
    namespace: str
    name: str
    version: str


@attr.define
class MedlakeDeliveryInputFacet(InputDatasetFacet):
    """How many delivered files a run read, per target table, and where the full list is."""

    files: int
    filesPerTable: dict[str, int] = attr.field(factory=dict)  # noqa: N815
    manifest: ManifestReference | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return DELIVERY_FACET_SCHEMA_URL


# --- dataset naming -----------------------------------------------------------------------

_OBJECT_STORES = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs", "gcs": "gs"}


def dataset_naming(location: str) -> tuple[str, str]:
    """(namespace, name) of the data at `location` by the OpenLineage Naming spec.

    >>> dataset_naming("/srv/lake/bronze/erp__fx_rates")
    ('file', '/srv/lake/bronze/erp__fx_rates')
    >>> dataset_naming("s3a://medlake-lakehouse/prod/bronze/erp__fx_rates/")
    ('s3://medlake-lakehouse', 'prod/bronze/erp__fx_rates')
    >>> dataset_naming("hdfs://namenode:8020/medlake/silver/supplier")
    ('hdfs://namenode:8020', '/medlake/silver/supplier')
    """
    parsed = urlparse(location)
    scheme = parsed.scheme.lower()
    path = parsed.path.rstrip("/") or "/"
    if scheme in ("", "file"):
        if parsed.netloc and parsed.netloc != "localhost":
            return f"file://{parsed.netloc}", path
        return FILE_NAMESPACE, str(PurePosixPath(os.path.normpath(path)))
    if scheme in _OBJECT_STORES:  # bucket + object key (no leading slash)
        return f"{_OBJECT_STORES[scheme]}://{parsed.netloc}", path.lstrip("/")
    if scheme in ("abfss", "abfs", "wasbs", "wasb"):
        return f"{scheme}://{parsed.netloc}", path.lstrip("/")
    return f"{scheme}://{parsed.netloc}", path  # hdfs://host:port and the like: absolute path


def table_location(storage_root: str, table: str, registry: Registry | None) -> str:
    """Where table `table` lives: `<storage root>/<spec.path>` (as `medlake.io.storage`
    places it); an unregistered name is placed as `<layer>/<name>`."""
    if registry is not None and table in registry:
        relative = registry.get(table).path
    else:
        relative = table.replace(".", "/", 1)
    return f"{storage_root.rstrip('/')}/{relative}"


def task_id_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The Airflow task id of this process's job, if the DAG's task set it: two tasks of one
    DAG run (two silver groups, one ingest per plant) run the same job kind under the same
    run id and must still be two OpenLineage jobs with their own runs."""
    env = os.environ if environ is None else environ
    return (env.get(TASK_ID_VAR) or "").strip() or None


def try_number_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """The Airflow try number of this process's task, if it runs under Airflow."""
    env = os.environ if environ is None else environ
    for var in (TRY_NUMBER_VAR, AIRFLOW_TRY_NUMBER_VAR):
        value = (env.get(var) or "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


# --- emitters -----------------------------------------------------------------------------


def event_json(event: RunEvent) -> dict[str, Any]:
    """The event as the JSON object the transports send."""
    return Serde.to_dict(event)


class Emitter(ABC):
    """Sends OpenLineage events through the client; never raises, counts what it could not send.

    `orphan_after`: how old a START without an end must be before the next run of the same
    job closes it with ABORT (only emitters that can read their events back can tell).
    """

    def __init__(self, orphan_after: dt.timedelta | None = None) -> None:
        self.sent = 0
        self.failures = 0
        self.orphan_after = orphan_after or dt.timedelta(hours=DEFAULT_ORPHAN_AFTER_HOURS)

    def emit(self, event: RunEvent) -> None:
        """Send `event`; a failure is logged as a warning and counted, never raised."""
        try:
            self._send(event)
        except Exception as exc:  # lineage must never fail the job
            self.failures += 1
            LOGGER.warning(
                "OpenLineage %s event for job %r not emitted through %s: %s",
                event.eventType.value if event.eventType else None,
                event.job.name,
                self,
                exc,
            )
        else:
            self.sent += 1

    def open_runs(self, job_namespace: str, job: str) -> dict[str, dt.datetime]:
        """Run ids of `job` with a START and no end, with their start time (default: unknown)."""
        return {}

    @abstractmethod
    def _send(self, event: RunEvent) -> None: ...


class NullEmitter(Emitter):
    """Discards every event (lineage events switched off)."""

    def _send(self, event: RunEvent) -> None:
        """Drop the event."""

    def __repr__(self) -> str:
        return "NullEmitter()"


class ClientEmitter(Emitter):
    """Sends through one `OpenLineageClient`, built on first use (so that a transport that
    cannot be built is a counted failure, not a failed job)."""

    def __init__(self, orphan_after: dt.timedelta | None = None) -> None:
        super().__init__(orphan_after)
        self._client: OpenLineageClient | None = None

    def client(self) -> OpenLineageClient:
        if self._client is None:
            self._client = OpenLineageClient(transport=self._transport())
        return self._client

    def _transport(self) -> Transport | None:
        """The transport to send through; None: the client's own configuration decides."""
        return None

    def _send(self, event: RunEvent) -> None:
        self.client().emit(event)

    def __repr__(self) -> str:
        return "ClientEmitter(the OpenLineage client's own configuration)"


class FileEmitter(Emitter):
    """Appends each event as one JSON line to `<folder>/<job>.jsonl` (the client's file
    transport in append mode, one per job); reads them back to find runs that never ended."""

    def __init__(self, folder: Path, orphan_after: dt.timedelta | None = None) -> None:
        super().__init__(orphan_after)
        self.folder = Path(folder)
        self._clients: dict[str, OpenLineageClient] = {}

    def path_for(self, job: str) -> Path:
        """The JSON-lines file that holds the events of `job`."""
        return self.folder / f"{re.sub(r'[^A-Za-z0-9._-]', '_', job)}.jsonl"

    def _send(self, event: RunEvent) -> None:
        job = event.job.name
        if job not in self._clients:
            self.folder.mkdir(parents=True, exist_ok=True)
            config = FileConfig(log_file_path=str(self.path_for(job)), append=True)
            self._clients[job] = OpenLineageClient(transport=FileTransport(config))
        self._clients[job].emit(event)

    def open_runs(self, job_namespace: str, job: str) -> dict[str, dt.datetime]:
        path = self.path_for(job)
        if not path.exists():
            return {}
        started: dict[str, dt.datetime] = {}
        ended: set[str] = set()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                event = json.loads(line)
                if (event["job"]["namespace"], event["job"]["name"]) != (job_namespace, job):
                    continue
                run_id, kind = event["run"]["runId"], event.get("eventType")
                if kind == "START":
                    started.setdefault(run_id, _parse_time(event["eventTime"]))
                elif kind in _ENDED:
                    ended.add(run_id)
            except (ValueError, KeyError, TypeError) as exc:
                LOGGER.warning("%s line %d is not an OpenLineage run event: %s", path, number, exc)
        return {run: at for run, at in started.items() if run not in ended}

    def __repr__(self) -> str:
        return f"FileEmitter({str(self.folder)!r})"


class HttpEmitter(ClientEmitter):
    """POSTs each event to `<url>/api/v1/lineage` (Marquez and compatible servers) through the
    client's HTTP transport, with the API key as a bearer token."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        orphan_after: dt.timedelta | None = None,
    ) -> None:
        super().__init__(orphan_after)
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"OpenLineage url must start with http:// or https://, got {url!r}")
        self.base_url = url.rstrip("/") + "/"
        self.endpoint = self.base_url + HTTP_ENDPOINT
        self.timeout_s = timeout_s
        self._api_key = api_key

    def _transport(self) -> Transport:
        auth = ApiKeyTokenProvider({"apiKey": self._api_key}) if self._api_key else None
        config = HttpConfig(
            url=self.base_url,
            endpoint=HTTP_ENDPOINT,
            timeout=self.timeout_s,
            auth=auth or TokenProvider({}),
            retry=dict(HTTP_RETRY),
        )
        return HttpTransport(config)

    def __repr__(self) -> str:
        return f"HttpEmitter({self.endpoint!r})"


# --- configuration ------------------------------------------------------------------------


class LineageSettings(BaseModel):
    """The `lineage` block of the settings; secrets are named by variable, never stored.

    `transport`: `file` (JSON lines under `folder`), `http` (`url`, key from `api_key_env`),
    `client` (the OpenLineage client's own configuration: `OPENLINEAGE_CONFIG`, an
    `openlineage.yml`, `OPENLINEAGE__TRANSPORT__*` variables; for Kafka, console and the
    client's other transports) or `none`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: TransportKind = "file"
    folder: str = DEFAULT_FOLDER
    url: str | None = None
    api_key_env: str | None = "OPENLINEAGE_API_KEY"
    timeout_s: float = Field(default=5.0, gt=0)
    orphan_after_hours: float = Field(default=DEFAULT_ORPHAN_AFTER_HOURS, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL such as http://marquez:5000")
        return value


def emitter_from_config(settings_like: Mapping[str, Any] | None, project_root: Path) -> Emitter:
    """Build the emitter the `lineage` settings block asks for; no block means file transport.

    >>> emitter_from_config(None, Path("/srv/medlake"))
    FileEmitter('/srv/medlake/var/openlineage')
    """
    block = dict(settings_like or {})
    try:
        settings = LineageSettings.model_validate(block)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, [("lineage settings", block)])) from None
    orphan_after = dt.timedelta(hours=settings.orphan_after_hours)
    if settings.transport == "none":
        return NullEmitter(orphan_after)
    if settings.transport == "http":
        return _http_emitter(settings, orphan_after)
    if settings.transport == "client":
        return ClientEmitter(orphan_after)
    folder = Path(settings.folder)
    return FileEmitter(folder if folder.is_absolute() else project_root / folder, orphan_after)


def _http_emitter(settings: LineageSettings, orphan_after: dt.timedelta) -> HttpEmitter:
    if not settings.url:
        raise ConfigError(
            "lineage settings: field 'url' is required when transport is 'http'; set it to the "
            "OpenLineage server base URL (e.g. http://marquez:5000) or use transport 'file'"
        )
    api_key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
    return HttpEmitter(
        settings.url,
        api_key=api_key or None,
        timeout_s=settings.timeout_s,
        orphan_after=orphan_after,
    )


# --- the recorder -------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One thing a run read: a table at a Delta version, or a file with its sha256."""

    kind: SourceKind
    name: str
    version: str | None


@dataclass(frozen=True)
class Target:
    """One table version a run wrote, with its columns (name -> type) when known."""

    name: str
    version: int
    columns: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class Delivery:
    """The delivered files a run read under one landing root, counted per target table."""

    location: str
    files_per_table: tuple[tuple[str, int], ...]
    manifest: tuple[str, int] | None  # (manifest table, version) listing every file


def utc_now() -> dt.datetime:
    """The current time as a timezone-aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (the checksum `read_file` expects)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def openlineage_run_id(
    job: str,
    run_id: str,
    job_namespace: str = DEFAULT_JOB_NAMESPACE,
    try_number: int | None = None,
) -> str:
    """The OpenLineage run id of one try of `job` in product run `run_id`.

    Without a try number: `run_id` itself when it is a UUID, else a uuid5 of (job namespace,
    job, run id); the job takes part because one Airflow run id is shared by every task of a
    DAG run. With one, a uuid5 that also covers the try: each retry of a task is a new
    OpenLineage run (the spec allows one START and one end per run id).
    """
    if try_number is None:
        try:
            return str(uuid.UUID(run_id))
        except ValueError:
            return str(uuid.uuid5(RUN_ID_NAMESPACE, f"{job_namespace}/{job}/{run_id}"))
    return str(uuid.uuid5(RUN_ID_NAMESPACE, f"{job_namespace}/{job}/{run_id}#try={try_number}"))


class LineageRecorder:
    """Collects the sources and targets of one job run; emits its OpenLineage events.

    Tables are recorded by their logical names (`bronze.sap__lfa1`); events name them by
    their location under `storage_root` (placed by `registry`, which also gives the columns
    of output datasets).

    >>> rec = LineageRecorder(job="silver_supplier", run_id="manual__1",
    ...                       logical_date=dt.date(2024, 3, 1), storage_root="/lake",
    ...                       emitter=NullEmitter())
    >>> rec.start()
    >>> rec.read_table("bronze.sap__lfa1", 7)
    >>> rec.wrote("silver.supplier", 12)
    >>> [(r["target_version"], r["source"], r["source_version"]) for r in rec.rows()]
    [(12, 'bronze.sap__lfa1', '7')]
    >>> [(d.namespace, d.name) for d in rec.event("COMPLETE").outputs]
    [('file', '/lake/silver/supplier')]
    >>> rec.complete()
    """

    def __init__(
        self,
        *,
        job: str,
        run_id: str,
        logical_date: dt.date | None,
        storage_root: str,
        emitter: Emitter,
        registry: Registry | None = None,
        period: tuple[dt.date, dt.date] | None = None,
        try_number: int | None = None,
        task: str | None = None,
        job_namespace: str = DEFAULT_JOB_NAMESPACE,
        producer: str = DEFAULT_PRODUCER,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.job = job  # the job kind, as `_lineage` rows record it
        # the OpenLineage job: the Airflow task when there is one (two silver groups or one
        # ingest per plant are separate jobs of one DAG run), else the job kind
        self.lineage_job = task or job
        self.run_id = run_id
        self.logical_date = logical_date
        # the days the run processes, first and last (the nominal time of its events)
        self.period = period or (None if logical_date is None else (logical_date, logical_date))
        self.storage_root = storage_root
        self.registry = registry
        self.emitter = emitter
        self.try_number = try_number
        self.job_namespace = job_namespace
        self.producer = producer
        self.openlineage_run_id = openlineage_run_id(
            self.lineage_job, run_id, job_namespace, try_number
        )
        self._clock = clock
        self._sources: dict[tuple[SourceKind, str], Source] = {}
        self._targets: dict[tuple[str, int], Target] = {}
        self._deliveries: dict[str, Delivery] = {}
        self.ended = False  # COMPLETE, FAIL or ABORT sent

    # recording

    def read_table(self, name: str, version: int | None) -> None:
        """Record that the run read table `name` at Delta `version` (None: not known)."""
        self._add_source(Source("table", name, None if version is None else str(version)))

    def read_file(self, uri: str, checksum: str) -> None:
        """Record that the run read the source file `uri` whose sha256 (hex) is `checksum`."""
        if not _SHA256.match(checksum):
            raise ValueError(f"checksum of {uri!r} must be 64 lowercase hex digits (sha256)")
        self._add_source(Source("file", uri, checksum))

    def read_delivery(
        self,
        location: str,
        files_per_table: Mapping[str, int],
        manifest: tuple[str, int] | None = None,
    ) -> None:
        """Record that the run read delivered files under the landing root `location`:
        `files_per_table` counts them per target table, `manifest` (table, version) lists
        each one. Events carry one dataset for the root, not one per file (an ingest reads
        thousands: one dataset each would outgrow a message broker's limit); `_lineage` rows
        keep per-file edges through `read_file` on the edge recorders."""
        counts = tuple(sorted((t, int(n)) for t, n in files_per_table.items()))
        self._deliveries[location] = Delivery(location, counts, manifest)

    def wrote(self, name: str, version: int, columns: Mapping[str, str] | None = None) -> None:
        """Record that the run committed `version` of table `name`; its columns (name ->
        type) default to the registry's declaration of the table."""
        fields = None if columns is None else tuple(columns.items())
        self._targets.setdefault((name, version), Target(name, version, fields))

    def _add_source(self, source: Source) -> None:
        known = self._sources.setdefault((source.kind, source.name), source)
        if known != source:
            raise ValueError(
                f"{source.kind} {source.name!r} recorded twice in run {self.run_id!r} with "
                f"versions {known.version!r} and {source.version!r}; a run reads one version"
            )

    @property
    def sources(self) -> list[Source]:
        return list(self._sources.values())

    @property
    def targets(self) -> list[Target]:
        return list(self._targets.values())

    # the _lineage table

    def rows(self) -> list[dict[str, Any]]:
        """Rows for `_lineage`: one per (written table version, source), in recording order.

        A run that read nothing yields no rows: every edge needs a source.
        """
        recorded_at = self._clock().astimezone(dt.UTC)
        return [
            self._row(target, source, recorded_at)
            for target in self._targets.values()
            for source in self._sources.values()
        ]

    def _row(self, target: Target, source: Source, recorded_at: dt.datetime) -> dict[str, Any]:
        return {
            "target_table": target.name,
            "target_version": target.version,
            "source": source.name,
            "source_kind": source.kind,
            "source_version": source.version,
            "job": self.job,
            "run_id": self.run_id,
            "logical_date": self.logical_date,
            "recorded_at": recorded_at,
            "recorded_date": recorded_at.date(),
        }

    # OpenLineage events

    def start(self) -> None:
        """Emit the START event (with whatever has been recorded so far)."""
        self.emitter.emit(self.event("START"))

    def complete(self) -> None:
        """Emit the COMPLETE event with every source and target recorded."""
        self.emitter.emit(self.event("COMPLETE"))
        self.ended = True

    def fail(self, error: str, stack_trace: str | None = None) -> None:
        """Emit the FAIL event, carrying `error` in the errorMessage run facet."""
        self.emitter.emit(self.event("FAIL", error=error, stack_trace=stack_trace))
        self.ended = True

    def abort(self, reason: str) -> None:
        """Emit the ABORT event (the run was stopped from outside), `reason` as its error."""
        self.emitter.emit(self.event("ABORT", error=reason))
        self.ended = True

    def close_orphaned_runs(self) -> list[str]:
        """ABORT this job's earlier runs that started longer than the emitter's `orphan_after`
        ago and never ended (killed with SIGKILL, a lost machine); returns their run ids.

        Called before a run starts, so a run that still goes on elsewhere is left alone as
        long as it is younger than `orphan_after`."""
        try:
            open_runs = self.emitter.open_runs(self.job_namespace, self.lineage_job)
        except Exception as exc:  # lineage must never fail the job
            LOGGER.warning("open OpenLineage runs of job %r not read: %s", self.lineage_job, exc)
            return []
        now = self._clock().astimezone(dt.UTC)
        hours = self.emitter.orphan_after.total_seconds() / 3600
        closed = []
        for run_id, started in sorted(open_runs.items(), key=lambda item: item[1]):
            if run_id == self.openlineage_run_id or now - started < self.emitter.orphan_after:
                continue
            reason = (
                f"run started at {_iso(started)} sent no COMPLETE, FAIL or ABORT within "
                f"{hours:g} hours (lineage setting orphan_after_hours); closed by the next run "
                f"of job {self.lineage_job!r}"
            )
            facets: dict[str, RunFacet] = {"errorMessage": self._error_facet(reason, None)}
            self.emitter.emit(
                RunEvent(
                    eventType=RunState.ABORT,
                    eventTime=_iso(now),
                    producer=self.producer,
                    run=Run(runId=run_id, facets=facets),
                    job=Job(namespace=self.job_namespace, name=self.lineage_job),
                )
            )
            closed.append(run_id)
        return closed

    def event(
        self, event_type: EventType, *, error: str | None = None, stack_trace: str | None = None
    ) -> RunEvent:
        """The OpenLineage RunEvent for `event_type`."""
        inputs = [self._input(source) for source in self._sources.values()]
        inputs += [self._delivery(delivery) for delivery in self._deliveries.values()]
        return RunEvent(
            eventType=RunState(event_type),
            eventTime=_iso(self._clock()),
            producer=self.producer,
            run=Run(runId=self.openlineage_run_id, facets=self._run_facets(error, stack_trace)),
            job=Job(namespace=self.job_namespace, name=self.lineage_job),
            inputs=inputs,
            outputs=[self._output(target) for target in self._targets.values()],
        )

    def _run_facets(self, error: str | None, stack_trace: str | None) -> dict[str, RunFacet]:
        facets: dict[str, RunFacet] = {
            "medlake_run": MedlakeRunFacet(
                runId=self.run_id, tryNumber=self.try_number, producer=self.producer
            )
        }
        if self.period is not None:
            first, last = self.period
            start = dt.datetime.combine(first, dt.time(), dt.UTC)
            end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC)
            facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=_iso(start), nominalEndTime=_iso(end), producer=self.producer
            )
        if error is not None:
            facets["errorMessage"] = self._error_facet(error, stack_trace)
        return facets

    def _error_facet(
        self, error: str, stack_trace: str | None
    ) -> error_message_run.ErrorMessageRunFacet:
        return error_message_run.ErrorMessageRunFacet(
            message=error,
            programmingLanguage="python",
            stackTrace=stack_trace,
            producer=self.producer,
        )

    def _table_facets(self, table: str, version: str | None) -> dict[str, DatasetFacet]:
        facets: dict[str, DatasetFacet] = {
            "symlinks": symlinks_dataset.SymlinksDatasetFacet(
                identifiers=[
                    symlinks_dataset.Identifier(
                        namespace=self.job_namespace, name=table, type=TABLE_SYMLINK_TYPE
                    )
                ],
                producer=self.producer,
            )
        }
        if version is not None:
            facets["version"] = self._version(version)
        return facets

    def _table_naming(self, table: str) -> tuple[str, str]:
        return dataset_naming(table_location(self.storage_root, table, self.registry))

    def _input(self, source: Source) -> InputDataset:
        if source.kind == "table":
            namespace, name = self._table_naming(source.name)
            facets = self._table_facets(source.name, source.version)
            return InputDataset(namespace=namespace, name=name, facets=facets)
        namespace, name = dataset_naming(source.name)
        file_facets: dict[str, DatasetFacet] = {}
        if source.version is not None:
            file_facets["version"] = self._version(source.version)
        return InputDataset(namespace=namespace, name=name, facets=file_facets)

    def _delivery(self, delivery: Delivery) -> InputDataset:
        namespace, name = dataset_naming(delivery.location)
        manifest = None
        if delivery.manifest is not None:
            table, version = delivery.manifest
            manifest_namespace, manifest_name = self._table_naming(table)
            manifest = ManifestReference(
                table=table, namespace=manifest_namespace, name=manifest_name, version=str(version)
            )
        facet = MedlakeDeliveryInputFacet(
            files=sum(count for _, count in delivery.files_per_table),
            filesPerTable=dict(delivery.files_per_table),
            manifest=manifest,
            producer=self.producer,
        )
        return InputDataset(
            namespace=namespace, name=name, facets={}, inputFacets={"medlake_delivery": facet}
        )

    def _output(self, target: Target) -> OutputDataset:
        namespace, name = self._table_naming(target.name)
        facets = self._table_facets(target.name, str(target.version))
        columns = target.columns if target.columns is not None else self._columns(target.name)
        if columns is not None:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(
                fields=[
                    schema_dataset.SchemaDatasetFacetFields(name=column, type=kind, fields=None)
                    for column, kind in columns
                ],
                producer=self.producer,
            )
        return OutputDataset(namespace=namespace, name=name, facets=facets)

    def _columns(self, table: str) -> tuple[tuple[str, str], ...] | None:
        if self.registry is None or table not in self.registry:
            return None
        return tuple((column.name, column.type) for column in self.registry.get(table).columns)

    def _version(self, version: str) -> dataset_version_dataset.DatasetVersionDatasetFacet:
        return dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=version, producer=self.producer
        )


@contextmanager
def abort_on_sigterm(recorder: LineageRecorder) -> Iterator[None]:
    """While the body runs, SIGTERM (Airflow's task timeout or kill, a container stop) first
    sends the run's ABORT, then does what it did before: the previous handler, else the
    default (the process ends as killed by SIGTERM). Only the main thread may install a
    signal handler: elsewhere (a job on a thread of a server) the body runs unguarded, and
    the next run's `close_orphaned_runs` ends a run that was killed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:  # SIGTERM does not end this process: nothing to report
        yield
        return

    def _abort(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if not recorder.ended:
            recorder.abort(f"terminated by {signal.Signals(signum).name}")
        if callable(previous):
            previous(signum, frame)
        else:  # the default action: end the process as the signal would have
            os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, _abort)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _iso(moment: dt.datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a `Z`, e.g. 2024-03-01T00:00:00.000Z."""
    utc = moment.astimezone(dt.UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
