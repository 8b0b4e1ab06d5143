"""Record what one job run read and wrote, as `_lineage` rows and OpenLineage run events."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import urllib.request
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medlake.config import ConfigError, format_validation_error

LOGGER = logging.getLogger("medlake.lineage")

DEFAULT_PRODUCER = "urn:medlake:lakehouse"
DEFAULT_JOB_NAMESPACE = "medlake"
DEFAULT_FOLDER = "var/openlineage"
FILE_NAMESPACE = "file"
RUN_EVENT_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACET_SCHEMA_URLS = {
    "version": "1-0-0/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
    "schema": "1-0-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    "nominalTime": "1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet",
    "errorMessage": "1-0-0/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
}
# Fixed namespace for deriving OpenLineage run ids from the project's run ids (uuid5).
RUN_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:medlake:lineage:run")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

EventType = Literal["START", "COMPLETE", "FAIL"]
SourceKind = Literal["table", "file"]
Transport = Literal["file", "http", "none"]


# --- emitters -----------------------------------------------------------------------------


class Emitter(ABC):
    """Sends one OpenLineage event somewhere; never raises, counts what it could not send."""

    def __init__(self) -> None:
        self.sent = 0
        self.failures = 0

    def emit(self, event: Mapping[str, Any]) -> None:
        """Send `event`; a failure is logged as a warning and counted, never raised."""
        try:
            self._send(event)
        except Exception as exc:  # lineage must never fail the job
            self.failures += 1
            LOGGER.warning(
                "OpenLineage %s event for job %r not emitted through %s: %s",
                event.get("eventType"),
                event.get("job", {}).get("name"),
                self,
                exc,
            )
        else:
            self.sent += 1

    @abstractmethod
    def _send(self, event: Mapping[str, Any]) -> None: ...


class NullEmitter(Emitter):
    """Discards every event (lineage events switched off)."""

    def _send(self, event: Mapping[str, Any]) -> None:
        """Drop the event."""

    def __repr__(self) -> str:
        return "NullEmitter()"


class FileEmitter(Emitter):
    """Appends each event as one JSON line to `<folder>/<job>.jsonl`."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = Path(folder)

    def path_for(self, job: str) -> Path:
        """The JSON-lines file that holds the events of `job`."""
        return self.folder / f"{re.sub(r'[^A-Za-z0-9._-]', '_', job)}.jsonl"

    def _send(self, event: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self.path_for(str(event["job"]["name"])).open("a", encoding="utf-8") as out:
            out.write(line)

    def __repr__(self) -> str:
        return f"FileEmitter({str(self.folder)!r})"


class HttpEmitter(Emitter):
    """POSTs each event as JSON to `<url>/api/v1/lineage` (Marquez and compatible servers)."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 5.0) -> None:
        super().__init__()
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"OpenLineage url must start with http:// or https://, got {url!r}")
        self.endpoint = url.rstrip("/") + "/api/v1/lineage"
        self.timeout_s = timeout_s
        self._api_key = api_key

    def _send(self, event: Mapping[str, Any]) -> None:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = json.dumps(event).encode("utf-8")
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()

    def __repr__(self) -> str:
        return f"HttpEmitter({self.endpoint!r})"


# --- configuration ------------------------------------------------------------------------


class LineageSettings(BaseModel):
    """The `lineage` block of the settings; secrets are named by variable, never stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Transport = "file"
    folder: str = DEFAULT_FOLDER
    url: str | None = None
    api_key_env: str | None = "OPENLINEAGE_API_KEY"
    timeout_s: float = Field(default=5.0, gt=0)

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
    if settings.transport == "none":
        return NullEmitter()
    if settings.transport == "http":
        return _http_emitter(settings)
    folder = Path(settings.folder)
    return FileEmitter(folder if folder.is_absolute() else project_root / folder)


def _http_emitter(settings: LineageSettings) -> HttpEmitter:
    if not settings.url:
        raise ConfigError(
            "lineage settings: field 'url' is required when transport is 'http'; set it to the "
            "OpenLineage server base URL (e.g. http://marquez:5000) or use transport 'file'"
        )
    api_key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
    return HttpEmitter(settings.url, api_key=api_key or None, timeout_s=settings.timeout_s)


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


def openlineage_run_id(job: str, run_id: str, job_namespace: str = DEFAULT_JOB_NAMESPACE) -> str:
    """`run_id` itself when it is a UUID, else a uuid5 of (job namespace, job, run id).

    The job takes part because one Airflow run id is shared by every task of a DAG run.
    """
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(RUN_ID_NAMESPACE, f"{job_namespace}/{job}/{run_id}"))


