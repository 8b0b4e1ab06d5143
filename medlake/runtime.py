"""The job runtime: what every job gets (`JobContext`: settings, dates, run id, the Spark
session, the table layer with its audit hook, lineage), the run's lineage events
(`lineage_run`) and what every job returns (`JobResult`: its exit code, failed gates and
figures). Library code below the jobs uses it; it imports no job and no command line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlake.config import ConfigError, Settings
from medlake.entities import check_source_mappings, full_registry, load_specs
from medlake.governance.audit import AuditTrail, write_auditor
from medlake.governance.identity import job_principal
from medlake.io import CommitContext, TableIO
from medlake.io.commit import new_run_id  # re-exported: run ids belong to commits
from medlake.lineage import (
    LineageRecorder,
    NullEmitter,
    abort_on_sigterm,
    emitter_from_config,
    task_id_from_env,
    try_number_from_env,
)
from medlake.sources import load_sources
from medlake.spark import build_spark
from medlake.tables import Registry

__all__ = [
    "EXIT_NOT_READY",
    "EXIT_OK",
    "JobContext",
    "JobResult",
    "lineage_run",
    "new_run_id",
]

# A job's exit codes (`lakehouse run`, `spark-submit jobs/<job>.py`, the shared driver): 0 done,
# 1 failed (a quality gate), 75 not ready yet
EXIT_OK = 0
EXIT_NOT_READY = 75  # EX_TEMPFAIL: the input or model a job needs is not there yet; nothing written

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from medlake.io import TableIO
    from medlake.lineage import LineageRecorder
    from medlake.sources import PlantSource


@dataclass
class JobContext:
    """What every job gets: settings, the dates it processes, its run id, and lazy resources."""

    settings: Settings
    job: str
    dates: list[dt.date]
    run_id: str
    plants: list[str] | None = None  # None: every configured plant
    force: bool = False
    entities: list[str] | None = None  # silver: only these entities (default all)
    model: str | None = None  # train / validate / score: the model name in conf/models
    _spark: SparkSession | None = field(default=None, repr=False)

    @property
    def logical_date(self) -> dt.date:
        return max(self.dates)

    @cached_property
    def registry(self) -> Registry:

        return full_registry(self.settings.conf_dir)

    @cached_property
    def sources(self) -> dict[str, PlantSource]:

        every = self.all_sources
        if self.plants is None:
            return every
        unknown = [p for p in self.plants if p not in every]
        if unknown:
            raise ConfigError(
                f"unknown plant {', '.join(unknown)}; configured plants: {', '.join(every)} "
                f"(add conf/sources/<PLANT>.yaml to onboard one)"
            )
        return {p: every[p] for p in self.plants}

    @cached_property
    def all_sources(self) -> dict[str, PlantSource]:

        conf = self.settings.conf_dir
        sources = load_sources(conf / "sources")
        if (conf / "silver").is_dir():  # every mapping against the model, before anything runs
            check_source_mappings(sources, load_specs(conf / "silver"), conf / "sources")
        return sources

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = build_spark(self.settings, app_name=f"medlake-{self.job}")
        return self._spark

    @cached_property
    def trail(self) -> AuditTrail:
        """The audit trail; opening it loads the audit key and checks the anchor setting, so
        a missing key stops the job before it writes anything."""

        return AuditTrail(self.settings, self.registry)

    @cached_property
    def io(self) -> TableIO:
        """The table layer; every committed write and every maintenance change (optimize,
        vacuum, schema change, restore) is appended to the audit trail."""

        on_write = write_auditor(self.trail, self.principal)
        return TableIO(self.spark, self.settings, self.registry, on_write=on_write)

    @cached_property
    def principal(self) -> str:
        """Who the job's writes are recorded for (`identity.job_principal`)."""
        return job_principal(self.settings)

    @property
    def landing(self) -> Path:
        return Path(self.settings.resolve(self.settings.landing.root))

    def lineage(self) -> LineageRecorder:
        """The run's recorder: OpenLineage events as configured, and `_lineage` edges."""

        return self._recorder(emitter_from_config(self.settings.lineage, self.settings.home))

    def edges(self) -> LineageRecorder:
        """A recorder of one table's lineage edges for `_lineage`, emitting no run events."""

        return self._recorder(NullEmitter())

    def _recorder(self, emitter: Any) -> LineageRecorder:
        """A recorder that names tables by their place under the storage root (the registry
        places them and gives their columns), with the whole date range as nominal time and
        the Airflow try (from the environment) in its OpenLineage run id."""

        return LineageRecorder(
            job=self.job,
            run_id=self.run_id,
            logical_date=self.logical_date,
            period=(min(self.dates), max(self.dates)),
            storage_root=self.settings.storage_root,
            registry=self.registry,
            try_number=try_number_from_env(),
            task=task_id_from_env(),
            emitter=emitter,
        )

    def record_edges(self, rows: list[dict[str, Any]]) -> None:
        """Append lineage edge rows (from `edges().rows()`) to the `_lineage` table."""
        if not rows:
            return

        frame = self.spark.createDataFrame(rows, self.registry.get("_lineage").spark_schema)
        commit = CommitContext(job=self.job, run_id=self.run_id, logical_date=self.logical_date)
        self.io.append("_lineage", frame, ctx=commit)


