"""An adversarial, seeded corpus of labelled zh/de/en service texts for detection quality.

Written independently of the simulator: its own name, address and sentence lists, and the
hard cases on purpose (rare surnames, honorifics, umlaut, IDN, punycode, quoted and
full-width-@ e-mail addresses, phone extensions, lot numbers shaped like CN mobiles right
after a lot label, names next to device identifiers, texts without personal data). Every
text carries the planted values as labels and the device identifiers it names.

    >>> texts = generate(seed=1, n=30)
    >>> texts == generate(seed=1, n=30) and {t.language for t in texts} == {"zh", "de", "en"}
    True
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from medlake.governance.evaluate import Label, LabelledText

DEFAULT_TEXTS = 1200
LANGUAGES = ("zh", "de", "en")
ENTITY_TYPES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "ADDRESS")


@dataclass(frozen=True)
class CorpusText(LabelledText):
    """A labelled text and the language it is written in."""

    language: str = "en"


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of a block of text (the lists stay readable)."""
    return tuple(text.split())


# ---------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------

# Surnames that are not everyday words, common and rare (邝 覃 岑 隗 晁 钮 ...).
ZH_SURNAMES = (
    "王李张刘陈杨黄赵周吴徐孙朱马胡郭林何高梁郑罗宋谢唐韩曹许邓冯曾程蔡彭潘袁蒋余杜叶苏魏吕丁"
    "沈姚卢姜崔钟谭陆汪范石廖贾夏韦白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝邵钱严武戴莫孔汤"
    "邝覃岑隗晁钮龚冼阚扈郜逯蔺昝亓鄢甘揭眭佴訾郗芮蔺栾隋臧邬卞姬刁巫寇桑甄仲虞敖巩佘苑迟"
)
# Surnames that are also everyday words or parts of them: only after a context word.
ZH_WORD_SURNAMES = "于任安常关成解单项连全明原强"
ZH_COMPOUND = ("欧阳", "司马", "上官", "诸葛", "慕容", "令狐", "司徒", "皇甫", "尉迟", "端木")
ZH_GIVEN = _words(
    "志强 丽 敏 晓东 雨桐 子涵 建国 秀兰 海燕 俊杰 思远 梦琪 浩然 欣怡 文博 嘉怡 宇航 静怡 明轩 "
    "若曦 天佑 佳琪 立新 春梅 国庆 桂英 玉兰 永红 振华 德明 卫东 淑珍 红霞 金凤 凯 磊 勇 军 婷 "
    "娜 洁 鹏 琳 璐 斌 颖 瑶 昊 哲 悦 萱 楠 一鸣 晨曦 慧敏 少华 锦程"
)
ZH_TITLES = ("先生", "女士", "小姐", "医生", "护士长", "工程师", "老师", "主任", "经理", "教授")
ZH_SHORT_TITLES = ("先生", "女士", "工", "总", "经理", "主任", "医生", "老师")
ZH_CONTEXT = (
    "患者",
    "患者家属",
    "家属",
    "联系人",
    "投诉人",
    "报修人",
    "监护人",
    "陪同家属",
    "用户",
)

DE_GIVEN = _words(
    "Leopold Anneliese Wilhelmine Friedhelm Hannelore Jörg-Peter Käthe Lüder Björn Gesine Maren "
    "Reinhild Ottmar Bärbel Götz Henrike Eberhard Liesel Swantje Rüdiger Wiebke Detlef Almut "
    "Hartmut Sönke Ilse-Marie Thilo Frauke"
)
DE_SURNAMES = _words(
    "Großkopf Brandstätter Müller-Lüdenscheidt Köhler Weißenborn Süßmann Bäumer Grünewald Rößler "
    "Strauß Lüdtke Kühnel Fröhlich Schönberger Möhring Pfeiffer-Hähnle Übelacker Jäckel Hölzle "
    "Däubler Meißner Stöckl Wöhrle Krämer-Benz Öhlschläger"
)
DE_PARTICLE_SURNAMES = (
    "von der Heide", "von Bülow", "zu Stolberg", "van der Meulen", "de Vries", "von Thaden",
    "van Dijk", "von und zu Loewenstein",
)  # fmt: skip
EN_GIVEN = _words(
    "Declan Saoirse Oisín Caoimhe Tadhg Gráinne Fionnuala Peadar Rory Eamon Brooke Tyler Madison "
    "Dakota Hunter Delphine Marisol Thaddeus Prudence Ignatius Zoë Renée Faizal Aisyah Hafizah "
    "Kavitha Wei Ming"
)
EN_SURNAMES = _words(
    "Kowalczyk Delacroix Haverford Ashdown Brannigan Whitlock Pemberton Okonkwo Nakamura "
    "Fairweather Lindqvist Castellanos O'Loughlin McAllister Fitzpatrick Ní-Bhriain Quigley "
    "Abernathy Vasquez-Ortega Thistlewood Rajaratnam Subramaniam"
)

