"""The erasure's file rewriting, format by format: every spelling of the subject that
pseudonymises alike is tombstoned, in the file's own encoding, and nothing else changes."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medlake.config import DEFAULT_CONF_DIR
from medlake.governance.erasure import TOMBSTONE, rewrite_file, subject_pattern, sweep_landing
from medlake.sources import load_sources


@pytest.mark.parametrize(
    ("entity", "value", "text", "expected"),
    [
        # case and spacing, as `normalise` treats names, e-mails and addresses
        ("PERSON", "Jürgen Müller", "Herr JÜRGEN  Müller rief an", f"Herr {TOMBSTONE} rief an"),
        # a longer word is another value
        ("PERSON", "Anna Berg", "Anna Bergmann, Anna Berg.", f"Anna Bergmann, {TOMBSTONE}."),
        ("PERSON", "王秀英", "患者王秀英女士反映", f"患者{TOMBSTONE}女士反映"),
        ("EMAIL_ADDRESS", "j.müller@firma.de", "an J.Müller@Firma.de!", f"an {TOMBSTONE}!"),
        # separators of phone numbers, as `normalise` keeps digits only
        ("PHONE_NUMBER", "137 9068 8900", "Tel 137-9068-8900 / 13790688900", f"Tel {TOMBSTONE} / {TOMBSTONE}"),
        # a longer number is another number
        ("PHONE_NUMBER", "137 9068 8900", "SN 2137906889001", "SN 2137906889001"),
        # an extension word between the digits, as the phone recognizer finds it
        ("PHONE_NUMBER", "+1 858-252-3480 x12", "call +1 858-252-3480 ext. 12 now", f"call {TOMBSTONE} now"),
        ("PHONE_NUMBER", "+49 30 1234567 Durchwahl 34", "Tel +49 30 1234567 Durchwahl -34.", f"Tel {TOMBSTONE}."),
        # never across a line, a quote or a field delimiter (a CSV row stays a row)
        ("PHONE_NUMBER", "030 1234 5678", "1,030,12345678", "1,030,12345678"),
        ("PERSON", "Anna Berg", "1,Max,Anna\nBerg,2", "1,Max,Anna\nBerg,2"),
        # a letter whose lower case is two characters (İ) still matches itself
        ("PERSON", "İlker Yılmaz", "Herr İLKER YILMAZ", f"Herr {TOMBSTONE}"),
        # escaped copies: JSON \u escapes, bytes a whole-file refusal kept as \x escapes
        ("PERSON", "王伟", "\\u738b\\u4f1f / \\xcd\\xf5\\xce\\xb0", f"{TOMBSTONE} / {TOMBSTONE}"),
        # regex characters in a value are literal
        ("PERSON", "O'Brien (Jr.)", "Mr O'Brien (Jr.) and O'BrienXJr", f"Mr {TOMBSTONE} and O'BrienXJr"),
    ],
)  # fmt: skip
def test_every_spelling_that_pseudonymises_alike_is_tombstoned(
    entity: str, value: str, text: str, expected: str
) -> None:
    assert subject_pattern(entity, value).python.sub(TOMBSTONE, text) == expected


def test_a_gb18030_csv_is_rewritten_in_gb18030_and_only_its_matches_change() -> None:
    text = "编号,联系人,备注\n1,王秀英,患者王秀英来电\n2,李娜,无\n"
    content = text.encode("gb18030")
    result = rewrite_file(content, "csv", "gb18030", subject_pattern("PERSON", "王秀英").python)
    assert result is not None
    new, replaced = result
    assert replaced == 2
    assert new == text.replace("王秀英", TOMBSTONE).encode("gb18030")


def test_a_utf8_csv_keeps_its_byte_order_mark() -> None:
    content = "\ufeffname\nAnna Berg\n".encode()
    new, replaced = rewrite_file(content, "csv", "utf-8", subject_pattern("PERSON", "anna berg").python) or (b"", 0)  # fmt: skip
    assert (new, replaced) == (f"\ufeffname\n{TOMBSTONE}\n".encode(), 1)


def test_json_lines_are_rewritten_with_escaped_values_found_and_other_lines_untouched() -> None:
    lines = [
        json.dumps({"id": 1, "contact": "Jürgen Müller", "n": 2.5}),  # ASCII, \u escapes
        json.dumps({"id": 2, "contact": "Anna"}, ensure_ascii=False, separators=(",", ":")),
        json.dumps({"id": 3, "notes": ["ok", "called Jürgen Müller"]}, ensure_ascii=False),
    ]
    content = ("\n".join(lines) + "\n").encode()
    pattern = subject_pattern("PERSON", "Jürgen Müller").python
    new, replaced = rewrite_file(content, "jsonl", "utf-8", pattern) or (b"", 0)
    assert replaced == 2
    out = new.decode().splitlines()
    assert json.loads(out[0]) == {"id": 1, "contact": TOMBSTONE, "n": 2.5}
    assert out[1] == lines[1]  # byte for byte
    assert json.loads(out[2]) == {"id": 3, "notes": ["ok", f"called {TOMBSTONE}"]}
    assert "Müller" not in new.decode() and "M\\u00fcller" not in new.decode()


def test_a_parquet_file_is_rewritten_with_its_other_columns_and_types_unchanged() -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "contact": ["Kim Lee", "Bo Park"],
            "phone": ["(763) 988-0417", None],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    pattern = subject_pattern("PHONE_NUMBER", "763-988-0417").python
    new, replaced = rewrite_file(sink.getvalue(), "parquet", "utf-8", pattern) or (b"", 0)
    assert replaced == 1
    out = pq.read_table(pa.BufferReader(new))
    assert out.schema == table.schema
    assert out.to_pylist() == [
        {"id": 1, "contact": "Kim Lee", "phone": TOMBSTONE},
        {"id": 2, "contact": "Bo Park", "phone": None},
    ]
    assert (
        pq.ParquetFile(pa.BufferReader(new)).metadata.row_group(0).column(1).compression == "ZSTD"
    )


def test_dictionary_encoded_and_uncompressed_parquet_columns_are_rewritten() -> None:
    table = pa.table({"contact": pa.array(["Kim Lee", "Bo Park", "Kim Lee"]).dictionary_encode()})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="none")
    new, replaced = rewrite_file(sink.getvalue(), "parquet", "utf-8", subject_pattern("PERSON", "kim lee").python) or (b"", 0)  # fmt: skip
    assert replaced == 2
    out = pq.read_table(pa.BufferReader(new))
    assert out.schema == table.schema
    assert out.column("contact").to_pylist() == [TOMBSTONE, "Bo Park", TOMBSTONE]


def test_text_inside_list_map_and_struct_parquet_columns_is_rewritten() -> None:
    table = pa.table(
        {
            "notes": pa.array([["called Kim Lee", "ok"], None], pa.list_(pa.string())),
            "fields": pa.array(
                [[("contact", "Kim Lee")], [("contact", "Bo Park")]],
                pa.map_(pa.string(), pa.string()),
            ),
            "who": pa.array(
                [{"name": "Kim Lee", "n": 1}, {"name": None, "n": 2}],
                pa.struct([("name", pa.string()), ("n", pa.int32())]),
            ),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    pattern = subject_pattern("PERSON", "Kim Lee").python
    new, replaced = rewrite_file(sink.getvalue(), "parquet", "utf-8", pattern) or (b"", 0)
    assert replaced == 3
    out = pq.read_table(pa.BufferReader(new))
    assert out.schema == table.schema
    assert out.to_pylist() == [
        {"notes": [f"called {TOMBSTONE}", "ok"], "fields": [("contact", TOMBSTONE)],
         "who": {"name": TOMBSTONE, "n": 1}},
        {"notes": None, "fields": [("contact", "Bo Park")], "who": {"name": None, "n": 2}},
    ]  # fmt: skip


def test_a_quoted_local_part_is_found_in_a_csv_cell_where_its_quotes_are_doubled() -> None:
    content = b'id,email\n1,"""john doe""@example.com"\n'
    pattern = subject_pattern("EMAIL_ADDRESS", '"john doe"@example.com').python
    new, replaced = rewrite_file(content, "csv", "utf-8", pattern) or (b"", 0)
    assert (new.decode(), replaced) == (f'id,email\n1,"{TOMBSTONE}"\n', 1)


