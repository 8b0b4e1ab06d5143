"""Source contracts: every entity each plant delivers, its columns in the plant's language.

The contracts are data, not code. They live next to this module, in the simulator's package
data `medlake_simulator/source_contracts/`: one YAML file per entity
(`<system>__<entity>.yaml`), the fields several entities share in `_shared.yaml` and the
order of the entities in `_order.yaml`; that folder's README.md describes the format. This
module loads and validates them once, at import, into the `Entity` and `SourceField` tables
below. The same tables drive the generator's writers, `docs/sources.md` and the tests that
check the files against the documentation, so the three cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, NoReturn, get_args

import yaml

try:  # libyaml's parser, when PyYAML has it, loads the files four times faster
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

from medlake_simulator.pii import ENTITY_TYPES
from medlake_simulator.plants import PLANTS, Plant

FieldType = Literal["string", "int", "decimal", "date", "datetime", "bool"]
Cadence = Literal["daily", "snapshot"]  # snapshot: full master extract in every delivery


@dataclass(frozen=True)
class SourceField:
    name: str  # canonical (group) name; the pipeline maps local names to it
    type: FieldType
    meaning: str
    zh: str
    de: str
    en: str
    pii: str | None = None  # entity type when the column holds personal data


@dataclass(frozen=True)
class Entity:
    system: str  # erp, mes, wms, qc, crm, svc, plm
    name: str
    description: str
    keys: tuple[str, ...]
    fields: tuple[SourceField, ...]
    cadence: Cadence = "daily"
    sequence: str | None = None  # column whose higher value supersedes an earlier row

    @property
    def key(self) -> str:
        return f"{self.system}__{self.name}"

    def field(self, name: str) -> SourceField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.key} has no field {name!r}")


def _camel(words: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+", words.strip())
    parts = [p for p in parts if p]
    return parts[0].lower() + "".join(p[:1].upper() + p[1:].lower() for p in parts[1:])


def _upper_snake(words: str) -> str:
    return "_".join(p.upper() for p in re.split(r"[^A-Za-z0-9]+", words.strip()) if p)


def local_name(plant: Plant, f: SourceField) -> str:
    """The column name this plant's system uses for canonical field `f`."""
    if plant.lang == "zh":
        return f.zh
    if plant.lang == "de":
        return f.de
    style = {"GW": _camel, "MN": _upper_snake}.get(plant.code)
    return style(f.en) if style else f.en


# ---------------------------------------------------------------------- loading the files

CONTRACTS_DIR: Final = Path(__file__).parent / "source_contracts"
SHARED_FILE: Final = "_shared.yaml"  # fields several entities share
ORDER_FILE: Final = "_order.yaml"  # every entity, in the order they are generated and documented
SYSTEMS: Final = ("erp", "mes", "wms", "qc", "crm", "svc", "plm")
_FREE_TEXT: Final = "FREE_TEXT"  # pii of a free-text column; the labels hold its entity spans

_TYPES: Final[dict[str, FieldType]] = {t: t for t in get_args(FieldType)}
_CADENCES: Final[dict[str, Cadence]] = {c: c for c in get_args(Cadence)}
_PII: Final = frozenset(ENTITY_TYPES | {_FREE_TEXT})
_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")
_FILE: Final = re.compile(rf"({'|'.join(SYSTEMS)})__([a-z][a-z0-9_]*)\.yaml")
_FIELD_KEYS: Final = ("name", "type", "meaning", "zh", "de", "en")  # required; `pii` optional
_ENTITY_KEYS: Final = ("description", "cadence", "keys", "fields")  # required; `sequence` optional


class ContractError(ValueError):
    """A contract file that is not valid; the message names the file and the entry."""


def _fail(path: Path, entry: str, problem: str) -> NoReturn:
    raise ContractError(f"{path}: {entry}: {problem}")


class _StrictLoader(_SafeLoader):
    """PyYAML's safe loader, except that a key repeated in one mapping is an error
    (PyYAML would silently keep the last value)."""


