"""The adversarial corpus: deterministic, broad enough, and detection meets its targets on it."""

from __future__ import annotations

import pytest

from medlake.governance.analyzer import detect_many
from medlake.governance.corpus import ENTITY_TYPES, generate
from medlake.governance.evaluate import score

MIN_RECALL, MIN_PRECISION = 0.995, 0.98


def test_the_same_seed_gives_the_same_texts_and_another_seed_others() -> None:
    assert generate(seed=7, n=200) == generate(seed=7, n=200)
    assert [t.text for t in generate(seed=7, n=200)] != [t.text for t in generate(8, 200)]


def test_every_label_points_at_its_value_and_every_device_id_is_in_its_text() -> None:
    for record in generate(seed=3, n=600):
        for _, start, end, value in record.spans:
            assert record.text[start:end] == value, record.text
        assert all(device in record.text for device in record.device_ids)


def test_the_default_corpus_has_1000_texts_in_three_languages_with_every_type_and_hard_cases() -> (
    None
):
    records = generate(seed=1)
    assert len(records) >= 1000
    assert {r.language for r in records} == {"zh", "de", "en"}
    labelled = {entity for r in records for entity, *_ in r.spans}
    assert labelled == set(ENTITY_TYPES)
    values = [value for r in records for *_, value in r.spans]
    text = "\n".join(r.text for r in records)
    assert any("＠" in v for v in values) and any(v.startswith('"') for v in values)
    assert any("xn--" in v for v in values) and any("ü" in v.split("@")[0] for v in values)
    assert any("Durchwahl" in v or "转" in v or "ext" in v for v in values)
    assert any(not r.spans for r in records)  # texts without personal data
    assert "批号 1" in text or "批号1" in text  # lot numbers shaped like CN mobiles


@pytest.mark.parametrize("seed", [1, 4])
def test_detection_on_the_corpus_meets_the_targets_with_whole_values_only(seed: int) -> None:
    records = generate(seed=seed)
    report = score(records, detect_many([r.text for r in records]), min_coverage=1.0)
    print(report.format())
    assert report.failures(min_recall=MIN_RECALL, min_precision=MIN_PRECISION) == [], (
        report.format(),
        report.missed,
        report.spurious,
    )
    assert report.device_hits == 0 and report.device_ids >= len(records)
    assert {t for t, s in report.per_type.items() if s.labelled} == set(ENTITY_TYPES)


def test_quality_cli_prints_the_report_and_exits_0_on_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from medlake.cli import main

    assert main(["governance", "quality", "--seed", "2", "--texts", "300"]) == 0
    out = capsys.readouterr().out
    assert "PERSON" in out and "EMAIL_ADDRESS" in out and "overlapped by a prediction: 0" in out
    assert "below target" not in out


def test_quality_cli_exits_1_when_a_threshold_is_missed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from medlake.cli import main

    assert main(["governance", "quality", "--texts", "60", "--min-precision", "1.01"]) == 1
    assert "below target" in capsys.readouterr().out