# ---------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------

ZH_PLACES = (
    ("浙江省", "杭州市", "西湖区", "文三路"), ("四川省", "成都市", "武侯区", "天府大道"),
    ("湖北省", "武汉市", "洪山区", "珞喻路"), ("广东省", "广州市", "天河区", "体育西路"),
    ("江苏省", "南京市", "鼓楼区", "中山北路"), ("山东省", "青岛市", "市南区", "香港中路"),
    ("福建省", "厦门市", "思明区", "湖滨南路"), ("上海市", "", "徐汇区", "漕溪北路"),
    ("北京市", "", "海淀区", "中关村大街"), ("广西壮族自治区", "南宁市", "青秀区", "民族大道"),
    ("河南省", "郑州市", "金水区", "花园路"), ("陕西省", "西安市", "雁塔区", "科技路"),
)  # fmt: skip
ZH_ESTATES = ("阳光花园", "锦绣家园", "翠苑", "金色港湾", "")
DE_STREETS = (
    "Mühlenweg", "Schillerstraße", "Am Kirchberg", "Grüner Weg", "Bahnhofstr.", "Lange Gasse",
    "Friedrich-Ebert-Straße", "Max-Planck-Str.", "Uhlandstraße", "Im Winkel", "Zeppelinring",
    "Hauptstraße", "An der Lutherkirche",
)  # fmt: skip
DE_CITIES = (
    "79098 Freiburg im Breisgau", "78532 Tuttlingen", "70173 Stuttgart", "01067 Dresden",
    "20095 Hamburg", "50667 Köln", "60311 Frankfurt am Main", "88212 Ravensburg",
    "69117 Heidelberg", "72070 Tübingen", "D-80331 München",
)  # fmt: skip
US_STREETS = (
    "Harbor Blvd", "Maple Avenue", "W 34th St", "France Ave S", "Lakeshore Drive",
    "Pine Ridge Road", "Cedar Lane", "Elm Street", "Riverside Dr",
)  # fmt: skip
US_CITIES = (
    "Minneapolis, MN 55401", "New York, NY 10001", "Edina, MN 55435", "San Diego, CA 92121",
    "Boston, MA 02115", "Maple Grove, MN 55369-4470", "St. Paul, MN 55102",
)  # fmt: skip
IE_ADDRESSES = (
    "{n} Shop Street, Galway, H91 X4C2",
    "{n} Patrick Street, Cork, T12 K5RD",
    "{n} Merrion Square, Dublin 2, D02 XK91",
    "Unit {n}, Ballybrit Business Park, Galway, H91 P2DK",
    "{n} Main Street, Castlebar, Co. Mayo, F23 HW73", "{n} O'Connell Street, Limerick, V94 T2C8",
)  # fmt: skip
MY_ADDRESSES = (
    "No. {n}, Jalan Tun Razak, 50400 Kuala Lumpur",
    "No. {n}, Jalan Bukit Bintang, 55100 Kuala Lumpur",
    "No. {n}, Lorong Kenari, Taman Sri Bahagia, 11900 Bayan Lepas, Pulau Pinang",
    "No. {n}, Jalan Perusahaan 2, 13600 Prai, Pulau Pinang",
    "No. {n}, Persiaran Gurney, 10250 George Town, Penang",
)  # fmt: skip

# ---------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _pick(rng: random.Random, items: str | tuple[str, ...] | list[str]) -> str:
    return items[rng.randrange(len(items))]


def zh_name(rng: random.Random, surnames: str = ZH_SURNAMES) -> str:
    if surnames == ZH_SURNAMES and rng.random() < 0.12:
        return _pick(rng, ZH_COMPOUND) + _pick(rng, ZH_GIVEN)
    return _pick(rng, surnames) + _pick(rng, ZH_GIVEN)


