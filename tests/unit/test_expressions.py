"""Source-mapping expressions: only the declared vocabulary parses; everything else, and every
argument Spark would fail on at run time, is a configuration error at load."""

from __future__ import annotations

import re

import pytest

from medlake import expressions


def test_an_expression_names_the_local_columns_it_reads_in_order() -> None:
    node = expressions.parse(
        "concat(col('PO / SO #'), '-', upper(split(col('Item'), ' ', 1)), col('PO / SO #'))"
    )
    assert expressions.columns(node) == ["PO / SO #", "Item"]
    assert expressions.factor("lb", "kg") == expressions.UNITS["lb"][1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('x')", "is not allowed"),
        ("__import__('os')", "unknown function __import__"),
        ("col('a').upper()", "is not allowed"),
        ("open('/etc/passwd')", "unknown function open"),
        ("(lambda: 1)()", "is not allowed"),
        ("col(name='a')", "is not allowed"),
        ("col(col('a'))", "argument 1 of col() must be text"),
        ("substring(col('a'), 0, 2)", "starts at 1"),
        ("split(col('a'), '-', 0)", "counts parts from 1"),
        ("regex(col('a'), '(')", "not a valid regular expression"),
        ("regex(col('a'), '(a)', 2)", "has 1 groups"),
        ("regex(col('a'), '(?P<x>a)')", "(?P is Python only"),
        ("convert(col('a'), 'kg', 'm')", "cannot convert mass (kg) to length (m)"),
        ("convert(col('a'), 'stone', 'kg')", "unknown unit stone"),
        ("concat()", "takes 1 to any number of arguments"),
        ("col('a') +", "is not valid"),
        ("-" * 5000 + "1", "nested too deeply"),
    ],
)
def test_anything_outside_the_vocabulary_is_refused_with_the_reason(
    text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        expressions.parse(text)
