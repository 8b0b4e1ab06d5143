"""Source readers: every delivered line comes out as a row or as a quarantine entry."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from medlake.bronze.readers import FileSpec, read_file

CSV = FileSpec("csv", "utf-8", ",", ("a", "b", "c"))


def test_when_a_quote_is_unbalanced_then_every_following_line_is_quarantined_with_its_text() -> (
    None
):
    parsed = read_file(b'a,b,c\n0,ok,1\n1,"x,3\n2,y,3\n3,z,3\n', CSV)
    assert parsed.rows == [(1, {"a": "0", "b": "ok", "c": "1"})]
    assert [(n, raw) for n, raw, _ in parsed.errors] == [(2, '1,"x,3'), (3, "2,y,3"), (4, "3,z,3")]
    assert all("broken CSV quoting" in reason for _, _, reason in parsed.errors)


def test_quoted_newlines_and_empty_values_are_read_as_one_row_with_nulls() -> None:
    parsed = read_file(b'a,b,c\n0,"two\nlines",\n', CSV)
    assert parsed.rows == [(1, {"a": "0", "b": "two\nlines", "c": None})] and not parsed.errors


def test_a_short_last_line_is_quarantined_as_cut_short() -> None:
    parsed = read_file(b"a,b,c\n1,2,3\n4,5", CSV)
    assert parsed.rows == [(1, {"a": "1", "b": "2", "c": "3"})]
    assert parsed.errors == [
        (2, "4,5", "row has 2 fields, the header has 3 (the line is cut short: truncated file?)")
    ]


def test_a_utf8_file_declared_gb18030_is_refused_whole_and_kept_readable() -> None:
    spec = FileSpec("csv", "gb18030", ",", ("物料编码", "名称"))
    content = "物料编码,名称\nWL01,导管\nWL02,阀门\n".encode()
    parsed = read_file(content, spec)
    assert parsed.rows == [] and parsed.file_error is not None
    assert "UTF-8" in parsed.file_error and "gb18030" in parsed.file_error
    assert [raw for _, raw, _ in parsed.errors] == ["WL01,导管", "WL02,阀门"]


def test_a_jsonl_line_that_is_not_an_object_is_quarantined_and_the_rest_kept() -> None:
    spec = FileSpec("jsonl", "utf-8", ",", ("a",))
    parsed = read_file(b'{"a": 1, "extra": true}\n[1]\n{"a": "x\n', spec)
    assert parsed.rows == [(1, {"a": "1", "extra": "true"})]
    assert [(n, raw) for n, raw, _ in parsed.errors] == [(2, "[1]"), (3, '{"a": "x')]
    assert parsed.header == ["a", "extra"]


def test_parquet_values_become_text_and_missing_columns_refuse_the_file() -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": [1.5, None], "b": [True, False], "c": ["x", "y"]}), buffer)
    parsed = read_file(buffer.getvalue(), FileSpec("parquet", "utf-8", ",", ("a", "b", "c")))
    assert parsed.rows == [
        (1, {"a": "1.5", "b": "true", "c": "x"}),
        (2, {"a": None, "b": "false", "c": "y"}),
    ]
    refused = read_file(buffer.getvalue(), FileSpec("parquet", "utf-8", ",", ("a", "zz")))
    assert refused.file_error is not None and "zz" in refused.file_error and refused.errors


def test_garbage_declared_as_parquet_is_one_quarantine_entry_not_a_crash() -> None:
    parsed = read_file(b"PAR1 not really", FileSpec("parquet", "utf-8", ",", ("a",)))
    assert parsed.file_error is not None and "parquet" in parsed.file_error
    assert len(parsed.errors) == 1