def de_name(rng: random.Random) -> str:
    roll = rng.random()
    surname = _pick(rng, DE_PARTICLE_SURNAMES) if roll < 0.25 else _pick(rng, DE_SURNAMES)
    return surname if roll > 0.85 else f"{_pick(rng, DE_GIVEN)} {surname}"


def en_name(rng: random.Random) -> str:
    if rng.random() < 0.15:  # Malay: "Faizal bin Razak", "Aisyah binti Hassan"
        return f"{_pick(rng, ('Faizal', 'Hafiz', 'Azman'))} bin {_pick(rng, ('Razak', 'Osman'))}"
    return f"{_pick(rng, EN_GIVEN)} {_pick(rng, EN_SURNAMES)}"


def zh_address(rng: random.Random) -> str:
    province, city, district, road = ZH_PLACES[rng.randrange(len(ZH_PLACES))]
    n = rng.randrange(1, 999)
    unit = ""
    if rng.random() < 0.6:
        unit = f"{_pick(rng, ZH_ESTATES)}{rng.randrange(1, 30)}栋{rng.randrange(101, 2999)}室"
    head = province + city if rng.random() < 0.6 or not city else city
    return f"{head}{district}{road}{n}号{unit}"


def de_address(rng: random.Random) -> str:
    number = f"{rng.randrange(1, 180)}{_pick(rng, ('', '', 'a', 'b'))}"
    sep = _pick(rng, (", ", ", ", " "))
    return f"{_pick(rng, DE_STREETS)} {number}{sep}{_pick(rng, DE_CITIES)}"


def en_address(rng: random.Random, country: str) -> str:
    n = str(rng.randrange(1, 9999))
    if country == "IE":
        return _pick(rng, IE_ADDRESSES).format(n=rng.randrange(1, 99))
    if country == "MY":
        return _pick(rng, MY_ADDRESSES).format(n=rng.randrange(1, 99))
    suite = f", Suite {rng.randrange(100, 999)}" if rng.random() < 0.3 else ""
    return f"{n} {_pick(rng, US_STREETS)}{suite}, {_pick(rng, US_CITIES)}"


def name(rng: random.Random, language: str) -> str:
    """A personal name as written in `language`."""
    return zh_name(rng) if language == "zh" else de_name(rng) if language == "de" else en_name(rng)


def address(rng: random.Random, language: str, country: str) -> str:
    """A postal address as written in `language` (English ones of `country`)."""
    if language == "zh":
        return zh_address(rng)
    return de_address(rng) if language == "de" else en_address(rng, country)


def _ext(rng: random.Random, language: str) -> str:
    """An extension, written the local way, or none."""
    if rng.random() < 0.65:
        return ""
    n = str(rng.randrange(10, 9999))
    forms = {
        "zh": (f"转{n}", f" 转 {n}", f"-{n}"),
        "de": (f" Durchwahl -{n}", f"-{n}", f" Durchwahl {n}", f" DW {n}"),
        "en": (f" ext. {n}", f" x{n}", f" ext {n}", f" extension {n}"),
    }
    return _pick(rng, forms[language])


