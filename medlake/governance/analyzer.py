"""One offline Presidio analyzer for zh/en/de free text, and the `detect` API built on it.

No model is downloaded: the analyzer runs the pattern recognizers of
`medlake.governance.recognizers` on Presidio's `NoOpNlpEngine`. Only when a spaCy NER package is
installed (`spacy.util.is_package`) does its language get the spaCy NLP engine and a PERSON
recognizer on top. Context words are part of the recognizers' own patterns, so Presidio's
lemma-based context enhancer (which needs a model's lemmas) is switched off.

    >>> [(f.entity_type, f.start, f.end) for f in detect("联系人王伟，电话13790688900。")]
    [('PERSON', 3, 5), ('PHONE_NUMBER', 8, 19)]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any, Literal

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpEngine, NoOpNlpEngine, SpacyNlpEngine

from medlake.governance.recognizers import LANGUAGES, build

Language = Literal["zh", "en", "de"]
ENTITY_TYPES: frozenset[str] = frozenset(
    {
        "PERSON",
        "PHONE_NUMBER",
        "CN_RESIDENT_ID",
        "EMAIL_ADDRESS",
        "ADDRESS",
        "IBAN_CODE",
        "CREDIT_CARD",
        "IP_ADDRESS",
    }
)
MIN_SCORE = 0.5
# Tie-break between equally long, equally scored overlapping findings (checksummed first).
PRIORITY = (
    "CN_RESIDENT_ID", "IBAN_CODE", "CREDIT_CARD", "EMAIL_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER",
    "ADDRESS", "PERSON",
)  # fmt: skip
# spaCy NER packages by preference, per language; used only when installed.
NER_PACKAGES: Mapping[str, tuple[str, ...]] = {
    "zh": ("zh_core_web_trf", "zh_core_web_lg", "zh_core_web_md", "zh_core_web_sm"),
    "en": ("en_core_web_trf", "en_core_web_lg", "en_core_web_md", "en_core_web_sm"),
    "de": ("de_dep_news_trf", "de_core_news_lg", "de_core_news_md", "de_core_news_sm"),
}

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_GERMAN = re.compile(
    r"[äöüÄÖÜß]|\b(?:der|die|das|und|ist|nicht|mit|von|für|ein|eine|einen|dem|den|des|auf|"
    r"bei|wurde|wird|bitte|Herr|Frau|Gerät|Anschrift|Ansprechpartner)\b"
)
# What any recognizer needs, except a Latin name (an upper- then a lower-case letter):
# a digit, "@" or "＠", a Chinese character, or hex:hex (IPv6).
_TRIGGER = re.compile(r"[\d@\uff20\u3400-\u4dbf\u4e00-\u9fff]|[0-9A-Fa-f]:[:0-9A-Fa-f]")


@dataclass(frozen=True)
class Finding:
    """One detected personal value: `text[start:end]` is of `entity_type`."""

    entity_type: str
    start: int
    end: int
    score: float


def detect_language(text: str) -> Language:
    """zh when there is a Chinese character, de on umlauts or German function words, else en.

    en and de run the same recognizers, so mistaking one for the other changes nothing.
    """
    if _HAN.search(text):
        return "zh"
    if _GERMAN.search(text):
        return "de"
    return "en"


def might_contain_pii(text: str) -> bool:
    """False only when no recognizer can match: no digit, "@", Chinese, IPv6 or name token."""
    if _TRIGGER.search(text):
        return True
    # A Latin name token starts with an upper-case letter followed by a lower-case one.
    return any(a.isupper() and b.islower() for a, b in pairwise(text))


class _PatternContextOnly(ContextAwareEnhancer):
    """Leaves scores alone: context is matched by the recognizers' own patterns."""

    def __init__(self) -> None:
        super().__init__(0.0, 0.0, 0, 0)

    def enhance_using_context(
        self, text: str, raw_results: list[Any], *args: Any, **kw: Any
    ) -> list[Any]:
        return raw_results


