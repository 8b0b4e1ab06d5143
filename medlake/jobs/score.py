"""Job `score`: the champion's late-delivery risk for every PO line open at `--date`, to gold.

Open at D: ordered on or before D and not received by the end of D. Each scored date's
partition of `gold.late_delivery_predictions` is replaced, so a re-run leaves the same rows.
Features are those known on each line's order date, exactly as in training.
"""

from __future__ import annotations

from pyspark.sql import functions as F

from medlake.config import ConfigError
from medlake.io import CommitContext
from medlake.jobs.train import input_versions, model_config, read_inputs
from medlake.ml import late_delivery as ld
from medlake.ml.tracking import CHAMPION, ModelNotReadyError, ModelRegistry
from medlake.runtime import JobContext, JobResult, lineage_run

TABLE = "gold.late_delivery_predictions"


def run(ctx: JobContext) -> JobResult:

    if not ctx.dates:
        raise ConfigError("lakehouse run score needs --date YYYY-MM-DD (the day to score)")
    config = model_config(ctx)
    registry = ModelRegistry(ctx.settings)
    champion = registry.by_alias(config.registered_model, CHAMPION)
    if champion is None:
        raise ModelNotReadyError(
            f"registered model {config.registered_model!r} has no {CHAMPION!r} version in "
            f"{registry.describe()}; run `lakehouse run train --model {config.name}` and then "
            f"`lakehouse run validate --model {config.name}`, which promotes the challenger "
            f"when it passes the thresholds in conf/models/{config.name}.yaml"
        )
    trained = ld.LateDeliveryConfig.model_validate(registry.load_config(champion))
    model = registry.load_model(champion, spark=ctx.spark)
    versions = input_versions(ctx)
    frames = read_inputs(ctx, versions)
    edges = ctx.edges()
    for table, version in versions.items():
        edges.read_table(table, version)
    written: dict[str, int] = {}
    with lineage_run(ctx, reads=versions) as recorder:
        features = ld.add_features(
            ld.order_lines(*(frames[t] for t in ld.INPUTS)),
            history=trained.history,
            late_tolerance_days=int(champion.tags["late_tolerance_days"]),
        ).cache()
        for day in sorted(set(ctx.dates)):
            scored = ld.predict(model, ld.open_lines(features, day))
            rows = scored.select(
                F.lit(day).alias("score_date"),
                *ld.KEYS,
                "supplier_group_id",
                "material_group_id",
                "order_date",
                "due_date",
                F.col(ld.SCORE).alias("late_probability"),
                (F.col(ld.SCORE) >= F.lit(trained.threshold)).alias("predicted_late"),
                F.lit(config.registered_model).alias("model_name"),
                F.lit(champion.version).cast("int").alias("model_version"),
                F.lit(trained.threshold).cast("double").alias("threshold"),
                F.lit(ctx.run_id).alias("_run_id"),
            )
            commit = CommitContext(job=ctx.job, run_id=ctx.run_id, logical_date=day)
            result = ctx.io.replace_partitions(
                TABLE, rows, partition={"score_date": day}, ctx=commit
            )
            recorder.wrote(TABLE, result.version)
            edges.wrote(TABLE, result.version)
            written[day.isoformat()] = result.rows_written
        features.unpersist()
        ctx.record_edges(edges.rows())
    return JobResult.of(
        ctx,
        {
            "run_id": ctx.run_id,
            "model": config.name,
            "registered_model": config.registered_model,
            "model_version": champion.version,
            "threshold": trained.threshold,
            "table": TABLE,
            "dates": len(written),
            "rows_written": sum(written.values()),
            "rows_by_date": written,
            "inputs": versions,
            "exit_code": 0,
        },
    )


if __name__ == "__main__":  # spark-submit medlake/jobs/score.py --date D [...]
    from medlake.cli import submit

    submit("score")
