"""The task layout of the Airflow DAG family (conf/pipeline.yaml), validated; imports nothing heavy.

The DAG files call `load_pipeline` and `plant_ids` while Airflow parses them, so this module
only needs pydantic and PyYAML.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medlake.config import (
    ENV_VAR,
    ConfigError,
    deep_merge,
    format_validation_error,
    home_dir,
    read_yaml,
)

TASK_KINDS = ("ingest", "silver", "scan", "gates", "gold", "train", "validate", "score", "report")
_ID = r"^[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DagSchedule(_Strict):
    dag_id: str = Field(pattern=_ID)
    schedule: str = Field(min_length=9, description="five-field cron expression")
    timezone: str = Field(
        default="UTC",
        pattern=r"^UTC$",
        description="UTC only: a run's --date is the UTC day of its data interval",
    )
    start_date: dt.date
    catchup: bool
    max_active_runs: int = Field(ge=1)

    @model_validator(mode="after")
    def _five_fields(self) -> DagSchedule:
        if len(self.schedule.split()) != 5:
            raise ValueError(f"schedule {self.schedule!r} is not a five-field cron expression")
        return self


class ModelsDag(DagSchedule):
    names: list[str] = Field(min_length=1)


class SilverGroup(_Strict):
    entities: list[str] = Field(min_length=1)
    after: list[str] = Field(default_factory=list)


class Pipeline(_Strict):
    connection: str = Field(min_length=1)
    pool: str = Field(min_length=1)
    alerts: str = Field(min_length=1)
    nightly: DagSchedule
    models: ModelsDag
    retries: int = Field(ge=0)
    retry_delay_minutes: int = Field(ge=1)
    timeout_minutes: dict[str, int]
    ingest_tasks: Literal["one", "per-plant"] = "one"
    silver_groups: dict[str, SilverGroup] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Pipeline:
        missing = [k for k in TASK_KINDS if k not in self.timeout_minutes]
        unknown = sorted(set(self.timeout_minutes) - set(TASK_KINDS))
        if missing or unknown:
            raise ValueError(
                f"timeout_minutes needs exactly {', '.join(TASK_KINDS)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else "")
            )
        seen: dict[str, str] = {}
        for name, group in self.silver_groups.items():
            for entity in group.entities:
                if entity in seen:
                    raise ValueError(
                        f"silver entity {entity} is in groups {seen[entity]} and {name}"
                    )
                seen[entity] = name
            bad = [a for a in group.after if a not in self.silver_groups or a == name]
            if bad:
                raise ValueError(f"silver group {name}: after names unknown groups {bad}")
        self.silver_order()  # refuses a cycle
        return self

    def silver_order(self) -> list[str]:
        """Groups in an order that respects `after` (stable: file order among equals)."""
        done: list[str] = []
        pending = list(self.silver_groups)
        while pending:
            ready = [g for g in pending if set(self.silver_groups[g].after) <= set(done)]
            if not ready:
                raise ValueError(f"silver groups {', '.join(pending)} wait for each other")
            done.append(ready[0])
            pending.remove(ready[0])
        return done

    def alerts_path(self, conf_dir: Path | None = None) -> Path:
        """The alert file; relative: against the home folder of the configuration in
        `conf_dir` (medlake.config.home_dir)."""
        path = Path(self.alerts)
        return path if path.is_absolute() else home_dir(conf_dir) / path


def load_pipeline(conf_dir: Path, env: str | None = None) -> Pipeline:
    """conf/pipeline.yaml with the `pipeline:` section of the environment's overlay
    (conf/env/<env>.yaml; env from the argument, else $LAKEHOUSE_ENV, else `local`)."""
    path = conf_dir / "pipeline.yaml"
    sources: list[tuple[Path | str, Mapping[str, Any]]] = [(path, read_yaml(path))]
    overlay = conf_dir / "env" / f"{env or os.environ.get(ENV_VAR) or 'local'}.yaml"
    if overlay.exists():
        section = read_yaml(overlay).get("pipeline")
        if section is not None:
            if not isinstance(section, dict):
                raise ConfigError(f"{overlay}: `pipeline` must be a mapping of pipeline.yaml keys")
            sources.append((f"{overlay} (section pipeline)", section))
    data: dict[str, Any] = {}
    for _, part in sources:
        data = deep_merge(data, part)
    try:
        return Pipeline.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, sources)) from None


def plant_ids(conf_dir: Path) -> list[str]:
    """The configured plants (one conf/sources/<PLANT>.yaml each), in a stable order."""
    folder = conf_dir / "sources"
    plants = sorted(p.stem for p in folder.glob("*.yaml"))
    if not plants:
        raise ConfigError(f"{folder}: no plant configured (add <PLANT>.yaml)")
    return plants
