"""Jobs reach a cluster's executors as the built artifact (docs/cluster.md).

On a cluster the executors run a Python of their own: the locked third-party packages (a
packed environment in `spark.archives`) but not medlake, whose code reaches them as the built
wheel shipped in `spark.submit.pyFiles` (`spark-submit --py-files`). Here a real cluster runs
on this machine, `local-cluster[2,1,1024]`: a master and two workers inside the driver's JVM,
each worker starting its own executor JVM, whose Python workers run the Python the job names.
The ingest job is submitted as its Airflow task submits it (medlake/dag_tasks.py): the driver
on an environment with the locked dependencies and the wheel installed (an Airflow worker's),
the executors on one with the locked dependencies only. Its parse of the delivered files
(`medlake.bronze.ingest.parse`, a mapInPandas) runs on the executors:

- without the artifact the executors cannot import medlake and the job fails;
- with it, every delivered row is read there and lands in bronze (or its quarantine).

PySpark puts only the .zip, .egg and .jar files of pyFiles on the executors' path, so the
wheel (a zip archive) is shipped under a .zip name. The driver imports the shipped copy first.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest
import yaml
from deltalake import DeltaTable
from pyspark import SparkContext

from medlake.sources import PlantSource, load_sources
from medlake.spark import LOG4J_CONFIG
from medlake_simulator.generate import generate
from tests.conf_copy import copy_conf
from tests.delivered import data_rows
from tests.wheel_build import build_wheel, install, locked_venv, run

pytestmark = pytest.mark.slow

MASTER = "local-cluster[2,1,1024]"  # two workers of one core and 1024 MiB, one executor each
DAY = dt.date(2026, 1, 5)
ENTITIES = ("erp__purchase_orders", "erp__suppliers")  # every plant delivers both
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
# short-lived JVMs: the quick JIT tier and the serial collector (docs/airflow.md)
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
NOT_IMPORTABLE = "ModuleNotFoundError: No module named 'medlake'"
PY_FILES = "spark.submit.pyFiles"


@dataclass(frozen=True)
class Cluster:
    work: Path
    artifact: Path  # the wheel, under a .zip name
    driver_python: Path  # the locked dependencies and the wheel: an Airflow worker's
    job: Path  # medlake/jobs/ingest.py as installed there (what LakehouseJob submits)
    executor_python: Path  # the locked dependencies, no medlake
    conf: Path
    landing: Path
    sources: dict[str, PlantSource]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    work = tmp_path_factory.mktemp("cluster")
    wheel = build_wheel(work)
    artifact = shutil.copy2(wheel, wheel.with_suffix(".zip"))
    driver_python = locked_venv(work / "driver-env")
    install(driver_python, wheel)
    job = run([driver_python, "-c", "from medlake.config import packaged; print(packaged('jobs', 'ingest.py'))"],
              cwd=work, env=_clean_env()).stdout.strip()  # fmt: skip
    executor_python = locked_venv(work / "executor-env")
    found = run([executor_python, "-c", "import importlib.util as u; print(u.find_spec('medlake'))"],
                cwd=work, env=_clean_env()).stdout.strip()  # fmt: skip
    assert found == "None", f"the executors' environment must not have medlake: {found}"

    landing = work / "landing"
    generate(landing, start=DAY, days=1, scale=0.2, seed=5, progress=False)
    overlay = {"landing": {"root": str(landing)}, "lineage": {"transport": "none"}}
    conf = copy_conf(work / "conf", overlay)
    for path in (conf / "sources").glob("*.yaml"):  # this group's contract: two files a plant
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["entities"] = {e: data["entities"][e] for e in ENTITIES}
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return Cluster(
        work=work,
        artifact=Path(artifact),
        driver_python=driver_python,
        job=Path(job),
        executor_python=executor_python,
        conf=conf,
        landing=landing,
        sources=load_sources(conf / "sources"),
    )


def _clean_env() -> dict[str, str]:
    """This process's environment without a path to medlake and without the test process's
    Spark and lakehouse settings (the keys and the code version stay)."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "SPARK_HOME", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"}
    drop |= {"LAKEHOUSE_CONF", "LAKEHOUSE_ENV", "LAKEHOUSE_HOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def submit(
    cluster: Cluster, name: str, *options: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """spark-submit the ingest job of DAY on a local cluster; its $LAKEHOUSE_HOME and the
    result. SPARK_HOME is a folder of links to PySpark's, so that the workers' folders (one per
    executor: its log and the files shipped to it) are under the test's folder."""
    home = cluster.work / name
    spark_home = home / "spark-home"
    spark_home.mkdir(parents=True)
    pyspark_home = Path(pyspark.__file__).parent
    for entry in pyspark_home.iterdir():
        if entry.name != "work":
            (spark_home / entry.name).symlink_to(entry)
    env = _clean_env() | {
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",  # the master, workers and executors on loopback
        "LAKEHOUSE_CONF": str(cluster.conf),
        "LAKEHOUSE_ENV": "test",
        "LAKEHOUSE_HOME": str(home),
        # as medlake.dag_tasks.LakehouseJob passes them: Spark settings and the environment
        "PYSPARK_DRIVER_PYTHON": str(cluster.driver_python),
        "PYSPARK_PYTHON": str(cluster.executor_python),
    }
    command = [
        str(SPARK_SUBMIT),
        "--master", MASTER,
        "--driver-java-options", f"{JVM_OPTIONS} -Dlog4j.configurationFile={LOG4J_CONFIG}",
        "--conf", f"spark.executor.extraJavaOptions={JVM_OPTIONS}",
        "--conf", f"spark.pyspark.driver.python={cluster.driver_python}",
        "--conf", f"spark.pyspark.python={cluster.executor_python}",
        "--conf", "spark.task.maxFailures=1",  # a task that cannot import fails the job at once
        *options,
        str(cluster.job), "--date", DAY.isoformat(), "--run-id", f"cluster-{name}",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=home, env=env, timeout=600
    )
    return home, result


def test_pyspark_puts_zip_files_of_py_files_on_the_executors_path_but_not_wheels() -> None:
    # why the artifact is shipped as medlake-<version>-py3-none-any.zip (docs/cluster.md)
    assert ".zip" in SparkContext.PACKAGE_EXTENSIONS
    assert ".whl" not in SparkContext.PACKAGE_EXTENSIONS


def test_a_driver_that_imports_medlake_from_the_artifact_still_reads_its_package_data(
    cluster: Cluster,
) -> None:
    """In client mode spark-submit puts the artifact of spark.submit.pyFiles first on the
    driver's path too: the package comes from the zip, its data from the installed copy."""
    probe = (
        "import medlake, medlake.config as c; "
        "print(medlake.__file__); print(c.DEFAULT_CONF_DIR); print(c.packaged('jobs', 'ingest.py'))"
    )
    env = _clean_env() | {"PYTHONPATH": str(cluster.artifact)}
    imported, conf, job = run(
        [cluster.driver_python, "-c", probe], cwd=cluster.work, env=env
    ).stdout.split()
    assert imported.startswith(str(cluster.artifact))  # the zip's copy is the one imported
    assert Path(conf).is_dir() and (Path(conf) / "lakehouse.yaml").is_file()
    assert Path(job) == cluster.job


def test_without_the_artifact_the_executors_cannot_import_medlake(cluster: Cluster) -> None:
    home, result = submit(cluster, "without-artifact")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    # the parse's tasks failed on an executor (the driver has medlake), importing medlake
    failure = re.search(
        r"\(127\.0\.0\.1 executor \d+\): org\.apache\.spark\.api\.python\.PythonException", output
    )
    assert failure and NOT_IMPORTABLE in output, output[-3000:]
    assert not (home / "var" / "lakehouse" / "bronze").exists()


def test_with_the_artifact_the_ingest_job_lands_every_delivered_row(cluster: Cluster) -> None:
    # the Airflow connection's extra carries it as a Spark setting (`--py-files` sets the same)
    home, result = submit(cluster, "with-artifact", "--conf", f"{PY_FILES}={cluster.artifact}")
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert NOT_IMPORTABLE not in result.stderr
    summary = json.loads(re.split(r"^(?=\{$)", result.stdout, maxsplit=1, flags=re.M)[-1])

    # both executors received the artifact, byte for byte, in their folders
    (app,) = (home / "spark-home" / "work").glob("app-*")
    shipped = {d.name for d in app.iterdir() if (d / cluster.artifact.name).is_file()}
    assert {"0", "1"} <= shipped, sorted(p.name for p in app.iterdir())
    payload = cluster.artifact.read_bytes()
    assert all((app / e / cluster.artifact.name).read_bytes() == payload for e in shipped)

    # every delivered row, read on the executors, is in bronze or in its quarantine
    lake = home / "var" / "lakehouse"
    expected = Counter[str]()
    for plant_id, source in cluster.sources.items():
        for entity in ENTITIES:
            path = cluster.landing / plant_id / DAY.isoformat() / source.entities[entity].file
            expected[path.relative_to(cluster.landing).as_posix()] = data_rows(path, source)
    landed = Counter[str]()
    for entity in ENTITIES:
        files = DeltaTable(str(lake / "bronze" / entity)).to_pyarrow_table(columns=["_source_file"])
        landed.update(files.column("_source_file").to_pylist())
    quarantine = lake / "_system" / "_bronze_quarantine"
    if quarantine.exists():
        files = DeltaTable(str(quarantine)).to_pyarrow_table(columns=["source_file"])
        landed.update(files.column("source_file").to_pylist())
    assert len(expected) == 2 * len(cluster.sources) and sum(expected.values()) > 0
    assert +landed == +expected
    assert summary["rows_ingested"] + summary["rows_quarantined"] == sum(expected.values())

    # and as delivered: Shenzhen's suppliers, GB 18030 text decoded on the executors
    delivered = cluster.landing / "SZ" / DAY.isoformat() / "erp__suppliers.csv"
    reader = csv.DictReader(io.StringIO(delivered.read_bytes().decode("gb18030"), newline=""))
    rows = [{k: v or None for k, v in row.items()} for row in reader]
    bronze = DeltaTable(str(lake / "bronze" / "erp__suppliers")).to_pyarrow_table()
    records = sorted(
        (r for r in bronze.to_pylist() if r["_source_file"] == "SZ/2026-01-05/erp__suppliers.csv"),
        key=lambda r: r["_file_row"],
    )
    assert [dict(r["_record"]) for r in records] == rows and rows