def phone(rng: random.Random, language: str, country: str) -> str:
    """A phone number of `country` in one of its written forms (maybe with an extension)."""
    if country == "CN":
        if rng.random() < 0.6:
            m = _pick(rng, ("138", "139", "150", "159", "186", "187", "135", "177", "199"))
            a, b = _digits(rng, 4), _digits(rng, 4)
            return _pick(
                rng,
                (f"{m}{a}{b}", f"{m} {a} {b}", f"{m}-{a}-{b}", f"+86 {m} {a} {b}",
                 f"+86-{m}-{a}-{b}", f"(+86) {m}{a}{b}", f"0086 {m} {a} {b}"),
            )  # fmt: skip
        area = _pick(rng, ("0755", "021", "010", "0571", "028", "020"))
        local = str(rng.randrange(2, 9)) + _digits(rng, 7)
        form = _pick(
            rng,
            (f"{area}-{local}", f"({area}) {local[:4]} {local[4:]}", f"+86 {area[1:]} {local}",
             f"{area} {local}"),
        )  # fmt: skip
        return form + _ext(rng, "zh")
    if country == "DE":
        area = _pick(rng, ("761", "7461", "30", "89", "711", "221", "40"))
        local = str(rng.randrange(2, 9)) + _digits(rng, 5 if len(area) > 2 else 6)
        mobile = "1" + _pick(rng, ("51", "60", "71", "76")) + _digits(rng, 7)
        form = _pick(
            rng,
            (f"0{area} {local}", f"+49 {area} {local}", f"+49 (0){area} {local}",
             f"+49 (0) {area} {local}", f"0{area}/{local}", f"0049 {area} {local}",
             f"0{mobile[:3]} {mobile[3:]}", f"+49 {mobile[:3]} {mobile[3:]}",
             f"0{area}.{local}"),
        )  # fmt: skip
        return form + _ext(rng, language)
    if country == "IE":
        form = _pick(
            rng,
            (f"01 {_digits(rng, 3)} {_digits(rng, 4)}",
             f"+353 1 {_digits(rng, 3)} {_digits(rng, 4)}",
             f"+353 (0)1 {_digits(rng, 3)} {_digits(rng, 4)}",
             f"087 {_digits(rng, 3)} {_digits(rng, 4)}",
             f"+353 86 {_digits(rng, 3)} {_digits(rng, 4)}",
             f"(091) {_digits(rng, 6)}"),
        )  # fmt: skip
        return form + _ext(rng, language)
    if country == "MY":
        form = _pick(
            rng,
            (f"03-{_digits(rng, 4)} {_digits(rng, 4)}",
             f"+60 3-{_digits(rng, 4)} {_digits(rng, 4)}",
             f"012-{_digits(rng, 3)} {_digits(rng, 4)}",
             f"+6012-{_digits(rng, 3)} {_digits(rng, 4)}",
             f"04-{_digits(rng, 3)} {_digits(rng, 4)}"),
        )  # fmt: skip
        return form + _ext(rng, language)
    if country == "GB":
        return _pick(
            rng,
            (f"+44 20 7946 {_digits(rng, 4)}", f"+44 (0)20 7946 {_digits(rng, 4)}",
             f"020 7946 {_digits(rng, 4)}"),
        )  # fmt: skip
    area = _pick(rng, ("612", "763", "651", "952", "858", "617", "212"))
    exchange, line = str(rng.randrange(2, 10)) + _digits(rng, 2), _digits(rng, 4)
    form = _pick(
        rng,
        (f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}", f"{area}.{exchange}.{line}",
         f"+1 {area} {exchange} {line}", f"1-800-{exchange}-{line}",
         f"+1 ({area}) {exchange}-{line}"),
    )  # fmt: skip
    return form + _ext(rng, "en")


_LOCALS = (
    "jürgen.müller", "søren.ødegaard", "zoë.o'brien", "renée.dubois", "andrés.núñez",
    "j.mueller", "anna.schmidt+rma", "s_doyle", "wang.fang", "zhangwei88", "service-team",
)  # fmt: skip
_DOMAINS = (
    "firma.de", "klinik-freiburg.de", "müller.de", "bücherei.at", "xn--mller-kva.de",
    "hospital.ie", "hse.ie", "yahoo.com.my", "um.edu.my", "qq.com", "163.com", "mayo.edu",
    "例子.中国", "医院.中国", "xn--fsqu00a.xn--fiqs8s", "mail.example.com",
)  # fmt: skip


def email(rng: random.Random, language: str) -> str:
    roll = rng.random()
    at = "＠" if roll < 0.1 else "@"
    if roll > 0.92:
        local = f'"{_pick(rng, ("john doe", "anna maria", "service desk"))}"'
    elif language == "zh" and roll > 0.85:
        local = _pick(rng, ("张伟", "客服", "李娜"))
    else:
        local = _pick(rng, _LOCALS)
    return f"{local}{at}{_pick(rng, _DOMAINS)}"


def gtin(rng: random.Random) -> str:
    body = "0" + _digits(rng, 12)
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    return body + str(-total % 10)


def udi(rng: random.Random) -> str:
    """A GS1 UDI in human-readable form: GTIN, expiry, lot, serial."""
    expiry = f"2{_digits(rng, 1)}1231"
    return f"(01){gtin(rng)}(17){expiry}(10)L{_digits(rng, 7)}(21)SN{_digits(rng, 6)}"


def mobile_lot(rng: random.Random) -> str:
    """A lot number shaped like a CN mobile number."""
    return "1" + _pick(rng, "3589") + _digits(rng, 9)


