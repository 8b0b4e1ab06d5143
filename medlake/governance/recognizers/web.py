"""E-mail addresses (RFC 6531, public-suffix check offline) and IP addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import cache
from typing import ClassVar

import idna
import regex  # type: ignore[import-untyped, unused-ignore]
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


def ascii_domain(domain: str) -> str | None:
    """The domain in A-labels (IDNA 2008, UTS 46 mapping; punycode per label as a fallback)."""
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        pass
    try:
        return ".".join(
            label if label.isascii() else "xn--" + label.lower().encode("punycode").decode("ascii")
            for label in domain.split(".")
        )
    except UnicodeError:
        return None


def valid_domain(domain: str) -> bool:
    """A registrable name under a known public suffix (offline), in Unicode or punycode."""
    name = ascii_domain(domain)
    if name is None or any(not 0 < len(label) <= 63 for label in name.split(".")):
        return False
    parts = suffix_extractor()(name)
    return bool(parts.suffix and parts.domain)


def valid_email(value: str) -> bool:
    """A local part of at most 64 characters and a valid domain (see `valid_domain`)."""
    local, _, domain = value.replace("\uff20", "@").rpartition("@")
    return 0 < len(local) <= 64 and valid_domain(domain)


# Local-part characters of RFC 5322 atext with RFC 6531 letters and digits (any script but
# Chinese: Chinese characters right before an ASCII local part are context, 邮箱zhang@x.cn).
_ATEXT = r"(?:[^\W\p{Han}]|[!#$%&'*+/=?^`{|}~\-])"
# An all-Chinese local part starts after a non-letter or after one of these words (邮箱张伟@...).
_ZH_MAIL = "(?:电子)?邮(?:箱|件)(?:地址)?[为是]?|电邮|发送?至|抄送(?:至)?|回复至"
_LOCAL = (
    rf"(?<!{_ATEXT}|[.\"])(?:{_ATEXT}+(?:\.{_ATEXT}+)*"
    r'|"(?:[^"\\\r\n]|\\.){1,62}"'  # quoted: "john doe"
    rf"|(?:(?<![\p{{L}}\p{{N}}])(?!{_ZH_MAIL})|(?<={_ZH_MAIL}))(?:(?!{_ZH_MAIL})\p{{Han}}){{1,20}})"
)
_LABEL = r"[\p{L}\p{N}](?:[\p{L}\p{N}\-]{0,61}[\p{L}\p{N}])?"
_EMAIL = (
    rf"{_LOCAL}[@\uff20](?:{_LABEL}\.)+(?:xn--[a-z0-9\-]{{2,59}}|[\p{{L}}]{{2,63}})(?![\p{{N}}\-@])"
)


@register("email")
class OfflineEmailRecognizer(EmailRecognizer):
    """E-mail addresses (RFC 6531) whose domain ends in a known public suffix, offline.

    Internationalised local parts (jürgen.müller@...), quoted local parts, plus-addressing,
    IDN domains in Unicode (例子.中国) or punycode (xn--...), and the full-width ＠. Presidio's
    pattern lets Chinese characters into the local part (邮箱a@b.cn as one address), misses
    non-ASCII letters, and its validation may fetch the suffix list online. A Chinese domain
    runs on into the Chinese text after it (…@例子.中国联系): the candidate is cut back to the
    longest prefix with a valid domain.
    """

    LANGUAGES: ClassVar[tuple[str, ...]] = LANGUAGES
    EMAIL_PATTERNS: ClassVar[Sequence[Pattern]] = (Pattern("email", _EMAIL, 0.5),)

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(patterns=list(self.EMAIL_PATTERNS), supported_language=supported_language)

    def validate_result(self, pattern_text: str) -> bool:
        return valid_email(pattern_text)

    @staticmethod
    def fit(value: str) -> int:
        """Length of the longest prefix of a candidate that is an address (0: none).

        Only trailing Chinese characters are cut: they may be the text after the address.
        """
        end = len(value)
        while end > 0:
            if valid_email(value[:end]):
                return end
            if not regex.match(r"\p{Han}", value[end - 1]):
                return 0
            end -= 1
            if value[end - 1] == ".":
                end -= 1
        return 0

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        return find(self, text, self.EMAIL_PATTERNS, labelled=False, fit=self.fit)


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
