"""Phone numbers as people write them in CN, DE, IE, MY, US (and any +country number).

Regexes find phone-shaped candidates (digit groups after a trunk 0, a country code, or a CN
mobile prefix); the offline `phonenumbers` metadata then checks that the digits are a
possible number of the region the format implies. Dates, postcodes and digit runs that
belong to device identifiers never reach the check (see `medlake.governance.recognizers.device`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

import phonenumbers
from phonenumbers import NumberParseException
from presidio_analyzer import Pattern

from medlake.governance.recognizers.base import NUM_AFTER, NUM_BEFORE, ContextPatternRecognizer
from medlake.governance.recognizers.device import gtin_valid
from medlake.governance.recognizers.registry import register

# Regions tried, in order, for a number written with a national trunk prefix (0...).
NATIONAL_REGIONS = ("DE", "IE", "MY", "CN", "GB", "AT", "CH", "FR", "NL", "IT", "ES", "SG", "AU")
# An extension, inside the finding: "ext. 12", "x12", "Durchwahl -34", "DW 34", "转 8021",
# "分机 12"; or "-123" right after the number (taken off again when the digits are too many).
EXTENSION = (
    r"(?:[ ]?(?:(?i:ext|extn|extension|durchwahl|nebenstelle|dw|app)\.?[ ]?[:\-]?[ ]?"
    r"|x[ ]?|[ ]?(?:转|分机|内线)[ ]?)\d{1,6}|-\d{1,5})?"
)
_EXTENSION_WORD = re.compile(
    r"(?:[ ]?(?i:ext|extn|extension|durchwahl|nebenstelle|dw|app)\.?|x|[ ]?(?:转|分机|内线)).*$"
)
# (name, look-ahead for the first character, pattern, score)
_PATTERNS = (
    # 13790688900, 137 9068 8900, +86 198 9376 9414, (+86) 13790688900
    (
        "cn_mobile",
        r"(?=[+(01])",
        r"(?:\(?(?:\+|00)86\)?[ \-]?)?1[3-9]\d(?:[ \-]?\d{4}){2}",
        0.7,
    ),
    # +49 162 5895279, +353 85 179 6426, +60 16-902 2094, +1 858-252-3480, 0049 ...
    (
        "international",
        r"(?=\(?(?:\+|00))",
        r"\(?(?:\+|00)[1-9]\d{0,2}\)?(?:[ \-]?\(0\))?[ \-]?\(?\d{1,5}\)?(?:[ \-./]?\d{1,5}){1,5}",
        0.7,
    ),
    # 0170 8853572, 085 179 6426, 016-902 2094, 0755-2345678, (0761) 234567, 0170/8853572,
    # 07461.468203
    (
        "national",
        r"(?=\(?0)",
        r"\(?0[1-9]\d{0,4}\)?(?:[ \-]?|[ ]?/[ ]?|\.(?=\d{5,8}(?!\.\d)))"
        r"\d{2,8}(?:[ \-]?\d{2,8}){0,3}",
        0.6,
    ),
    # (763) 988-0417, 763-988-0417, 763.988.0417, 1-800-555-0199
    (
        "north_america",
        r"(?=[(1-9])",
        r"(?:1[ \-.])?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ \-.])[2-9]\d{2}[ \-.]\d{4}",
        0.6,
    ),
)


def _possible(number: str, region: str | None) -> bool:
    try:
        return bool(phonenumbers.is_possible_number(phonenumbers.parse(number, region)))
    except NumberParseException:
        return False


def without_extension(candidate: str) -> list[str]:
    """The number without its extension: one reading per way the extension may be written."""
    plain = _EXTENSION_WORD.sub("", candidate)
    if plain != candidate:
        return [plain.rstrip(" :-")]
    head, dash, tail = candidate.rpartition("-")
    if dash and head and tail.isdigit() and len(tail) <= 5 and head[-1].isdigit():
        return [candidate, head]  # "-123": part of the number, or an extension
    return [candidate]


def possible_phone_number(candidate: str) -> bool:
    """Whether a phone-shaped candidate has the digits of a possible number where it points.

    With a country code or trunk prefix, `phonenumbers` checks the length for that country
    (any of NATIONAL_REGIONS for a trunk prefix); CN mobile and North American shapes are
    exact in the regex already. An extension is not counted.
    """
    return any(_possible_number(number) for number in without_extension(candidate))


def _possible_number(candidate: str) -> bool:
    candidate = candidate.lstrip("(")
    digits = "".join(ch for ch in candidate if ch.isdigit())
    if candidate.startswith("+"):
        return _possible(
            candidate.replace(")", " ", 1) if ")" in candidate[:5] else candidate, None
        )
    if digits.startswith("00"):
        return _possible("+" + digits[2:], None)
    if digits.startswith("0"):  # trunk prefix: 8-12 digits in all (0170 8853572, 01 234 5678)
        if not 8 <= len(digits) <= 12 or (digits == candidate and gtin_valid(digits)):
            return False
        return any(_possible(candidate, region) for region in NATIONAL_REGIONS)
    # 1[3-9]x xxxx xxxx and NXX-NXX-XXXX: the pattern already pins the number down
    return True


@register("phone_number")
class PhoneNumberRecognizer(ContextPatternRecognizer):
    """CN mobile/landline, German, Irish, Malaysian, North American and +CC numbers."""

    ENTITY = "PHONE_NUMBER"
    PATTERNS = tuple(
        Pattern(n, f + NUM_BEFORE + r + EXTENSION + NUM_AFTER, s) for n, f, r, s in _PATTERNS
    )
    CONTEXT = ("phone", "tel", "mobile", "telefon", "mobil", "电话", "手机", "座机", "Durchwahl")
    GUARDS: ClassVar[Mapping[str, str]] = {"north_america": r"\d{3}[ \-.]\d{4}"}

    def validate_result(self, pattern_text: str) -> bool | None:
        return None if possible_phone_number(pattern_text) else False
