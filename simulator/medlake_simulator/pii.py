"""Fake personal data and multilingual free-text narratives for the source simulator.

Everything here is drawn from a caller-supplied `numpy.random.Generator`, so one seed always
gives the same names, numbers and texts. Name lists, street names and number formats are
written out below (no Faker, no downloads); they look real enough for a masking model to have
something to find, but every value is invented.

`narrative` builds a complaint or service note in Chinese, German or English that plants some
of this personal data next to device identifiers (product, GTIN, lot, serial, UDI), which are
*not* personal data. It returns the exact character offsets of every planted personal value as
`Span`s, so a masking step can later be scored against them: `text[s.start:s.end] == s.value`.

The check-digit helpers (`cn_id_check_char`, `luhn_valid`, `iban_valid`, `gtin_check_digit`,
...) are the textbook algorithms and are what the generators use to make valid values.
"""

from __future__ import annotations

import datetime as dt
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

import numpy as np

Lang = Literal["zh", "de", "en"]
Country = Literal["CN", "MY", "IE", "DE", "US"]

PERSON: Final = "PERSON"
PHONE_NUMBER: Final = "PHONE_NUMBER"
CN_RESIDENT_ID: Final = "CN_RESIDENT_ID"
EMAIL_ADDRESS: Final = "EMAIL_ADDRESS"
ADDRESS: Final = "ADDRESS"
IBAN_CODE: Final = "IBAN_CODE"
CREDIT_CARD: Final = "CREDIT_CARD"
ENTITY_TYPES: Final[frozenset[str]] = frozenset(
    {PERSON, PHONE_NUMBER, CN_RESIDENT_ID, EMAIL_ADDRESS, ADDRESS, IBAN_CODE, CREDIT_CARD}
)

T = TypeVar("T")


@dataclass(frozen=True)
class Span:
    """One planted personal value: `text[start:end] == value`."""

    value: str
    entity_type: str
    start: int
    end: int


# --------------------------------------------------------------------------------------------
# Check digits and validators
# --------------------------------------------------------------------------------------------

_CN_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK_MAP: Final = "10X98765432"
# First two digits of a resident ID: province-level division codes (GB/T 2260).
_CN_PROVINCE_CODES: Final = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82}
)
# Calendar window a birth date must fall in; fixed so that validation never depends on "today".
_CN_ID_EARLIEST_BIRTH: Final = dt.date(1900, 1, 1)
_CN_ID_LATEST_BIRTH: Final = dt.date(2099, 12, 31)

_IBAN_LENGTHS: Final = {"DE": 22, "IE": 22, "GB": 22, "FR": 27, "NL": 18, "AT": 20, "CH": 21}


def cn_id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character ('0'-'9' or 'X') for a 17-digit ID body."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError(f"expected 17 digits, got {first17!r}")
    total = sum(int(d) * w for d, w in zip(first17, _CN_ID_WEIGHTS, strict=True))
    return _CN_ID_CHECK_MAP[total % 11]


def cn_id_valid(value: str) -> bool:
    """18 characters: known province code, a real calendar birth date, and a valid check char."""
    if len(value) != 18 or not value.isascii():
        return False
    body, check = value[:17], value[17].upper()
    if not body.isdigit() or not (check.isdigit() or check == "X"):
        return False
    if int(body[:2]) not in _CN_PROVINCE_CODES:
        return False
    try:
        birth = dt.date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        return False
    if not _CN_ID_EARLIEST_BIRTH <= birth <= _CN_ID_LATEST_BIRTH:
        return False
    return cn_id_check_char(body) == check


def _luhn_total(digits: str) -> int:
    """Luhn sum of `digits`, doubling every second digit from the right, starting at the last."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total


def luhn_valid(number: str) -> bool:
    """Luhn (mod 10) check; spaces and hyphens between digit groups are ignored."""
    digits = number.replace(" ", "").replace("-", "")
    if len(digits) < 2 or not digits.isascii() or not digits.isdigit():
        return False
    return _luhn_total(digits) % 10 == 0


def _luhn_check_digit(payload: str) -> str:
    return str((10 - _luhn_total(payload + "0") % 10) % 10)


def _iban_numeric(rearranged: str) -> int:
    """Letters become 10..35, digits stay; the result as one integer."""
    return int("".join(str(int(ch, 36)) for ch in rearranged))


def iban_valid(iban: str) -> bool:
    """ISO 13616: letters+check digits, alphanumeric BBAN, known length, mod 97 == 1."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isascii() or not compact.isalnum():
        return False
    country, check = compact[:2], compact[2:4]
    if not country.isalpha() or not check.isdigit():
        return False
    expected_length = _IBAN_LENGTHS.get(country)
    if expected_length is not None and len(compact) != expected_length:
        return False
    return _iban_numeric(compact[4:] + compact[:4]) % 97 == 1


def _iban_check_digits(country: str, bban: str) -> str:
    return f"{98 - _iban_numeric(bban + country + '00') % 97:02d}"


def gtin_check_digit(first13: str) -> str:
    """GS1 mod-10 check digit for a GTIN-14: weights 3,1,3,... from the left of 13 digits."""
    if len(first13) != 13 or not first13.isascii() or not first13.isdigit():
        raise ValueError(f"expected 13 digits, got {first13!r}")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(first13))
    return str((10 - total % 10) % 10)


def gtin_valid(gtin14: str) -> bool:
    """14 digits whose last digit is the GS1 check digit of the first 13."""
    if len(gtin14) != 14 or not gtin14.isascii() or not gtin14.isdigit():
        return False
    return gtin_check_digit(gtin14[:13]) == gtin14[13]


# --------------------------------------------------------------------------------------------
# Reference lists (common names and places; all combinations are invented)
# --------------------------------------------------------------------------------------------

