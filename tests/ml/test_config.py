"""medlake/conf/models: the shipped file validates; broken files fail naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlake.config import DEFAULT_CONF_DIR, ConfigError, load_settings
from medlake.ml import late_delivery as ld
from medlake.ml.tracking import stores

SHIPPED = (DEFAULT_CONF_DIR / "models" / "late_delivery.yaml").read_text(encoding="utf-8")


def write(tmp_path: Path, text: str, name: str = "late_delivery") -> Path:
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_the_shipped_configuration_validates_and_names_known_features() -> None:
    config = ld.load_config(DEFAULT_CONF_DIR)
    assert config.name == "late_delivery"
    assert set(config.features.numeric) <= set(ld.numeric_features(config.history.windows_days))
    assert 0 < config.threshold < 1 and config.promotion.min_auc_lift > 0


@pytest.mark.parametrize(
    ("old", "new", "field", "hint"),
    [
        ("    - planned_lead_days\n", "    - planned_leadtime\n", "features", "planned_leadtime"),
        ("  categorical: []", "  categorical: [colour]", "features", "colour"),
        ("  - supplier_late_rate_30d\n", "  - supplier_late_rate_45d\n", "features", "45d"),
        ("threshold: 0.2 ", "threshold: 1.5 ", "threshold", "less than 1"),
        ("  reg_param: 0.01", "  reg_param: -1", "algorithm.logistic_regression.reg_param", "-1"),
        ("  kind: logistic_regression", "  kind: xgboost", "algorithm", "xgboost"),
        ("  days: 90 ", "  dayz: 90 ", "holdout.dayz", "Extra inputs"),
        ("  min_auc: 0.65", "  min_auc: high", "promotion.min_auc", "high"),
        ("windows_days: [30, 90]", "windows_days: [30, 30, 90]", "history.windows_days", "twice"),
    ],
)
def test_when_a_field_is_broken_then_the_error_names_file_and_field(
    tmp_path: Path, old: str, new: str, field: str, hint: str
) -> None:
    assert old in SHIPPED
    conf = write(tmp_path, SHIPPED.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        ld.load_config(conf)
    message = str(err.value)
    assert str(conf / "models" / "late_delivery.yaml") in message
    assert f"field '{field}'" in message
    assert hint in message


def test_when_a_gbt_has_no_seed_then_it_is_refused(tmp_path: Path) -> None:
    text = SHIPPED.replace(
        "  kind: logistic_regression  #", "  kind: gbt\n  max_depth: 3\n  #", 1
    ).replace("  max_iter: 100\n  reg_param: 0.01\n  elastic_net_param: 0.0\n", "")
    with pytest.raises(ConfigError, match=r"field 'algorithm.gbt.seed': Field required"):
        ld.load_config(write(tmp_path, text))


def test_when_the_yaml_does_not_parse_then_the_line_is_named(tmp_path: Path) -> None:
    conf = write(tmp_path, SHIPPED.replace("holdout:\n", "holdout: [\n", 1))
    with pytest.raises(ConfigError, match=r"late_delivery.yaml:.*line \d+.*invalid YAML"):
        ld.load_config(conf)


def test_when_the_name_differs_from_the_file_then_it_is_refused(tmp_path: Path) -> None:
    conf = write(tmp_path, SHIPPED.replace("name: late_delivery", "name: late", 1))
    with pytest.raises(ConfigError, match=r"field 'name': 'late' does not match the file name"):
        ld.load_config(conf)


def test_when_the_model_is_not_configured_then_the_configured_ones_are_listed(
    tmp_path: Path,
) -> None:
    conf = write(tmp_path, SHIPPED, name="other_model")
    with pytest.raises(ConfigError, match=r"late_delivery.yaml: no such model.*other_model"):
        ld.load_config(conf)


def test_a_folder_tracking_uri_becomes_an_sqlite_store_with_its_artifacts_beside_it(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "mlruns"
    local = stores(load_settings("test", overrides={"mlflow": {"tracking_uri": str(folder)}}))
    assert local.tracking_uri == f"sqlite:///{folder}/mlflow.db"
    assert local.registry_uri == local.tracking_uri
    assert local.artifact_location == (folder / "artifacts").as_uri()
    remote = stores(
        load_settings(
            "test",
            overrides={
                "mlflow": {
                    "tracking_uri": "http://mlflow:5000",
                    "registry_uri": "postgresql://db/registry",
                }
            },
        )
    )
    assert (remote.tracking_uri, remote.registry_uri) == (
        "http://mlflow:5000",
        "postgresql://db/registry",
    )
    assert remote.artifact_location is None  # the server decides
