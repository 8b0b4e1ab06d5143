"""Settings: overlays change only what they say; broken files fail with file, field, expectation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import medlake
from medlake.config import DEFAULT_CONF_DIR, ConfigError, deep_merge, load_settings

BROKEN = Path(__file__).parent.parent / "fixtures" / "broken" / "settings"


def test_when_no_env_is_given_then_local_is_used_with_tables_under_var(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LAKEHOUSE_ENV", raising=False)
    monkeypatch.delenv("LAKEHOUSE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)  # no home set: relative paths resolve in the current directory
    settings = load_settings()
    assert settings.env == "local"
    assert settings.spark.master == "local[2]"
    assert settings.storage_root == str(tmp_path / "var" / "lakehouse")
    assert settings.storage.engine == "delta-rs"


def test_relative_locations_resolve_against_lakehouse_home_not_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "group-data"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    settings = load_settings("local")
    assert settings.home == home
    assert settings.storage_root == str(home / "var" / "lakehouse")
    assert settings.resolve(settings.landing.root) == str(home / "var" / "deliveries")
    assert settings.resolve("s3://bucket/x") == "s3://bucket/x"  # URIs stay as they are


def test_configuration_comes_from_the_argument_then_lakehouse_conf_then_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    for folder, root in ((mine, "mine-tables"), (theirs, "their-tables")):
        shutil.copytree(DEFAULT_CONF_DIR, folder)
        base = folder / "lakehouse.yaml"
        text = base.read_text(encoding="utf-8")
        base.write_text(text.replace("root: var/lakehouse", f"root: {root}", 1))
    monkeypatch.delenv("LAKEHOUSE_CONF", raising=False)
    packaged = load_settings("local")
    assert packaged.conf_dir == DEFAULT_CONF_DIR
    assert DEFAULT_CONF_DIR.is_relative_to(Path(medlake.__file__).parent)  # package data
    monkeypatch.setenv("LAKEHOUSE_CONF", str(theirs))
    assert load_settings("local").storage_root.endswith("their-tables")
    assert load_settings("local", conf_dir=mine).storage_root.endswith("mine-tables")


def test_the_command_line_takes_its_configuration_folder_from_conf(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlake.cli import main

    monkeypatch.delenv("LAKEHOUSE_CONF", raising=False)
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    (conf / "tables" / "ml.yaml").unlink()  # a group without models declares no model tables
    assert main(["table", "list", "--layer", "gold"]) == 0
    assert "gold.late_delivery_predictions" in capsys.readouterr().out  # packaged: declared
    assert main(["--conf", str(conf), "table", "list", "--layer", "gold"]) == 0
    assert "gold.late_delivery_predictions" not in capsys.readouterr().out


def test_when_cluster_overlay_is_chosen_then_paths_master_and_tracking_change() -> None:
    local, cluster = load_settings("local"), load_settings("cluster")
    assert cluster.spark.master == "yarn"
    assert cluster.storage_root.startswith("s3://")
    assert cluster.mlflow.tracking_uri.startswith("http")
    assert cluster.storage.checkpoint_interval == local.storage.checkpoint_interval  # untouched


def test_one_machine_interprets_spark_expressions_and_a_cluster_compiles_them() -> None:
    from medlake.spark import spark_conf

    small = {"spark.sql.codegen.factoryMode": "NO_CODEGEN", "spark.sql.codegen.wholeStage": "false"}
    for env in ("local", "demo", "test"):
        conf = spark_conf(load_settings(env))
        assert {k: conf[k] for k in small} == small, env
        assert conf["spark.sql.constraintPropagation.enabled"] == "false", env
    cluster = spark_conf(load_settings("cluster"))
    assert cluster["spark.sql.codegen.factoryMode"] == "FALLBACK"  # Spark's own default
    assert cluster["spark.sql.codegen.wholeStage"] == "true"
    assert cluster["spark.sql.constraintPropagation.enabled"] == "true"


def test_when_env_variable_names_the_overlay_then_it_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAKEHOUSE_ENV", "cluster")
    assert load_settings().env == "cluster"


def test_when_overlay_does_not_exist_then_error_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"no overlay for environment 'prod'; expected one of: cluster, demo, local, test",
    ):
        load_settings("prod")


def test_deep_merge_merges_mappings_and_replaces_everything_else() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    assert deep_merge(base, {"a": {"y": [3]}, "c": 2}) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}  # inputs untouched


def conf_with_overlay(tmp_path: Path, overlay: Path) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    shutil.copy(overlay, conf / "env" / "broken.yaml")
    return conf


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "wrong_type",
            ["broken.yaml", "field 'spark.shuffle_partitions'", "valid integer", "'many'"],
        ),
        (
            "unknown_field",
            ["broken.yaml", "field 'storage.rooot'", "Extra inputs are not permitted"],
        ),
        (
            "bad_engine",
            ["broken.yaml", "field 'storage.engine'", "'delta-rs', 'delta-spark' or 'auto'"],
        ),
        (
            "bad_memory",
            ["broken.yaml", "field 'spark.driver_memory'", "expected a size such as 2g"],
        ),
        ("non_spark_conf_key", ["broken.yaml", "field 'spark.conf'", "must start with 'spark.'"]),
        ("invalid_yaml", ["broken.yaml", "line 3", "invalid YAML"]),
        ("not_a_mapping", ["broken.yaml", "expected a mapping at the top level, got list"]),
    ],
)
def test_when_a_config_file_is_broken_then_one_message_names_file_field_and_expectation(
    tmp_path: Path, case: str, expected: list[str]
) -> None:
    conf = conf_with_overlay(tmp_path, BROKEN / f"{case}.yaml")
    with pytest.raises(ConfigError) as err:
        load_settings("broken", conf_dir=conf)
    message = str(err.value)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_when_base_file_is_broken_then_the_base_file_is_named(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    base = conf / "lakehouse.yaml"
    base.write_text(base.read_text().replace("checkpoint_interval: 10", "checkpoint_interval: 0"))
    with pytest.raises(
        ConfigError,
        match=r"lakehouse\.yaml: line \d+: field 'storage\.checkpoint_interval': .*greater than or equal to 1",
    ):
        load_settings("local", conf_dir=conf)


def test_when_a_file_is_not_utf8_then_the_error_says_so(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    (conf / "env" / "local.yaml").write_bytes("spark:\n  app_name: 工厂\n".encode("gb18030"))
    with pytest.raises(ConfigError, match=r"local\.yaml: not UTF-8 text"):
        load_settings("local", conf_dir=conf)


def test_an_audit_anchor_inside_storage_root_or_a_uri_is_refused_at_load(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    beside = load_settings("test", overrides={"storage": {"root": str(lake)}})
    assert beside.audit_anchor == tmp_path / "lake.audit-anchor" / "anchor.jsonl"
    inside = {"storage": {"root": str(lake)}, "audit": {"anchor": str(lake / "a.jsonl")}}
    with pytest.raises(ConfigError, match=r"lies inside storage.root .*outside the lakehouse"):
        load_settings("test", overrides=inside)
    uri = {"storage": {"root": str(lake)}, "audit": {"anchor": "s3://bucket/anchor.jsonl"}}
    with pytest.raises(ConfigError, match=r"is a URI; .*WORM"):
        load_settings("test", overrides=uri)