# (character, pinyin) so that e-mail local parts can be romanised without a pinyin library.
_ZH_SURNAMES: Final = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("高", "gao"), ("林", "lin"), ("罗", "luo"),
    ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"),
    ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"),
    ("袁", "yuan"), ("潘", "pan"), ("蒋", "jiang"), ("蔡", "cai"), ("余", "yu"),
    ("杜", "du"), ("叶", "ye"), ("程", "cheng"), ("苏", "su"), ("魏", "wei"),
    ("吕", "lv"), ("丁", "ding"), ("沈", "shen"),
)  # fmt: skip
_ZH_GIVEN_MALE: Final = (
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"),
    ("勇", "yong"), ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"),
    ("刚", "gang"), ("华", "hua"), ("鹏", "peng"), ("辉", "hui"), ("宇", "yu"),
    ("浩", "hao"), ("晨", "chen"), ("俊", "jun"), ("志", "zhi"), ("建", "jian"),
    ("国", "guo"), ("文", "wen"), ("斌", "bin"), ("博", "bo"), ("海", "hai"),
    ("峰", "feng"), ("亮", "liang"), ("东", "dong"), ("凯", "kai"), ("波", "bo"),
)  # fmt: skip
_ZH_GIVEN_FEMALE: Final = (
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("艳", "yan"), ("娟", "juan"), ("秀", "xiu"), ("霞", "xia"), ("英", "ying"),
    ("玉", "yu"), ("兰", "lan"), ("萍", "ping"), ("红", "hong"), ("婷", "ting"),
    ("雪", "xue"), ("琳", "lin"), ("欣", "xin"), ("佳", "jia"), ("慧", "hui"),
    ("倩", "qian"), ("颖", "ying"), ("燕", "yan"), ("梅", "mei"), ("莉", "li"),
    ("晶", "jing"), ("璐", "lu"), ("洁", "jie"), ("悦", "yue"), ("琪", "qi"),
)  # fmt: skip
_PINYIN: Final = dict(_ZH_SURNAMES + _ZH_GIVEN_MALE + _ZH_GIVEN_FEMALE)

_DE_MALE: Final = (
    "Thomas", "Michael", "Andreas", "Stefan", "Markus", "Christian", "Matthias", "Jürgen",
    "Klaus", "Wolfgang", "Peter", "Frank", "Jan", "Lukas", "Felix", "Tobias", "Florian",
    "Sebastian", "Uwe", "Jörg", "Bernd", "Dieter", "Alexander", "Martin",
)  # fmt: skip
_DE_FEMALE: Final = (
    "Anna", "Maria", "Laura", "Julia", "Lena", "Sophie", "Katharina", "Sabine", "Petra",
    "Claudia", "Monika", "Andrea", "Stefanie", "Nicole", "Christina", "Ursula", "Jana",
    "Lea", "Birgit", "Renate", "Karin", "Elke", "Jessica", "Melanie",
)  # fmt: skip
_DE_SURNAMES: Final = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf",
    "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann",
    "Hartmann", "Lange", "Schmitt", "Werner", "Schmitz", "Krause", "Meier", "Lehmann",
    "Keller", "Huber", "Kaiser", "Fuchs", "Vogel", "Weiß", "Jäger",
)  # fmt: skip

_EN_MALE: Final = (
    "James", "John", "Robert", "Michael", "David", "William", "Daniel", "Sean", "Patrick",
    "Conor", "Liam", "Ciaran", "Brian", "Kevin", "Mark", "Thomas", "Ahmad", "Raj",
    "Jason", "Eric", "Declan", "Paul", "Hafiz", "Kumar",
)  # fmt: skip
_EN_FEMALE: Final = (
    "Mary", "Sarah", "Emma", "Olivia", "Emily", "Jennifer", "Linda", "Aoife", "Siobhan",
    "Niamh", "Ciara", "Grace", "Hannah", "Rachel", "Laura", "Nurul", "Priya", "Jessica",
    "Karen", "Susan", "Aisling", "Siti", "Mei", "Rebecca",
)  # fmt: skip
_EN_SURNAMES: Final = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
    "Anderson", "Taylor", "Moore", "Martin", "Jackson", "White", "Murphy", "Kelly",
    "O'Sullivan", "Walsh", "O'Brien", "Byrne", "Ryan", "O'Connor", "Doyle", "McCarthy",
    "Gallagher", "Tan", "Lim", "Wong", "Lee", "Ng", "Rahman", "Ibrahim", "Nair",
    "Anand", "Peterson", "Olson",
)  # fmt: skip

_CN_MOBILE_PREFIXES: Final = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139",
    "150", "151", "152", "153", "155", "156", "157", "158", "159", "166",
    "176", "177", "178", "180", "181", "182", "183", "185", "186", "187",
    "188", "189", "191", "198", "199",
)  # fmt: skip
_CN_AREA_CODES: Final = (
    "010", "020", "021", "022", "023", "025", "027", "028", "029",
    "0755", "0512", "0571", "0532", "0769", "0757", "0760", "0592",
)  # fmt: skip
_DE_MOBILE_PREFIXES: Final = (
    "151", "152", "157", "160", "162", "170", "171", "172", "173", "174", "175", "176",
    "177", "178", "179",
)  # fmt: skip
# Tuttlingen, Spaichingen, Berlin, München, Hamburg, Stuttgart, Frankfurt, Köln, Freiburg,
# Konstanz, Villingen, Tübingen.
_DE_AREA_CODES: Final = (
    "7461", "7424", "30", "89", "40", "711", "69", "221", "761", "7531", "7721", "7071",
)  # fmt: skip
_IE_MOBILE_PREFIXES: Final = ("83", "85", "86", "87", "89")
_IE_AREA_CODES: Final = ("1", "21", "91", "61", "51", "90", "71", "74")
_MY_MOBILE_PREFIXES: Final = ("11", "12", "13", "14", "16", "17", "19")
_MY_AREA_CODES: Final = ("3", "4", "5", "6", "7", "9")
# Minnesota (the group's US plant), plus a few hospital-heavy metros.
_US_AREA_CODES: Final = (
    "612", "651", "763", "952", "507", "617", "415", "212", "312", "713", "919", "801", "858",
)  # fmt: skip

