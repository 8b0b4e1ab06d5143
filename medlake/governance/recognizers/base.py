"""Shared machinery of the custom recognizers: context-consuming patterns, device filtering.

Presidio's `PatternRecognizer` reports the whole regex match and validates it without its
surroundings. Here a pattern may consume context ("患者", "Herr", "Tel.") and mark the
personal value with a named group `pii`; every candidate is dropped when it is (part of) a
device identifier (`medlake.governance.recognizers.device`), then validated as usual. A pattern may
have a guard, a simple regex that any text it can match must contain: texts without it skip
the costlier pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, ClassVar

import regex  # type: ignore[import-untyped, unused-ignore]
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from medlake.governance.recognizers.device import is_device_identifier
from medlake.governance.recognizers.registry import LANGUAGES

# Case matters for names; patterns that want case-insensitivity say so inline: (?i:...).
FLAGS = regex.DOTALL | regex.MULTILINE
# Look-arounds for numbers: `\b` is useless next to Chinese characters (they are word
# characters too), so a number must simply not continue an ASCII letter/digit run. Patterns
# start with a look-ahead for their first character: a fast test before the look-behind.
NUM_BEFORE = r"(?<![0-9A-Za-z_+\-/])(?<!\d[.,])"
NUM_AFTER = r"(?![0-9A-Za-z_\-/]|[.,]\d)"
HAN = r"\u3400-\u4dbf\u4e00-\u9fff"


@cache
def _compiled(pattern: str) -> Any:
    return regex.compile(pattern, FLAGS)


def find(
    recognizer: PatternRecognizer,
    text: str,
    patterns: Sequence[Pattern],
    *,
    labelled: bool = True,
    guards: Mapping[str, str] | None = None,
    fit: Callable[[str], int] | None = None,
) -> list[RecognizerResult]:
    """Run `patterns` for `recognizer`: span = group `pii` (or the match), minus device ids.

    `labelled`: also drop a candidate that follows a lot/serial/GTIN/order label (numbers);
    names and addresses only drop candidates inside a UDI. `fit(candidate)` may cut a candidate
    to the length of its longest valid prefix (0 drops it). Candidates are then scored like
    Presidio does: `validate_result` True -> 1.0, False -> dropped; `invalidate_result` drops.
    """
    results = []
    for pattern in patterns:
        guard = (guards or {}).get(pattern.name)
        if guard is not None and re.search(guard, text) is None:
            continue
        compiled = _compiled(pattern.regex)
        group = "pii" if "pii" in compiled.groupindex else 0
        for match in compiled.finditer(text):
            start, end = match.span(group)
            if fit is not None:
                end = start + fit(text[start:end])
            if start >= end or is_device_identifier(text, start, end, labelled=labelled):
                continue
            value = text[start:end]
            score = pattern.score
            valid = recognizer.validate_result(value)
            if valid is not None:
                score = EntityRecognizer.MAX_SCORE if valid else EntityRecognizer.MIN_SCORE
            if recognizer.invalidate_result(value) or score <= EntityRecognizer.MIN_SCORE:
                continue
            results.append(
                RecognizerResult(
                    entity_type=recognizer.supported_entities[0],
                    start=start,
                    end=end,
                    score=score,
                    recognition_metadata={
                        RecognizerResult.RECOGNIZER_NAME_KEY: type(recognizer).__name__,
                        RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
                    },
                )
            )
    return EntityRecognizer.remove_duplicates(results)


class ContextPatternRecognizer(PatternRecognizer):
    """A pattern recognizer declared by class attributes; see the module docstring."""

    ENTITY: ClassVar[str]
    PATTERNS: ClassVar[Sequence[Pattern]]
    CONTEXT: ClassVar[Sequence[str]] = ()
    LANGUAGES: ClassVar[tuple[str, ...]] = LANGUAGES
    LABELLED: ClassVar[bool] = True  # drop candidates right after a device/order label
    # pattern name -> a cheap stdlib regex the text must contain for the pattern to match
    GUARDS: ClassVar[Mapping[str, str]] = {}

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entity=self.ENTITY,
            supported_language=supported_language,
            patterns=list(self.PATTERNS),
            context=list(self.CONTEXT),
            global_regex_flags=FLAGS,
        )

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        return find(self, text, self.PATTERNS, labelled=self.LABELLED, guards=self.GUARDS)
