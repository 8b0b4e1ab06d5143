"""E-mail addresses (public-suffix check, offline) and IP addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import cache
from typing import ClassVar

import tldextract
from presidio_analyzer import Pattern, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import EmailRecognizer, IpRecognizer

from medlake.governance.recognizers.base import find
from medlake.governance.recognizers.registry import LANGUAGES, register


@cache
def suffix_extractor() -> tldextract.TLDExtract:
    """tldextract on its bundled public-suffix snapshot: no download, no cache directory."""
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@register("email")
class OfflineEmailRecognizer(EmailRecognizer):
    """ASCII e-mail addresses whose domain ends in a known public suffix.

    Presidio's pattern lets `\\w` (Chinese characters too) into the local part, so 邮箱a@b.cn
    would come out as one address; and its validation may fetch the suffix list online.
    """

    LANGUAGES: ClassVar[tuple[str, ...]] = LANGUAGES
    EMAIL_PATTERNS: ClassVar[Sequence[Pattern]] = (
        Pattern(
            "email",
            r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_])?"
            r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
            r"(?![A-Za-z0-9\-])",
            0.5,
        ),
    )

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(patterns=list(self.EMAIL_PATTERNS), supported_language=supported_language)

    def validate_result(self, pattern_text: str) -> bool:
        return bool(suffix_extractor()(pattern_text.rsplit("@", 1)[-1]).suffix)

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        return find(self, text, self.EMAIL_PATTERNS, labelled=False)


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


@register("ip_address")
class IpAddressRecognizer(IpRecognizer):
    """IPv4 and IPv6 addresses (validated by `ipaddress`), with digit look-arounds."""

    LANGUAGES: ClassVar[tuple[str, ...]] = LANGUAGES
    IP_PATTERNS: ClassVar[Sequence[Pattern]] = (
        Pattern(
            "ipv4",
            rf"(?<![0-9A-Za-z.]){_OCTET}(?:\.{_OCTET}){{3}}(?:/\d{{1,2}})?(?![0-9A-Za-z]|\.\d)",
            0.6,
        ),
        Pattern(
            "ipv6",
            r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::?[0-9A-Fa-f]{1,4}){1,7})"
            r"(?:/\d{1,3})?(?![0-9A-Za-z:])",
            0.6,
        ),
    )

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(patterns=list(self.IP_PATTERNS), supported_language=supported_language)

    def invalidate_result(self, pattern_text: str) -> bool:
        try:
            address = ipaddress.ip_interface(pattern_text)
        except ValueError:
            return True
        return address.version == 6 and pattern_text.count(":") < 2

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        return find(self, text, self.IP_PATTERNS)