# Real-looking 6-digit administrative division codes (city or district level).
_CN_REGION_CODES: Final = (
    "110101", "110105", "110108", "120101", "210102", "310104", "310115", "320500",
    "320505", "320506", "320508", "320583", "330106", "350203", "370202", "420106",
    "430104", "440106", "440300", "440303", "440304", "440305", "440306", "440307",
    "450105", "500103", "510107", "610113",
)  # fmt: skip

# Card BIN-like prefixes: UnionPay (62...), Visa (4...), Mastercard (51-55...).
_CARD_PREFIXES: Final = (
    "622202", "621700", "622848", "622588", "621661", "622260", "625965",
    "4", "4", "4", "51", "52", "53", "54", "55",
)  # fmt: skip
_DE_BANK_CODES: Final = (
    "37040044", "50010517", "10010010", "20041133", "60050101", "64350070", "69450065",
    "70150000", "76026000", "12030000", "68050101", "64150020",
)  # fmt: skip
_IE_BANKS: Final = (("AIBK", "93"), ("BOFI", "90"), ("IPBS", "99"), ("ULSB", "98"))

_CN_PLACES: Final = (
    ("广东省", "深圳市", ("南山区", "福田区", "宝安区", "龙岗区")),
    ("江苏省", "苏州市", ("工业园区", "吴中区", "姑苏区", "昆山市")),
    ("", "北京市", ("朝阳区", "海淀区", "东城区")),
    ("", "上海市", ("浦东新区", "徐汇区", "闵行区")),
    ("浙江省", "杭州市", ("西湖区", "滨江区")),
    ("广东省", "广州市", ("天河区", "番禺区")),
    ("湖北省", "武汉市", ("武昌区", "洪山区")),
    ("四川省", "成都市", ("武侯区", "锦江区")),
)
_CN_ROADS: Final = (
    "科技园路", "深南大道", "人民路", "中山路", "建设路", "解放路", "星湖街", "金鸡湖大道",
    "长江路", "和平路", "文化路", "学府路", "创业路", "滨河路", "南京路", "东风路",
)  # fmt: skip
_CN_ESTATES: Final = ("阳光花园", "翠苑小区", "碧水湾", "锦绣华庭", "幸福里小区", "华润城")

_DE_STREETS: Final = (
    "Bahnhofstraße", "Hauptstraße", "Schulstraße", "Gartenstraße", "Dorfstraße",
    "Bergstraße", "Lindenstraße", "Kirchstraße", "Waldstraße", "Ringstraße", "Mühlenweg",
    "Goethestraße", "Schillerstraße", "Friedrichstraße", "Am Marktplatz", "Donaustraße",
)  # fmt: skip
_DE_CITIES: Final = (
    ("78532", "Tuttlingen"), ("78549", "Spaichingen"), ("78467", "Konstanz"),
    ("79098", "Freiburg im Breisgau"), ("70173", "Stuttgart"), ("80331", "München"),
    ("10115", "Berlin"), ("20095", "Hamburg"), ("50667", "Köln"),
    ("60311", "Frankfurt am Main"), ("72070", "Tübingen"), ("78050", "Villingen-Schwenningen"),
)  # fmt: skip

_IE_STREETS: Final = (
    "Main Street", "Church Road", "Dominick Street", "Shop Street", "O'Connell Street",
    "Patrick Street", "College Road", "Newcastle Road", "Father Griffin Road",
    "Bridge Street", "Castle Street", "Green Lane",
)  # fmt: skip
_IE_TOWNS: Final = (
    ("Galway", "H91"), ("Dublin 2", "D02"), ("Dublin 8", "D08"), ("Cork", "T12"),
    ("Limerick", "V94"), ("Athlone", "N37"), ("Waterford", "X91"), ("Sligo", "F91"),
)  # fmt: skip
_EIRCODE_CHARS: Final = "0123456789ACDEFHKNPRTVWXY"

_MY_STREETS: Final = (
    "Jalan Sultan Azlan Shah", "Jalan Bukit Bintang", "Jalan Tun Razak", "Jalan Ampang",
    "Lebuh Chulia", "Jalan Burma", "Persiaran Gurney", "Jalan Tebrau", "Jalan Sungai Dua",
    "Jalan Masjid Negeri", "Jalan Raja Uda", "Lorong Kulit",
)  # fmt: skip
_MY_TOWNS: Final = (
    ("11900", "Bayan Lepas", "Pulau Pinang"), ("10450", "George Town", "Pulau Pinang"),
    ("14000", "Bukit Mertajam", "Pulau Pinang"), ("50450", "Kuala Lumpur", "Wilayah Persekutuan"),
    ("80000", "Johor Bahru", "Johor"), ("40000", "Shah Alam", "Selangor"),
    ("47800", "Petaling Jaya", "Selangor"), ("31400", "Ipoh", "Perak"),
)  # fmt: skip

_US_STREETS: Final = (
    "Oak Street", "Maple Avenue", "Main Street", "Washington Avenue", "Lake Street",
    "2nd Avenue South", "Park Avenue", "Elm Street", "Cedar Lane", "Hennepin Avenue",
    "University Avenue", "Pine Ridge Drive",
)  # fmt: skip
_US_CITIES: Final = (
    ("Minneapolis", "MN", "55401"), ("St. Paul", "MN", "55102"), ("Plymouth", "MN", "55441"),
    ("Rochester", "MN", "55901"), ("Boston", "MA", "02115"), ("Chicago", "IL", "60611"),
    ("Houston", "TX", "77030"), ("San Diego", "CA", "92121"), ("Raleigh", "NC", "27601"),
    ("Salt Lake City", "UT", "84111"),
)  # fmt: skip

