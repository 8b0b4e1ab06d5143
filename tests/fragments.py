"""Fragments of personal values, and finding them in written files: the partial-leak scans.

Written for the tests, independently of the recognizers and the masking they check.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import regex

WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")
HAN = regex.compile(r"\p{Han}+")
DIGITS = regex.compile(r"\d+")
SUBSCRIBER_DIGITS = 7


def fragments(entity: str, value: str) -> set[str]:
    """Every fragment of three or more characters of a personal value: each word (Latin
    script, lower case) or substring (Chinese, which has no spaces) of 3+ characters. A phone
    number's fragments are its runs of SUBSCRIBER_DIGITS digits: shorter runs (a 3-digit
    carrier or area code) are shared by millions of numbers and match any count or year."""
    if entity == "PHONE_NUMBER":
        digits = "".join(DIGITS.findall(value))
        n = SUBSCRIBER_DIGITS
        return {digits[i : i + n] for i in range(len(digits) - n + 1)}
    out: set[str] = set()
    for word in WORD.findall(value):
        for run in HAN.findall(word):
            out |= {run[i:j] for i in range(len(run)) for j in range(i + 3, len(run) + 1)}
        out |= {w.lower() for w in HAN.sub(" ", word).split() if len(w) >= 3}
    return out


def strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value, JSON documents inside strings included (Delta's
    file statistics are one)."""
    if isinstance(value, str):
        yield value
        if value.startswith("{"):
            with contextlib.suppress(ValueError):
                yield from strings(json.loads(value))
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def texts_in(paths: Iterable[Path]) -> set[str]:
    """Every text cell of the Parquet files and every string of the JSON(-lines) files."""
    out: set[str] = set()
    for path in paths:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for column in table.columns:
                if column.type in (pa.string(), pa.large_string()):
                    out.update(v for v in column.to_pylist() if v)
        elif path.suffix == ".json":
            for line in path.read_text(encoding="utf-8").splitlines():
                out.update(strings(json.loads(line)))
    return out


def leaks(
    texts: Iterable[str], wanted: Mapping[str, set[str]], vocabulary: Mapping[str, str]
) -> dict[str, list[str]]:
    """fragment -> (some of) the values it comes from, for every fragment found in `texts`
    but not excepted in `vocabulary`: Latin fragments as whole words, Chinese as substrings."""
    texts = list(texts)
    words = {w.lower() for text in texts for w in WORD.findall(text)}
    han = "\n".join(t for t in texts if HAN.search(t))
    return {
        fragment: sorted(values)[:3]
        for fragment, values in wanted.items()
        if fragment not in vocabulary
        and (fragment in han if HAN.fullmatch(fragment) else fragment in words)
    }


def words_in(texts: Iterable[str]) -> set[str]:
    return {w.lower() for text in texts for w in WORD.findall(text)}
