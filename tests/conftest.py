"""Shared fixtures: one local Spark session for the run, a fresh table root per test."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from medlake.config import Settings, load_settings
from medlake.governance.identity import TOKEN_FILE_ENV
from medlake.io import TableIO
from medlake.spark import build_spark, delta_spark_jars_present
from medlake.tables import Registry
from tests.identities import Identities, write_identities

FIXTURES = Path(__file__).parent / "fixtures"
os.environ.setdefault("LAKEHOUSE_CODE_VERSION", "test-code-version")
# Pseudonymisation keys for the tests only (silver refuses to run without them), fixed so that
# tokens are reproducible; real keys come from the environment or a secret file.
for _jurisdiction in ("br", "cn", "eu", "my", "us"):
    os.environ.setdefault(
        f"LAKEHOUSE_PSEUDONYM_KEY_{_jurisdiction.upper()}",
        hashlib.sha256(f"test-key-{_jurisdiction}".encode()).hexdigest(),
    )
# The audit trail's MAC key for the tests only (fixed; real keys come from the secret store).
os.environ.setdefault("LAKEHOUSE_AUDIT_KEY", hashlib.sha256(b"test-audit-key").hexdigest())
os.environ.setdefault("LAKEHOUSE_AUDIT_KEY_ID", "test-1")
os.environ["TZ"] = "UTC"  # PySpark maps naive datetimes through the process time zone
time.tzset()


def copy_lake(source: Path, target: Path, *parts: str) -> None:
    """Copy a test lake (or only `parts` of it, e.g. "bronze", "_system") without its audit
    trail: the copy is another lakehouse, whose trail starts afresh with an anchor of its
    own (the original's anchor vouches for the original's location only)."""
    for part in parts or (".",):
        shutil.copytree(source / part, target / part, dirs_exist_ok=True)
    for path in (target / "_system").glob("_audit*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def make_settings(root: Path, **storage: object) -> Settings:
    return load_settings("test", overrides={"storage": {"root": str(root), **storage}})


# `make test` runs two test processes (pytest-xdist). Each test file stays in one process, so a
# module's fixtures are built once; the files that read the simulated history (the `history`
# fixture below) share one process, so the history is built once per run. (xdist's own
# `--dist loadgroup` marks do not take effect under pytest 9.2: pytest-xdist issue #1386.)
HISTORY_MODULES = frozenset(
    {
        "tests/gold/test_cost.py",
        "tests/gold/test_gold_job.py",
        "tests/ml/test_late_delivery_jobs.py",
        "tests/unit/test_quality.py",
    }
)


def scope(nodeid: str) -> str:
    """The test process unit of a test: "history" for the history's readers, else its file."""
    path = nodeid.split("::", 1)[0]
    return "history" if path in HISTORY_MODULES else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadFileScheduling

    class ByFileHistoryTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope(nodeid)

    return ByFileHistoryTogether(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    strays = sorted(
        {
            scope(item.nodeid)
            for item in items
            if "history" in getattr(item, "fixturenames", ()) and scope(item.nodeid) != "history"
        }
    )
    if strays:
        raise pytest.UsageError(
            f"{', '.join(strays)} use the `history` fixture: add them to HISTORY_MODULES in "
            "tests/conftest.py so that the history is built in one test process"
        )


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    settings = make_settings(tmp_path_factory.mktemp("spark-root"), engine="auto")
    session = build_spark(settings, app_name="lakehouse-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.load(FIXTURES / "tables")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "lake")


@pytest.fixture
def identities(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Identities:
    """An identity directory (tests/identities.py) named by $LAKEHOUSE_IDENTITIES; nobody is
    signed in until a test calls `identities.sign_in(monkeypatch, NAME)`."""
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    found = write_identities(folder)
    found.sign_in(monkeypatch, None)
    monkeypatch.setenv(TOKEN_FILE_ENV, str(folder / "no-token"))
    return found


@pytest.fixture
def io(spark: SparkSession, settings: Settings, registry: Registry) -> TableIO:
    return TableIO(spark, settings, registry)


ENGINES = ["delta-rs", "delta-spark"]


@pytest.fixture(params=ENGINES)
def any_io(
    request: pytest.FixtureRequest, spark: SparkSession, tmp_path: Path, registry: Registry
) -> TableIO:
    """TableIO on each engine; delta-spark runs only where its jars are on the classpath."""
    engine = request.param
    settings = make_settings(tmp_path / "lake", engine=engine)
    if engine == "delta-spark" and not delta_spark_jars_present(settings):
        pytest.skip(
            "delta-spark engine: the delta-spark jars are not on this Spark classpath "
            "(pyspark/jars, $SPARK_HOME/jars or spark.jars); this build is offline and "
            "never fetches jars, so its conformance run happens where they are installed"
        )
    return TableIO(spark, settings, registry)


@pytest.fixture(scope="session")
def history(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Eight simulated months of two plants in silver (tests/history.py), built on first use."""
    from tests.history import build_history

    return build_history(spark, tmp_path_factory.mktemp("history"))