def test_a_file_exported_as_utf8_instead_of_its_declared_encoding_is_swept_as_ingest_reads_it() -> (
    None
):
    content = "编号,联系人\n1,王秀英\n".encode()
    new, replaced = rewrite_file(content, "csv", "gb18030", subject_pattern("PERSON", "王秀英").python) or (b"", 0)  # fmt: skip
    assert (new.decode("utf-8"), replaced) == (f"编号,联系人\n1,{TOMBSTONE}\n", 1)


def test_a_file_not_in_its_declared_encoding_is_reported_not_guessed(tmp_path: Path) -> None:
    assert rewrite_file(b"\xff\xfe\x00bad", "csv", "gb18030", subject_pattern("PERSON", "x y").python) is None  # fmt: skip
    sources = load_sources(DEFAULT_CONF_DIR / "sources")
    folder = tmp_path / "TU" / "2026-03-02"
    folder.mkdir(parents=True)
    bad = folder / "crm__complaints.csv"
    bad.write_bytes(b"\xff\xfe broken")
    good = folder / "erp__customers.csv"
    good.write_text("code;contact\nC1;Anna Berg\n", encoding="utf-8")
    (folder / "_control.csv").write_text(
        "file,rows,sha256\nerp__customers.csv,1,"
        + hashlib.sha256(good.read_bytes()).hexdigest()
        + "\n",
        encoding="utf-8",
    )
    swept = sweep_landing(tmp_path, {"TU": sources["TU"]}, subject_pattern("PERSON", "Anna Berg"))
    assert swept.unreadable == ["TU/2026-03-02/crm__complaints.csv"]
    assert [r.relative for r in swept.rewritten] == ["TU/2026-03-02/erp__customers.csv"]
    assert good.read_text(encoding="utf-8") == f"code;contact\nC1;{TOMBSTONE}\n"
    # the delivery's control totals vouch for the file as it is now
    control = (folder / "_control.csv").read_text(encoding="utf-8")
    assert hashlib.sha256(good.read_bytes()).hexdigest() in control
    assert swept.rewritten[0].new_sha256 == hashlib.sha256(good.read_bytes()).hexdigest()
