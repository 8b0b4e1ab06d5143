"""Model configuration in `conf/models/<name>.yaml`: typed, validated, errors name file and field.

The parts every model shares live here (algorithm and its seeded hyper-parameters, the
time-based holdout, the decision threshold, promotion thresholds, registry names); a model
module subclasses `ModelConfig` with its own feature settings.

>>> from medlake.ml.late_delivery import LateDeliveryConfig           # doctest: +SKIP
>>> cfg = load_model_config(Path("conf"), "late_delivery", LateDeliveryConfig)  # doctest: +SKIP
>>> cfg.promotion.min_auc                                               # doctest: +SKIP
0.6
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medlake.config import ConfigError, format_validation_error, read_yaml

MODELS_DIR = "models"


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo never silently falls back to a default); immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GbtParams(StrictModel):
    """Gradient-boosted trees (Spark `GBTClassifier`)."""

    kind: Literal["gbt"]
    max_iter: int = Field(default=40, ge=1, le=1000)
    max_depth: int = Field(default=4, ge=1, le=15)
    step_size: float = Field(default=0.1, gt=0, le=1)
    subsampling_rate: float = Field(default=1.0, gt=0, le=1)
    seed: int


class RandomForestParams(StrictModel):
    """A random forest (Spark `RandomForestClassifier`)."""

    kind: Literal["random_forest"]
    num_trees: int = Field(default=100, ge=1, le=2000)
    max_depth: int = Field(default=5, ge=1, le=20)
    subsampling_rate: float = Field(default=1.0, gt=0, le=1)
    seed: int


class LogisticRegressionParams(StrictModel):
    """Logistic regression on standardised features (deterministic: no seed needed)."""

    kind: Literal["logistic_regression"]
    max_iter: int = Field(default=100, ge=1, le=10000)
    reg_param: float = Field(default=0.0, ge=0)
    elastic_net_param: float = Field(default=0.0, ge=0, le=1)


Algorithm = Annotated[
    GbtParams | RandomForestParams | LogisticRegressionParams, Field(discriminator="kind")
]


class Holdout(StrictModel):
    """Time-based holdout: lines ordered in the last `days` days before the as-of date.

    The model is fitted only on lines whose outcome was known before that window began, so
    the holdout is what a model trained then would have faced.
    """

    days: int = Field(ge=7, le=365)


class Promotion(StrictModel):
    """What the challenger must reach on the holdout to become champion."""

    min_auc: float = Field(ge=0, le=1)
    min_auc_lift: float = Field(ge=-1, le=1, description="model AUC minus baseline AUC")
    min_recall: float = Field(default=0.0, ge=0, le=1)
    min_precision: float = Field(default=0.0, ge=0, le=1)
    min_holdout_rows: int = Field(default=100, ge=1)


class ModelConfig(StrictModel):
    """What every model declares; a model module adds its features."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    registered_model: str = Field(min_length=1, description="name in the MLflow model registry")
    experiment: str = Field(min_length=1, description="MLflow experiment of its runs")
    algorithm: Algorithm
    holdout: Holdout
    threshold: float = Field(gt=0, lt=1, description="probability at or above which: late")
    promotion: Promotion
    min_training_rows: int = Field(default=200, ge=1)

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of the whole config (what training depends on)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


ConfigT = TypeVar("ConfigT", bound=ModelConfig)


def load_model_config(conf_dir: Path, name: str, schema: type[ConfigT]) -> ConfigT:
    """Read and validate `conf/models/<name>.yaml` against `schema`; `ConfigError` otherwise."""
    folder = conf_dir / MODELS_DIR
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(
            f"{path}: no such model configuration; configured models: "
            f"{', '.join(known) or '(none)'} (pass --model NAME for conf/models/NAME.yaml)"
        )
    data = read_yaml(path)
    try:
        config = schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, [(path, data)])) from None
    if config.name != name:
        raise ConfigError(
            f"{path}: field 'name': {config.name!r} does not match the file name; "
            f"rename the file or set name: {name}"
        )
    return config
