"""The data dictionary is generated from configuration and kept current."""

from __future__ import annotations

from lakehouse.config import DEFAULT_CONF_DIR, PROJECT_ROOT
from lakehouse.dictionary import render
from lakehouse.silver.spec import full_registry, load_specs


def test_docs_data_dictionary_md_is_the_rendered_configuration() -> None:
    current = (PROJECT_ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    assert current == render(full_registry(DEFAULT_CONF_DIR)), "run `make docs` and commit"


def test_every_canonical_entity_and_its_quarantine_is_documented_with_every_column() -> None:
    text = (PROJECT_ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    for spec in load_specs(DEFAULT_CONF_DIR / "silver").values():
        assert f"### `silver.{spec.entity}`" in text
        assert f"### `silver.{spec.entity}__quarantine`" in text
        section = text.split(f"### `silver.{spec.entity}`")[1].split("### ")[0]
        for column in spec.columns:
            assert f"| `{column.name}` |" in section
