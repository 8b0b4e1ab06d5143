"""Job `train`: fit a model (conf/models) on silver as of a date, log it to MLflow as challenger.

Idempotent: when the newest registered version was trained on the same input table versions,
as-of date, lateness definition and configuration, nothing is trained or registered again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from medlake.config import ConfigError
from medlake.gold.metrics import load_dictionary
from medlake.io import code_version
from medlake.ml import late_delivery as ld
from medlake.ml.config import ModelConfig, load_model_config
from medlake.ml.late_delivery import INPUTS, LABEL
from medlake.ml.tracking import ModelNotReadyError, ModelRegistry, TrainingRecord
from medlake.runtime import JobContext, JobResult, lineage_run

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from medlake.ml.late_delivery import LateDeliveryConfig

MODELS = ("late_delivery",)  # models with an implementation in medlake.ml


def run(ctx: JobContext) -> JobResult:

    config = model_config(ctx)
    tolerance = late_tolerance_days(ctx)
    versions = input_versions(ctx)
    frames = read_inputs(ctx, versions)
    as_of = ctx.logical_date if ctx.dates else latest_receipt(frames)
    ctx = dataclasses.replace(ctx, dates=[as_of])  # the run's logical date is its as-of date
    fingerprint = _fingerprint(config, as_of, versions, tolerance)
    registry = ModelRegistry(ctx.settings)
    latest = registry.latest(config.registered_model)
    about = {  # what every outcome reports first
        "run_id": ctx.run_id,
        "model": config.name,
        "registered_model": config.registered_model,
        "as_of": as_of.isoformat(),
    }
    if latest is not None and latest.tags.get("fingerprint") == fingerprint:
        return JobResult.of(
            ctx,
            {
                **about,
                "trained": False,
                "model_version": latest.version,
                "message": f"version {latest.version} was trained on the same input versions, "
                "as-of date, lateness definition and configuration: nothing to do",
                "exit_code": 0,
            },
        )

    with lineage_run(ctx, reads=versions):
        features = ld.add_features(
            ld.order_lines(*(frames[t] for t in ld.INPUTS)),
            history=config.history,
            late_tolerance_days=tolerance,
        ).cache()  # training and holdout both come from it
        train, holdout = ld.split(
            features, as_of=as_of, holdout_days=config.holdout.days, late_tolerance_days=tolerance
        )
        train, holdout = train.cache(), holdout.cache()
        cutoff = as_of - dt.timedelta(days=config.holdout.days)
        _check_training_data(train, config, as_of, cutoff)
        model = ld.build_pipeline(config).fit(train)
        on_holdout = ld.evaluate(ld.predict(model, holdout), threshold=config.threshold)
        on_train = ld.evaluate(ld.predict(model, train), threshold=config.threshold)
        importance = ld.feature_importances(model, train)
        sample = train.select(*config.inputs).limit(5)
        inputs = {f"input.{table}": str(version) for table, version in versions.items()}
        tags = {
            "fingerprint": fingerprint,
            "model": config.name,
            "as_of": as_of.isoformat(),
            "holdout_cutoff": cutoff.isoformat(),
            "late_tolerance_days": str(tolerance),
            "lakehouse_run_id": ctx.run_id,
            "code_version": code_version(),
            **inputs,
        }
        record = TrainingRecord(
            registered_model=config.registered_model,
            experiment=config.experiment,
            run_name=f"train-{as_of.isoformat()}",
            params=_params(config, as_of, tolerance, versions),
            metrics={
                **on_holdout.as_dict("holdout"),
                **on_train.as_dict("train"),
                **{f"importance.{k}": v for k, v in importance.items()},
            },
            tags=tags,
            config=config.model_dump(mode="json"),
            feature_importance=importance,
            input_sample=sample.toPandas(),
            output_sample=model.transform(sample).select("prediction").toPandas(),
            description=f"{config.description} Trained as of {as_of} on "
            + ", ".join(f"{t} v{v}" for t, v in versions.items())
            + ".",
        )
        registered = registry.log_and_register(record, model)
        for frame in (train, holdout, features):
            frame.unpersist()
    return JobResult.of(
        ctx,
        {
            **about,
            "trained": True,
            "model_version": registered.version,
            "alias": "challenger",
            "mlflow_run_id": registered.run_id,
            "train_rows": on_train.model.rows,
            "holdout_rows": on_holdout.model.rows,
            "holdout_auc": on_holdout.model.auc,
            "baseline_auc": on_holdout.baseline.auc,
            "auc_lift": on_holdout.auc_lift,
            "holdout_precision": on_holdout.model.precision,
            "holdout_recall": on_holdout.model.recall,
            "inputs": versions,
            "feature_importance": importance,
            "exit_code": 0,
        },
    )


# ---------------------------------------------------------------- shared by the model jobs


def model_config(ctx: JobContext) -> LateDeliveryConfig:
    """The validated configuration of `ctx.model`; a `ConfigError` says what to pass."""

    if not ctx.model:
        raise ConfigError(f"job {ctx.job} needs --model NAME (a file conf/models/NAME.yaml)")
    if ctx.model not in MODELS:
        path = ctx.settings.conf_dir / "models" / f"{ctx.model}.yaml"
        if not path.is_file():  # say which models are configured
            load_model_config(ctx.settings.conf_dir, ctx.model, ModelConfig)
        raise ConfigError(
            f"{path}: model {ctx.model!r} has no implementation in medlake.ml; "
            f"implemented models: {', '.join(MODELS)}"
        )
    return ld.load_config(ctx.settings.conf_dir)


def late_tolerance_days(ctx: JobContext) -> int:
    """The group's one definition of late: the `otd` metric's `late_tolerance_days`."""

    value = load_dictionary(ctx.settings.conf_dir).get("otd").params["late_tolerance_days"]
    if value != int(value) or value < 0:
        raise ConfigError(
            f"{ctx.settings.conf_dir / 'metrics'}: metric 'otd' parameter late_tolerance_days "
            f"must be a whole number of days >= 0, found {value}"
        )
    return int(value)


def input_versions(ctx: JobContext) -> dict[str, int]:
    """The current Delta version of each input; a table never written stops the job."""

    versions: dict[str, int] = {}
    for table in INPUTS:
        version = ctx.io.version(table)
        if version is None:
            raise ModelNotReadyError(
                f"{table} has never been written under {ctx.settings.storage_root}; build "
                "silver first (lakehouse run ingest / silver --date D)"
            )
        versions[table] = version
    return versions


def read_inputs(ctx: JobContext, versions: dict[str, int]) -> dict[str, DataFrame]:
    """Each input at exactly the recorded version (a run reads one snapshot)."""
    return {table: ctx.io.read(table, version=v) for table, v in versions.items()}


def latest_receipt(frames: dict[str, DataFrame]) -> dt.date:
    """The as-of date when none is given: the latest receipt date in silver."""

    row = frames["silver.goods_receipts"].agg(F.max("receipt_date").alias("last")).first()
    if row is None or row["last"] is None:
        raise ModelNotReadyError(
            "silver.goods_receipts holds no receipt: nothing to learn lateness from; "
            "ingest and build silver for a period with deliveries first"
        )
    last: dt.date = row["last"]
    return last


def _check_training_data(
    train: DataFrame, config: LateDeliveryConfig, as_of: dt.date, cutoff: dt.date
) -> None:

    row = train.agg(F.count(F.lit(1)).alias("n"), F.sum(LABEL).alias("late")).first()
    n = int(row["n"] or 0) if row else 0
    late = int(row["late"] or 0) if row else 0
    if n < config.min_training_rows or late in (0, n):
        raise ModelNotReadyError(
            f"model {config.name}: only {n} lines ({late} late) had a known outcome before the "
            f"holdout cutoff {cutoff} (as-of {as_of} minus holdout.days={config.holdout.days}); "
            f"training needs min_training_rows={config.min_training_rows} lines of both "
            "classes: train on a later --date, or lower holdout.days or min_training_rows in "
            f"conf/models/{config.name}.yaml"
        )


def _params(
    config: LateDeliveryConfig, as_of: dt.date, tolerance: int, versions: dict[str, int]
) -> dict[str, Any]:
    algorithm = {f"algorithm.{k}": v for k, v in config.algorithm.model_dump().items()}
    return {
        **algorithm,
        "features.categorical": config.features.categorical,
        "features.numeric": config.features.numeric,
        "history.windows_days": config.history.windows_days,
        "history.prior_late_rate": config.history.prior_late_rate,
        "history.prior_weight": config.history.prior_weight,
        "holdout.days": config.holdout.days,
        "threshold": config.threshold,
        "min_training_rows": config.min_training_rows,
        "as_of": as_of.isoformat(),
        "late_tolerance_days": tolerance,
        **{f"input_version.{table}": v for table, v in versions.items()},
    }


def _fingerprint(
    config: LateDeliveryConfig, as_of: dt.date, versions: dict[str, int], tolerance: int
) -> str:
    """What a trained version depends on; equal fingerprints mean equal training."""
    payload = {
        "config": config.fingerprint(),
        "as_of": as_of.isoformat(),
        "inputs": versions,
        "late_tolerance_days": tolerance,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


if __name__ == "__main__":  # spark-submit medlake/jobs/train.py --date D [...]
    from medlake.cli import submit

    submit("train")
