"""The simulator's source contracts are data files; the loader takes them or names the mistake.

Each rejection test copies the shipped contract folder into tmp_path, breaks one file the
way a data steward might, and expects `load_entities` to fail with a message that names the
broken file and the entry. Expectations are read from the YAML files here, with PyYAML
alone, not from the loader.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from medlake_simulator.contracts import CONTRACTS_DIR, ENTITIES, ContractError, load_entities

Doc = dict[str, Any]


def read(path: Path) -> Doc:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def write(path: Path, data: Doc) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, copy)
    return copy


def first_entity_file(folder: Path) -> Path:
    return folder / f"{read(folder / '_order.yaml')['entities'][0]}.yaml"


def own_fields(doc: Doc) -> list[Doc]:
    """The fields an entity file defines itself (not references to shared fields)."""
    return [f for f in doc["fields"] if "shared" not in f]


def rejected(folder: Path) -> str:
    with pytest.raises(ContractError) as info:
        load_entities(folder)
    return str(info.value)


# ---------------------------------------------------------------------- the shipped files


def test_the_shipped_files_are_the_loaded_contracts() -> None:
    order = read(CONTRACTS_DIR / "_order.yaml")["entities"]
    shared = {f["name"]: f for f in read(CONTRACTS_DIR / "_shared.yaml")["fields"]}
    entity_files = sorted(p.stem for p in CONTRACTS_DIR.glob("*__*.yaml"))
    assert sorted(order) == entity_files
    assert [e.key for e in ENTITIES] == order
    for e in ENTITIES:
        doc = read(CONTRACTS_DIR / f"{e.key}.yaml")
        fields = [shared[f["shared"]] if "shared" in f else f for f in doc["fields"]]
        assert [f.name for f in e.fields] == [f["name"] for f in fields], e.key
        assert [(f.type, f.zh, f.de, f.en, f.pii) for f in e.fields] == [
            (f["type"], f["zh"], f["de"], f["en"], f.get("pii")) for f in fields
        ], e.key
        assert (e.description, e.cadence, e.keys, e.sequence) == (
            doc["description"],
            doc["cadence"],
            tuple(doc["keys"]),
            doc.get("sequence"),
        )


def test_an_unchanged_copy_loads_to_the_same_contracts(folder: Path) -> None:
    assert load_entities(folder) == ENTITIES


# ---------------------------------------------------------------------- one broken entry each


def _unknown_type(doc: Doc) -> str:
    field = own_fields(doc)[0]
    field["type"] = "varchar"
    return "varchar"


def _key_not_a_field(doc: Doc) -> str:
    doc["keys"] = [*doc["keys"], "no_such_column"]
    return "no_such_column"


def _duplicate_field(doc: Doc) -> str:
    field = own_fields(doc)[-1]
    doc["fields"].append(dict(field))
    return str(field["name"])


def _unknown_field_key(doc: Doc) -> str:
    own_fields(doc)[0]["unit"] = "kg"
    return "unit"


def _unknown_entity_key(doc: Doc) -> str:
    doc["owner"] = "someone"
    return "owner"


def _missing_meaning(doc: Doc) -> str:
    field = own_fields(doc)[0]
    del field["meaning"]
    return "meaning"


def _unknown_shared_field(doc: Doc) -> str:
    doc["fields"].append({"shared": "not_shared_anywhere"})
    return "not_shared_anywhere"


def _sequence_not_a_field(doc: Doc) -> str:
    doc["sequence"] = "no_such_version"
    return "no_such_version"


def _unknown_cadence(doc: Doc) -> str:
    doc["cadence"] = "hourly"
    return "hourly"


def _unknown_pii(doc: Doc) -> str:
    own_fields(doc)[0]["pii"] = "SHOE_SIZE"
    return "SHOE_SIZE"


def _non_text_local_name(doc: Doc) -> str:
    own_fields(doc)[0]["en"] = False  # what YAML makes of an unquoted `en: No`
    return "en must be text"


def _clashing_local_names(doc: Doc) -> str:
    first, second = own_fields(doc)[:2]
    second["de"] = first["de"]
    return str(first["de"])


@pytest.mark.parametrize(
    "breaker",
    [
        _unknown_type,
        _key_not_a_field,
        _duplicate_field,
        _unknown_field_key,
        _unknown_entity_key,
        _missing_meaning,
        _unknown_shared_field,
        _sequence_not_a_field,
        _unknown_cadence,
        _unknown_pii,
        _non_text_local_name,
        _clashing_local_names,
    ],
)
def test_a_broken_entity_file_is_rejected_naming_the_file_and_the_entry(
    folder: Path, breaker: Callable[[Doc], str]
) -> None:
    path = first_entity_file(folder)
    doc = read(path)
    offending = breaker(doc)
    write(path, doc)
    message = rejected(folder)
    assert str(path) in message
    assert offending in message


def test_a_key_written_twice_in_one_field_is_rejected(folder: Path) -> None:
    path = first_entity_file(folder)
    name = own_fields(read(path))[0]["name"]
    text = path.read_text(encoding="utf-8")
    line = f"  - name: {name}\n"
    assert line in text
    path.write_text(text.replace(line, f"{line}    type: int\n", 1), encoding="utf-8")
    message = rejected(folder)
    assert str(path) in message
    assert "'type' appears twice" in message


def test_a_field_without_a_name_is_rejected(folder: Path) -> None:
    path = first_entity_file(folder)
    doc = read(path)
    position = next(i for i, f in enumerate(doc["fields"]) if "shared" not in f)
    del doc["fields"][position]["name"]
    write(path, doc)
    message = rejected(folder)
    assert str(path) in message
    assert f"field {position + 1}:" in message
    assert "'name'" in message


def test_a_broken_shared_field_is_rejected_naming_the_shared_file(folder: Path) -> None:
    path = folder / "_shared.yaml"
    doc = read(path)
    doc["fields"][0]["type"] = "timestamp"
    write(path, doc)
    message = rejected(folder)
    assert str(path) in message
    assert str(doc["fields"][0]["name"]) in message
    assert "timestamp" in message


def test_invalid_yaml_is_rejected_naming_the_file(folder: Path) -> None:
    path = first_entity_file(folder)
    path.write_text("description: [unclosed\n", encoding="utf-8")
    message = rejected(folder)
    assert str(path) in message
    assert "not valid YAML" in message


# ---------------------------------------------------------------------- the folder and the order


def test_an_entity_file_missing_from_the_order_is_rejected(folder: Path) -> None:
    path = folder / "erp__extra_entity.yaml"
    shutil.copyfile(first_entity_file(folder), path)
    message = rejected(folder)
    assert str(folder / "_order.yaml") in message
    assert path.name in message


def test_an_ordered_entity_without_a_file_is_rejected(folder: Path) -> None:
    path = first_entity_file(folder)
    path.unlink()
    message = rejected(folder)
    assert str(folder / "_order.yaml") in message
    assert path.name in message


def test_an_entity_listed_twice_in_the_order_is_rejected(folder: Path) -> None:
    path = folder / "_order.yaml"
    doc = read(path)
    doc["entities"].append(doc["entities"][0])
    write(path, doc)
    message = rejected(folder)
    assert str(path) in message
    assert f"{doc['entities'][0]}" in message
    assert "twice" in message


@pytest.mark.parametrize("name", ["erp_suppliers.yaml", "erp__suppliers.yml", "xyz__things.yaml"])
def test_a_file_not_named_system__entity_yaml_is_rejected(folder: Path, name: str) -> None:
    path = folder / name
    shutil.copyfile(first_entity_file(folder), path)
    message = rejected(folder)
    assert str(path) in message
    assert "file name" in message


def test_the_order_decides_the_order_of_the_entities(folder: Path) -> None:
    path = folder / "_order.yaml"
    doc = read(path)
    doc["entities"].reverse()
    write(path, doc)
    assert [e.key for e in load_entities(folder)] == doc["entities"]
