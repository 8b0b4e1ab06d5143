"""The recognizer registry: each custom Presidio recognizer is one class registered by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from presidio_analyzer import EntityRecognizer

LANGUAGES: tuple[str, ...] = ("zh", "en", "de")

R = TypeVar("R", bound=type[EntityRecognizer])

# name -> recognizer class; a class declares the languages it serves in `LANGUAGES`.
RECOGNIZERS: dict[str, type[EntityRecognizer]] = {}


def register(name: str) -> Callable[[R], R]:
    """Class decorator: make a recognizer available to the analyzer under `name`."""

    def add(cls: R) -> R:
        if name in RECOGNIZERS:
            raise ValueError(f"recognizer {name!r} is already registered")
        RECOGNIZERS[name] = cls
        return cls

    return add


def languages_of(cls: type[EntityRecognizer]) -> tuple[str, ...]:
    """The languages a registered recognizer serves (all by default)."""
    return tuple(getattr(cls, "LANGUAGES", LANGUAGES))


def build(language: str, names: tuple[str, ...] | None = None) -> list[EntityRecognizer]:
    """One instance of every registered recognizer (or of `names`) that serves `language`."""
    chosen = RECOGNIZERS if names is None else {n: RECOGNIZERS[n] for n in names}
    out = []
    for cls in chosen.values():
        if language in languages_of(cls):
            make: Callable[..., EntityRecognizer] = cls  # all take `supported_language`
            out.append(make(supported_language=language))
    return out
