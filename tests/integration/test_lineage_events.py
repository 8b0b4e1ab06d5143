"""The OpenLineage events of a real pipeline run (ingest and silver over a two-day range of
two simulated plants, file transport): every event validates against the spec, datasets are
named by the Naming spec with the logical table name as a symlink, outputs carry their
schema, the nominal time covers the range, and ingestion's event aggregates its files."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medlake.config import load_settings
from medlake.jobs import ingest as ingest_job
from medlake.jobs import silver as silver_job
from medlake.runtime import JobContext
from medlake_simulator.generate import generate
from tests.conf_copy import copy_conf
from tests.openlineage_schema import problems

pytestmark = pytest.mark.slow

DAYS = [dt.date(2026, 1, 30), dt.date(2026, 1, 31)]
PLANTS = ["SZ", "GW"]
ENTITIES = ["fx_rates", "suppliers", "materials", "purchase_orders", "goods_receipts"]
JOBS = ["ingest", "silver"]


@pytest.fixture(scope="module")
def pipeline(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lineage-events")
    landing = root / "landing"
    generate(landing, start=DAYS[0], days=len(DAYS), scale=0.2, seed=11, progress=False)
    conf = copy_conf(
        root / "conf",
        {
            "storage": {"root": str(root / "lake")},
            "landing": {"root": str(landing)},
            "lineage": {"transport": "file", "folder": str(root / "openlineage")},
        },
    )
    contexts = {}
    for job in JOBS:
        ctx = JobContext(
            settings=load_settings("test", conf_dir=conf),
            job=job,
            dates=DAYS,
            run_id=f"{job}-range",
            plants=PLANTS,
            entities=ENTITIES if job == "silver" else None,
        )
        ctx._spark = spark
        {"ingest": ingest_job.run, "silver": silver_job.run}[job](ctx)
        contexts[job] = ctx
    events = {
        job: [
            json.loads(line)
            for line in (root / "openlineage" / f"{job}.jsonl").read_text().splitlines()
        ]
        for job in JOBS
    }
    return {
        "root": root,
        "landing": landing,
        "lake": root / "lake",
        "ctx": contexts,
        "events": events,
    }


def every_event(pipeline: dict[str, Any]) -> list[dict[str, Any]]:
    return [event for job in JOBS for event in pipeline["events"][job]]


def table_datasets(pipeline: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        dataset
        for event in every_event(pipeline)
        for dataset in [*event["inputs"], *event["outputs"]]
        if "symlinks" in dataset["facets"]
    ]


def test_every_event_validates_against_the_openlineage_spec(pipeline: dict[str, Any]) -> None:
    for event in every_event(pipeline):
        assert problems(event) == [], (event["job"]["name"], event["eventType"])


def test_each_job_is_one_run_that_starts_and_completes(pipeline: dict[str, Any]) -> None:
    for job in JOBS:
        events = pipeline["events"][job]
        assert [e["eventType"] for e in events] == ["START", "COMPLETE"], job
        assert len({e["run"]["runId"] for e in events}) == 1
        assert {e["run"]["facets"]["medlake_run"]["runId"] for e in events} == {f"{job}-range"}
    run_ids = {e["run"]["runId"] for e in every_event(pipeline)}
    assert len(run_ids) == len(JOBS)


def test_nominal_time_covers_the_whole_range(pipeline: dict[str, Any]) -> None:
    for event in every_event(pipeline):
        nominal = event["run"]["facets"]["nominalTime"]
        assert nominal["nominalStartTime"] == "2026-01-30T00:00:00.000Z"
        assert nominal["nominalEndTime"] == "2026-02-01T00:00:00.000Z"


def test_tables_are_named_by_their_path_with_the_logical_name_as_symlink(
    pipeline: dict[str, Any],
) -> None:
    datasets = table_datasets(pipeline)
    assert len(datasets) > 10
    lake = pipeline["lake"]
    for dataset in datasets:
        (link,) = dataset["facets"]["symlinks"]["identifiers"]
        assert (link["namespace"], link["type"]) == ("medlake", "TABLE")
        logical = link["name"]
        layer, _, name = logical.partition(".")
        expected = lake / "_system" / logical if logical.startswith("_") else lake / layer / name
        assert (dataset["namespace"], dataset["name"]) == ("file", str(expected))
        assert (Path(dataset["name"]) / "_delta_log").is_dir(), logical  # a real Delta table


def test_outputs_carry_the_columns_of_the_written_table(pipeline: dict[str, Any]) -> None:
    io = pipeline["ctx"]["silver"].io
    outputs = [
        d for e in every_event(pipeline) if e["eventType"] == "COMPLETE" for d in e["outputs"]
    ]
    assert len(outputs) > 10
    for dataset in outputs:
        logical = dataset["facets"]["symlinks"]["identifiers"][0]["name"]
        fields = [f["name"] for f in dataset["facets"]["schema"]["fields"]]
        assert sorted(fields) == sorted(io.read(logical).columns), logical


def test_ingest_names_the_landing_root_once_with_the_files_it_read(
    pipeline: dict[str, Any],
) -> None:
    ctx = pipeline["ctx"]["ingest"]
    complete = pipeline["events"]["ingest"][-1]
    assert len(json.dumps(complete).encode("utf-8")) < 1_000_000
    files = [d for d in complete["inputs"] if "medlake_delivery" in d.get("inputFacets", {})]
    assert [(d["namespace"], d["name"]) for d in files] == [("file", str(pipeline["landing"]))]
    assert len(complete["inputs"]) == 1
    facet = files[0]["inputFacets"]["medlake_delivery"]

    read = (
        ctx.io.read("_bronze_manifest")
        .where(F.col("status").isin("ingested", "quarantined"))
        .select("entity")
        .collect()
    )
    per_table = Counter(f"bronze.{r.entity}" for r in read)
    assert facet["files"] == len(read) > 20
    assert facet["filesPerTable"] == dict(per_table)
    assert facet["manifest"]["table"] == "_bronze_manifest"
    assert facet["manifest"]["version"] == str(ctx.io.version("_bronze_manifest"))
    assert facet["manifest"]["name"] == str(pipeline["lake"] / "_system" / "_bronze_manifest")

    # `_lineage` keeps an edge per file: each bronze table version to its entity's files
    edges = ctx.io.read("_lineage").where(F.col("job") == "ingest").collect()
    table = "bronze.erp__goods_receipts"
    file_edges = [e for e in edges if e.target_table == table and e.source_kind == "file"]
    assert len(file_edges) == per_table[table] > 0