class LineageRecorder:
    """Collects the sources and targets of one job run; emits its OpenLineage events.

    >>> rec = LineageRecorder(job="silver_supplier", run_id="manual__1",
    ...                       logical_date=dt.date(2024, 3, 1), namespace="file:///lake",
    ...                       emitter=NullEmitter())
    >>> rec.start()
    >>> rec.read_table("bronze.sap__lfa1", 7)
    >>> rec.wrote("silver.supplier", 12)
    >>> [(r["target_version"], r["source"], r["source_version"]) for r in rec.rows()]
    [(12, 'bronze.sap__lfa1', '7')]
    >>> rec.complete()
    """

    def __init__(
        self,
        *,
        job: str,
        run_id: str,
        logical_date: dt.date | None,
        namespace: str,
        emitter: Emitter,
        job_namespace: str = DEFAULT_JOB_NAMESPACE,
        producer: str = DEFAULT_PRODUCER,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.job = job
        self.run_id = run_id
        self.logical_date = logical_date
        self.namespace = namespace
        self.emitter = emitter
        self.job_namespace = job_namespace
        self.producer = producer
        self.openlineage_run_id = openlineage_run_id(job, run_id, job_namespace)
        self._clock = clock
        self._sources: dict[tuple[SourceKind, str], Source] = {}
        self._targets: dict[tuple[str, int], Target] = {}
        self.ended = False  # COMPLETE or FAIL sent

    # recording

    def read_table(self, name: str, version: int | None) -> None:
        """Record that the run read table `name` at Delta `version` (None: not known)."""
        self._add_source(Source("table", name, None if version is None else str(version)))

    def read_file(self, uri: str, checksum: str) -> None:
        """Record that the run read the source file `uri` whose sha256 (hex) is `checksum`."""
        if not _SHA256.match(checksum):
            raise ValueError(f"checksum of {uri!r} must be 64 lowercase hex digits (sha256)")
        self._add_source(Source("file", uri, checksum))

    def wrote(self, name: str, version: int, columns: Mapping[str, str] | None = None) -> None:
        """Record that the run committed `version` of table `name` (optionally its columns)."""
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

    def event(
        self, event_type: EventType, *, error: str | None = None, stack_trace: str | None = None
    ) -> dict[str, Any]:
        """The OpenLineage RunEvent for `event_type`, as a JSON-ready dict."""
        run = {"runId": self.openlineage_run_id, "facets": self._run_facets(error, stack_trace)}
        return {
            "eventType": event_type,
            "eventTime": _iso(self._clock()),
            "producer": self.producer,
            "schemaURL": RUN_EVENT_SCHEMA_URL,
            "run": run,
            "job": {"namespace": self.job_namespace, "name": self.job},
            "inputs": [self._input(source) for source in self._sources.values()],
            "outputs": [self._output(target) for target in self._targets.values()],
        }

    def _facet(self, key: str, **fields: Any) -> dict[str, Any]:
        schema_url = f"https://openlineage.io/spec/facets/{_FACET_SCHEMA_URLS[key]}"
        return {"_producer": self.producer, "_schemaURL": schema_url, **fields}

    def _run_facets(self, error: str | None, stack_trace: str | None) -> dict[str, Any]:
        facets: dict[str, Any] = {}
        if self.logical_date is not None:
            start = dt.datetime.combine(self.logical_date, dt.time(), dt.UTC)
            end = start + dt.timedelta(days=1)
            facets["nominalTime"] = self._facet(
                "nominalTime", nominalStartTime=_iso(start), nominalEndTime=_iso(end)
            )
        if error is not None:
            trace = {} if stack_trace is None else {"stackTrace": stack_trace}
            facets["errorMessage"] = self._facet(
                "errorMessage", message=error, programmingLanguage="python", **trace
            )
        return facets

    def _input(self, source: Source) -> dict[str, Any]:
        namespace = self.namespace if source.kind == "table" else FILE_NAMESPACE
        facets = {} if source.version is None else {"version": self._version(source.version)}
        return {"namespace": namespace, "name": source.name, "facets": facets}

    def _output(self, target: Target) -> dict[str, Any]:
        facets = {"version": self._version(str(target.version))}
        if target.columns is not None:
            fields = [{"name": name, "type": kind} for name, kind in target.columns]
            facets["schema"] = self._facet("schema", fields=fields)
        return {"namespace": self.namespace, "name": target.name, "facets": facets}

    def _version(self, version: str) -> dict[str, Any]:
        return self._facet("version", datasetVersion=version)


def _iso(moment: dt.datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a `Z`, e.g. 2024-03-01T00:00:00.000Z."""
    utc = moment.astimezone(dt.UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
