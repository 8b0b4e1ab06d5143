"""Validate OpenLineage run events against the spec version the client emits (2-0-2).

`openlineage-python` ships typed classes generated from the spec, not the spec's JSON files,
and the tests run without network. So the constraints of the spec that an event and the facets
this product emits must meet are written out here as JSON Schema (draft 2020-12), following
https://openlineage.io/spec/2-0-2/OpenLineage.json and the facet schemas the events' `_schemaURL`s
name; each facet is checked against the schema of its `_schemaURL`, our custom facets against
`medlake.lineage.CUSTOM_FACET_SCHEMAS`. Formats (`uuid`, `date-time`, `uri`) are checked too:
jsonschema checks `uuid` itself; the other two are registered below (their optional checker
packages are not installed).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlparse

from jsonschema import Draft202012Validator, FormatChecker

from medlake.lineage import CUSTOM_FACET_SCHEMAS

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
FACETS = "https://openlineage.io/spec/facets"

_BASE_FACET = {
    "type": "object",
    "properties": {
        "_producer": {"type": "string", "format": "uri"},
        "_schemaURL": {"type": "string", "format": "uri"},
    },
    "additionalProperties": True,
    "required": ["_producer", "_schemaURL"],
}
_DATASET_FACET = {
    "allOf": [
        {"$ref": "#/$defs/BaseFacet"},
        {"type": "object", "properties": {"_deleted": {"type": "boolean"}}},
    ]
}

RUN_EVENT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SPEC,
    "$defs": {
        "BaseEvent": {
            "type": "object",
            "properties": {
                "eventTime": {"type": "string", "format": "date-time"},
                "producer": {"type": "string", "format": "uri"},
                "schemaURL": {"type": "string", "format": "uri"},
            },
            "required": ["eventTime", "producer", "schemaURL"],
        },
        "RunEvent": {
            "allOf": [
                {"$ref": "#/$defs/BaseEvent"},
                {
                    "type": "object",
                    "properties": {
                        "eventType": {
                            "enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]
                        },
                        "run": {"$ref": "#/$defs/Run"},
                        "job": {"$ref": "#/$defs/Job"},
                        "inputs": {"type": "array", "items": {"$ref": "#/$defs/InputDataset"}},
                        "outputs": {"type": "array", "items": {"$ref": "#/$defs/OutputDataset"}},
                    },
                    "required": ["run", "job"],
                },
            ]
        },
        "Run": {
            "type": "object",
            "properties": {
                "runId": {"type": "string", "format": "uuid"},
                "facets": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/RunFacet"},
                },
            },
            "required": ["runId"],
        },
        "Job": {
            "type": "object",
            "properties": {
                "namespace": {"type": "string"},
                "name": {"type": "string"},
                "facets": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/JobFacet"},
                },
            },
            "required": ["namespace", "name"],
        },
        "Dataset": {
            "type": "object",
            "properties": {
                "namespace": {"type": "string"},
                "name": {"type": "string"},
                "facets": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/DatasetFacet"},
                },
            },
            "required": ["namespace", "name"],
        },
        "InputDataset": {
            "allOf": [
                {"$ref": "#/$defs/Dataset"},
                {
                    "type": "object",
                    "properties": {
                        "inputFacets": {
                            "type": "object",
                            "additionalProperties": {"$ref": "#/$defs/InputDatasetFacet"},
                        }
                    },
                },
            ]
        },
        "OutputDataset": {
            "allOf": [
                {"$ref": "#/$defs/Dataset"},
                {
                    "type": "object",
                    "properties": {
                        "outputFacets": {
                            "type": "object",
                            "additionalProperties": {"$ref": "#/$defs/OutputDatasetFacet"},
                        }
                    },
                },
            ]
        },
        "BaseFacet": _BASE_FACET,
        "RunFacet": {"allOf": [{"$ref": "#/$defs/BaseFacet"}]},
        "JobFacet": _DATASET_FACET,
        "DatasetFacet": _DATASET_FACET,
        "InputDatasetFacet": {"allOf": [{"$ref": "#/$defs/BaseFacet"}]},
        "OutputDatasetFacet": {"allOf": [{"$ref": "#/$defs/BaseFacet"}]},
    },
    "$ref": "#/$defs/RunEvent",
}

_STRING = {"type": "string"}
# The facets' own schemas, by the `_schemaURL` (without its `#/$defs/...` pointer) they name.
FACET_SCHEMAS: dict[str, dict[str, Any]] = {
    f"{FACETS}/1-0-1/NominalTimeRunFacet.json": {
        "properties": {
            "nominalStartTime": {"type": "string", "format": "date-time"},
            "nominalEndTime": {"type": "string", "format": "date-time"},
        },
        "required": ["nominalStartTime"],
    },
    f"{FACETS}/1-0-1/ErrorMessageRunFacet.json": {
        "properties": {"message": _STRING, "programmingLanguage": _STRING, "stackTrace": _STRING},
        "required": ["message", "programmingLanguage"],
    },
    f"{FACETS}/1-0-1/DatasetVersionDatasetFacet.json": {
        "properties": {"datasetVersion": _STRING},
        "required": ["datasetVersion"],
    },
    f"{FACETS}/1-0-1/SymlinksDatasetFacet.json": {
        "properties": {
            "identifiers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"namespace": _STRING, "name": _STRING, "type": _STRING},
                    "required": ["namespace", "name", "type"],
                },
            }
        },
    },
    f"{FACETS}/1-2-0/SchemaDatasetFacet.json": {
        "properties": {
            "fields": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": _STRING,
                        "type": _STRING,
                        "description": _STRING,
                        "ordinal_position": {"type": "integer", "minimum": 1},
                        "fields": {"type": "array"},
                    },
                    "required": ["name"],
                },
            }
        },
    },
    f"{FACETS}/1-0-0/TagsRunFacet.json": {
        "properties": {
            "tags": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"key": _STRING, "value": _STRING, "source": _STRING},
                    "required": ["key", "value"],
                },
            }
        },
    },
    **CUSTOM_FACET_SCHEMAS,
}

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339: a date, `T`, a time and an offset (`Z` or ±hh:mm)."""
    if not isinstance(value, str):
        return True
    if "T" not in value.upper():
        raise ValueError(f"{value!r} has no time")
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return True


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    """An absolute URI: a scheme and something after it."""
    if not isinstance(value, str):
        return True
    parsed = urlparse(value)
    return bool(parsed.scheme) and bool(parsed.netloc or parsed.path)


VALIDATOR = Draft202012Validator(RUN_EVENT, format_checker=FORMATS)


def facets_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Every facet of an event: run, job, datasets and their input/output facets."""
    found = [*event["run"].get("facets", {}).values(), *event["job"].get("facets", {}).values()]
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        for key in ("facets", "inputFacets", "outputFacets"):
            found += dataset.get(key, {}).values()
    return found


def problems(event: dict[str, Any]) -> list[str]:
    """What in `event` breaks the spec or a facet's schema (empty: a valid event)."""
    found = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(event)
    ]
    for facet in facets_of(event):
        url = str(facet.get("_schemaURL", "")).split("#", 1)[0]
        schema = FACET_SCHEMAS.get(url)
        if schema is None:
            found.append(f"facet with unknown _schemaURL {facet.get('_schemaURL')!r}")
            continue
        validator = Draft202012Validator({"type": "object", **schema}, format_checker=FORMATS)
        found += [f"{url}: {e.message}" for e in validator.iter_errors(facet)]
    return found
