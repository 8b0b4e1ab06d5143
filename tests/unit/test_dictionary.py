"""The data dictionary is generated from configuration and kept current."""

from __future__ import annotations

from medlake.config import DEFAULT_CONF_DIR
from medlake.dictionary import render
from medlake.entities import full_registry, load_specs
from medlake.gold.metrics import load_dictionary
from tests import REPO


def test_docs_data_dictionary_md_is_the_rendered_configuration() -> None:
    current = (REPO / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    dictionary = load_dictionary(DEFAULT_CONF_DIR)
    expected = render(full_registry(DEFAULT_CONF_DIR), dictionary)
    assert current == expected, "run `make docs` and commit"


def test_every_metric_and_variant_is_documented() -> None:
    text = (REPO / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    section = text.split("## Metrics")[1]
    for metric in load_dictionary(DEFAULT_CONF_DIR):
        assert f"| `{metric.id}` | {metric.version} |" in section


def test_every_canonical_entity_and_its_quarantine_is_documented_with_every_column() -> None:
    text = (REPO / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    for spec in load_specs(DEFAULT_CONF_DIR / "silver").values():
        assert f"### `silver.{spec.entity}`" in text
        assert f"### `silver.{spec.entity}__quarantine`" in text
        section = text.split(f"### `silver.{spec.entity}`")[1].split("### ")[0]
        for column in spec.columns:
            assert f"| `{column.name}` |" in section
