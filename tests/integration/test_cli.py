"""The `lakehouse` command: help texts, table maintenance, and clear errors instead of tracebacks."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medlake.cli import main
from medlake.config import load_settings
from medlake.io import CommitContext, TableIO
from medlake.tables import Registry

LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--help"], "table"),
        (["table", "--help"], "history"),
        (["table", "list", "--help"], "owner"),
        (["table", "history", "--help"], "newest first"),
        (["table", "vacuum", "--help"], "retention"),
        (["table", "optimize", "--help"], "small files"),
    ],
)
def test_every_command_explains_itself(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert expected in capsys.readouterr().out


def test_table_list_shows_every_declared_table(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["table", "list"]) == 0
    out = capsys.readouterr().out
    assert "_audit" in out and "_lineage" in out and "event_date" in out


def test_unknown_table_is_a_clear_error_before_spark_starts(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["table", "history", "silver.nope"]) == 2
    assert "unknown table 'silver.nope'" in capsys.readouterr().err


def test_history_optimize_and_vacuum_work_on_a_written_table(
    conf: Path, spark: SparkSession, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings("test", conf_dir=conf)
    io = TableIO(spark, settings, Registry.load(conf / "tables"))
    schema = io.registry.get("_lineage").spark_schema
    day = dt.date(2026, 3, 1)
    at = dt.datetime(2026, 3, 1, 1, 0)
    for i in range(3):
        row = ("gold.x", i, f"file:///f{i}", "file", None, "job", "run", day, at, day)
        io.append(
            "_lineage",
            spark.createDataFrame([row], schema),
            ctx=CommitContext(job="cli_test", run_id=f"r{i}"),
        )

    assert main(["table", "history", "_lineage", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "cli_test" in out and "r2" in out and "r0" not in out

    assert main(["table", "optimize", "_lineage"]) == 0
    assert "compacted 3 files into 1" in capsys.readouterr().out

    assert main(["table", "vacuum", "_lineage", "--retention-hours", "0", "--dry-run"]) == 0
    assert "would remove 3 files" in capsys.readouterr().out
    assert main(["table", "vacuum", "_lineage", "--retention-hours", "0"]) == 0
    assert "removed 3 files" in capsys.readouterr().out
    assert io.read("_lineage").count() == 3


def test_the_installed_command_reports_a_bad_environment_without_a_traceback() -> None:
    done = subprocess.run(
        [LAKEHOUSE, "--env", "nowhere", "table", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "error:" in done.stderr and "no overlay for environment 'nowhere'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_installed_command_lists_tables() -> None:
    done = subprocess.run(
        [LAKEHOUSE, "table", "list"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "_lineage" in done.stdout


def test_a_job_whose_input_is_not_there_yet_exits_not_ready(
    conf: Path, tmp_path: Path, spark: SparkSession, capsys: pytest.CaptureFixture[str]
) -> None:
    # the nightly DAG skips (not fails) a task that exits 75: nothing to do yet
    overlay = conf / "env" / "test.yaml"
    overlay.write_text(overlay.read_text() + f"mlflow:\n  tracking_uri: {tmp_path / 'mlruns'}\n")
    code = main(["run", "train", "--model", "late_delivery", "--date", "2026-03-01"])
    err = capsys.readouterr().err
    assert code == 75, err
    assert err.startswith("not ready: ") and "silver" in err


def test_gates_fail_when_silver_left_no_results(
    conf: Path, spark: SparkSession, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "gates", "--date", "2026-03-01", "--to", "2026-03-02"])
    captured = capsys.readouterr()
    assert code == 1
    assert "no quality results in _dq for 2026-03-01..2026-03-02" in captured.err


def test_a_job_script_passes_conf_and_env_to_lakehouse_wherever_they_stand() -> None:
    from medlake.cli import run_argv

    args = ["--date", "2026-01-02", "--conf", "/etc/medlake", "--plant", "GW", "--env", "cluster"]
    assert run_argv("gold", args) == [
        "--conf", "/etc/medlake", "--env", "cluster", "run", "gold", "--date", "2026-01-02",
        "--plant", "GW",
    ]  # fmt: skip
    assert run_argv("ingest", ["--env=test", "--date", "2026-01-02"]) == [
        "--env=test", "run", "ingest", "--date", "2026-01-02",
    ]  # fmt: skip
    assert run_argv("gates", ["--date", "2026-01-02"]) == ["run", "gates", "--date", "2026-01-02"]
