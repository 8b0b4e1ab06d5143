"""Job `validate`: judge the challenger on a time-based holdout; promote it when it passes.

The holdout is every line ordered in the last `holdout.days` days before the as-of date
(`--date`, else the latest receipt in silver) whose outcome is known by then; the challenger
never saw those lines (it was trained on outcomes known before its own, earlier or equal,
holdout window). It must reach the promotion thresholds in conf/models, among them an AUC
above the naive baseline's (the supplier's historic late rate). Passing moves the `champion`
alias to it; failing leaves the champion untouched. Either way the job exits 0 and its
summary says what was decided and why. Re-running on the same data, thresholds and
challenger changes nothing and logs nothing new.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING, Any

from medlake.jobs.train import (
    input_versions,
    late_tolerance_days,
    latest_receipt,
    model_config,
    read_inputs,
)
from medlake.ml import late_delivery as ld
from medlake.ml.tracking import (
    CHALLENGER,
    CHAMPION,
    ModelError,
    ModelNotReadyError,
    ModelRegistry,
)
from medlake.runtime import JobContext, JobResult, lineage_run

if TYPE_CHECKING:
    from medlake.ml.config import ModelConfig
    from medlake.ml.tracking import ModelRegistry, VersionInfo


def run(ctx: JobContext) -> JobResult:

    config = model_config(ctx)  # promotion rules and holdout length: as declared now
    registry = ModelRegistry(ctx.settings)
    challenger = registry.by_alias(config.registered_model, CHALLENGER)
    if challenger is None:
        raise ModelNotReadyError(
            f"registered model {config.registered_model!r} has no {CHALLENGER!r} version in "
            f"{registry.describe()}; run `lakehouse run train --model {config.name}` first"
        )
    trained = ld.LateDeliveryConfig.model_validate(registry.load_config(challenger))
    trained_as_of = dt.date.fromisoformat(challenger.tags["as_of"])
    tolerance = late_tolerance_days(ctx)
    versions = input_versions(ctx)
    frames = read_inputs(ctx, versions)
    as_of = ctx.logical_date if ctx.dates else latest_receipt(frames)
    if as_of < trained_as_of:
        raise ModelError(
            f"validation as-of {as_of} is before the challenger's training as-of "
            f"{trained_as_of}: its holdout could hold lines the challenger was trained on; "
            "validate on or after that date (omit --date to use the latest receipt in silver)"
        )
    ctx = dataclasses.replace(ctx, dates=[as_of])
    fingerprint = _fingerprint(config, challenger.version, as_of, versions, tolerance)
    base = {
        "run_id": ctx.run_id,
        "model": config.name,
        "registered_model": config.registered_model,
        "model_version": challenger.version,
        "as_of": as_of.isoformat(),
    }
    if challenger.tags.get("validation_fingerprint") == fingerprint:
        return JobResult.of(ctx, _already_validated(registry, challenger, base, CHAMPION))

    with lineage_run(ctx, reads=versions):
        model = registry.load_model(challenger, spark=ctx.spark)
        features = ld.add_features(
            ld.order_lines(*(frames[t] for t in ld.INPUTS)),
            history=trained.history,
            late_tolerance_days=int(challenger.tags["late_tolerance_days"]),
        )
        _, holdout = ld.split(
            features, as_of=as_of, holdout_days=config.holdout.days, late_tolerance_days=tolerance
        )
        scored = ld.predict(model, holdout).cache()  # read by each metric
        evaluation = ld.evaluate(scored, threshold=trained.threshold)
        scored.unpersist()
        failures = ld.promotion_failures(config, evaluation)
        passed = not failures
        champion_before = registry.by_alias(config.registered_model, CHAMPION)
        registry.log_validation(
            challenger,
            experiment=config.experiment,
            params={
                **config.promotion.model_dump(),
                "holdout.days": config.holdout.days,
                "threshold": trained.threshold,
                "as_of": as_of.isoformat(),
                "late_tolerance_days": tolerance,
                **{f"input_version.{t}": v for t, v in versions.items()},
            },
            metrics=evaluation.as_dict("holdout"),
            tags={
                "validation_fingerprint": fingerprint,
                "validation_status": "passed" if passed else "failed",
                "validation_as_of": as_of.isoformat(),
                "validation_reasons": "; ".join(failures) or "all promotion thresholds met",
                "lakehouse_run_id": ctx.run_id,
            },
        )
        if passed:
            registry.set_alias(config.registered_model, CHAMPION, challenger.version)
    previous = champion_before.version if champion_before else None
    if passed:
        decision = (
            f"version {challenger.version} is champion (was {previous or 'none'})"
            if previous != challenger.version
            else f"version {challenger.version} stays champion"
        )
    else:
        decision = (
            f"version {challenger.version} not promoted; champion stays "
            f"{previous if previous is not None else 'unset'}"
        )
    return JobResult.of(
        ctx,
        {
            **base,
            "passed": passed,
            "promoted": passed and previous != challenger.version,
            "champion_version": challenger.version if passed else previous,
            "decision": decision,
            "reasons": "; ".join(failures) or "all promotion thresholds met",
            "holdout_rows": evaluation.model.rows,
            "holdout_auc": evaluation.model.auc,
            "baseline_auc": evaluation.baseline.auc,
            "auc_lift": evaluation.auc_lift,
            "holdout_precision": evaluation.model.precision,
            "holdout_recall": evaluation.model.recall,
            "already_validated": False,
            "exit_code": 0,
        },
    )


def _already_validated(
    registry: ModelRegistry, challenger: VersionInfo, base: dict[str, Any], champion: str
) -> dict[str, Any]:
    """The stored outcome of the identical validation; nothing is logged or moved again."""
    tags = challenger.tags
    metrics = registry.run_metrics(tags["validation_run_id"])
    current = registry.by_alias(challenger.name, champion)
    passed = tags.get("validation_status") == "passed"
    return {
        **base,
        "passed": passed,
        "promoted": False,
        "champion_version": current.version if current else None,
        "decision": "already validated on the same data and thresholds: nothing changed",
        "reasons": tags.get("validation_reasons", ""),
        "holdout_rows": int(metrics.get("holdout_rows", 0)),
        "holdout_auc": metrics.get("holdout_auc"),
        "baseline_auc": metrics.get("holdout_baseline_auc"),
        "auc_lift": metrics.get("holdout_auc_lift"),
        "holdout_precision": metrics.get("holdout_precision"),
        "holdout_recall": metrics.get("holdout_recall"),
        "already_validated": True,
        "exit_code": 0,
    }


def _fingerprint(
    config: ModelConfig, version: int, as_of: dt.date, versions: dict[str, int], tolerance: int
) -> str:
    """What a validation depends on: the version, the data, the rules and the holdout."""
    payload = {
        "version": version,
        "as_of": as_of.isoformat(),
        "inputs": versions,
        "late_tolerance_days": tolerance,
        "promotion": config.promotion.model_dump(mode="json"),
        "holdout_days": config.holdout.days,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


if __name__ == "__main__":  # spark-submit medlake/jobs/validate.py --date D [...]
    from medlake.cli import submit

    submit("validate")