# ---------------------------------------------------------------------------------------
# Templates: {slot}s are filled by SLOTS; PII slots are labelled, device slots listed.
# ---------------------------------------------------------------------------------------

ZH_TEMPLATES = (
    "{ctx}{name}反映{product}输液时报警{alarm}，{lotlabel}{mlot}。",
    "{ctx}：{name}，电话{phone}，邮箱{email}。",
    "{ctx}{wname}来电称设备无法开机，联系电话：{phone}。",
    "{name}{title}反馈批号{mlot}的{product}存在渗漏，UDI：{udi}。",
    "已与{sname}{short}确认，序列号{serial}的设备返厂，寄回地址：{address}。",
    "感谢{name}{title}的配合，请将报告发送至{email}，抄送{email}。",
    "{product}（序列号{serial}）故障，联系人{name}，手机{phone}，座机{phone}。",
    "{sname}{short}说{eco}已经实施，批号{mlot}不受影响。",
    "维修工程师已上门，{name}{title}签收，地址：{address}。",
    "订单{po}已发货，收件人{name}，收货地址{address}，电话{phone}。",
    "设备报警{alarm}，固件升级后恢复正常，批次{mlot}已隔离，参见{eco}。",
    "{ctx}{name}的手机号{phone}，邮箱：{email}",
    "UDI码{udi}，患者{name}未受伤害，家属{wname}要求退货。",
)
DE_TEMPLATES = (
    "{dtitle} {name} meldet Alarm {alarm} an {product}, Charge {mlot}.",
    "Rückruf erbeten: {dtitle} {name}, Tel. {phone}, E-Mail: {email}.",
    "Ansprechpartnerin: {dtitle} {name} ({phone}); Lieferanschrift: {address}.",
    "{drole} {name} berichtet, dass das Gerät (UDI {udi}) ausfiel.",
    "Bitte Rücksendung an {address}, z. Hd. {dtitle} {name}, Bestellung {po}.",
    "Laut {dtitle} {name} trat der Fehler {alarm} nach {eco} erneut auf; Lot {mlot}.",
    "Seriennummer {serial}, GTIN {gtin}: keine Personendaten, Fehlercode {alarm}.",
    "Die {drole2} {name} ist unter {phone} oder per Mail an {email} erreichbar.",
    "{drole} {name} wohnt in der {address}.",
    "Kontakt: {email}, Telefon {phone}, Anschrift {address}.",
)
EN_TEMPLATES = (
    "{etitle} {name} reported alarm {alarm} on the {product}, lot {mlot}.",
    "Please call {etitle} {name} back on {phone} or email {email}.",
    "{erole} {name} ({phone}) said the device with UDI {udi} stopped.",
    "Return the unit (serial {serial}) to {address}, attn. {etitle} {name}, order {po}.",
    "Lot {mlot} was quarantined under {eco}; alarm {alarm} did not recur.",
    "Site contact {etitle} {name}, {address}, tel. {phone}.",
    "The {erole2} {name} emailed <{email}> about lot {mlot} and GTIN {gtin}.",
    "Caller: {etitle} {name}; callback number {phone}; PO {po}.",
    "Ship the replacement to {address}.",
    "Per {etitle} {name}, the pump (serial {serial}) shows {alarm} after {eco}.",
)
NO_PII = {
    "zh": (
        "设备报警{alarm}，批号{mlot}已隔离，{eco}已实施，订单{po}取消。",
        "序列号{serial}的{product}在开机自检时报{alarm}，UDI码{udi}。",
    ),
    "de": (
        "Charge {mlot} gesperrt, Fehlercode {alarm}, siehe {eco} und Bestellung {po}.",
        "Gerät mit UDI {udi} zeigt {alarm}; Seriennummer {serial}.",
    ),
    "en": (
        "Lot {mlot} on hold; alarm {alarm}; see {eco} and purchase order {po}.",
        "UDI {udi}, serial {serial}: alarm {alarm} during self-test.",
    ),
}
PRODUCTS = {
    "zh": ("输液泵", "监护仪", "呼吸机"),
    "de": ("Infusionspumpe",),
    "en": ("infusion pump",),
}
COUNTRIES = {"zh": ("CN", "CN", "CN", "DE", "US"), "de": ("DE", "DE", "DE", "IE", "GB"),
             "en": ("US", "IE", "MY", "GB", "CN")}  # fmt: skip

