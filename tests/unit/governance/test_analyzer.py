"""The offline analyzer: language guess, pre-filter, overlaps, and scores on simulator texts."""

from __future__ import annotations

import dataclasses
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from presidio_analyzer.nlp_engine import NoOpNlpEngine

from medlake.governance import analyzer
from medlake.governance.analyzer import (
    ENTITY_TYPES,
    Finding,
    build_analyzer,
    detect,
    detect_language,
    detect_many,
    get_analyzer,
    might_contain_pii,
    resolve_overlaps,
)
from medlake.governance.evaluate import LabelledText, score
from medlake.governance.recognizers import web
from medlake_simulator.pii import PiiFaker, narrative

# ------------------------------------------------------------------------------------------
# Simulator narratives, with device identifiers that look like personal data
# ------------------------------------------------------------------------------------------

PRODUCTS = {"zh": "输液泵IP-200", "en": "Infusion Pump IP-200", "de": "Infusionspumpe IP-200"}
FAULTS = {
    "zh": "反复出现ALM-07阻塞报警",
    "en": "repeated ALM-07 occlusion alarm",
    "de": "wiederholter Alarm ALM-07 (Okklusion)",
}
PLANTS = [("zh", "CN"), ("en", "MY"), ("en", "IE"), ("de", "DE"), ("en", "US")]
# A note may mention personal data from another country than its plant's.
MIXED = [
    (lang, country) for lang in ("zh", "en", "de") for country in ("CN", "MY", "IE", "DE", "US")
]


ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _digits(rng: random.Random, n: int, lead: str = "0123456789") -> str:
    return rng.choice(lead) + "".join(rng.choice("0123456789") for _ in range(n - 1))


def _check(body: str, weights: list[int], modulus: int, table: str) -> str:
    """A check character: the weighted digit sum modulo `modulus`, looked up in `table`."""
    return table[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % modulus]


