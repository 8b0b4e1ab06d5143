"""Device identifiers are not personal data: tell when a candidate span is one (UDI, lot...)."""

from __future__ import annotations

import re

# A GS1 UDI in human-readable form: two or more "(AI)value" elements without spaces,
# e.g. (01)04012345678901(17)271231(10)L2405123(21)SN000123456789012.
_UDI = re.compile(r"(?:\(\d{2,4}\)[0-9A-Za-z\-./]+){2,}")
# A label that introduces a device, order or document number, right before the candidate.
_KEYWORD_BEFORE = re.compile(
    r"(?:(?<![A-Za-z])(?:gtin|ean|udi(?:-di|-pi)?|lot|batch|charge|chargen?-?(?:nummer|nr)|"
    r"los|serial|serien-?(?:nummer|nr)|s/n|sn|ref|part|artikel(?:nummer)?|material|"
    r"model|modell|typ|type|po|wo|cmp|order|bestellung|auftrag|serviceauftrag|"
    r"reklamationsnummer|reference|referenz|firmware|software|version|fw|sw|exp|expiry|mfg)"
    r"|批号|批次|序列号|工单|订单|单号|料号|物料|型号|版本|UDI码|有效期|生产日期)"
    r"[ \t]*(?:no\.?|nr\.?|number|nummer|#|号|码)?[ \t]*[:：#]?[ \t]*\(?$",
    re.IGNORECASE,
)
_WINDOW = 32  # characters before a candidate in which its label is looked for


def in_udi(text: str, start: int, end: int) -> bool:
    """Whether [start, end) lies (partly) inside a UDI string of the text."""
    left = text.rfind(" ", 0, start) + 1
    right = text.find(" ", end)
    token = text[left : len(text) if right < 0 else right]
    if "(" not in token:
        return False
    return any(m.start() + left < end and start < m.end() + left for m in _UDI.finditer(token))


def after_device_label(text: str, start: int) -> bool:
    """Whether the candidate starting at `start` follows a lot/serial/GTIN/order label."""
    return _KEYWORD_BEFORE.search(text[max(0, start - _WINDOW) : start]) is not None


def gtin_valid(digits: str) -> bool:
    """GTIN-8/12/13/14 with a valid GS1 mod-10 check digit."""
    if len(digits) not in (8, 12, 13, 14) or not digits.isascii() or not digits.isdigit():
        return False
    body = digits[:-1]
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == int(digits[-1])


def is_device_identifier(text: str, start: int, end: int, *, labelled: bool = True) -> bool:
    """True for a span inside a UDI, or (when `labelled`) right after a device/order label."""
    return in_udi(text, start, end) or (labelled and after_device_label(text, start))
