"""No silent loss on bad input: a key written twice, where an invalid field is, odd keys."""

from __future__ import annotations

import os
from pathlib import Path
from textwrap import dedent

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medlake.config import ConfigError, format_validation_error, key_line, load_settings, read_yaml
from medlake.governance.keys import MIN_KEY_BYTES, SecretError, load_keys


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "key", "first", "second"),
    [
        (
            """
            name: SZ
            timezone: Asia/Shanghai
            name: SH
            """,
            "name",
            1,
            3,
        ),
        (
            """
            plant: SZ
            delivery:
              # how the files come
              encoding: gb18030
              separator: ";"
              encoding: utf-8
            """,
            "delivery.encoding",
            4,
            6,
        ),
        (
            """
            tables:
              - name: a
                owner: x
              - name: b
                columns:
                  - {name: id, type: string, type: long}
            """,
            "tables.1.columns.0.type",
            6,
            6,
        ),
        (
            """
            roles:
              - name: a
                name: b
            """,
            "roles.0.name",
            2,
            3,
        ),
        (  # keys that load as the same value are the same key
            """
            retries:
              1: once
              0x1: again
            """,
            "retries.0x1",
            2,
            3,
        ),
    ],
    ids=["top_level", "nested", "flow_mapping_in_list", "list_item", "same_value"],
)
def test_a_key_given_twice_is_refused_with_file_path_and_both_lines(
    tmp_path: Path, text: str, key: str, first: int, second: int
) -> None:
    path = write(tmp_path, "SZ.yaml", text)
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    assert str(caught.value) == (
        f"{path}: line {second}: key '{key}' is given twice (first on line {first}); remove one"
    )


MERGES = """
x-defaults: &defaults
  owner: data-platform
  retention_days: 30
x-audited: &audited
  <<: *defaults
  retention_days: 365   # overrides a merged key: not a duplicate
tables:
  - name: a
    <<: *defaults
  - name: b
    <<: *audited
    owner: finance      # overrides a key merged through two levels
  - name: c
    <<: [*audited, {tier: gold}]
"""


def test_anchors_and_merge_keys_still_load_and_may_be_overridden(tmp_path: Path) -> None:
    data = read_yaml(write(tmp_path, "merges.yaml", MERGES))
    assert data["tables"] == [
        {"name": "a", "owner": "data-platform", "retention_days": 30},
        {"name": "b", "owner": "finance", "retention_days": 365},
        {"name": "c", "owner": "data-platform", "retention_days": 365, "tier": "gold"},
    ]
    assert data["x-audited"] == {"owner": "data-platform", "retention_days": 365}
    # an explicit key written twice next to a merge is still a duplicate, inside an anchor too
    doubled = MERGES.replace(
        "  retention_days: 365", "  retention_days: 365\n  owner: x\n  owner: y"
    )
    with pytest.raises(
        ConfigError, match=r"line 8: key 'x-audited\.owner' is given twice \(first on line 7\)"
    ):
        read_yaml(write(tmp_path, "doubled.yaml", doubled))