_EMAIL_DOMAINS: Final[dict[str, tuple[str, ...]]] = {
    "CN": ("qq.com", "163.com", "126.com", "sina.com", "sz-rmyy.cn", "sdfyy.com.cn"),
    "DE": ("web.de", "gmx.de", "t-online.de", "klinikum-tuttlingen.de", "uniklinik-freiburg.de"),
    "IE": ("gmail.com", "eircom.net", "hse.ie", "galwayclinic.ie"),
    "MY": ("gmail.com", "yahoo.com.my", "pantai-penang.com.my", "hotmail.com"),
    "US": ("gmail.com", "yahoo.com", "outlook.com", "northstar-health.org", "mnheart.org"),
}
_ALL_EMAIL_DOMAINS: Final = tuple(d for ds in _EMAIL_DOMAINS.values() for d in ds)

_GERMAN_TRANSLIT: Final = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------


class PiiFaker:
    """Fake personal data, drawn only from the given generator (same state -> same values)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    # -- small random helpers ----------------------------------------------------------------

    def _int(self, low: int, high: int) -> int:
        """Uniform integer in [low, high] (inclusive)."""
        return int(self._rng.integers(low, high + 1))

    def _pick(self, options: Sequence[T]) -> T:
        return options[int(self._rng.integers(len(options)))]

    def _chance(self, p: float) -> bool:
        return float(self._rng.random()) < p

    def _digits(self, n: int, *, lead: str = "0123456789") -> str:
        """`n` random digits, the first one drawn from `lead`."""
        if n <= 0:
            return ""
        first = lead[int(self._rng.integers(len(lead)))]
        rest = self._rng.integers(0, 10, size=n - 1)
        return first + "".join(str(int(d)) for d in rest)

    def _letters(self, n: int) -> str:
        return "".join(chr(ord("a") + int(i)) for i in self._rng.integers(0, 26, size=n))

    # -- names -------------------------------------------------------------------------------

    def _person(self, lang: Lang) -> tuple[str, bool]:
        """A name and whether it is a woman's name (for honorifics)."""
        female = self._chance(0.5)
        if lang == "zh":
            surname = self._pick(_ZH_SURNAMES)[0]
            pool = _ZH_GIVEN_FEMALE if female else _ZH_GIVEN_MALE
            first = self._pick(pool)[0]
            if self._chance(0.6):
                second = self._pick(pool)[0]
                while second == first:
                    second = self._pick(pool)[0]
                return surname + first + second, female
            return surname + first, female
        if lang == "de":
            given = self._pick(_DE_FEMALE if female else _DE_MALE)
            return f"{given} {self._pick(_DE_SURNAMES)}", female
        given = self._pick(_EN_FEMALE if female else _EN_MALE)
        return f"{given} {self._pick(_EN_SURNAMES)}", female

    def person_name(self, lang: Lang) -> str:
        """zh: 2-3 Chinese characters; de: "Vorname Nachname"; en: "First Last"."""
        return self._person(lang)[0]

    # -- phone numbers -----------------------------------------------------------------------

    def phone(self, country: Country, *, mobile: bool = True) -> str:
        """A phone number written the way people in `country` commonly write it."""
        if country == "CN":
            return self._phone_cn(mobile)
        if country == "DE":
            return self._phone_de(mobile)
        if country == "IE":
            return self._phone_ie(mobile)
        if country == "MY":
            return self._phone_my(mobile)
        return self._phone_us()

    def _phone_cn(self, mobile: bool) -> str:
        if mobile:
            prefix, a, b = self._pick(_CN_MOBILE_PREFIXES), self._digits(4), self._digits(4)
            style = float(self._rng.random())
            if style < 0.5:
                return f"{prefix}{a}{b}"
            if style < 0.75:
                return f"{prefix} {a} {b}"
            if style < 0.9:
                return f"+86 {prefix} {a} {b}"
            return f"+86 {prefix}{a}{b}"
        area = self._pick(_CN_AREA_CODES)
        length = 8 if len(area) == 3 else self._int(7, 8)
        return f"{area}-{self._digits(length, lead='2345678')}"

    def _phone_de(self, mobile: bool) -> str:
        if mobile:
            prefix = self._pick(_DE_MOBILE_PREFIXES)
            number = self._digits(self._int(7, 8), lead="123456789")
        else:
            prefix = self._pick(_DE_AREA_CODES)
            number = self._digits(min(8, 10 - len(prefix) + self._int(0, 1)), lead="23456789")
        if self._chance(0.4):
            return f"+49 {prefix} {number}"
        return f"0{prefix} {number}"

    def _phone_ie(self, mobile: bool) -> str:
        if mobile:
            prefix = self._pick(_IE_MOBILE_PREFIXES)
            number = f"{self._digits(3, lead='123456789')} {self._digits(4)}"
        else:
            prefix = self._pick(_IE_AREA_CODES)
            tail = 4 if prefix == "1" else self._int(3, 4)
            number = f"{self._digits(3, lead='23456789')} {self._digits(tail)}"
        if self._chance(0.4):
            return f"+353 {prefix} {number}"
        return f"0{prefix} {number}"

    def _phone_my(self, mobile: bool) -> str:
        if mobile:
            prefix = self._pick(_MY_MOBILE_PREFIXES)
            head = 4 if prefix == "11" else 3
            number = f"{self._digits(head, lead='123456789')} {self._digits(4)}"
        else:
            prefix = self._pick(_MY_AREA_CODES)
            head = 4 if prefix == "3" else 3
            number = f"{self._digits(head, lead='23456789')} {self._digits(4)}"
        if self._chance(0.35):
            return f"+60 {prefix}-{number}"
        return f"0{prefix}-{number}"

    def _phone_us(self) -> str:
        area = self._pick(_US_AREA_CODES)
        exchange = self._digits(3, lead="23456789")
        while exchange[1:] == "11":  # N11 codes are service numbers, not exchanges
            exchange = self._digits(3, lead="23456789")
        line = self._digits(4)
        style = float(self._rng.random())
        if style < 0.5:
            return f"({area}) {exchange}-{line}"
        if style < 0.8:
            return f"+1 {area}-{exchange}-{line}"
        return f"{area}-{exchange}-{line}"

    # -- identifiers -------------------------------------------------------------------------

    def cn_resident_id(self, birth: dt.date | None = None) -> str:
        """18-character PRC resident ID: region, birth date, sequence, MOD 11-2 check char."""
        if birth is None:
            start = dt.date(1940, 1, 1)
            span_days = (dt.date(2005, 12, 31) - start).days
            birth = start + dt.timedelta(days=self._int(0, span_days))
        body = f"{self._pick(_CN_REGION_CODES)}{birth:%Y%m%d}{self._int(1, 999):03d}"
        return body + cn_id_check_char(body)

    def email(self, name: str | None = None, domain: str | None = None) -> str:
        """An ASCII e-mail address, derived from `name` when it can be romanised."""
        if name is None:
            name = self.person_name("de" if self._chance(0.5) else "en")
        if domain is None:
            domain = self._pick(_ALL_EMAIL_DOMAINS)
        return f"{self._local_part(name)}@{domain.lower()}"

    def _romanise(self, name: str) -> tuple[str, str] | None:
        """(given, family) in lowercase ASCII, or None when the name can't be romanised."""
        if name and all(ch in _PINYIN for ch in name):
            return "".join(_PINYIN[ch] for ch in name[1:]), _PINYIN[name[0]]
        tokens = []
        for raw in name.split():
            folded = unicodedata.normalize("NFKD", raw.lower().translate(_GERMAN_TRANSLIT))
            token = "".join(ch for ch in folded if "a" <= ch <= "z")
            if token:
                tokens.append(token)
        if len(tokens) >= 2:
            return tokens[0], tokens[-1]
        if len(tokens) == 1:
            return tokens[0], ""
        return None

    def _local_part(self, name: str) -> str:
        parts = self._romanise(name)
        if parts is None:
            return self._letters(self._int(5, 8)) + self._digits(self._int(0, 3))
        given, family = parts
        if not given or not family:
            return (given or family) + self._digits(self._int(1, 3))
        local = self._pick(
            (
                f"{given}.{family}",
                f"{given[0]}.{family}",
                f"{given}{family}",
                f"{family}.{given}",
                f"{given}_{family}",
                f"{given[0]}{family}",
            )
        )
        if self._chance(0.2):
            local += self._digits(2)
        return local

    def address(self, country: Country) -> str:
        """A postal address; Chinese for CN, German for DE, English otherwise."""
        if country == "CN":
            return self._address_cn()
        if country == "DE":
            street, (plz, city) = self._pick(_DE_STREETS), self._pick(_DE_CITIES)
            number = str(self._int(1, 120)) + ("a" if self._chance(0.1) else "")
            return f"{street} {number}, {plz} {city}"
        if country == "IE":
            street, (town, routing) = self._pick(_IE_STREETS), self._pick(_IE_TOWNS)
            unique = self._pick(_EIRCODE_CHARS[10:]) + "".join(
                self._pick(_EIRCODE_CHARS) for _ in range(3)
            )
            return f"{self._int(1, 99)} {street}, {town}, {routing} {unique}"
        if country == "MY":
            street, (postcode, town, state) = self._pick(_MY_STREETS), self._pick(_MY_TOWNS)
            return f"No. {self._int(1, 200)}, {street}, {postcode} {town}, {state}"
        street, (city, state, zipcode) = self._pick(_US_STREETS), self._pick(_US_CITIES)
        unit = f", Apt {self._int(1, 30)}{self._pick('ABCD')}" if self._chance(0.3) else ""
        return f"{self._int(10, 9999)} {street}{unit}, {city}, {state} {zipcode}"

    def _address_cn(self) -> str:
        province, city, districts = self._pick(_CN_PLACES)
        road, number = self._pick(_CN_ROADS), self._int(1, 399)
        head = f"{province}{city}{self._pick(districts)}{road}{number}号"
        building, floor, room = self._int(1, 20), self._int(1, 32), self._int(1, 8)
        style = self._int(0, 3)
        if style == 0:
            return f"{head}{building}栋{floor}{room:02d}室"
        if style == 1:
            return f"{head}{building}单元{floor}{room:02d}室"
        if style == 2:
            return f"{head}{self._pick(_CN_ESTATES)}{building}栋{floor}{room:02d}室"
        return head

    def iban(self, country: Literal["DE", "IE"]) -> str:
        """A valid IBAN, compact or in groups of four as printed on statements."""
        if country == "DE":
            bban = self._pick(_DE_BANK_CODES) + self._digits(10, lead="0123456789")
        else:
            bank, sort_prefix = self._pick(_IE_BANKS)
            bban = bank + sort_prefix + self._digits(4) + self._digits(8)
        compact = country + _iban_check_digits(country, bban) + bban
        if self._chance(0.5):
            return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
        return compact

    def bank_card(self) -> str:
        """16 digits, Luhn-valid; UnionPay (62...), Visa (4...) or Mastercard (51-55...)."""
        prefix = self._pick(_CARD_PREFIXES)
        payload = prefix + self._digits(15 - len(prefix))
        return payload + _luhn_check_digit(payload)


