"""PRC resident identity numbers: 18 characters, valid region, birth date and MOD 11-2 check."""

from __future__ import annotations

import datetime as dt

from presidio_analyzer import Pattern

from medlake.governance.recognizers.base import NUM_AFTER, NUM_BEFORE, ContextPatternRecognizer
from medlake.governance.recognizers.registry import register

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"
# First two digits: province-level divisions (GB/T 2260).
PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82}
)


def check_char(body: str) -> str:
    """ISO 7064 MOD 11-2 check character of a 17-digit body."""
    return CHECK[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]


def valid_resident_id(value: str) -> bool:
    """Province code, a real birth date (1900-2099) and the check character all agree."""
    if len(value) != 18 or not value[:17].isdigit() or int(value[:2]) not in PROVINCES:
        return False
    try:
        dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return value[6:8] in ("19", "20") and check_char(value[:17]) == value[17].upper()


@register("cn_resident_id")
class ChineseResidentIdRecognizer(ContextPatternRecognizer):
    """18-character resident ID; a failed checksum, region or date rejects the candidate."""

    ENTITY = "CN_RESIDENT_ID"
    PATTERNS = (
        Pattern(
            "cn_resident_id",
            r"(?=[1-8])"
            + NUM_BEFORE
            + r"[1-8]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
            r"\d{3}[0-9Xx]" + NUM_AFTER,
            0.5,
        ),
    )
    CONTEXT = ("身份证", "身份证号", "公民身份号码", "resident id", "ID card")

    def validate_result(self, pattern_text: str) -> bool:
        return valid_resident_id(pattern_text)