def test_a_duplicate_in_a_settings_overlay_stops_loading_the_settings(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    write(conf, "lakehouse.yaml", "storage:\n  root: var/lakehouse\n")
    write(conf / "env", "dup.yaml", "spark:\n  master: local[4]\n  master: local[1]\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml: line 3: key 'spark\.master' is given twice"):
        load_settings("dup", conf_dir=conf)


LINES = """
# settings
storage:
  root: var/lakehouse

  engine: delta-rs
tables:
  - name: a
    columns:
      - name: id
        type: string
      - {name: qty, type: long}
x-base: &base
  owner: platform
merged:
  <<: *base
  tier: gold
"""


@pytest.mark.parametrize(
    ("location", "line"),
    [
        pytest.param(["storage"], 2, id="storage"),
        pytest.param(["storage", "engine"], 5, id="storage.engine"),
        pytest.param(["tables", 0], 7, id="tables.0"),
        pytest.param(["tables", 0, "columns", 1], 11, id="tables.0.columns.1"),
        pytest.param(["tables", 0, "columns", 0, "type"], 10, id="tables.0.columns.0.type"),
        pytest.param(["tables", 0, "columns", 1, "type"], 11, id="tables.0.columns.1.type"),
        # not written: the deepest written ancestor
        pytest.param(["storage", "rooot"], 2, id="storage.rooot"),
        pytest.param(["tables", 0, "columns", 5, "type"], 8, id="tables.0.columns.5.type"),
        pytest.param(["tables", 0, "owner"], 7, id="tables.0.owner"),
        # not even the first key: the document's first line
        pytest.param(["nothing"], 2, id="nothing"),
        pytest.param([], 2, id="root"),
        pytest.param(["merged", "tier"], 16, id="merged.tier"),
        # merged in: where the anchored mapping writes it
        pytest.param(["merged", "owner"], 13, id="merged.owner"),
    ],
)
def test_key_line_finds_nested_keys_list_items_and_the_deepest_ancestor(
    tmp_path: Path, location: list[str | int], line: int
) -> None:
    path = write(tmp_path, "lines.yaml", LINES)
    assert key_line(path, location) == line


def test_key_line_is_none_when_the_file_cannot_be_read_and_sees_a_changed_file(
    tmp_path: Path,
) -> None:
    assert key_line(tmp_path / "absent.yaml", ["a"]) is None
    assert key_line(write(tmp_path, "bad.yaml", "a: [1\n"), ["a"]) is None
    path = write(tmp_path, "moving.yaml", "a: 1\nb: 2\n")
    assert key_line(path, ["b"]) == 2
    path.write_text("\n\nb: 2\n\na: 1\n", encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert key_line(path, ["b"]) == 3


class _Column(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    width: int = Field(ge=1)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str
    columns: list[_Column]


def test_format_validation_error_names_the_line_of_each_invalid_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "columns.yaml",
        """
        owner: finance
        columns:
          - name: id
            width: 8
          - name: qty
            width: 0
          - name: uom
            widht: 3
        """,
    )
    data = read_yaml(path)
    with pytest.raises(ValidationError) as caught:
        _File.model_validate(data)
    lines = format_validation_error(caught.value, [(path, data)]).splitlines()
    assert lines[0] == "invalid configuration:"
    assert lines[1].startswith(
        f"  {path}: line 6: field 'columns.1.width': Input should be greater than or equal to 1"
    )
    assert lines[1].endswith("; found 0")
    assert f"  {path}: line 7: field 'columns.2.width': Field required" in lines
    assert any(
        line.startswith(f"  {path}: line 8: field 'columns.2.widht': Extra inputs")
        for line in lines
    )
    # a source that is no file (settings given in code) has no line to name
    in_code = format_validation_error(caught.value, [("lineage settings", data)])
    assert "  lineage settings: field 'columns.1.width': Input should be" in in_code
    assert ": line " not in in_code


def test_settings_errors_name_the_line_in_the_overlay(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    write(conf, "lakehouse.yaml", "storage:\n  root: var/lakehouse\n")
    write(conf / "env", "broken.yaml", "# broken\nspark:\n  shuffle_partitions: many\n")
    with pytest.raises(
        ConfigError, match=r"broken\.yaml: line 3: field 'spark\.shuffle_partitions'"
    ):
        load_settings("broken", conf_dir=conf)


def test_a_key_with_an_odd_number_of_hex_digits_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_PSEUDONYM_KEY_CN", "ab" * 31 + "c")  # 63 digits
    with pytest.raises(SecretError) as caught:
        load_keys(["cn"])
    message = str(caught.value)
    assert "$LAKEHOUSE_PSEUDONYM_KEY_CN has an odd number of hex digits (63)" in message
    assert (
        f"an even count is needed, at least {2 * MIN_KEY_BYTES} ({MIN_KEY_BYTES} bytes)" in message
    )
    assert "not hexadecimal" not in message
    assert "abab" not in message  # the key itself never reaches the message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "0x" + "ab" * 32,
            "1 of its 66 characters is a non-hex character (not 0-9, a-f), at position 2 (drop the 0x prefix)",
        ),
        (
            "ab" * 31 + "zz",
            "2 of its 64 characters are non-hex characters (not 0-9, a-f), the first at position 63",
        ),
    ],
)
def test_a_key_with_non_hex_characters_names_them_as_such(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("LAKEHOUSE_PSEUDONYM_KEY_CN", value)
    with pytest.raises(SecretError) as caught:
        load_keys(["cn"])
    assert f"is not hexadecimal: {expected}" in str(caught.value)
    assert "abab" not in str(caught.value)


def test_an_empty_key_is_called_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_PSEUDONYM_KEY_CN", "   ")
    with pytest.raises(SecretError, match=r"KEY_CN is empty; write 32 or more random bytes"):
        load_keys(["cn"])
