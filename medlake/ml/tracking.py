"""The one place that talks to MLflow: training runs, logged Spark models, registry aliases.

Stores come from `settings.mlflow`: a plain folder (the embedded default, `var/mlruns`)
holds an SQLite database for runs and the registry (`mlflow.db`) and an `artifacts/`
folder; any URI (`sqlite:///...`, `postgresql://...`, `http://mlflow:5000`) is used as
given. MLflow 3 refuses its old file store, and SQLite supports registry aliases, so the
embedded default works offline with nothing to install or download. MLflow is imported
inside the methods (`noqa: PLC0415`): it takes seconds and sets up its logging, and only
model runs need it.

>>> registry = ModelRegistry(settings)                                   # doctest: +SKIP
>>> version = registry.log_and_register(record, fitted_pipeline)         # doctest: +SKIP
>>> registry.by_alias("medlake.late_delivery", CHAMPION)                 # doctest: +SKIP

Promotion moves an alias (`challenger` -> `champion`); registry stages are not used.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyspark

from medlake.config import ConfigError, NotReadyError, Settings

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

# Usage telemetry would try to reach the internet (this product runs offline), and progress
# bars of local artifact copies only clutter job logs.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

CHALLENGER = "challenger"
CHAMPION = "champion"
MODEL_ARTIFACT = "model"
CONFIG_ARTIFACT = "config.json"
IMPORTANCE_ARTIFACT = "feature_importance.json"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "artifacts"


class ModelError(ConfigError):
    """A model job cannot go on for a reason the user can fix; a `ConfigError`, so
    `lakehouse run` prints it as one message and exits 2."""


class ModelNotReadyError(ModelError, NotReadyError):
    """What a model job needs is not there yet (no champion or challenger, too little
    history); `lakehouse run` exits 75 and the nightly DAG skips the task."""


@dataclass(frozen=True)
class Stores:
    """Where runs, the registry and artifacts live."""

    tracking_uri: str
    registry_uri: str
    artifact_location: str | None  # for a folder store: its artifacts folder, as a file URI


def _store_uri(settings: Settings, location: str) -> tuple[str, str | None]:
    if "://" in location and not location.startswith("file:"):
        return location, None
    folder = Path(settings.resolve(location.removeprefix("file://").removeprefix("file:")))
    return f"sqlite:///{folder / DB_FILE}", (folder / ARTIFACTS_DIR).as_uri()


def stores(settings: Settings) -> Stores:
    """Resolve `settings.mlflow` (relative folders against the project) into store URIs."""
    tracking, artifacts = _store_uri(settings, settings.mlflow.tracking_uri)
    registry = tracking
    if settings.mlflow.registry_uri is not None:
        registry, _ = _store_uri(settings, settings.mlflow.registry_uri)
    if tracking.startswith("sqlite:///"):
        Path(tracking.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if registry.startswith("sqlite:///"):
        Path(registry.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return Stores(tracking, registry, artifacts)


@dataclass(frozen=True)
class TrainingRecord:
    """Everything one training run logs besides the model itself."""

    registered_model: str
    experiment: str
    run_name: str
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]  # also set on the model version (fingerprint, as-of, inputs)
    config: Mapping[str, Any]
    feature_importance: Mapping[str, float]
    input_sample: Any  # pandas: a few rows of the pipeline's inputs, for the signature
    output_sample: Any  # pandas: the pipeline's `prediction` on them
    description: str = ""


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version: where it came from and what it was trained on."""

    name: str
    version: int
    run_id: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def input_versions(self) -> dict[str, int]:
        """Delta versions of the tables it was trained on (tags `input.<table>`)."""
        return {
            k.removeprefix("input."): int(v) for k, v in self.tags.items() if k.startswith("input.")
        }


