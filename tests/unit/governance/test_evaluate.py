"""Scoring rules of `medlake.governance.evaluate`, on small hand-counted examples."""

from __future__ import annotations

import pytest

from medlake.governance.analyzer import Finding
from medlake.governance.evaluate import LabelledText, Report, TypeScore, score

TEXT = "Patient John Smith (tel. 0170 8853572), lot 13790688900, UDI (01)04012345678901(10)L1."
NAME = ("PERSON", 8, 18, "John Smith")
PHONE = ("PHONE_NUMBER", 25, 37, "0170 8853572")
DEVICES = ("13790688900", "04012345678901", "(01)04012345678901(10)L1")


def test_the_example_offsets_are_right() -> None:
    assert TEXT[8:18] == "John Smith" and TEXT[25:37] == "0170 8853572"


def one(
    findings: list[Finding], spans: tuple[tuple[str, int, int, str], ...] = (NAME, PHONE)
) -> Report:
    return score([LabelledText(TEXT, spans, DEVICES)], [findings])


def test_exact_predictions_give_full_recall_and_precision() -> None:
    report = one([Finding("PERSON", 8, 18, 0.85), Finding("PHONE_NUMBER", 25, 37, 0.7)])
    assert report.per_type["PERSON"] == TypeScore("PERSON", 1, 1, 1, 1)
    assert (
        report.per_type["PHONE_NUMBER"].recall == report.per_type["PHONE_NUMBER"].precision == 1.0
    )
    assert report.failures(min_recall=0.98, min_precision=0.9) == []


@pytest.mark.parametrize(
    ("predicted", "found"),
    [
        ([(8, 18)], True),  # exact
        ([(0, 18)], True),  # wider ("Patient John Smith")
        ([(8, 17)], True),  # 9 of 10 characters = 90%
        ([(8, 16)], False),  # 8 of 10 characters = 80%
        ([(8, 12), (13, 18)], True),  # two predictions together cover 9 of 10
        ([(20, 30)], False),  # elsewhere
    ],
)
def test_a_label_is_found_when_same_type_predictions_cover_90_percent_of_it(
    predicted: list[tuple[int, int]], found: bool
) -> None:
    report = one([Finding("PERSON", s, e, 0.8) for s, e in predicted], spans=(NAME,))
    assert report.per_type["PERSON"].found == int(found)


def test_a_prediction_of_another_type_finds_nothing_and_is_not_correct() -> None:
    report = one([Finding("ADDRESS", 8, 18, 0.8)])
    assert report.per_type["PERSON"].recall == 0.0
    assert report.per_type["ADDRESS"] == TypeScore("ADDRESS", 0, 0, 1, 0)
    assert report.per_type["ADDRESS"].recall is None and report.per_type["ADDRESS"].precision == 0.0
    assert report.spurious == [("ADDRESS", "John Smith")]
    assert report.missed == [("PERSON", "John Smith"), ("PHONE_NUMBER", "0170 8853572")]


def test_a_prediction_is_correct_when_it_overlaps_a_label_of_its_type() -> None:
    report = one([Finding("PHONE_NUMBER", 30, 45, 0.7), Finding("PHONE_NUMBER", 44, 55, 0.7)])
    phone = report.per_type["PHONE_NUMBER"]
    assert (phone.predicted, phone.correct, phone.precision) == (2, 1, 0.5)
    assert phone.found == 0  # 30..37 covers 7 of 12 characters


def test_every_occurrence_of_a_device_identifier_touched_by_any_prediction_is_a_hit() -> None:
    lot = TEXT.index("13790688900")
    report = one(
        [
            Finding("PERSON", 8, 18, 0.85),
            Finding("PHONE_NUMBER", 25, 37, 0.7),
            Finding("PHONE_NUMBER", lot, lot + 11, 0.7),  # the lot number taken for a phone
        ]
    )
    # 3 occurrences: the lot, the UDI, and the GTIN inside the UDI
    assert (report.device_ids, report.device_hits) == (3, 1)
    assert report.failures(min_recall=0.5, min_precision=0.0) == ["1 device identifiers overlapped"]


def test_failures_name_the_type_and_the_threshold() -> None:
    report = one([Finding("PERSON", 8, 18, 0.85), Finding("PERSON", 40, 44, 0.6)])
    assert report.failures(min_recall=0.98, min_precision=0.9) == [
        "PERSON: precision 0.5000 < 0.9",
        "PHONE_NUMBER: recall 0.0000 < 0.98",
    ]


def test_format_is_one_row_per_type_and_a_device_line() -> None:
    lines = one([Finding("PERSON", 8, 18, 0.85)]).format().splitlines()
    assert lines[0].split() == [
        "entity", "type", "labelled", "found", "recall", "predicted", "correct", "precision",
    ]  # fmt: skip
    assert lines[1].split() == ["PERSON", "1", "1", "1.0000", "1", "1", "1.0000"]
    assert lines[2].split() == ["PHONE_NUMBER", "1", "0", "0.0000", "0", "0", "-"]
    assert lines[3] == "1 texts; device identifiers: 3, overlapped by a prediction: 0"


def test_records_and_predictions_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 records but 1 prediction lists"):
        score([LabelledText("a", []), LabelledText("b", [])], [[]])
