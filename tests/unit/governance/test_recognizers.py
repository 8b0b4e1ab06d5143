"""Recognizers one by one: tables of true positives and of look-alikes that must not match."""

from __future__ import annotations

import pytest
from presidio_analyzer import EntityRecognizer, PatternRecognizer
from presidio_analyzer.nlp_engine import NoOpNlpEngine

from medlake.governance.recognizers import LANGUAGES, RECOGNIZERS, build, register
from medlake.governance.recognizers.device import after_device_label, gtin_valid, in_udi

NLP = NoOpNlpEngine(models=[{"lang_code": lang, "model_name": "none"} for lang in LANGUAGES])
NLP.load()
WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def hand_cn_id(body: str) -> str:
    """The ID with its ISO 7064 MOD 11-2 check character, computed step by step."""
    remainder = sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11
    return body + "10X98765432"[remainder]


def hand_luhn(payload: str) -> str:
    """The payload with its Luhn check digit: double every second digit from the right."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return payload + str(-total % 10)


def hand_gtin(first13: str) -> str:
    """GTIN-14: weights 3,1,3,... from the left over 13 digits, check = (10 - sum) mod 10."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(first13))
    return first13 + str(-total % 10)


# A worked example: 1*7+1*9+0*10+1*5+0*8+5*4+1*2+9*1+4*6+9*3+1*7+2*9+3*10+1*5+0*8+0*4+2*2 = 167,
# 167 mod 11 = 2 -> "X".
ID_WORKED = "11010519491231002X"
ID_SZ = hand_cn_id("44030519900612123")  # Shenzhen Nanshan, born 1990-06-12
ID_BAD_CHECK = ID_SZ[:17] + ("0" if ID_SZ[17] != "0" else "1")
ID_BAD_DATE = hand_cn_id("44030519900231123")  # 31 February
ID_BAD_REGION = hand_cn_id("99030519900612123")  # no province 99
CARD = hand_luhn("622202123456789")  # UnionPay, 16 digits
CARD_BAD = CARD[:-1] + str((int(CARD[-1]) + 1) % 10)
VISA = hand_luhn("411111111111111")
GTIN = hand_gtin("0401234567890")
LOT_LIKE_MOBILE = "13790688900"  # an 11-digit lot number starting with 1
SERIAL_LIKE_ID = hand_cn_id("32050519880101123")  # an 18-digit serial with a valid ID check
SERIAL_LIKE_CARD = hand_luhn("622848000012345")
UDI = f"(01){GTIN}(17)271231(10){LOT_LIKE_MOBILE}(21){SERIAL_LIKE_ID}"


def run(name: str, language: str, text: str) -> list[str]:
    """What one registered recognizer finds in `text`, as strings."""
    (recognizer,) = build(language, (name,))
    artifacts = NLP.process_text(text, language)  # empty: the recognizers need no NLP
    found = recognizer.analyze(text, recognizer.supported_entities, artifacts)
    return [text[r.start : r.end] for r in found]


def test_the_worked_example_check_character_is_x() -> None:
    assert hand_cn_id(ID_WORKED[:17]) == ID_WORKED