# --------------------------------------------------------------------------------------------
# Narratives
# --------------------------------------------------------------------------------------------

# Template fields that hold personal data; any other field is plain (non-personal) text.
_FIELD_ENTITY: Final = {
    "name": PERSON,
    "doctor": PERSON,
    "phone": PHONE_NUMBER,
    "cnid": CN_RESIDENT_ID,
    "email": EMAIL_ADDRESS,
    "address": ADDRESS,
    "iban": IBAN_CODE,
    "card": CREDIT_CARD,
}
_NO_PII_SHARE: Final = 0.15
_MAX_EXTRA_SENTENCES: Final = 2
_EN_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_DEVICE_KEYS: Final = ("product", "gtin", "lot", "serial", "udi", "fault")


@dataclass(frozen=True)
class _Plan:
    """Which personal-data kinds one narrative carries."""

    name: bool = False
    female: bool = False
    phone: bool = False
    cnid: bool = False
    email: bool = False
    address: bool = False
    refund: Literal["iban", "card"] | None = None
    doctor: bool = False


def _pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    return options[int(rng.integers(len(options)))]


def _chance(rng: np.random.Generator, p: float) -> bool:
    return float(rng.random()) < p


def _shuffled(rng: np.random.Generator, items: Sequence[T]) -> list[T]:
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = int(rng.integers(i + 1))
        out[i], out[j] = out[j], out[i]
    return out