@dataclass(frozen=True)
class JobResult(Mapping[str, Any]):
    """What a job's `run(ctx)` returns: its exit code and failed quality gates, typed, and
    `summary`, the figures it reports in the order `lakehouse run` prints them.

    `summary` holds `run_id`, `failed_gates` and `exit_code` too where the job reports
    them (they must agree with the fields; `JobResult.of` takes them from it). A job's figures
    are read as from a read-only mapping over `summary`: `result["rows_read"]`,
    `result.get("unbalanced", [])`; the exit code and gates as fields: `result.exit_code`,
    `result.failed_gates`. A job that is not ready raises `NotReadyError` (exit code
    EXIT_NOT_READY through the command line) rather than returning.
    """

    job: str
    run_id: str
    exit_code: int = EXIT_OK
    failed_gates: tuple[str, ...] = ()
    summary: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        reported = {
            "run_id": (self.summary.get("run_id", self.run_id), self.run_id),
            "exit_code": (self.summary.get("exit_code", self.exit_code), self.exit_code),
            "failed_gates": (
                list(self.summary.get("failed_gates", self.failed_gates)),
                list(self.failed_gates),
            ),
        }
        for key, (in_summary, typed) in reported.items():
            if in_summary != typed:
                raise ValueError(f"job {self.job}: summary {key} {in_summary!r} is not {typed!r}")

    @classmethod
    def of(cls, ctx: JobContext, summary: Mapping[str, Any]) -> JobResult:
        """The result of `ctx`'s job with the figures `summary` (in print order); its exit
        code and failed gates are the summary's `exit_code` and `failed_gates` (0 and none
        when it has none)."""
        return cls(
            job=ctx.job,
            run_id=ctx.run_id,
            exit_code=int(summary.get("exit_code", EXIT_OK)),
            failed_gates=tuple(str(gate) for gate in summary.get("failed_gates", ())),
            summary=summary,
        )

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.summary)

    def __len__(self) -> int:
        return len(self.summary)

    def printed(self) -> dict[str, Any]:
        """The figures `lakehouse run` prints: the summary without its maps and lists of rows
        (manifests, reconciliations), `unbalanced` as a count."""
        figures = {
            k: v
            for k, v in self.summary.items()
            if not isinstance(v, dict)
            and not (isinstance(v, list) and v and isinstance(v[0], dict))
        }
        if "unbalanced" in self.summary:
            figures["unbalanced"] = len(self.summary["unbalanced"])
        return figures

    def render(self) -> str:
        """`printed()` as the JSON `lakehouse run` writes to standard output."""
        return json.dumps(self.printed(), indent=2, default=str)


@contextmanager
def lineage_run(
    ctx: JobContext, reads: Mapping[str, int | None] | None = None
) -> Iterator[LineageRecorder]:
    """One job run's OpenLineage events around the body: START (with `reads`, the input tables
    and versions known up front), FAIL with the error when the body raises (re-raised), ABORT
    when the process gets SIGTERM, else COMPLETE, unless the body ended the run itself
    (`recorder.fail(...)` for a failed gate). Earlier runs of the job that never ended (the
    process was killed outright) are closed with ABORT first.
    """

    recorder = ctx.lineage()
    recorder.close_orphaned_runs()
    for table, version in (reads or {}).items():
        recorder.read_table(table, version)
    recorder.start()
    with abort_on_sigterm(recorder):
        try:
            yield recorder
        except BaseException as exc:
            if not recorder.ended:
                recorder.fail(str(exc))
            raise
    if not recorder.ended:
        recorder.complete()
