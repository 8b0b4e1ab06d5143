"""The Spark configuration built from settings (no JVM needed to check it)."""

from __future__ import annotations

import sys
from pathlib import Path

from medlake.config import load_settings
from medlake.spark import DELTA_EXTENSION, spark_conf, use_delta_spark


def test_local_sessions_are_tuned_for_a_small_machine_and_delta_rs() -> None:
    conf = spark_conf(load_settings("test"))
    assert conf["spark.master"] == "local[2]"
    assert conf["spark.sql.shuffle.partitions"] == "2"
    assert conf["spark.sql.adaptive.enabled"] == "true"
    assert conf["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.pyspark.python"] == sys.executable
    assert "spark.sql.extensions" not in conf
    assert "spark.jars.packages" not in conf  # never download jars


def test_extra_spark_settings_from_config_win() -> None:
    settings = load_settings(
        "test", overrides={"spark": {"conf": {"spark.sql.shuffle.partitions": "7"}}}
    )
    assert spark_conf(settings)["spark.sql.shuffle.partitions"] == "7"


def test_engine_choice_follows_config_and_the_jars_present(tmp_path: Path) -> None:
    assert not use_delta_spark(load_settings("test"))
    forced = load_settings("test", overrides={"storage": {"engine": "delta-spark"}})
    assert use_delta_spark(forced)
    assert spark_conf(forced)["spark.sql.extensions"] == DELTA_EXTENSION
    auto = load_settings("test", overrides={"storage": {"engine": "auto"}})
    assert not use_delta_spark(auto)  # no delta-spark jars in this installation
    fake_jar = tmp_path / "delta-spark_2.13-4.4.1.jar"
    fake_jar.touch()
    with_jar = load_settings(
        "test",
        overrides={"storage": {"engine": "auto"}, "spark": {"conf": {"spark.jars": str(fake_jar)}}},
    )
    assert use_delta_spark(with_jar)