def _mid(phrase: str, lang: Lang) -> str:
    """A sentence-initial reporter phrase moved mid-sentence, with its first letter fixed up.

    German keeps capitalised nouns and only lowercases a leading article; English lowercases
    the first word ("patient Anna ...", "the ward") unless it is a title such as "Mr.".
    """
    head = phrase.split(" ", 1)[0]
    if lang == "de":
        lower = head in {"Der", "Die", "Das", "Ein", "Eine"}
    else:
        lower = head not in {"Mr.", "Mrs.", "Ms.", "Dr."}
    return phrase[0].lower() + phrase[1:] if lower else phrase


def _render(template: str, values: dict[str, str]) -> tuple[str, list[Span]]:
    """Fill `{field}`s and record a Span for each personal-data field at its exact offset."""
    pieces: list[str] = []
    spans: list[Span] = []
    pos = 0
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        pieces.append(literal)
        pos += len(literal)
        if field is None:
            continue
        value = values[field]
        entity = _FIELD_ENTITY.get(field)
        if entity is not None:
            spans.append(Span(value, entity, pos, pos + len(value)))
        pieces.append(value)
        pos += len(value)
    return "".join(pieces), spans


def _draw_plan(rng: np.random.Generator, lang: Lang, country: Country) -> _Plan:
    if _chance(rng, _NO_PII_SHARE):
        return _Plan()
    name = _chance(rng, 0.95)
    phone = _chance(rng, 0.6)
    cnid = lang == "zh" and _chance(rng, 0.35)
    email = _chance(rng, 0.2 if lang == "zh" else 0.3)
    # A Chinese address only reads naturally in a Chinese text.
    address = (country != "CN" or lang == "zh") and _chance(rng, 0.3)
    refund: Literal["iban", "card"] | None = None
    if _chance(rng, 0.1):
        refund = "iban" if country in ("DE", "IE") else "card"
    doctor = _chance(rng, 0.2)
    if not (name or phone or cnid or email or address or refund or doctor):
        phone = True  # a narrative that carries personal data carries at least one value
    return _Plan(
        name=name,
        female=_chance(rng, 0.5),
        phone=phone,
        cnid=cnid,
        email=email,
        address=address,
        refund=refund,
        doctor=doctor,
    )


def _format_date(day: dt.date, lang: Lang, rng: np.random.Generator) -> str:
    if lang == "zh":
        return f"{day.year}年{day.month}月{day.day}日"
    if lang == "de":
        return f"{day:%d.%m.%Y}"
    if _chance(rng, 0.5):
        return f"{day.day} {_EN_MONTHS[day.month - 1]} {day.year}"
    return day.isoformat()


def _zh_template(
    kind: Literal["complaint", "service"], plan: _Plan, rng: np.random.Generator
) -> tuple[str, list[str]]:
    """Opening + identifier sentences, and the candidate extra sentences, in Chinese."""
    pick = _pick
    honorific = "女士" if plan.female else "先生"
    if plan.name:
        if kind == "complaint":
            reporter = pick(
                rng, ["患者{name}", "患者家属{name}", "联系人{name}", "{name}" + honorific]
            )
        else:
            reporter = pick(
                rng, ["设备科{name}" + honorific, "联系人{name}", "客户{name}", "{name}工程师"]
            )
    elif kind == "complaint":
        reporter = pick(rng, ["患者家属", "一位患者", "医院护理部"])
    else:
        reporter = pick(rng, ["医院设备科", "客户", "经销商"])
    contact: list[str] = []
    if plan.phone:
        contact.append(pick(rng, ["联系电话{phone}", "电话：{phone}", "手机{phone}"]))
    if plan.cnid:
        contact.append(pick(rng, ["身份证号{cnid}", "身份证号码：{cnid}"]))
    if plan.email:
        contact.append(pick(rng, ["邮箱{email}", "电子邮箱：{email}"]))
    who = reporter + ("（" + "，".join(contact) + "）" if contact else "")
    if kind == "complaint":
        opening = pick(
            rng,
            [
                f"{who}反映{{product}}在使用中出现故障：{{fault}}。",
                f"{who}投诉{{product}}存在质量问题：{{fault}}，已停止使用。",
                f"{{date}}，{who}来电反映{{product}}异常：{{fault}}。",
            ],
        )
    else:
        opening = pick(
            rng,
            [
                f"{who}报修{{product}}，故障现象：{{fault}}。",
                f"{{date}}，{who}来电要求上门维修{{product}}：{{fault}}。",
                f"{who}反馈{{product}}需要维修，现象为{{fault}}。",
            ],
        )
    ids = pick(
        rng,
        [
            "批号{lot}，序列号{serial}。",
            "产品UDI：{udi}。",
            "GTIN {gtin}，批号{lot}，序列号{serial}。",
            "设备序列号{serial}，UDI码{udi}。",
            "涉及批次{lot}（GTIN {gtin}）。",
        ],
    )
    extras: list[str] = []
    if plan.doctor:
        extras.append(
            pick(rng, ["主治医生{doctor}已确认上述情况。", "经{doctor}医生确认，患者未受伤害。"])
            if kind == "complaint"
            else "{doctor}医生要求尽快处理。"
        )
    if plan.address:
        extras.append(
            pick(rng, ["家属地址：{address}。", "联系地址：{address}。", "寄回地址：{address}。"])
        )
    if plan.refund == "card":
        extras.append(
            pick(rng, ["患者要求将退款打入银行卡{card}。", "退款银行卡号：{card}。"])
            if kind == "complaint"
            else "预付款退还至银行卡{card}。"
        )
    elif plan.refund == "iban":
        extras.append("退款账户：{iban}。")
    return opening + ids, extras


