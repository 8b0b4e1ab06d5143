"""The one place a Spark session is configured and built, from `Settings`."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from medlake.config import Settings

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
LOG4J_CONFIG = Path(__file__).parent / "resources" / "log4j2.properties"


def delta_spark_jars_present(settings: Settings) -> bool:
    """True when the delta-spark JVM jars are on this installation's Spark classpath.

    Looks at the jars shipped with PySpark, `$SPARK_HOME/jars` and `spark.jars` in config;
    never downloads anything (no `spark.jars.packages`).
    """

    folders = [Path(pyspark.__file__).parent / "jars"]
    if home := os.environ.get("SPARK_HOME"):
        folders.append(Path(home) / "jars")
    candidates = [p for folder in folders for p in glob.glob(str(folder / "delta-spark_*.jar"))]
    candidates += [
        j for j in settings.spark.conf.get("spark.jars", "").split(",") if "delta-spark_" in j
    ]
    return bool(candidates)


def use_delta_spark(settings: Settings) -> bool:
    """Decide the table engine: delta-spark when asked for (or `auto` and jars present)."""
    engine = settings.storage.engine
    if engine == "delta-spark":
        return True
    return engine == "auto" and delta_spark_jars_present(settings)


def spark_conf(settings: Settings, *, app_name: str | None = None) -> dict[str, str]:
    """The full Spark configuration for `settings`, as plain strings (easy to test and log)."""
    s = settings.spark
    local_dir = Path(settings.resolve(s.local_dir))
    conf = {
        "spark.master": s.master,
        "spark.app.name": app_name or s.app_name,
        "spark.driver.memory": s.driver_memory,
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        "spark.ui.enabled": str(s.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # PySpark 4 otherwise walks the Python stack and makes several JVM calls for every
        # functions.* call to attach the call site to errors; the conformance expressions
        # make thousands of such calls per run (measured: most of a nightly silver run).
        "spark.python.sql.dataFrameDebugging.enabled": "false",
        # delta-rs cannot read Spark's default INT96 timestamps back: microsecond timestamps
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
        "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.local.dir": str(local_dir),
        "spark.driver.extraJavaOptions": (
            f"-Djava.io.tmpdir={local_dir} -Dlog4j.configurationFile={LOG4J_CONFIG}"
        ),
    }
    if use_delta_spark(settings):
        conf["spark.sql.extensions"] = DELTA_EXTENSION
        conf["spark.sql.catalog.spark_catalog"] = DELTA_CATALOG
    conf.update(s.conf)
    return conf


# Decided by spark-submit (from the Airflow connection) when a job is submitted: the master,
# where the driver runs and how big it is. Setting them again here would override the cluster.
SUBMIT_DECIDES = (
    "spark.master",
    "spark.submit.deployMode",
    "spark.driver.memory",
    "spark.driver.extraJavaOptions",
    "spark.app.name",
)


def submitted() -> bool:
    """True when this Python driver was started by spark-submit (its JVM is already running)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_spark(settings: Settings, *, app_name: str | None = None) -> SparkSession:
    """Build (or return the running) Spark session configured from `settings`.

    The session is always passed on explicitly; no module keeps one globally. Under
    spark-submit the master and the driver's resources are the submitter's (SUBMIT_DECIDES);
    everything else still comes from `settings`.

    >>> from medlake.config import load_settings
    >>> spark = build_spark(load_settings("local"), app_name="notebook")  # doctest: +SKIP
    """
    conf = spark_conf(settings, app_name=app_name)
    if submitted():
        conf = {k: v for k, v in conf.items() if k not in SUBMIT_DECIDES}
    Path(conf["spark.local.dir"]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if conf.get("spark.master", "").startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