def _unique_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[object, object]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _read(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(path, "file", "missing")
    except UnicodeDecodeError as exc:
        _fail(path, "file", f"not UTF-8 ({exc})")
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # safe, and strict about repeated keys
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        _fail(path, "file", f"not valid YAML{where}: {exc.problem or exc}")
    except yaml.YAMLError as exc:
        _fail(path, "file", f"not valid YAML: {exc}")
    return _mapping(path, "file", data, required=(), optional=())


def _mapping(
    path: Path, entry: str, value: object, required: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, object]:
    """`value` as a mapping that has every `required` key and no key outside the two lists
    (checked only when a list is given)."""
    if not isinstance(value, dict):
        _fail(path, entry, f"expected a mapping of keys to values, got {value!r}")
    allowed = (*required, *optional)
    if allowed:
        unknown = [k for k in value if k not in allowed]
        if unknown:
            _fail(
                path,
                entry,
                f"unknown key {', '.join(repr(k) for k in unknown)}; allowed: {', '.join(allowed)}",
            )
    missing = [k for k in required if k not in value]
    if missing:
        _fail(path, entry, f"missing key {', '.join(repr(k) for k in missing)}")
    return {str(k): v for k, v in value.items()}


def _text(path: Path, entry: str, key: str, value: object) -> str:
    if not isinstance(value, str):
        _fail(path, entry, f"{key} must be text, got {value!r} (quote it in YAML)")
    if not value.strip() or value != value.strip():
        _fail(path, entry, f"{key} must be non-empty text without surrounding spaces: {value!r}")
    return value


def _list(path: Path, entry: str, value: object) -> list[object]:
    if not isinstance(value, list) or not value:
        _fail(path, entry, f"expected a non-empty list, got {value!r}")
    return value


def _field(path: Path, entry: str, raw: object) -> SourceField:
    m = _mapping(path, entry, raw, required=_FIELD_KEYS, optional=("pii",))
    name = _text(path, entry, "name", m["name"])
    entry = f"{entry} ({name})"
    if not _NAME.fullmatch(name):
        _fail(path, entry, "name must be lower_snake_case")
    type_ = _TYPES.get(_text(path, entry, "type", m["type"]))
    if type_ is None:
        _fail(path, entry, f"unknown type {m['type']!r}; types: {', '.join(_TYPES)}")
    pii = None
    if m.get("pii") is not None:
        pii = _text(path, entry, "pii", m["pii"])
        if pii not in _PII:
            _fail(path, entry, f"unknown pii {pii!r}; one of: {', '.join(sorted(_PII))}")
    return SourceField(
        name,
        type_,
        _text(path, entry, "meaning", m["meaning"]),
        _text(path, entry, "zh", m["zh"]),
        _text(path, entry, "de", m["de"]),
        _text(path, entry, "en", m["en"]),
        pii,
    )


def _fields(
    path: Path, raw: object, shared: dict[str, SourceField] | None
) -> tuple[SourceField, ...]:
    """The field list of an entity file, or of the shared file when `shared` is None."""
    out: list[SourceField] = []
    where: dict[str, str] = {}
    for i, item in enumerate(_list(path, "fields", raw), start=1):
        entry = f"field {i}"
        if shared is not None and isinstance(item, dict) and "shared" in item:
            ref = _mapping(path, entry, item, required=("shared",), optional=())
            name = _text(path, entry, "shared", ref["shared"])
            entry = f"{entry} (shared: {name})"
            if name not in shared:
                known = ", ".join(shared) or "none"
                _fail(path, entry, f"no shared field {name!r} in {SHARED_FILE}; shared: {known}")
            f = shared[name]
        else:
            f = _field(path, entry, item)
            entry = f"{entry} ({f.name})"
        if f.name in where:
            _fail(path, entry, f"duplicate field {f.name!r}, already {where[f.name]}")
        where[f.name] = entry
        out.append(f)
    return tuple(out)


def _entity(path: Path, system: str, name: str, shared: dict[str, SourceField]) -> Entity:
    m = _read(path)
    m = _mapping(path, "file", m, required=_ENTITY_KEYS, optional=("sequence",))
    fields = _fields(path, m["fields"], shared)
    names = {f.name for f in fields}
    keys: list[str] = []
    for i, raw in enumerate(_list(path, "keys", m["keys"]), start=1):
        k = _text(path, f"key {i}", "key", raw)
        if k not in names:
            _fail(path, f"key {i} ({k})", f"{k!r} is not a field of this entity")
        if k in keys:
            _fail(path, f"key {i} ({k})", f"duplicate key {k!r}")
        keys.append(k)
    cadence = _CADENCES.get(_text(path, "cadence", "cadence", m["cadence"]))
    if cadence is None:
        _fail(path, "cadence", f"unknown cadence {m['cadence']!r}; one of: {', '.join(_CADENCES)}")
    sequence = None
    if m.get("sequence") is not None:
        sequence = _text(path, "sequence", "sequence", m["sequence"])
        if sequence not in names:
            _fail(path, f"sequence ({sequence})", f"{sequence!r} is not a field of this entity")
    for p in PLANTS:  # each plant's file needs distinct column names
        seen: dict[str, str] = {}
        for f in fields:
            column = local_name(p, f)
            if column in seen:
                _fail(
                    path,
                    f"field {f.name}",
                    f"plant {p.code} would name it {column!r}, like field {seen[column]}",
                )
            seen[column] = f.name
    return Entity(
        system,
        name,
        _text(path, "description", "description", m["description"]),
        tuple(keys),
        fields,
        cadence,
        sequence,
    )


def load_shared_fields(folder: Path) -> dict[str, SourceField]:
    """The fields of `folder`/_shared.yaml, by name."""
    path = folder / SHARED_FILE
    m = _mapping(path, "file", _read(path), required=("fields",), optional=())
    return {f.name: f for f in _fields(path, m["fields"], None)}


def load_entities(folder: Path) -> tuple[Entity, ...]:
    """Every entity of the contract files in `folder`, in the order of its _order.yaml.

    Raises ContractError naming the file and the entry when a file is not a valid contract:
    unknown keys, types, cadences or shared fields, a duplicate field, a key or sequence that
    is not a field, a file not listed in the order or listed but missing.
    """
    shared = load_shared_fields(folder)
    order_path = folder / ORDER_FILE
    order = _mapping(order_path, "file", _read(order_path), required=("entities",), optional=())
    listed: dict[str, int] = {}
    for i, raw in enumerate(_list(order_path, "entities", order["entities"]), start=1):
        key = _text(order_path, f"entity {i}", "entity", raw)
        if key in listed:
            _fail(order_path, f"entity {i} ({key})", f"listed twice (also entity {listed[key]})")
        listed[key] = i
    files: dict[str, tuple[Path, str, str]] = {}
    for path in sorted(folder.iterdir()):
        if path.name in (SHARED_FILE, ORDER_FILE) or path.suffix not in (".yaml", ".yml"):
            continue
        match = _FILE.fullmatch(path.name)
        if not match:
            _fail(
                path,
                "file name",
                f"expected <system>__<entity>.yaml, system one of {', '.join(SYSTEMS)}, "
                "entity lower_snake_case",
            )
        if path.stem not in listed:
            _fail(order_path, "entities", f"{path.name} is not listed")
        files[path.stem] = (path, match[1], match[2])
    for key, i in listed.items():
        if key not in files:
            _fail(order_path, f"entity {i} ({key})", f"there is no file {key}.yaml")
    return tuple(_entity(*files[key], shared) for key in listed)


SHARED_FIELDS: Final = load_shared_fields(CONTRACTS_DIR)
UPDATED: Final = SHARED_FIELDS["updated_at"]
VERSION: Final = SHARED_FIELDS["record_version"]
ENTITIES: tuple[Entity, ...] = load_entities(CONTRACTS_DIR)


def entity(key: str) -> Entity:
    for e in ENTITIES:
        if e.key == key:
            return e
    raise KeyError(f"unknown source entity {key!r}")
