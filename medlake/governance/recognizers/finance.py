"""Bank details: IBAN (Presidio's checksum recognizer) and payment cards (Luhn)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from presidio_analyzer import Pattern, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, IbanRecognizer

from medlake.governance.recognizers.base import NUM_AFTER, NUM_BEFORE, find
from medlake.governance.recognizers.cn_id import valid_resident_id
from medlake.governance.recognizers.device import gtin_valid, is_device_identifier
from medlake.governance.recognizers.registry import LANGUAGES, register


@register("iban")
class IbanCodeRecognizer(IbanRecognizer):
    """Presidio's IBAN recognizer (format per country + mod 97), minus device identifiers."""

    LANGUAGES: ClassVar[tuple[str, ...]] = LANGUAGES

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        found: list[RecognizerResult] = super().analyze(text, entities)
        return [r for r in found if not is_device_identifier(text, r.start, r.end)]


@register("credit_card")
class BankCardRecognizer(CreditCardRecognizer):
    """13-19 digit card numbers with a card-scheme prefix and a valid Luhn check digit.

    Presidio's own pattern starts with `\\b`, which never matches after a Chinese character
    (银行卡6222...); this one uses digit look-arounds and keeps Presidio's Luhn validation.
    Digits that form a valid GTIN or PRC resident ID are not a card.
    """

    LANGUAGES: ClassVar[tuple[str, ...]] = LANGUAGES
    CARD_PATTERNS: ClassVar[Sequence[Pattern]] = (
        Pattern(
            "card",
            r"(?=[2-6])" + NUM_BEFORE + r"(?:4|5[1-5]|2[2-7]|6|3)\d(?:[ \-]?\d){11,17}" + NUM_AFTER,
            0.5,
        ),
    )

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(patterns=list(self.CARD_PATTERNS), supported_language=supported_language)

    def invalidate_result(self, pattern_text: str) -> bool:
        digits = pattern_text.replace(" ", "").replace("-", "")
        return not 13 <= len(digits) <= 19 or gtin_valid(digits) or valid_resident_id(digits)

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        return find(self, text, self.CARD_PATTERNS)
