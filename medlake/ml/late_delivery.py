"""Late-delivery risk of purchase-order lines: point-in-time features, labels, pipeline, metrics.

Every function is `DataFrame -> DataFrame` (or a fitted pipeline); reading, writing and MLflow
live in the jobs and `medlake.ml.tracking`. A line's features are what was known on its
order date: supplier history counts only lines RECEIVED before that date, so the same line
gets the same features whenever it is computed, and training never sees the future.

>>> lines = order_lines(purchase_orders, goods_receipts, materials)       # doctest: +SKIP
>>> feats = add_features(lines, history=cfg.history, late_tolerance_days=2)  # doctest: +SKIP
>>> train, holdout = split(feats, as_of=day, holdout_days=60,          # doctest: +SKIP
...                        late_tolerance_days=2)
>>> model = build_pipeline(cfg).fit(train)                               # doctest: +SKIP
>>> evaluate(predict(model, holdout), threshold=cfg.threshold)           # doctest: +SKIP

A line is late when its first receipt is after due date + `late_tolerance_days` (the metric
dictionary's `otd` parameter, the group's one definition), or when it is still not received
once that day has passed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import (
    GBTClassifier,
    LogisticRegression,
    RandomForestClassifier,
)
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from medlake.config import ConfigError
from medlake.ml.config import (
    GbtParams,
    LogisticRegressionParams,
    ModelConfig,
    RandomForestParams,
    StrictModel,
    load_model_config,
)

NAME = "late_delivery"
INPUTS = ("silver.purchase_orders", "silver.goods_receipts", "silver.materials")
KEYS = ("plant_id", "po_number", "po_line")
LABEL = "label"
SCORE = "late_probability"
BASELINE = "supplier_late_rate_all"  # the naive baseline: the supplier's historic late rate
UNKNOWN = "(unknown)"

CATEGORICAL = ("plant_id", "category", "supplier_group_id", "material_group_id", "due_quarter")
STATIC_NUMERIC = (
    "planned_lead_days",
    "std_lead_time_days",
    "lead_time_gap_days",
    "order_month",
    "due_month",
    "supplier_lines_all",
    "supplier_late_rate_all",
    "supplier_material_lines_all",
    "supplier_material_late_rate_all",
)


def window_features(days: int) -> tuple[str, str]:
    """The count and late-rate feature names of a trailing supplier window of `days` days."""
    return f"supplier_lines_{days}d", f"supplier_late_rate_{days}d"


def numeric_features(windows_days: Sequence[int]) -> list[str]:
    """Every numeric feature `add_features` computes for these trailing windows."""
    return [*STATIC_NUMERIC, *(name for d in windows_days for name in window_features(d))]


# --------------------------------------------------------------------------- configuration


class History(StrictModel):
    """Supplier history: trailing windows and the prior that smooths short histories.

    A late rate is (late + prior_late_rate x prior_weight) / (lines + prior_weight): a
    supplier with no received line yet gets the prior, one with many gets its own rate.
    """

    windows_days: list[int] = Field(min_length=1)
    prior_late_rate: float = Field(ge=0, le=1)
    prior_weight: float = Field(ge=0)

    @field_validator("windows_days")
    @classmethod
    def _sensible_windows(cls, value: list[int]) -> list[int]:
        bad = [d for d in value if not 1 <= d <= 730]
        if bad:
            raise ValueError(f"windows must be 1..730 days, got {bad}")
        if len(set(value)) != len(value):
            raise ValueError(f"windows listed twice: {value}")
        return value


class Features(StrictModel):
    """The columns the pipeline uses: categorical ones are one-hot encoded."""

    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(min_length=1)


class LateDeliveryConfig(ModelConfig):
    """`conf/models/late_delivery.yaml`."""

    history: History
    features: Features

    @field_validator("features")
    @classmethod
    def _known_features(cls, value: Features, info: ValidationInfo) -> Features:
        history = info.data.get("history")
        if history is None:  # history itself is invalid; its error is reported
            return value
        numeric = numeric_features(history.windows_days)
        problems = []
        unknown_cat = [c for c in value.categorical if c not in CATEGORICAL]
        if unknown_cat:
            problems.append(
                f"unknown categorical features {unknown_cat}; available: {', '.join(CATEGORICAL)}"
            )
        unknown_num = [c for c in value.numeric if c not in numeric]
        if unknown_num:
            problems.append(
                f"unknown numeric features {unknown_num}; available (trailing windows come "
                f"from history.windows_days): {', '.join(numeric)}"
            )
        dupes = sorted(
            {
                c
                for c in value.categorical + value.numeric
                if (value.categorical + value.numeric).count(c) > 1
            }
        )
        if dupes:
            problems.append(f"features listed twice: {dupes}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def inputs(self) -> list[str]:
        """The raw columns the fitted pipeline reads (its signature's inputs)."""
        return [*self.features.categorical, *self.features.numeric]


def load_config(conf_dir: Path) -> LateDeliveryConfig:
    """`conf/models/late_delivery.yaml`, validated."""
    return load_model_config(conf_dir, NAME, LateDeliveryConfig)


# --------------------------------------------------------------------------- lines and labels


def order_lines(
    purchase_orders: DataFrame, goods_receipts: DataFrame, materials: DataFrame
) -> DataFrame:
    """One row per PO line with a due date: its first receipt date (null: none yet) and the
    material's category and planned lead time from the material master."""
    first_receipt = (
        goods_receipts.where(F.col("po_number").isNotNull() & F.col("po_line").isNotNull())
        .groupBy(*KEYS)
        .agg(F.min("receipt_date").alias("receipt_date"))
    )
    master = materials.select("plant_id", "material_code", "category", "std_lead_time_days")
    return (
        purchase_orders.where(F.col("order_date").isNotNull() & F.col("due_date").isNotNull())
        .select(
            *KEYS,
            "supplier_group_id",
            "material_group_id",
            "material_code",
            "order_date",
            "due_date",
        )
        .join(first_receipt, list(KEYS), "left")
        .join(master, ["plant_id", "material_code"], "left")
    )


def late_deadline(late_tolerance_days: int) -> Column:
    """The last day a line still counts as on time: due date + late tolerance."""
    return F.date_add(F.col("due_date"), late_tolerance_days)


def is_late(late_tolerance_days: int) -> Column:
    """Late: received after the deadline, or not received at all (once the deadline passed)."""
    deadline = late_deadline(late_tolerance_days)
    return F.col("receipt_date").isNull() | (F.col("receipt_date") > deadline)


def labelled(lines: DataFrame, *, as_of: dt.date, late_tolerance_days: int) -> DataFrame:
    """Lines whose outcome is known on `as_of` (deadline before it), with `label` 1.0 = late.

    A receipt after `as_of` cannot change the label: such a line is late either way.
    """
    return lines.where(late_deadline(late_tolerance_days) < F.lit(as_of)).withColumn(
        LABEL, is_late(late_tolerance_days).cast("double")
    )


def split(
    features: DataFrame, *, as_of: dt.date, holdout_days: int, late_tolerance_days: int
) -> tuple[DataFrame, DataFrame]:
    """Time-based split: (training, holdout) as seen on `as_of`.

    The holdout is every line ordered in the `holdout_days` days up to `as_of` whose outcome
    is known on `as_of`. Training holds only lines whose outcome was already known when that
    window began, so no training label comes from inside the holdout period.
    """
    cutoff = as_of - dt.timedelta(days=holdout_days)
    train = labelled(features, as_of=cutoff, late_tolerance_days=late_tolerance_days)
    holdout = labelled(
        features.where(F.col("order_date") > F.lit(cutoff)),
        as_of=as_of,
        late_tolerance_days=late_tolerance_days,
    )
    return train, holdout


def open_lines(features: DataFrame, day: dt.date) -> DataFrame:
    """Lines open at the end of `day`: ordered on or before it and not received by then."""
    return features.where(
        (F.col("order_date") <= F.lit(day))
        & (F.col("receipt_date").isNull() | (F.col("receipt_date") > F.lit(day)))
    )


# --------------------------------------------------------------------------- features


def add_features(lines: DataFrame, *, history: History, late_tolerance_days: int) -> DataFrame:
    """`order_lines` plus every feature, each as known on the line's order date."""
    received = lines.where(F.col("receipt_date").isNotNull()).select(
        "supplier_group_id",
        "material_group_id",
        "receipt_date",
        is_late(late_tolerance_days).cast("int").alias("late"),
    )
    with_history = supplier_history(
        lines,
        received,
        keys=["supplier_group_id"],
        prefix="supplier",
        windows_days=history.windows_days,
        prior_late_rate=history.prior_late_rate,
        prior_weight=history.prior_weight,
    )
    with_history = supplier_history(
        with_history,
        received,
        keys=["supplier_group_id", "material_group_id"],
        prefix="supplier_material",
        windows_days=[],
        prior_late_rate=history.prior_late_rate,
        prior_weight=history.prior_weight,
    )
    planned = F.datediff("due_date", "order_date")
    std_lead = F.coalesce(F.col("std_lead_time_days"), planned)
    return (
        with_history.withColumn("planned_lead_days", planned.cast("double"))
        .withColumn("std_lead_time_days", std_lead.cast("double"))
        .withColumn("lead_time_gap_days", (planned - std_lead).cast("double"))
        .withColumn("order_month", F.month("order_date").cast("double"))
        .withColumn("due_month", F.month("due_date").cast("double"))
        .withColumn("due_quarter", F.concat(F.lit("Q"), F.quarter("due_date").cast("string")))
        .fillna(UNKNOWN, subset=["category", "supplier_group_id", "material_group_id"])
    )


def supplier_history(
    lines: DataFrame,
    received: DataFrame,
    *,
    keys: list[str],
    prefix: str,
    windows_days: Sequence[int],
    prior_late_rate: float,
    prior_weight: float,
) -> DataFrame:
    """Add `<prefix>_lines_all` / `<prefix>_late_rate_all` and the same per trailing window.

    For a line ordered on day d, the history is every `received` line of the same `keys`
    with receipt_date < d (a window of w days: d - w <= receipt_date < d). Lines without
    keys or without history get zero lines and the prior rate.
    """
    daily = (
        received.where(_all_present(keys))
        .groupBy(*keys, "receipt_date")
        .agg(F.count(F.lit(1)).alias("_n"), F.sum("late").alias("_late"))
    )
    asked = lines.where(_all_present(keys)).select(*keys, "order_date").distinct()
    before = asked.join(daily, keys, "inner").where(F.col("receipt_date") < F.col("order_date"))
    aggregates = [F.sum("_n").alias("_n_all"), F.sum("_late").alias("_late_all")]
    for days in windows_days:
        inside = F.col("receipt_date") >= F.date_sub(F.col("order_date"), days)
        aggregates += [
            F.sum(F.when(inside, F.col("_n")).otherwise(0)).alias(f"_n_{days}"),
            F.sum(F.when(inside, F.col("_late")).otherwise(0)).alias(f"_late_{days}"),
        ]
    stats = before.groupBy(*keys, "order_date").agg(*aggregates)
    out = lines.join(stats, [*keys, "order_date"], "left")
    suffixes = [("all", f"{prefix}_lines_all", f"{prefix}_late_rate_all")]
    suffixes += [(str(d), f"{prefix}_lines_{d}d", f"{prefix}_late_rate_{d}d") for d in windows_days]
    for suffix, count_name, rate_name in suffixes:
        n = F.coalesce(F.col(f"_n_{suffix}"), F.lit(0)).cast("double")
        late = F.coalesce(F.col(f"_late_{suffix}"), F.lit(0)).cast("double")
        smoothed = (late + F.lit(prior_late_rate * prior_weight)) / (n + F.lit(prior_weight))
        out = out.withColumn(count_name, n).withColumn(
            rate_name, F.when(n + F.lit(prior_weight) > 0, smoothed).otherwise(prior_late_rate)
        )
    return out.drop(*[f"_{kind}_{s}" for s, _, _ in suffixes for kind in ("n", "late")])


def _all_present(columns: Sequence[str]) -> Column:
    condition = F.lit(True)
    for name in columns:
        condition = condition & F.col(name).isNotNull()
    return condition


# --------------------------------------------------------------------------- pipeline


def build_pipeline(config: LateDeliveryConfig) -> Pipeline:
    """Index and one-hot encode categoricals, assemble, then the configured classifier."""
    cats = config.features.categorical
    stages: list[Any] = []
    encoded = []
    if cats:
        indexed = [f"{c}__index" for c in cats]
        encoded = [f"{c}__onehot" for c in cats]
        stages += [
            StringIndexer(
                inputCols=cats,
                outputCols=indexed,
                handleInvalid="keep",  # a supplier or plant unseen in training still scores
                stringOrderType="alphabetAsc",  # deterministic, unlike frequency ties
            ),
            OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep"),
        ]
    stages.append(
        VectorAssembler(inputCols=[*encoded, *config.features.numeric], outputCol="features")
    )
    stages.append(_classifier(config))
    return Pipeline(stages=stages)


def _classifier(config: LateDeliveryConfig) -> Any:
    algo = config.algorithm
    if isinstance(algo, GbtParams):
        return GBTClassifier(
            featuresCol="features",
            labelCol=LABEL,
            maxIter=algo.max_iter,
            maxDepth=algo.max_depth,
            stepSize=algo.step_size,
            subsamplingRate=algo.subsampling_rate,
            seed=algo.seed,
        )
    if isinstance(algo, RandomForestParams):
        return RandomForestClassifier(
            featuresCol="features",
            labelCol=LABEL,
            numTrees=algo.num_trees,
            maxDepth=algo.max_depth,
            subsamplingRate=algo.subsampling_rate,
            seed=algo.seed,
        )
    if isinstance(algo, LogisticRegressionParams):
        return LogisticRegression(
            featuresCol="features",
            labelCol=LABEL,
            maxIter=algo.max_iter,
            regParam=algo.reg_param,
            elasticNetParam=algo.elastic_net_param,
        )
    raise ConfigError(f"unsupported algorithm {algo!r}")  # pragma: no cover


def predict(model: PipelineModel, frame: DataFrame) -> DataFrame:
    """`frame` plus `late_probability` (and the pipeline's `prediction` at 0.5, dropped)."""
    scored = model.transform(frame)
    extra = [c for c in scored.columns if c not in frame.columns]
    return scored.withColumn(SCORE, vector_to_array(F.col("probability"))[1]).drop(*extra)


def feature_importances(model: PipelineModel, sample: DataFrame) -> dict[str, float]:
    """Importance per configured feature (one-hot slots summed), largest first.

    Trees: Spark's impurity-based importances (they sum to 1). Logistic regression: the
    absolute coefficients (Spark standardises features internally), normalised to sum to 1.
    `sample` is any frame with the pipeline's inputs (one row is enough).
    """
    assembled = PipelineModel(stages=model.stages[:-1]).transform(sample.limit(1))
    attrs = assembled.schema["features"].metadata["ml_attr"]["attrs"]
    slots = {a["idx"]: a["name"] for group in attrs.values() for a in group}
    classifier: Any = model.stages[-1]
    if hasattr(classifier, "featureImportances"):
        weights = [float(w) for w in classifier.featureImportances.toArray()]
    else:  # logistic regression
        weights = [abs(float(w)) for w in classifier.coefficients.toArray()]
    total: dict[str, float] = {}
    for idx, weight in enumerate(weights):
        feature = slots[idx].split("__onehot")[0]
        total[feature] = total.get(feature, 0.0) + weight
    norm = sum(total.values()) or 1.0
    return dict(sorted(((k, v / norm) for k, v in total.items()), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class BinaryMetrics:
    """How one score separates late from on-time lines, and its decisions at a threshold."""

    rows: int
    positives: int
    auc: float  # NaN when the frame holds only one class
    precision: float
    recall: float

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_{k}": float(v) for k, v in asdict(self).items()}


def binary_metrics(frame: DataFrame, *, score: str, threshold: float) -> BinaryMetrics:
    """Exact ROC AUC of `score` against `label` (ties count half), precision and recall of
    `score >= threshold`. Precision is 0 when nothing is flagged, recall 0 when nothing is late."""
    flagged = F.col(score) >= F.lit(threshold)
    late = F.col(LABEL) == 1.0
    row = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(late.cast("int")).alias("positives"),
        F.sum((flagged & late).cast("int")).alias("tp"),
        F.sum(flagged.cast("int")).alias("flagged"),
    ).first()
    rows = int(row["rows"] or 0) if row else 0
    positives = int(row["positives"] or 0) if row else 0
    tp = int(row["tp"] or 0) if row else 0
    flagged_n = int(row["flagged"] or 0) if row else 0
    auc = math.nan
    if 0 < positives < rows:
        evaluator = BinaryClassificationEvaluator(
            rawPredictionCol=score, labelCol=LABEL, metricName="areaUnderROC", numBins=0
        )
        auc = float(evaluator.evaluate(frame))
    return BinaryMetrics(
        rows=rows,
        positives=positives,
        auc=auc,
        precision=tp / flagged_n if flagged_n else 0.0,
        recall=tp / positives if positives else 0.0,
    )


@dataclass(frozen=True)
class Evaluation:
    """The model and the naive baseline (supplier's historic late rate) on the same lines."""

    model: BinaryMetrics
    baseline: BinaryMetrics

    @property
    def auc_lift(self) -> float:
        return self.model.auc - self.baseline.auc

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {
            **self.model.as_dict(prefix),
            **{
                f"{prefix}_baseline_{k}": v
                for k, v in asdict(self.baseline).items()
                if k in ("auc", "precision", "recall")
            },
            f"{prefix}_auc_lift": self.auc_lift,
            f"{prefix}_late_rate": (
                self.model.positives / self.model.rows if self.model.rows else math.nan
            ),
        }


def evaluate(scored: DataFrame, *, threshold: float) -> Evaluation:
    """Metrics of `late_probability` and of the baseline on labelled, scored lines."""
    return Evaluation(
        model=binary_metrics(scored, score=SCORE, threshold=threshold),
        baseline=binary_metrics(scored, score=BASELINE, threshold=threshold),
    )


def promotion_failures(config: ModelConfig, evaluation: Evaluation) -> list[str]:
    """Why the evaluated model may not become champion (empty: it passes)."""
    rules = config.promotion
    m = evaluation.model
    failures = []
    if m.rows < rules.min_holdout_rows:
        failures.append(
            f"holdout has {m.rows} lines, fewer than min_holdout_rows={rules.min_holdout_rows}"
        )
    if math.isnan(m.auc):
        failures.append("holdout holds only one class (all late or none late): AUC undefined")
        return failures
    checks = [
        ("AUC", m.auc, rules.min_auc, "min_auc"),
        ("AUC lift over the baseline", evaluation.auc_lift, rules.min_auc_lift, "min_auc_lift"),
        ("recall", m.recall, rules.min_recall, "min_recall"),
        ("precision", m.precision, rules.min_precision, "min_precision"),
    ]
    for label, value, minimum, field in checks:
        if not value >= minimum:
            failures.append(f"{label} {value:.4f} is below {field}={minimum}")
    return failures