def installed_ner_models() -> dict[str, str]:
    """The preferred installed spaCy NER package per language (none on this build)."""
    import spacy  # noqa: PLC0415 - optional spaCy

    found = {}
    for language, packages in NER_PACKAGES.items():
        for package in packages:
            if spacy.util.is_package(package):
                found[language] = package
                break
    return found


def _nlp_engine(ner_models: Mapping[str, str]) -> NlpEngine:
    if not ner_models:
        return NoOpNlpEngine(
            models=[{"lang_code": lang, "model_name": "none"} for lang in LANGUAGES]
        )
    import spacy  # noqa: PLC0415 - optional spaCy

    engine = SpacyNlpEngine(
        models=[{"lang_code": k, "model_name": v} for k, v in ner_models.items()]
    )
    engine.load()  # installed packages or local paths only: nothing to download
    for lang in LANGUAGES:  # Presidio types `nlp` as None until loaded
        engine.nlp.setdefault(lang, spacy.blank(lang))  # type: ignore[attr-defined]
    return engine


def build_analyzer(ner_models: Mapping[str, str] | None = None) -> AnalyzerEngine:
    """A new offline analyzer; `ner_models` (language -> spaCy package or path) adds NER."""
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer  # noqa: PLC0415 - spaCy

    models = installed_ner_models() if ner_models is None else dict(ner_models)
    recognizers: list[EntityRecognizer] = [r for lang in LANGUAGES for r in build(lang)]
    for lang in models:
        recognizers.append(SpacyRecognizer(supported_language=lang, supported_entities=["PERSON"]))
    return AnalyzerEngine(
        registry=RecognizerRegistry(recognizers, supported_languages=list(LANGUAGES)),
        nlp_engine=_nlp_engine(models),
        supported_languages=list(LANGUAGES),
        context_aware_enhancer=_PatternContextOnly(),
        default_score_threshold=MIN_SCORE,
    )


@cache
def get_analyzer() -> AnalyzerEngine:
    """The process-wide analyzer (built on first use, e.g. once per Spark Python worker)."""
    return build_analyzer()


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per group of overlapping findings, in text order: the group's union (so
    no part of any finding stays unmasked), typed and scored as its best member (the
    longest, then the highest score, then `PRIORITY`)."""
    rank = {entity: i for i, entity in enumerate(PRIORITY)}

    def best(f: Finding) -> tuple[int, float, int]:
        return (f.start - f.end, -f.score, rank.get(f.entity_type, 99))

    groups: list[list[Finding]] = []
    for f in sorted(findings, key=lambda f: (f.start, -f.end)):
        if groups and f.start < max(g.end for g in groups[-1]):
            groups[-1].append(f)
        else:
            groups.append([f])
    out = []
    for group in groups:
        top = min(group, key=best)
        start, end = min(g.start for g in group), max(g.end for g in group)
        out.append(Finding(top.entity_type, start, end, top.score))
    return out


def analyze(text: str, language: str) -> list[Finding]:
    """Presidio on one text, without the pre-filter: findings above MIN_SCORE, overlaps resolved."""
    results = get_analyzer().analyze(text=text, language=language, score_threshold=MIN_SCORE)
    return resolve_overlaps(
        Finding(r.entity_type, r.start, r.end, float(r.score))
        for r in results
        if r.entity_type in ENTITY_TYPES
    )


def detect(text: str, language: str | None = None) -> list[Finding]:
    """The personal data in `text` (language detected when not given)."""
    if language is not None and language not in LANGUAGES:
        raise ValueError(f"language {language!r} is not supported; use one of {LANGUAGES}")
    if not text or not might_contain_pii(text):
        return []
    return analyze(text, language or detect_language(text))


def detect_many(texts: Sequence[str | None]) -> list[list[Finding]]:
    """`detect` over a batch (as from a pandas UDF); None and "" give []."""
    return [detect(text) if text else [] for text in texts]
