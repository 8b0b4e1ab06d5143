"""Fake personal data and narratives: check digits by hand, formats, exact offsets, determinism."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest

from medlake_simulator.pii import (
    ENTITY_TYPES,
    Country,
    Lang,
    PiiFaker,
    Span,
    cn_id_check_char,
    cn_id_valid,
    gtin_check_digit,
    gtin_valid,
    iban_valid,
    luhn_valid,
    narrative,
)

DEVICE_BASE = {
    "product": "Infusion Pump IP-200",
    "gtin": "06912345000017",
    "lot": "L2603A117",
    "serial": "SN2603000123",
    "udi": "(01)06912345000017(17)280131(10)L2603A117(21)SN2603000123",
}
FAULTS: dict[str, str] = {
    "zh": "输液过程中频繁报警",
    "de": "Okklusionsalarm ohne erkennbare Ursache",
    "en": "occlusion alarm without an obvious cause",
}
DEVICE_KEYS = ("gtin", "lot", "serial", "udi")
CASES: list[tuple[Lang, Country]] = [
    ("zh", "CN"),
    ("de", "DE"),
    ("en", "IE"),
    ("en", "MY"),
    ("en", "US"),
    ("de", "CN"),
]

PHONE_PATTERNS: dict[str, tuple[str, str]] = {  # country -> (mobile, landline)
    "CN": (r"(\+86 )?1[3-9]\d( \d{4} \d{4}|\d{8})", r"0\d{2,3}-[2-8]\d{6,7}"),
    "DE": (r"(\+49 |0)1[5-7]\d [1-9]\d{6,7}", r"(\+49 |0)[2-9]\d{1,3} [2-9]\d{4,7}"),
    "IE": (r"(\+353 |0)8[35-9] \d{3} \d{4}", r"(\+353 |0)(1 \d{3} \d{4}|[2-9]\d \d{3} \d{3,4})"),
    "MY": (r"(\+60 |0)1\d-\d{3,4} \d{4}", r"(\+60 |0)[3-9]-\d{3,4} \d{4}"),
    "US": (r"(\(\d{3}\) |(\+1 )?\d{3}-)[2-9]\d{2}-\d{4}",) * 2,
}


def device(lang: str) -> dict[str, str]:
    return {**DEVICE_BASE, "fault": FAULTS[lang]}


def make(
    seed: int, lang: Lang, country: Country, kind: str = "complaint"
) -> tuple[str, list[Span]]:
    rng = np.random.default_rng(seed)
    assert kind in ("complaint", "service")
    return narrative(
        PiiFaker(rng),
        lang,
        "complaint" if kind == "complaint" else "service",
        country=country,
        device=device(lang),
        rng=rng,
    )


def corpus(n_per_case: int = 80) -> list[tuple[Lang, str, list[Span]]]:
    out: list[tuple[Lang, str, list[Span]]] = []
    for i, (lang, country) in enumerate(CASES):
        for kind in ("complaint", "service"):
            for seed in range(n_per_case):
                text, spans = make(seed * 101 + i, lang, country, kind)
                out.append((lang, text, spans))
    return out


@pytest.fixture(scope="module")
def texts() -> list[tuple[Lang, str, list[Span]]]:
    return corpus()


# -- validators, against values worked out by hand -----------------------------------------------


def test_when_cn_id_body_given_then_check_char_matches_hand_computation() -> None:
    body = "11010519491231002"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    # 7+9+0+5+0+20+2+9+24+27+7+18+30+5+0+0+4 = 167; 167 % 11 = 2 -> "10X98765432"[2] = "X"
    assert total == 167
    assert "10X98765432"[total % 11] == "X"
    assert cn_id_check_char(body) == "X"
    assert cn_id_valid(body + "X")
    assert cn_id_valid(body + "x")


def test_when_cn_id_is_malformed_then_it_is_invalid() -> None:
    good = "11010519491231002X"
    assert not cn_id_valid("110105194912310021")  # wrong check char
    assert not cn_id_valid(good[:-1])  # 17 chars
    assert not cn_id_valid("11010519490231002X".replace("0231", "0230"))  # 30 February
    assert not cn_id_valid("99" + good[2:])  # no such province
    assert not cn_id_valid("1101051949A231002X")
    with pytest.raises(ValueError, match="17 digits"):
        cn_id_check_char("123")


def test_when_gtin_given_then_check_digit_matches_hand_computation() -> None:
    # GS1 weights for the 13 leading digits of a GTIN-14: 3,1,3,1,... from the left.
    # 0614141000036: 0*3+6+1*3+4+1*3+4+1*3+0+0*3+0+0*3+3+6*3 = 44 -> (10 - 4) % 10 = 6
    assert gtin_check_digit("0614141000036") == "6"
    # GS1's GTIN-12 example 614141000036, zero-padded to 14 digits.
    assert gtin_check_digit("0061414100003") == "6"
    assert gtin_valid("00614141000036")
    # 0,6,9,1,2,3,4,5,0,0,0,0,1 -> 0+6+27+1+6+3+12+5+0+0+0+0+3 = 63 -> 7
    assert gtin_valid("06912345000017")
    assert not gtin_valid("06912345000018")
    assert not gtin_valid("0691234500001")


def test_when_known_ibans_given_then_mod97_validation_agrees() -> None:
    assert iban_valid("DE89370400440532013000")
    assert iban_valid("DE89 3704 0044 0532 0130 00")
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("DE88370400440532013000")
    assert not iban_valid("GB82WEST1234569876543")  # one character short
    assert not iban_valid("DE89-3704")


def test_when_card_numbers_given_then_luhn_check_agrees() -> None:
    assert luhn_valid("4539578763621486")
    assert luhn_valid("4539 5787 6362 1486")
    assert not luhn_valid("4539578763621487")
    assert not luhn_valid("45395787636214a6")


# -- generators --------------------------------------------------------------------------------


def test_when_1000_identifiers_generated_then_all_validate() -> None:
    faker = PiiFaker(np.random.default_rng(2026))
    ids = [faker.cn_resident_id() for _ in range(1000)]
    cards = [faker.bank_card() for _ in range(1000)]
    ibans = [faker.iban("DE" if i % 2 else "IE") for i in range(1000)]
    assert all(cn_id_valid(v) for v in ids)
    assert all(len(c) == 16 and c.isdigit() and luhn_valid(c) for c in cards)
    assert all(c.startswith(("62", "4", "5")) for c in cards)
    assert all(iban_valid(v) for v in ibans)
    assert {v.replace(" ", "")[:2] for v in ibans} == {"DE", "IE"}
    assert all(len(v.replace(" ", "")) == 22 for v in ibans)
    assert len(set(ids)) > 990


def test_when_birth_date_given_then_resident_id_embeds_it() -> None:
    value = PiiFaker(np.random.default_rng(1)).cn_resident_id(dt.date(1988, 7, 12))
    assert value[6:14] == "19880712"
    assert cn_id_valid(value)


@pytest.mark.parametrize("country", ["CN", "DE", "IE", "MY", "US"])
def test_when_phone_generated_then_it_matches_country_format(country: Country) -> None:
    faker = PiiFaker(np.random.default_rng(5))
    mobile_pattern, landline_pattern = PHONE_PATTERNS[country]
    for _ in range(200):
        mobile = faker.phone(country)
        landline = faker.phone(country, mobile=False)
        assert re.fullmatch(mobile_pattern, mobile), mobile
        assert re.fullmatch(landline_pattern, landline), landline


def test_when_names_generated_then_they_follow_language_shape() -> None:
    faker = PiiFaker(np.random.default_rng(9))
    for _ in range(200):
        zh = faker.person_name("zh")
        assert 2 <= len(zh) <= 3 and all("\u4e00" <= ch <= "\u9fff" for ch in zh)
        for lang in ("de", "en"):
            parts = faker.person_name(lang).split(" ")
            assert len(parts) == 2 and all(p[0].isupper() for p in parts)


def test_when_email_generated_then_local_part_is_ascii() -> None:
    faker = PiiFaker(np.random.default_rng(3))
    pattern = re.compile(r"[a-z0-9._]+@[a-z0-9.-]+\.[a-z]+")
    assert faker.email("Jürgen Weiß", "klinikum-tuttlingen.de").endswith("@klinikum-tuttlingen.de")
    for name in ["Jürgen Weiß", "Siobhan O'Brien", "张伟", "欧阳娜娜", None]:
        for _ in range(20):
            value = faker.email(name)
            assert pattern.fullmatch(value), value
    assert all("ue" in faker.email("Jürgen Müller").split("@")[0] for _ in range(10))


def test_when_address_generated_then_it_reads_like_the_country() -> None:
    faker = PiiFaker(np.random.default_rng(4))
    for _ in range(50):
        assert re.search(r"[\u4e00-\u9fff]+[省市].*号", faker.address("CN"))
        assert re.search(r", \d{5} [A-ZÄÖÜ]", faker.address("DE"))
        assert re.search(r", [A-Z]\d{2} [A-Z0-9]{4}$", faker.address("IE"))
        assert re.search(r", \d{5} [A-Z]", faker.address("MY"))
        assert re.search(r", [A-Z]{2} \d{5}$", faker.address("US"))


def test_when_same_seed_used_then_faker_output_repeats() -> None:
    def draw(seed: int) -> list[str]:
        f = PiiFaker(np.random.default_rng(seed))
        return [f.person_name("zh"), f.phone("MY"), f.cn_resident_id(), f.email(), f.address("IE")]

    assert draw(11) == draw(11)
    assert draw(11) != draw(12)


# -- narratives --------------------------------------------------------------------------------


def test_when_same_seed_used_then_narrative_repeats() -> None:
    for lang, country in CASES:
        for seed in range(20):
            assert make(seed, lang, country) == make(seed, lang, country)
    assert make(1, "de", "DE") != make(2, "de", "DE")


def test_when_narrative_built_then_span_offsets_are_exact_and_disjoint(
    texts: list[tuple[Lang, str, list[Span]]],
) -> None:
    for _lang, text, spans in texts:
        previous_end = 0
        for span in sorted(spans, key=lambda s: s.start):
            assert text[span.start : span.end] == span.value, (text, span)
            assert span.start >= previous_end, (text, spans)
            assert span.entity_type in ENTITY_TYPES
            assert span.value and span.value == span.value.strip()
            previous_end = span.end


def test_when_narrative_built_then_device_identifiers_present_and_outside_spans(
    texts: list[tuple[Lang, str, list[Span]]],
) -> None:
    for _lang, text, spans in texts:
        assert DEVICE_BASE["product"] in text
        present = [DEVICE_BASE[k] for k in DEVICE_KEYS if DEVICE_BASE[k] in text]
        assert present, text
        for ident in present:
            for match in re.finditer(re.escape(ident), text):
                for span in spans:
                    assert match.end() <= span.start or match.start() >= span.end, (text, span)
        for span in spans:
            assert not any(DEVICE_BASE[k] in span.value for k in DEVICE_KEYS)


def test_when_narratives_drawn_then_pii_mix_is_as_documented(
    texts: list[tuple[Lang, str, list[Span]]],
) -> None:
    without = sum(1 for _lang, _text, spans in texts if not spans)
    share = without / len(texts)
    assert 0.07 < share < 0.25
    with_pii = [spans for _lang, _text, spans in texts if spans]
    named = sum(1 for spans in with_pii if any(s.entity_type == "PERSON" for s in spans))
    assert named / len(with_pii) > 0.85
    seen = {s.entity_type for _lang, _text, spans in texts for s in spans}
    assert seen == ENTITY_TYPES
    for lang, _text, spans in texts:
        if lang != "zh":
            assert all(s.entity_type != "CN_RESIDENT_ID" for s in spans)
    cnids = [s.value for _l, _t, spans in texts for s in spans if s.entity_type == "CN_RESIDENT_ID"]
    assert cnids and all(cn_id_valid(v) for v in cnids)
    for _lang, _text, spans in texts:
        for s in spans:
            if s.entity_type == "IBAN_CODE":
                assert iban_valid(s.value)
            elif s.entity_type == "CREDIT_CARD":
                assert luhn_valid(s.value)


def test_when_person_named_then_span_excludes_honorific(
    texts: list[tuple[Lang, str, list[Span]]],
) -> None:
    honorifics = ("Herr", "Frau", "Dr.", "Mr.", "Mrs.", "Ms.", "患者", "先生", "女士", "医生")
    names = [s.value for _l, _t, spans in texts for s in spans if s.entity_type == "PERSON"]
    assert names
    assert not any(h in name for name in names for h in honorifics)


def test_when_narrative_built_then_it_is_written_in_the_requested_language(
    texts: list[tuple[Lang, str, list[Span]]],
) -> None:
    cjk = re.compile(r"[\u4e00-\u9fff]")
    german = {"Gerät", "Charge", "Seriennummer", "meldet", "bittet", "Chargennummer", "UDI:"}
    english = {"the", "Lot", "lot", "serial", "reported", "UDI:"}
    for lang, text, spans in texts:
        words = set(re.findall(r"[\wäöüÄÖÜß:]+", text))
        if lang == "zh":
            assert len(cjk.findall(text)) >= 10, text
            continue
        # Only a planted Chinese address may carry CJK characters into a de/en text.
        stripped = text
        for span in spans:
            stripped = stripped.replace(span.value, "")
        assert not cjk.search(stripped), text
        assert words & (german if lang == "de" else english), text
        if lang == "de":
            assert re.search(r"\b(der|die|das|den|dem|des|am|zum|um|für|auf)\b", text), text
        else:
            assert re.search(r"\b(the|with|for|of|to)\b", text), text


def test_when_narrative_text_inspected_then_sentence_count_is_two_to_four(
    texts: list[tuple[Lang, str, list[Span]]],
) -> None:
    for lang, text, _spans in texts:
        if lang == "zh":
            count = text.count("。")
        else:
            count = len(re.findall(r"\.(?= [A-Z]|$)", text))
            count -= len(re.findall(r"\b(Mr|Mrs|Ms|Dr|St|No|Tel)\.(?= [A-Z])", text))
        assert 2 <= count <= 4, text


def test_when_device_dict_lacks_a_key_then_narrative_raises() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(KeyError, match="udi"):
        narrative(
            PiiFaker(rng),
            "en",
            "service",
            country="US",
            device={k: v for k, v in device("en").items() if k != "udi"},
            rng=rng,
        )