def devices(seed: int, n: int = 40) -> list[dict[str, str]]:
    """Device identifier sets: the plain kinds, and look-alikes of a phone, an ID and a card."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        first13 = _digits(rng, 13)
        gtin = first13 + str(-sum(int(d) * (3 - 2 * (k % 2)) for k, d in enumerate(first13)) % 10)
        if i % 4 == 0:
            lot, serial = "L2405123", "SN000123456789012"
        elif i % 4 == 1:
            lot, serial = f"L2601SZ{rng.randrange(10**5):05d}", f"SNSZ{rng.randrange(10**10):010d}"
        elif i % 4 == 2:  # an 11-digit lot like a CN mobile; an 18-digit serial with an ID check
            lot = "1" + rng.choice("3456789") + _digits(rng, 9)
            body = f"440305{rng.randrange(1950, 2005)}0612{_digits(rng, 3)}"
            serial = body + _check(body, [*ID_WEIGHTS], 11, "10X98765432")
        else:  # a lot like a national phone number; a serial like a Luhn-valid card number
            lot = "0" + _digits(rng, 10, "123456789")
            serial = "6222" + _digits(rng, 12)
        udi = f"(01){gtin}(17)271231(10){lot}(21){serial}"
        out.append({"gtin": gtin, "lot": lot, "serial": serial, "udi": udi})
    return out


def simulator_records(n: int, seed: int, combos: list[tuple[str, str]]) -> list[LabelledText]:
    rng = np.random.default_rng(seed)
    faker = PiiFaker(np.random.default_rng(seed + 1))
    pool = devices(seed + 2)
    out = []
    for i in range(n):
        lang, country = combos[i % len(combos)]
        kind = "complaint" if (i // len(combos)) % 2 == 0 else "service"
        device = {**pool[i % len(pool)], "product": PRODUCTS[lang], "fault": FAULTS[lang]}
        text, spans = narrative(faker, lang, kind, country=country, device=device, rng=rng)  # type: ignore[arg-type]
        labels = [(s.entity_type, s.start, s.end, s.value) for s in spans]
        ids = (device["gtin"], device["lot"], device["serial"], device["udi"])
        out.append(LabelledText(text, labels, ids))
    return out


def test_on_simulator_narratives_recall_and_precision_per_type() -> None:
    records = simulator_records(2500, seed=20240611, combos=PLANTS) + simulator_records(
        1500, seed=7, combos=MIXED
    )
    report = score(records, detect_many([r.text for r in records]))
    print(report.format())  # shown with -s, and in the failure output
    assert report.failures(min_recall=0.98, min_precision=0.9) == [], report.format()
    assert report.device_hits == 0
    assert report.device_ids >= len(records)  # every note names its device at least once
    labelled = {t for t, s in report.per_type.items() if s.labelled}
    assert labelled == ENTITY_TYPES - {"IP_ADDRESS"}  # every simulated type was exercised
    assert min(report.per_type[t].labelled for t in labelled) >= 100


# ------------------------------------------------------------------------------------------
# Device identifiers next to personal data, through the whole analyzer
# ------------------------------------------------------------------------------------------

LOOK_ALIKES = devices(seed=3, n=8)


@pytest.mark.parametrize("device", LOOK_ALIKES, ids=lambda d: d["serial"])
@pytest.mark.parametrize(
    "template",
    [
        "患者王伟（联系电话13712345678）反映：批号{lot}，序列号{serial}，GTIN {gtin}。",
        "产品UDI：{udi}。联系人李娜，手机137 9068 8900。",
        "设备序列号{serial}，UDI码{udi}。身份证号11010519491231002X。",
        "Herr Uwe Koch (Tel. 0170 8853572): Charge {lot}, Seriennummer {serial} (UDI {udi}).",
        "Patient John Smith (phone 763-988-0417). Lot number {lot}, GTIN {gtin}, serial {serial}.",
    ],
)
def test_when_device_identifiers_sit_next_to_personal_data_then_only_the_personal_data_is_found(
    template: str, device: dict[str, str]
) -> None:
    text = template.format(**device)
    found = detect(text)
    assert found, text
    for f in found:
        for value in device.values():
            start = text.find(value)
            while start >= 0:
                assert f.end <= start or start + len(value) <= f.start, (
                    text[f.start : f.end],
                    text,
                )
                start = text.find(value, start + 1)


# ------------------------------------------------------------------------------------------
# API details
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("患者王伟反映输液泵故障", "zh"),
        ("联系人：曾华", "zh"),
        ("Serial SN123 批号 L1", "zh"),
        ("Der Patient meldet einen Fehler", "de"),
        ("Jürgen Müller", "de"),
        ("Herr Koch", "de"),
        ("The patient reported a leak", "en"),
        ("Contact: Laura Martin", "en"),
        ("", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    "text", ["", "LEAK", "n/a", "ok", "—", "NO-POWER;OCCLUSION", "display faulty"]
)
def test_when_no_recognizer_can_match_then_the_pre_filter_says_so(text: str) -> None:
    assert not might_contain_pii(text)


@pytest.mark.parametrize("text", ["1", "a@b", "王", "fe80::", "Laura", "Émilie", "ab:cd:ef"])
def test_when_a_recognizer_might_match_then_the_pre_filter_lets_the_text_through(text: str) -> None:
    assert might_contain_pii(text)


def test_the_pre_filter_never_hides_a_finding() -> None:
    rng = random.Random(11)
    texts = [r.text for r in simulator_records(300, seed=5, combos=MIXED)]
    pieces = [
        piece for text in texts for piece in text.replace("，", " ").replace("。", " ").split()
    ]
    alphabet = "aAbBzZäÄ .,:;@+-()0123456789王伟李患者 Mr.Herr"
    texts += pieces + [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30))) for _ in range(3000)
    ]
    for text in texts:
        if not might_contain_pii(text):
            assert analyzer.analyze(text, detect_language(text)) == [], text


def test_overlapping_findings_keep_the_longest_then_the_highest_score_then_checksums() -> None:
    findings = [
        Finding("PHONE_NUMBER", 4, 17, 0.7),  # 137 9068 8900 inside +86 137 9068 8900
        Finding("PHONE_NUMBER", 0, 17, 0.7),
        Finding("PERSON", 20, 23, 0.6),
        Finding("PERSON", 20, 23, 0.85),
        Finding("CREDIT_CARD", 30, 48, 1.0),  # the same 18 digits: an ID wins over a card
        Finding("CN_RESIDENT_ID", 30, 48, 1.0),
    ]
    assert resolve_overlaps(findings) == [
        Finding("PHONE_NUMBER", 0, 17, 0.7),
        Finding("PERSON", 20, 23, 0.85),
        Finding("CN_RESIDENT_ID", 30, 48, 1.0),
    ]


def test_partly_overlapping_findings_become_their_union_so_nothing_stays_clear() -> None:
    findings = [
        Finding("PERSON", 0, 10, 0.9),
        Finding("ADDRESS", 8, 30, 0.6),  # longer: the group is typed ADDRESS
        Finding("PHONE_NUMBER", 29, 40, 0.7),  # overlaps the address: same group
        Finding("EMAIL_ADDRESS", 40, 52, 1.0),  # touches but does not overlap: its own
    ]
    assert resolve_overlaps(findings) == [
        Finding("ADDRESS", 0, 40, 0.6),
        Finding("EMAIL_ADDRESS", 40, 52, 1.0),
    ]


def test_detect_many_returns_one_list_per_text_and_nothing_for_none_or_empty() -> None:
    out = detect_many([None, "", "联系人王伟，电话13790688900。", "display faulty"])
    assert out[0] == out[1] == out[3] == []
    assert [(f.entity_type, f.start, f.end) for f in out[2]] == [
        ("PERSON", 3, 5),
        ("PHONE_NUMBER", 8, 19),
    ]
    assert all(f.score >= analyzer.MIN_SCORE for f in out[2])


def test_findings_are_immutable_and_typed_with_the_simulator_labels() -> None:
    finding = detect("Mr. James Kelly")[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.start = 0  # type: ignore[misc]
    assert {
        "PERSON", "PHONE_NUMBER", "CN_RESIDENT_ID", "EMAIL_ADDRESS", "ADDRESS", "IBAN_CODE",
        "CREDIT_CARD", "IP_ADDRESS",
    } == ENTITY_TYPES  # fmt: skip


def test_when_the_language_is_not_supported_then_detect_says_which_are() -> None:
    with pytest.raises(ValueError, match="'fr' is not supported"):
        detect("Monsieur Dupont", "fr")


def test_the_analyzer_is_built_once_per_process_on_the_no_op_nlp_engine() -> None:
    engine = get_analyzer()
    assert get_analyzer() is engine
    assert analyzer.installed_ner_models() == {}  # no spaCy model on this build
    assert isinstance(engine.nlp_engine, NoOpNlpEngine)
    assert sorted(engine.supported_languages) == ["de", "en", "zh"]
    for language in ("zh", "en", "de"):
        assert set(engine.get_supported_entities(language)) == ENTITY_TYPES


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    web.suffix_extractor.cache_clear()  # rebuild tldextract's suffix list, offline
    yield
    web.suffix_extractor.cache_clear()


@pytest.mark.usefixtures("no_network")
def test_when_the_network_is_unreachable_then_a_new_analyzer_still_works() -> None:
    engine = build_analyzer()
    results = engine.analyze(
        text="E-Mail: j.mueller@klinikum-tuttlingen.de, Tel. +49 162 5895279", language="de"
    )
    assert {r.entity_type for r in results} == {"EMAIL_ADDRESS", "PHONE_NUMBER"}


def test_when_a_spacy_pipeline_is_given_then_its_language_runs_on_spacy(tmp_path: Path) -> None:
    spacy = pytest.importorskip("spacy")
    spacy.blank("en").to_disk(tmp_path / "en_pipeline")  # stands in for an installed NER model
    engine = build_analyzer({"en": str(tmp_path / "en_pipeline")})
    assert type(engine.nlp_engine).__name__ == "SpacyNlpEngine"
    assert "SpacyRecognizer" in {type(r).__name__ for r in engine.get_recognizers("en")}
    results = engine.analyze(text="Mr. James Kelly, tel. 763-988-0417", language="en")
    assert {r.entity_type for r in results} == {"PERSON", "PHONE_NUMBER"}
    assert engine.analyze(text="联系人王伟", language="zh")  # a blank pipeline for zh
