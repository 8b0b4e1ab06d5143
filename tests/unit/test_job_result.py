"""JobResult: the typed fields agree with the figures a job reports, and the command line
prints the figures without their row lists."""

from __future__ import annotations

import json

import pytest

from medlake.runtime import EXIT_OK, JobResult


def test_exit_code_and_gates_are_typed_fields_taken_from_the_figures() -> None:
    summary = {"run_id": "r1", "rows": 3, "failed_gates": ["silver.x: key_unique"], "exit_code": 1}
    result = JobResult(
        job="silver", run_id="r1", exit_code=1, failed_gates=("silver.x: key_unique",),
        summary=summary,
    )  # fmt: skip
    assert (result.exit_code, result.failed_gates) == (1, ("silver.x: key_unique",))
    assert result["rows"] == 3 and result.get("missing", "none") == "none"
    assert list(result) == list(summary) and len(result) == 4
    plain = JobResult(job="gold", run_id="r2", summary={"rows": 1})
    assert (plain.exit_code, plain.failed_gates) == (EXIT_OK, ())


@pytest.mark.parametrize(
    ("field", "value"),
    [("exit_code", 0), ("failed_gates", []), ("run_id", "another")],
)
def test_a_result_whose_fields_contradict_its_figures_is_refused(field: str, value: object) -> None:
    summary = {"run_id": "r1", "failed_gates": ["g"], "exit_code": 1, field: value}
    with pytest.raises(ValueError, match=f"summary {field}"):
        JobResult(job="silver", run_id="r1", exit_code=1, failed_gates=("g",), summary=summary)


def test_the_printed_figures_leave_out_row_lists_and_count_the_unbalanced() -> None:
    summary = {
        "run_id": "r1",
        "rows": 7,
        "recon": [{"entity": "a", "rows_read": 7}],  # rows: not printed
        "manifest": {"a": 1},  # a map: not printed
        "plants": ["GW", "SZ"],  # a list of values: printed
        "unbalanced": [{"entity": "a"}, {"entity": "b"}],
    }
    result = JobResult(job="silver", run_id="r1", summary=summary)
    expected = {"run_id": "r1", "rows": 7, "plants": ["GW", "SZ"], "unbalanced": 2}
    assert result.printed() == expected
    assert json.loads(result.render()) == expected