def _zh_filler(kind: Literal["complaint", "service"], rng: np.random.Generator) -> str:
    if kind == "complaint":
        return _pick(rng, ["投诉单号{cmp}。", "已要求寄回样品进行调查。", "关联采购订单{po}。"])
    return _pick(
        rng, ["已创建维修工单{wo}。", "工程师已更换主板并完成测试。", "关联采购订单{po}。"]
    )


def _de_template(
    kind: Literal["complaint", "service"], plan: _Plan, rng: np.random.Generator
) -> tuple[str, list[str]]:
    pick = _pick
    title = "Frau" if plan.female else "Herr"
    if plan.name:
        if kind == "complaint":
            options = [
                ("Patientin {name}" if plan.female else "Patient {name}"),
                f"{title} {{name}}",
                ("Die Angehörige Frau {name}" if plan.female else "Der Angehörige Herr {name}"),
            ]
        else:
            options = [
                f"{title} {{name}} von der Medizintechnik",
                ("Ansprechpartnerin Frau {name}" if plan.female else "Ansprechpartner Herr {name}"),
                ("Kundin Frau {name}" if plan.female else "Kunde Herr {name}"),
            ]
        reporter = pick(rng, options)
    elif kind == "complaint":
        reporter = pick(rng, ["Ein Patient", "Eine Angehörige", "Die Station"])
    else:
        reporter = pick(rng, ["Die Medizintechnik der Klinik", "Der Kunde", "Ein Händler"])
    contact: list[str] = []
    if plan.phone:
        contact.append(pick(rng, ["Tel. {phone}", "Telefon: {phone}", "Mobil {phone}"]))
    if plan.email:
        contact.append(pick(rng, ["E-Mail {email}", "E-Mail: {email}"]))
    who = reporter + (" (" + ", ".join(contact) + ")" if contact else "")
    if kind == "complaint":
        opening = pick(
            rng,
            [
                f"{who} meldet einen Fehler am Gerät {{product}}: {{fault}}.",
                f"{who} beschwert sich über das Gerät {{product}}: {{fault}}.",
                f"Am {{date}} meldete {_mid(who, 'de')} eine Störung am Gerät {{product}}: "
                "{fault}.",
            ],
        )
    else:
        opening = pick(
            rng,
            [
                f"{who} meldet einen Servicefall zum Gerät {{product}}: {{fault}}.",
                f"{who} bittet um Reparatur des Geräts {{product}}: {{fault}}.",
                f"Am {{date}} forderte {_mid(who, 'de')} einen Techniker für {{product}} an: "
                "{fault}.",
            ],
        )
    ids = pick(
        rng,
        [
            " Charge {lot}, Seriennummer {serial}.",
            " UDI: {udi}.",
            " GTIN {gtin}, Charge {lot}, Seriennummer {serial}.",
            " Betroffen ist das Gerät mit der Seriennummer {serial} (UDI {udi}).",
            " Chargennummer {lot}, GTIN {gtin}.",
        ],
    )
    extras: list[str] = []
    if plan.doctor:
        extras.append(
            pick(
                rng,
                [
                    "Der behandelnde Arzt Dr. {doctor} bestätigt den Vorfall.",
                    "Laut Dr. {doctor} kam der Patient nicht zu Schaden.",
                ],
            )
            if kind == "complaint"
            else "Dr. {doctor} bittet um schnelle Bearbeitung."
        )
    if plan.address:
        extras.append(pick(rng, ["Anschrift: {address}.", "Rücksendung bitte an {address}."]))
    if plan.refund == "iban":
        extras.append(
            pick(
                rng,
                [
                    "Die Erstattung soll auf das Konto {iban} erfolgen.",
                    "Bitte Gutschrift auf IBAN {iban}.",
                ],
            )
        )
    elif plan.refund == "card":
        extras.append("Erstattung bitte auf die Kreditkarte {card}.")
    return opening + ids, extras


def _de_filler(kind: Literal["complaint", "service"], rng: np.random.Generator) -> str:
    if kind == "complaint":
        return _pick(
            rng,
            [
                "Reklamationsnummer {cmp}.",
                "Das Gerät wird zur Untersuchung zurückgeschickt.",
                "Bezug: Bestellung {po}.",
            ],
        )
    return _pick(
        rng,
        [
            "Serviceauftrag {wo} wurde angelegt.",
            "Der Techniker hat das Netzteil getauscht und die Funktion geprüft.",
            "Bezug: Bestellung {po}.",
        ],
    )