class ModelRegistry:
    """Runs, models and aliases of the configured MLflow stores, through one `MlflowClient`."""

    def __init__(self, settings: Settings) -> None:
        from mlflow.tracking import MlflowClient  # noqa: PLC0415 - MLflow: slow import

        self.stores = stores(settings)
        self.client = MlflowClient(
            tracking_uri=self.stores.tracking_uri, registry_uri=self.stores.registry_uri
        )

    # ------------------------------------------------------------------ reading

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of registered model `name`, oldest first (none: empty)."""
        found = self.client.search_model_versions(f"name = '{_quote(name)}'")
        return sorted((self._info(v) for v in found), key=lambda v: v.version)

    def latest(self, name: str) -> VersionInfo | None:
        every = self.versions(name)
        return every[-1] if every else None

    def by_alias(self, name: str, alias: str) -> VersionInfo | None:
        """The version `alias` points to, or None when the model or the alias does not exist."""
        from mlflow.exceptions import MlflowException  # noqa: PLC0415 - MLflow: slow import

        try:
            found = self.client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return self._info(found)

    def load_model(self, info: VersionInfo, *, spark: SparkSession) -> PipelineModel:
        """The version's fitted Spark pipeline.

        MLflow's Spark flavor copies the model through the JVM of the session that is
        running; `spark` is that session (asking for it makes the caller start one).
        """
        import mlflow.spark  # noqa: PLC0415 - MLflow: slow import

        spark.sparkContext.setJobDescription(f"load model {info.name} v{info.version}")
        uri = self.client.get_model_version_download_uri(info.name, str(info.version))
        model: PipelineModel = mlflow.spark.load_model(uri)
        return model

    def load_config(self, info: VersionInfo) -> dict[str, Any]:
        """The model configuration the version was trained with."""
        data: dict[str, Any] = json.loads(self._artifact_text(info.run_id, CONFIG_ARTIFACT))
        return data

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return dict(self.client.get_run(run_id).data.metrics)

    def describe(self) -> str:
        """Where the registry is, for messages."""
        return self.stores.registry_uri

    # ------------------------------------------------------------------ writing

    def log_and_register(self, record: TrainingRecord, model: PipelineModel) -> VersionInfo:
        """Log a training run (params, metrics, tags, importances, config, the model with its
        signature), register it as a new version and point `challenger` at it."""
        import mlflow  # noqa: PLC0415 - MLflow: slow import
        import mlflow.spark  # noqa: PLC0415 - MLflow: slow import
        from mlflow.models import infer_signature  # noqa: PLC0415 - MLflow: slow import

        experiment_id = self._experiment(record.experiment)
        run = self.client.create_run(
            experiment_id, run_name=record.run_name, tags=dict(record.tags)
        )
        run_id = run.info.run_id
        try:
            self._log_values(run_id, record.params, record.metrics)
            self.client.log_dict(run_id, dict(record.config), CONFIG_ARTIFACT)
            self.client.log_dict(run_id, dict(record.feature_importance), IMPORTANCE_ARTIFACT)
            signature = infer_signature(record.input_sample, record.output_sample)
            self._bind_fluent()
            with mlflow.start_run(run_id=run_id):  # the Spark flavor logs into the active run
                mlflow.spark.log_model(
                    model,
                    artifact_path=MODEL_ARTIFACT,
                    signature=signature,
                    # explicit: inferring them would load the model in a subprocess (a JVM)
                    pip_requirements=[
                        f"pyspark=={pyspark.__version__}",
                        f"mlflow=={mlflow.__version__}",
                    ],
                )
        except BaseException:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        self._ensure_registered(record.registered_model)
        created = self.client.create_model_version(
            record.registered_model,
            source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT}",
            run_id=run_id,
            tags=dict(record.tags),
            description=record.description,
        )
        self.set_alias(record.registered_model, CHALLENGER, int(created.version))
        return self._info(self.client.get_model_version(record.registered_model, created.version))

    def log_validation(
        self,
        info: VersionInfo,
        *,
        experiment: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
    ) -> str:
        """A run recording one validation of `info`; its outcome also goes on the version."""
        experiment_id = self._experiment(experiment)
        run_tags = {**tags, "registered_model": info.name, "model_version": str(info.version)}
        run = self.client.create_run(
            experiment_id, run_name=f"validate-v{info.version}", tags=run_tags
        )
        run_id = str(run.info.run_id)
        self._log_values(run_id, params, metrics)
        self.client.set_terminated(run_id)
        for key, value in {**tags, "validation_run_id": run_id}.items():
            self.client.set_model_version_tag(info.name, str(info.version), key, value)
        return run_id

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point `alias` at `version` (moving it away from whichever version had it)."""
        self.client.set_registered_model_alias(name, alias, str(version))

    # ------------------------------------------------------------------ helpers

    def _bind_fluent(self) -> None:
        """`mlflow.spark.log_model` only logs into the fluent API's active run."""
        import mlflow  # noqa: PLC0415 - MLflow: slow import

        mlflow.set_tracking_uri(self.stores.tracking_uri)
        mlflow.set_registry_uri(self.stores.registry_uri)

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(
            self.client.create_experiment(name, artifact_location=self.stores.artifact_location)
        )

    def _ensure_registered(self, name: str) -> None:
        from mlflow.exceptions import MlflowException  # noqa: PLC0415 - MLflow: slow import

        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(name)

    def _log_values(
        self, run_id: str, params: Mapping[str, Any], metrics: Mapping[str, float]
    ) -> None:
        from mlflow.entities import Metric, Param  # noqa: PLC0415 - MLflow: slow import

        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if not math.isnan(v)],
            params=[Param(k, _param_text(v)) for k, v in params.items()],
        )

    def _artifact_text(self, run_id: str, path: str) -> str:

        with tempfile.TemporaryDirectory() as tmp:
            local = str(self.client.download_artifacts(run_id, path, tmp))
            return Path(local).read_text(encoding="utf-8")

    def _info(self, version: ModelVersion) -> VersionInfo:
        return VersionInfo(
            name=version.name,
            version=int(version.version),
            run_id=str(version.run_id),
            source=str(version.source),
            tags=dict(version.tags or {}),
            aliases=tuple(version.aliases or ()),
        )


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _param_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