Slot = Callable[[random.Random, str, str], str]
# slot -> (label: entity type, "DEVICE", or "" for plain text; value maker)
SLOTS: dict[str, tuple[str, Slot]] = {
    "name": ("PERSON", lambda r, lang, c: name(r, lang)),
    "wname": ("PERSON", lambda r, lang, c: zh_name(r, ZH_WORD_SURNAMES)),
    "sname": ("PERSON", lambda r, lang, c: _pick(r, ZH_SURNAMES + ZH_SURNAMES[:40])),
    "phone": ("PHONE_NUMBER", phone),
    "email": ("EMAIL_ADDRESS", lambda r, lang, c: email(r, lang)),
    "address": ("ADDRESS", address),
    "mlot": (
        "DEVICE",
        lambda r, lang, c: mobile_lot(r) if r.random() < 0.6 else f"L{_digits(r, 7)}",
    ),
    "serial": ("DEVICE", lambda r, lang, c: f"SN{_digits(r, 8)}"),
    "gtin": ("DEVICE", lambda r, lang, c: gtin(r)),
    "udi": ("DEVICE", lambda r, lang, c: udi(r)),
    "po": ("DEVICE", lambda r, lang, c: f"PO-2026-{_digits(r, 5)}"),
    "eco": ("DEVICE", lambda r, lang, c: f"ECO-2026-{_digits(r, 3)}"),
    "alarm": ("DEVICE", lambda r, lang, c: _pick(r, ("E-1043", "ALM-207", "E-2210", "ALM-031"))),
    "product": ("", lambda r, lang, c: _pick(r, PRODUCTS[lang])),
    "ctx": ("", lambda r, lang, c: _pick(r, ZH_CONTEXT)),
    "title": ("", lambda r, lang, c: _pick(r, ZH_TITLES)),
    "short": ("", lambda r, lang, c: _pick(r, ZH_SHORT_TITLES)),
    "lotlabel": ("", lambda r, lang, c: _pick(r, ("批号", "批号 ", "批次：", "批号："))),
    "dtitle": (
        "",
        lambda r, lang, c: _pick(r, ("Herr", "Frau", "Frau Dr.", "Herrn", "Dr.", "Prof. Dr.")),
    ),
    "drole": (
        "",
        lambda r, lang, c: _pick(r, ("Patientin", "Patient", "Angehöriger", "Pflegerin")),
    ),
    "drole2": ("", lambda r, lang, c: _pick(r, ("Patientin", "Angehörige", "Krankenschwester"))),
    "etitle": (
        "",
        lambda r, lang, c: _pick(r, ("Mr.", "Mrs", "Ms.", "Dr", "Prof.", "Encik", "Puan")),
    ),
    "erole": ("", lambda r, lang, c: _pick(r, ("Patient", "The patient", "Caregiver", "Nurse"))),
    "erole2": ("", lambda r, lang, c: _pick(r, ("patient", "caregiver", "nurse"))),
}
_SLOT = re.compile(r"\{(\w+)\}")


def render(template: str, rng: random.Random, language: str, country: str) -> CorpusText:
    """Fill the template's slots left to right, labelling personal values as they go."""
    parts: list[str] = []
    spans: list[Label] = []
    devices: list[str] = []
    at = pos = 0
    for match in _SLOT.finditer(template):
        literal = template[pos : match.start()]
        parts.append(literal)
        at += len(literal)
        kind, make = SLOTS[match.group(1)]
        value = make(rng, language, country)
        if kind == "DEVICE":
            devices.append(value)
        elif kind:
            spans.append((kind, at, at + len(value), value))
        parts.append(value)
        at += len(value)
        pos = match.end()
    parts.append(template[pos:])
    return CorpusText("".join(parts), tuple(spans), tuple(devices), language)


_TEMPLATES = {"zh": ZH_TEMPLATES, "de": DE_TEMPLATES, "en": EN_TEMPLATES}


def generate(seed: int, n: int = DEFAULT_TEXTS) -> list[CorpusText]:
    """`n` labelled texts, a third each in zh, de and en; the same seed gives the same texts."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        language = LANGUAGES[i % len(LANGUAGES)]
        country = _pick(rng, COUNTRIES[language])
        pool = NO_PII[language] if rng.random() < 0.08 else _TEMPLATES[language]
        out.append(render(_pick(rng, pool), rng, language, country))
    return out
