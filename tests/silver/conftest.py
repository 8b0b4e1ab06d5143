"""One silver build of the simulator's dirty deliveries, shared by the silver test modules."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql import SparkSession

from tests.silver.jobs import build_pipeline


@pytest.fixture(scope="package")
def built(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_pipeline(spark, tmp_path_factory.mktemp("silver"))