TRUE_POSITIVES = [
    # (recognizer, language, text, expected values)
    ("cn_resident_id", "zh", f"身份证号{ID_WORKED}。", [ID_WORKED]),
    ("cn_resident_id", "zh", f"身份证号码：{ID_SZ}，", [ID_SZ]),
    ("cn_resident_id", "en", f"ID {ID_SZ.lower()}", [ID_SZ.lower()]),
    ("phone_number", "zh", "联系电话13790688900）", ["13790688900"]),
    ("phone_number", "zh", "手机137 9068 8900，", ["137 9068 8900"]),
    ("phone_number", "zh", "电话：+86 198 9376 9414。", ["+86 198 9376 9414"]),
    ("phone_number", "zh", "电话：+8619893769414", ["+8619893769414"]),
    ("phone_number", "zh", "联系电话0755-2345678，", ["0755-2345678"]),
    ("phone_number", "zh", "电话010-23456789", ["010-23456789"]),
    ("phone_number", "de", "Mobil 0170 8853572.", ["0170 8853572"]),
    ("phone_number", "de", "Tel. +49 162 5895279)", ["+49 162 5895279"]),
    ("phone_number", "de", "Telefon: 07461 234567", ["07461 234567"]),
    ("phone_number", "de", "Tel. 0170/8853572", ["0170/8853572"]),
    ("phone_number", "en", "mobile +353 85 179 6426;", ["+353 85 179 6426"]),
    ("phone_number", "en", "tel. 021 234 567", ["021 234 567"]),
    ("phone_number", "en", "phone 016-902 2094)", ["016-902 2094"]),
    ("phone_number", "en", "phone +60 11-1234 5678", ["+60 11-1234 5678"]),
    ("phone_number", "en", "call +1 858-252-3480.", ["+1 858-252-3480"]),
    ("phone_number", "en", "call 763-988-0417 or (612) 555-0199", ["763-988-0417", "(612) 555-0199"]),
    ("zh_person", "zh", "患者王伟反映输液泵故障", ["王伟"]),
    ("zh_person", "zh", "患者家属李秀英（联系电话", ["李秀英"]),
    ("zh_person", "zh", "联系人：曾华", ["曾华"]),
    ("zh_person", "zh", "设备科张伟明先生报修", ["张伟明"]),
    ("zh_person", "zh", "经刘洋医生确认，患者未受伤害。", ["刘洋"]),
    ("zh_person", "zh", "主治医生陈静已确认上述情况。", ["陈静"]),
    ("zh_person", "zh", "欧阳娜娜女士来电", ["欧阳娜娜"]),
    ("zh_person", "zh", "赵敏工程师报修", ["赵敏"]),
    ("zh_address", "zh", "寄回地址：广东省深圳市南山区科技园路88号3栋1205室。", ["广东省深圳市南山区科技园路88号3栋1205室"]),
    ("zh_address", "zh", "联系地址：北京市朝阳区建设路5号。", ["北京市朝阳区建设路5号"]),
    ("zh_address", "zh", "江苏省苏州市工业园区金鸡湖大道12号锦绣华庭3栋1205室", ["江苏省苏州市工业园区金鸡湖大道12号锦绣华庭3栋1205室"]),
    ("zh_address", "zh", "寄至深圳市福田区深南大道7号", ["深圳市福田区深南大道7号"]),
    ("latin_person", "en", "Mr. James O'Brien from biomedical engineering", ["James O'Brien"]),
    ("latin_person", "en", "Mrs. Siobhan McCarthy reported", ["Siobhan McCarthy"]),
    ("latin_person", "en", "On 3 May 2024, patient John Smith called", ["John Smith"]),
    ("latin_person", "en", "Customer contact Nurul Rahman opened", ["Nurul Rahman"]),
    ("latin_person", "en", "The treating physician, Dr. Aoife Byrne, confirmed", ["Aoife Byrne"]),
    ("latin_person", "en", "Contact: Laura Martin", ["Laura Martin"]),
    ("latin_person", "en", "Dr Zbigniew Kowalski asked", ["Zbigniew Kowalski"]),
    ("latin_person", "en", "caregiver Tadeusz Nowakowski called", ["Tadeusz Nowakowski"]),
    ("latin_person", "de", "Patientin Ingeborg Lindqvist meldet", ["Ingeborg Lindqvist"]),
    ("latin_person", "en", "Ms. Émilie Dubois", ["Émilie Dubois"]),
    ("latin_person", "en", "forwarded to Ahmad bin Ibrahim", ["Ahmad bin Ibrahim"]),
    ("latin_person", "de", "Herr Jürgen Müller von der Medizintechnik", ["Jürgen Müller"]),
    ("latin_person", "de", "Die Angehörige Frau Anna Schäfer meldet", ["Anna Schäfer"]),
    ("latin_person", "de", "Patientin Ursula Weiß beschwert sich", ["Ursula Weiß"]),
    ("latin_person", "de", "Ansprechpartner: Uwe Koch", ["Uwe Koch"]),
    ("latin_person", "de", "Laut Dr. med. Klaus Huber kam der Patient nicht zu Schaden.", ["Klaus Huber"]),
    ("latin_person", "de", "Kunde Hans-Peter Schulz", ["Hans-Peter Schulz"]),
    ("latin_person", "zh", "患者家属Laura Martin（电话", ["Laura Martin"]),
    ("latin_address", "en", "Return address: 2767 Maple Avenue, San Diego, CA 92121.", ["2767 Maple Avenue, San Diego, CA 92121"]),
    ("latin_address", "en", "12 2nd Avenue South, Apt 3B, St. Paul, MN 55102.", ["12 2nd Avenue South, Apt 3B, St. Paul, MN 55102"]),
    ("latin_address", "en", "No. 67, Jalan Burma, 11900 Bayan Lepas, Pulau Pinang. Dr. Tan", ["No. 67, Jalan Burma, 11900 Bayan Lepas, Pulau Pinang"]),
    ("latin_address", "en", "5 Father Griffin Road, Dublin 2, D02 X285.", ["5 Father Griffin Road, Dublin 2, D02 X285"]),
    ("latin_address", "en", "at 10 Downing Street, London, SW1A 2AA", ["10 Downing Street, London, SW1A 2AA"]),
    ("latin_address", "en", "left at 14 Oak Street yesterday", ["14 Oak Street"]),
    ("latin_address", "de", "Hauptstraße 12, 80331 München", ["Hauptstraße 12, 80331 München"]),
    ("latin_address", "de", "Anschrift: Am Marktplatz 5, 79098 Freiburg im Breisgau.", ["Am Marktplatz 5, 79098 Freiburg im Breisgau"]),
    ("latin_address", "de", "an Berliner Straße 3a, 78050 Villingen-Schwenningen", ["Berliner Straße 3a, 78050 Villingen-Schwenningen"]),
    ("latin_address", "de", "Rücksendung an Lindenstraße 7", ["Lindenstraße 7"]),
    ("latin_address", "zh", "寄回地址：36 College Road, Cork, T12 E5RE。", ["36 College Road, Cork, T12 E5RE"]),
    ("iban", "de", "Bitte Gutschrift auf IBAN DE89 3704 0044 0532 0130 00.", ["DE89 3704 0044 0532 0130 00"]),
    ("iban", "en", "refund to IBAN IE29AIBK93115212345678.", ["IE29AIBK93115212345678"]),
    ("iban", "zh", "退款账户：DE89370400440532013000。", ["DE89370400440532013000"]),
    ("credit_card", "zh", f"退款银行卡号：{CARD}。", [CARD]),
    ("credit_card", "zh", f"银行卡{CARD}", [CARD]),
    ("credit_card", "en", f"Card for the refund: {VISA[:4]} {VISA[4:8]} {VISA[8:12]} {VISA[12:]}.", [f"{VISA[:4]} {VISA[4:8]} {VISA[8:12]} {VISA[12:]}"]),
    ("email", "zh", "邮箱zhang.wei@qq.com）", ["zhang.wei@qq.com"]),
    ("email", "de", "E-Mail: j.mueller@klinikum-tuttlingen.de.", ["j.mueller@klinikum-tuttlingen.de"]),
    ("email", "en", "email s.doyle@pantai-penang.com.my;", ["s.doyle@pantai-penang.com.my"]),
    ("ip_address", "en", "from 192.168.10.20, gateway fe80::1ff:fe23:4567:890a", ["192.168.10.20", "fe80::1ff:fe23:4567:890a"]),
    ("ip_address", "zh", "IP地址10.0.0.7登录", ["10.0.0.7"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "language", "text", "expected"), TRUE_POSITIVES)
def test_when_personal_value_is_written_then_its_recognizer_finds_exactly_it(
    name: str, language: str, text: str, expected: list[str]
) -> None:
    assert run(name, language, text) == expected


FALSE_POSITIVES = [
    # (recognizer, language, text): device identifiers, order numbers, dates, look-alikes
    ("cn_resident_id", "zh", f"序列号{SERIAL_LIKE_ID}。"),
    ("cn_resident_id", "zh", f"产品UDI：{UDI}。"),
    ("cn_resident_id", "en", f"serial number {SERIAL_LIKE_ID}"),
    ("cn_resident_id", "de", f"Seriennummer {SERIAL_LIKE_ID}"),
    ("cn_resident_id", "zh", f"身份证号{ID_BAD_CHECK}"),
    ("cn_resident_id", "zh", f"身份证号{ID_BAD_DATE}"),
    ("cn_resident_id", "zh", f"身份证号{ID_BAD_REGION}"),
    ("cn_resident_id", "zh", "统一社会信用代码91440300MA5FXXXX1X"),
    ("cn_resident_id", "zh", f"SN{ID_SZ}"),
    ("phone_number", "zh", f"批号{LOT_LIKE_MOBILE}，"),
    ("phone_number", "zh", f"涉及批次{LOT_LIKE_MOBILE}（GTIN {GTIN}）。"),
    ("phone_number", "zh", f"产品UDI：{UDI}。"),
    ("phone_number", "en", f"Lot number {LOT_LIKE_MOBILE}, GTIN {GTIN}."),
    ("phone_number", "en", f"lot {LOT_LIKE_MOBILE}"),
    ("phone_number", "de", "Charge 01708853572, Chargennummer 0170885357"),
    ("phone_number", "en", f"GTIN {GTIN}"),
    ("phone_number", "en", f"(01){GTIN}(17)271231(10)0170885357(21)SN000123456789012"),
    ("phone_number", "en", "Reference: purchase order PO-2401-00012. Work order WO-2401-00013."),
    ("phone_number", "de", "Am 15.01.2024 und am 01/02/2024, Bestellung PO-2401-00012"),
    ("phone_number", "en", "On 2024-01-15 at 10:30, 3 units, 80331 München, CA 92121"),
    ("phone_number", "zh", "2024年1月15日，投诉单号CMP-2401-0012。"),
    ("phone_number", "en", "Serial SN000123456789012, part 612-345-6789"),
    ("phone_number", "en", "SNSZ0000120001 L2601SZ00012"),
    ("phone_number", "en", "Boston, MA 02115; 0.5 ml; 01234"),
    ("zh_person", "zh", "患者高烧不退，家属要求退货。"),
    ("zh_person", "zh", "联系人：苏州市"),
    ("zh_person", "zh", "客户反映输液泵IP-200存在质量问题"),
    ("zh_person", "zh", "医院设备科报修"),
    ("zh_person", "zh", "联系人：深圳市第1人民医院"),
    ("zh_person", "zh", "高级工程师已上门，华为工程师远程支持，温州医生会诊"),
    ("zh_address", "zh", "深南大道附近的医院"),
    ("zh_address", "zh", "已创建维修工单WO-2401-00012。"),
    ("latin_person", "de", "Die Station meldet einen Fehler am Gerät Infusionspumpe IP-200."),
    ("latin_person", "de", "Laut Dr. Müller Klinikum war der Patient nicht gefährdet."),
    ("latin_person", "de", "Ansprechpartner: Medizintechnik"),
    ("latin_person", "de", "Der Kunde Gerät defekt"),
    ("latin_person", "en", "Contact: George Town General Hospital"),
    ("latin_person", "en", "Contact: Klinikum Tuttlingen"),
    ("latin_person", "en", "The patient was not harmed. A caregiver called."),
    ("latin_person", "en", "Site contact: Biomedical Engineering"),
    ("latin_person", "en", "The patient Safety Officer and the Patient Information Leaflet"),
    ("latin_person", "en", "Contact: Precision Plastics"),  # a label, not a role: names only
    ("latin_person", "en", "ALM-07 OCCLUSION alarm; NO-POWER"),
    ("latin_address", "de", "Arbeitsplatz 3 ist frei, Gerät 12 defekt"),
    ("latin_address", "en", "Lot 12 was shipped on 12 May 2024"),
    ("latin_address", "en", f"UDI: {UDI}"),
    ("iban", "en", "serial SN000123456789012 and DE89 3704 0044 0532 0130 01"),
    ("iban", "en", "Serial number DE89370400440532013000"),
    ("credit_card", "en", f"GTIN {GTIN}, serial number {SERIAL_LIKE_CARD}"),
    ("credit_card", "zh", f"序列号{SERIAL_LIKE_CARD}"),
    ("credit_card", "zh", f"设备序列号{SERIAL_LIKE_CARD}，UDI码(01){GTIN}(21){SERIAL_LIKE_CARD}"),
    ("credit_card", "en", f"card {CARD_BAD}"),
    ("credit_card", "en", f"{hand_gtin('4401234567890')}"),
    ("email", "en", "user@localhost or a@b.invalidtld"),
    ("email", "zh", "邮箱：无"),
    ("ip_address", "en", "Firmware 2.1.0.4 at 10:30:45, version 1.2.3.4"),
    ("ip_address", "en", "MAC 00:1A:2B:3C:4D:5E, ratio 3:2, 999.1.1.1"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "language", "text"), FALSE_POSITIVES)
def test_when_text_holds_only_look_alikes_then_the_recognizer_finds_nothing(
    name: str, language: str, text: str
) -> None:
    assert run(name, language, text) == []


def test_when_a_card_number_is_also_a_resident_id_then_it_is_not_a_card() -> None:
    # an ID (Zhengzhou, born 1949-12-31) whose check character also makes it Luhn-valid
    resident_id = next(
        hand_cn_id(body)
        for body in (f"41010519491231{n:03d}" for n in range(1, 1000))
        if hand_cn_id(body) == hand_luhn(body)
    )
    assert run("cn_resident_id", "zh", f"身份证号{resident_id}") == [resident_id]
    assert run("credit_card", "zh", f"身份证号{resident_id}") == []


def test_every_registered_recognizer_is_a_presidio_recognizer_for_known_languages() -> None:
    assert {
        "cn_resident_id", "phone_number", "zh_person", "zh_address", "latin_person",
        "latin_address", "iban", "credit_card", "email", "ip_address",
    } <= set(RECOGNIZERS)  # fmt: skip
    for language in LANGUAGES:
        for recognizer in build(language):
            assert isinstance(recognizer, EntityRecognizer)
            assert recognizer.supported_language == language
    assert all(isinstance(r, PatternRecognizer) for r in build("zh"))


def test_chinese_name_and_address_recognizers_serve_only_chinese_text() -> None:
    chinese = {"ChinesePersonRecognizer", "ChineseAddressRecognizer"}
    assert chinese <= {type(r).__name__ for r in build("zh")}
    assert chinese.isdisjoint(type(r).__name__ for r in build("en") + build("de"))


def test_when_a_name_is_registered_twice_then_registration_fails() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register("phone_number")(PatternRecognizer)


@pytest.mark.parametrize(
    ("text", "start", "end", "inside"),
    [
        (f"UDI: {UDI}.", 9, 9 + len(GTIN), True),
        (f"产品UDI：{UDI}。联系人王伟", len(f"产品UDI：{UDI}。联系人"), len(f"产品UDI：{UDI}。联系人王伟"), False),
        ("tel. 13790688900", 5, 16, False),
    ],
)  # fmt: skip
def test_in_udi_marks_only_the_udi_string(text: str, start: int, end: int, inside: bool) -> None:
    assert in_udi(text, start, end) is inside


@pytest.mark.parametrize(
    ("before", "labelled"),
    [
        ("批号", True), ("序列号：", True), ("Lot number ", True), ("Seriennummer ", True),
        ("GTIN ", True), ("Charge ", True), ("purchase order ", True), ("S/N: ", True),
        ("电话", False), ("Tel. ", False), ("身份证号码：", False), ("mobile ", False),
    ],
)  # fmt: skip
def test_device_labels_are_recognised_right_before_a_number(before: str, labelled: bool) -> None:
    assert after_device_label(before + "13790688900", len(before)) is labelled


def test_gtin_check_digit_agrees_with_the_hand_computation() -> None:
    assert gtin_valid(GTIN)
    assert not gtin_valid(GTIN[:-1] + str((int(GTIN[-1]) + 1) % 10))
    assert gtin_valid("4006381333931")  # a GTIN-13 (EAN) printed on a retail product


# ------------------------------------------------------------------------------------------
# Issue 20: a finding covers the whole value; detection by class
# ------------------------------------------------------------------------------------------

WHOLE_VALUES = [
    # (a) non-ASCII local parts were masked only from the first non-ASCII letter on
    ("email", "de", "E-Mail: jürgen.müller@firma.de, bitte", ["jürgen.müller@firma.de"]),
    ("email", "en", "mail zoë.o'brien@hse.ie today", ["zoë.o'brien@hse.ie"]),
    ("email", "de", "an søren@müller.de", ["søren@müller.de"]),
    ("email", "zh", "邮箱a.li@例子.中国，谢谢", ["a.li@例子.中国"]),
    ("email", "zh", "邮箱：张伟@例子.中国联系", ["张伟@例子.中国"]),
    ("email", "zh", "邮箱张伟@例子.中国", ["张伟@例子.中国"]),
    ("email", "en", "x@xn--fsqu00a.xn--fiqs8s and y@xn--mller-kva.de", ["x@xn--fsqu00a.xn--fiqs8s", "y@xn--mller-kva.de"]),
    ("email", "en", 'to "john doe"@example.com.', ['"john doe"@example.com']),
    ("email", "en", "anna.schmidt+rma@firma.de", ["anna.schmidt+rma@firma.de"]),
    ("email", "zh", "邮箱wang.fang＠163.com。", ["wang.fang＠163.com"]),
    ("email", "zh", "邮箱zhang@x.cn", ["zhang@x.cn"]),
    # (b) less common single-character surnames were not detected at all
    ("zh_person", "zh", "隗小明先生来电", ["隗小明"]),
    ("zh_person", "zh", "晁阳女士反映", ["晁阳"]),
    ("zh_person", "zh", "钮伟工程师上门", ["钮伟"]),
    ("zh_person", "zh", "患者邝志强反映", ["邝志强"]),
    ("zh_person", "zh", "龚丽护士长说", ["龚丽"]),
    ("zh_person", "zh", "已与岑总确认", ["岑"]),
    ("zh_person", "zh", "李工说明天到", ["李"]),
    ("zh_person", "zh", "家属常永红来电", ["常永红"]),
    ("zh_person", "zh", "感谢张伟医生", ["张伟"]),
    ("latin_person", "de", "Frau Dr. Anna von der Heide meldet", ["Anna von der Heide"]),
    ("latin_person", "de", "Herr Müller-Lüdenscheidt", ["Müller-Lüdenscheidt"]),
    ("latin_person", "en", "Puan Siti binti Ahmad called", ["Siti binti Ahmad"]),
    ("latin_person", "de", "Pflegerin Möhring wohnt", ["Möhring"]),
    # found in review, outside the corpus: Irish particles, Malay abbreviated titles, and a
    # Chinese name after a Latin context word (the surname was all that was masked, or nothing)
    ("latin_person", "en", "Customer contact: Seán Ó Briain, mobile", ["Seán Ó Briain"]),
    ("latin_person", "en", "Patient Máire Ní Bhriain reported", ["Máire Ní Bhriain"]),
    ("latin_person", "en", "Pn. Siti Nurhaliza binti Ahmad, No. 12", ["Siti Nurhaliza binti Ahmad"]),
    ("latin_person", "en", "En. Ahmad Faizal bin Hassan called", ["Ahmad Faizal bin Hassan"]),
    ("zh_person", "zh", "Kontakt: 张伟 <zhang.wei@例子.中国>", ["张伟"]),
    ("zh_person", "zh", "Name: 李娜, Tel 13812345678", ["李娜"]),
    ("phone_number", "de", "Tel. +49 7461 234567 Durchwahl -34.", ["+49 7461 234567 Durchwahl -34"]),
    ("phone_number", "zh", "电话0755-2345678转8021，", ["0755-2345678转8021"]),
    ("phone_number", "en", "call 1-800-555-0199 x12 or +44 (0)20 7946 0958 ext. 3", ["+44 (0)20 7946 0958 ext. 3", "1-800-555-0199 x12"]),
    ("phone_number", "zh", "电话(+86) 13812345678", ["(+86) 13812345678"]),
    ("phone_number", "de", "Tel. 07461.468203", ["07461.468203"]),
    ("latin_address", "de", "an Friedrich-Ebert-Straße 12a, 69117 Heidelberg.", ["Friedrich-Ebert-Straße 12a, 69117 Heidelberg"]),
    ("latin_address", "de", "Schillerstraße 27 D-80331 München", ["Schillerstraße 27 D-80331 München"]),
    ("latin_address", "en", "Unit 7, Ballybrit Business Park, Galway, H91 P2DK.", ["Unit 7, Ballybrit Business Park, Galway, H91 P2DK"]),
    ("latin_address", "en", "No. 12, Jalan Perusahaan 2, 13600 Prai, Pulau Pinang", ["No. 12, Jalan Perusahaan 2, 13600 Prai, Pulau Pinang"]),
    ("latin_address", "en", "at 98 Riverside Dr, Suite 300, Edina, MN 55435", ["98 Riverside Dr, Suite 300, Edina, MN 55435"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "language", "text", "expected"), WHOLE_VALUES)
def test_when_a_value_of_a_covered_class_is_written_then_the_finding_covers_all_of_it(
    name: str, language: str, text: str, expected: list[str]
) -> None:
    assert run(name, language, text) == expected


NOT_NAMES_OR_NUMBERS = [
    ("zh_person", "zh", "正在施工，安装工程师已上门，责任护士和值班医生在场，感谢对方医生。"),
    ("zh_person", "zh", "王伟工作认真"),  # 工作 is work, not 工 (engineer)
    ("phone_number", "zh", "批号 13812345678，Lot 15912345678"),
    ("phone_number", "en", "PO-2026-00123, ECO-2026-017, alarm E-1043, ALM-207"),
    ("email", "zh", "邮箱：无，邮箱@未知, user@localhost"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "language", "text"), NOT_NAMES_OR_NUMBERS)
def test_when_words_only_look_like_a_class_then_nothing_is_found(
    name: str, language: str, text: str
) -> None:
    assert run(name, language, text) == []