def _en_template(
    kind: Literal["complaint", "service"], plan: _Plan, rng: np.random.Generator
) -> tuple[str, list[str]]:
    pick = _pick
    title = pick(rng, ["Mrs.", "Ms."]) if plan.female else "Mr."
    if plan.name:
        if kind == "complaint":
            options = [f"{title} {{name}}", "Patient {name}", "Caregiver {name}"]
        else:
            options = [
                f"{title} {{name}} from biomedical engineering",
                "Customer contact {name}",
                f"Site contact {title} {{name}}",
            ]
        reporter = pick(rng, options)
    elif kind == "complaint":
        reporter = pick(rng, ["A patient", "The ward", "A caregiver"])
    else:
        reporter = pick(rng, ["The customer", "Biomedical engineering", "A distributor"])
    contact: list[str] = []
    if plan.phone:
        contact.append(pick(rng, ["tel. {phone}", "phone {phone}", "mobile {phone}"]))
    if plan.email:
        contact.append(pick(rng, ["email {email}", "e-mail: {email}"]))
    who = reporter + (" (" + "; ".join(contact) + ")" if contact else "")
    if kind == "complaint":
        opening = pick(
            rng,
            [
                f"{who} reported a problem with the {{product}}: {{fault}}.",
                f"{who} complained that the {{product}} failed during use: {{fault}}.",
                f"On {{date}}, {_mid(who, 'en')} called to report an issue with the {{product}}: "
                "{fault}.",
            ],
        )
    else:
        opening = pick(
            rng,
            [
                f"{who} requested an on-site repair of the {{product}}: {{fault}}.",
                f"{who} opened a service request for the {{product}}: {{fault}}.",
                f"On {{date}}, {_mid(who, 'en')} asked for a technician to inspect the "
                "{product}: {fault}.",
            ],
        )
    ids = pick(
        rng,
        [
            " Lot {lot}, serial number {serial}.",
            " UDI: {udi}.",
            " GTIN {gtin}, lot {lot}, serial {serial}.",
            " The affected unit has serial number {serial} (UDI {udi}).",
            " Lot number {lot}, GTIN {gtin}.",
        ],
    )
    extras: list[str] = []
    if plan.doctor:
        extras.append(
            pick(
                rng,
                [
                    "The treating physician, Dr. {doctor}, confirmed the event.",
                    "According to Dr. {doctor}, the patient was not harmed.",
                ],
            )
            if kind == "complaint"
            else "Dr. {doctor} asked for the repair to be prioritised."
        )
    if plan.address:
        extras.append(pick(rng, ["Return address: {address}.", "Contact address: {address}."]))
    if plan.refund == "iban":
        extras.append("The customer asked for a refund to IBAN {iban}.")
    elif plan.refund == "card":
        extras.append(
            pick(rng, ["Refund to card {card} was requested.", "Card for the refund: {card}."])
        )
    return opening + ids, extras


def _en_filler(kind: Literal["complaint", "service"], rng: np.random.Generator) -> str:
    if kind == "complaint":
        return _pick(
            rng,
            [
                "Complaint reference {cmp}.",
                "The unit will be returned for investigation.",
                "Reference: purchase order {po}.",
            ],
        )
    return _pick(
        rng,
        [
            "Work order {wo} was created.",
            "The technician replaced the power board and verified operation.",
            "Reference: purchase order {po}.",
        ],
    )


def narrative(
    faker: PiiFaker,
    lang: Lang,
    kind: Literal["complaint", "service"],
    *,
    country: Country,
    device: dict[str, str],
    rng: np.random.Generator,
) -> tuple[str, list[Span]]:
    """One 2-4 sentence complaint/service note and the Spans of the personal data planted in it.

    `rng` chooses the template and which personal-data kinds appear; `faker` draws the values.
    Device identifiers (product, GTIN, lot, serial, UDI), dates and order numbers appear in the
    text but never in a Span.
    """
    missing = [key for key in _DEVICE_KEYS if key not in device]
    if missing:
        raise KeyError(f"device is missing {missing}")
    plan = _draw_plan(rng, lang, country)

    if lang == "zh":
        body, extras = _zh_template(kind, plan, rng)
        filler, separator = _zh_filler(kind, rng), ""
    elif lang == "de":
        body, extras = _de_template(kind, plan, rng)
        filler, separator = _de_filler(kind, rng), " "
    else:
        body, extras = _en_template(kind, plan, rng)
        filler, separator = _en_filler(kind, rng), " "
    chosen = _shuffled(rng, extras)[:_MAX_EXTRA_SENTENCES]
    if len(chosen) < _MAX_EXTRA_SENTENCES and _chance(rng, 0.5):
        chosen.append(filler)
    template = separator.join([body, *chosen])

    day = dt.date(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3 * 365)))
    yymm = f"{day:%y%m}"
    values = {key: device[key] for key in _DEVICE_KEYS}
    values["date"] = _format_date(day, lang, rng)
    values["wo"] = f"WO-{yymm}-{int(rng.integers(1, 100_000)):05d}"
    values["po"] = f"PO-{yymm}-{int(rng.integers(1, 100_000)):05d}"
    values["cmp"] = f"CMP-{yymm}-{int(rng.integers(1, 10_000)):04d}"

    # Values are drawn in a fixed order whatever the template needs, to keep streams aligned.
    name, female = faker._person(lang)
    while female != plan.female:
        name, female = faker._person(lang)
    doctor = faker.person_name(lang)
    while doctor == name:
        doctor = faker.person_name(lang)
    email_country: Country = "CN" if lang == "zh" else country
    values["name"] = name
    values["doctor"] = doctor
    values["phone"] = faker.phone(country, mobile=_chance(rng, 0.75))
    values["cnid"] = faker.cn_resident_id()
    # Chinese names are romanised from the built-in pinyin table half of the time; otherwise
    # (like many real qq.com/163.com addresses) the local part is unrelated random letters.
    values["email"] = faker.email(
        name if lang != "zh" or _chance(rng, 0.5) else "",
        _pick(rng, _EMAIL_DOMAINS[email_country]),
    )
    values["address"] = faker.address(country)
    values["iban"] = faker.iban("IE" if country == "IE" else "DE")
    values["card"] = faker.bank_card()
    return _render(template, values)
