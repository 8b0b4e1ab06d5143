"""A plant whose source mapping lacks a key column is a configuration error, not bad data."""

from __future__ import annotations

import pytest

from medlake.config import DEFAULT_CONF_DIR, ConfigError
from medlake.entities import load_specs
from medlake.silver.plan import check_mappings
from medlake.sources import PlantSource, load_sources

CONF = DEFAULT_CONF_DIR


def test_the_shipped_configuration_maps_every_key_and_mandatory_column() -> None:
    specs = load_specs(CONF / "silver")
    check_mappings(specs, load_sources(CONF / "sources"), list(specs))


def test_when_a_plant_does_not_map_a_key_column_then_the_error_names_file_entity_and_column() -> (
    None
):
    specs = load_specs(CONF / "silver")
    sources = load_sources(CONF / "sources")
    tu = sources["TU"].model_dump()
    columns = tu["entities"]["erp__purchase_orders"]["columns"]
    del columns["Position"]  # po_line, part of the business key
    sources["TU"] = PlantSource.model_validate(tu)
    with pytest.raises(ConfigError) as error:
        check_mappings(specs, sources, ["purchase_orders"])
    assert (
        "conf/sources/TU.yaml: entities.erp__purchase_orders.columns maps no local column to po_line"
        in str(error.value)
    )
