"""Job entry points: `run(ctx)` per job; `lakehouse run <job>` and spark-submit dispatch here."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from medlake.config import Settings
from medlake.tables import Registry

if TYPE_CHECKING:
    from typing import Any

    from pyspark.sql import SparkSession

    from medlake.io import TableIO
    from medlake.lineage import LineageRecorder
    from medlake.sources import PlantSource


def submit(job: str) -> None:
    """Entry point of `spark-submit jobs/<job>.py ARGS`: the same as `lakehouse run <job> ARGS`
    (an `--env E` anywhere in ARGS selects the configuration overlay); exits with its code."""
    import sys

    from medlake.cli import main

    sys.exit(main(run_argv(job, sys.argv[1:])))


def run_argv(job: str, args: list[str]) -> list[str]:
    """The `lakehouse` command line of `jobs/<job>.py ARGS`: `--env E` anywhere in ARGS
    moves before `run` (it is an option of `lakehouse`, not of `run`)."""
    head: list[str] = []
    if "--env" in args:
        at = args.index("--env")
        head, args = args[at : at + 2], args[:at] + args[at + 2 :]
    return [*head, "run", job, *args]


def new_run_id(job: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"manual__{stamp}__{job}__{uuid.uuid4().hex[:6]}"


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
        from medlake.silver.spec import full_registry

        return full_registry(self.settings.conf_dir)

    @cached_property
    def sources(self) -> dict[str, PlantSource]:
        from medlake.config import ConfigError

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
        from medlake.sources import load_sources

        return load_sources(self.settings.conf_dir / "sources")

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            from medlake.spark import build_spark

            self._spark = build_spark(self.settings, app_name=f"medlake-{self.job}")
        return self._spark

    @cached_property
    def io(self) -> TableIO:
        """The table layer; every committed write is appended to the audit trail."""
        from medlake.governance.audit import AuditEvent, AuditTrail
        from medlake.io import CommitContext, TableIO, WriteResult

        trail = AuditTrail(self.settings, self.registry)

        def audit(name: str, result: WriteResult, commit: CommitContext) -> None:
            trail.record(
                AuditEvent(
                    action="write",
                    table_name=name,
                    table_version=result.version,
                    row_count=result.rows_written,
                    job=commit.job,
                    run_id=commit.run_id,
                    logical_date=commit.logical_date,
                    details={"operation": result.operation, "files_added": result.files_added},
                )
            )

        return TableIO(self.spark, self.settings, self.registry, on_write=audit)

    @property
    def landing(self) -> Path:
        return Path(self.settings.resolve(self.settings.landing.root))

    def lineage(self) -> LineageRecorder:
        """The run's recorder: OpenLineage events as configured, and `_lineage` edges."""
        from medlake.lineage import emitter_from_config

        return self._recorder(emitter_from_config(self.settings.lineage, self.settings.home))

    def edges(self) -> LineageRecorder:
        """A recorder of one table's lineage edges for `_lineage`, emitting no run events."""
        from medlake.lineage import NullEmitter

        return self._recorder(NullEmitter())

    def _recorder(self, emitter: Any) -> LineageRecorder:
        from medlake.lineage import LineageRecorder

        return LineageRecorder(
            job=self.job,
            run_id=self.run_id,
            logical_date=self.logical_date,
            namespace=self.settings.storage_root,
            emitter=emitter,
        )

    def record_edges(self, rows: list[dict[str, Any]]) -> None:
        """Append lineage edge rows (from `edges().rows()`) to the `_lineage` table."""
        if not rows:
            return
        from medlake.io import CommitContext

        frame = self.spark.createDataFrame(rows, self.registry.get("_lineage").spark_schema)
        commit = CommitContext(job=self.job, run_id=self.run_id, logical_date=self.logical_date)
        self.io.append("_lineage", frame, ctx=commit)
