"""Load and validate the configuration: base settings plus an environment overlay, as typed models.

Where it comes from is explicit: `conf_dir=` in code, the `--conf` option of the command line,
`$LAKEHOUSE_CONF`, else the defaults packaged with medlake (`conf/`, the simulated
group's plants). Relative paths in it (tables, landing, scratch, lineage, MLflow, reports,
keys) resolve against the home folder: `$LAKEHOUSE_HOME`, else a configuration folder of
one's own, else (the packaged configuration) the current directory when settings load.
Nothing is found through where the package sits on disk."""

from __future__ import annotations

import functools
import os
from collections.abc import Hashable, Mapping, Sequence
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_VAR = "LAKEHOUSE_ENV"
CONF_DIR_VAR = "LAKEHOUSE_CONF"
HOME_VAR = "LAKEHOUSE_HOME"
# Set by the DAG's task for its job: which Airflow try and task this run is (OpenLineage runs)
TRY_NUMBER_VAR = "LAKEHOUSE_TRY_NUMBER"
TASK_ID_VAR = "LAKEHOUSE_TASK_ID"


@functools.cache
def _package_folder() -> Path:
    """The folder of the medlake package. Imported from a zip (a driver in client mode puts
    the artifact of `spark.submit.pyFiles` first on its own path too, docs/cluster.md), it is
    the installed distribution's folder: the same release, with real files to read."""
    root = Path(str(resources.files("medlake")))
    if root.is_dir():
        return root
    # the zip holds a dist-info of its own (found first): take an installed copy of the same
    # version; without one, the package data cannot be read and loading it says so
    copies = list(metadata.distributions(name="medlake"))
    release = copies[0].version if copies else None
    for distribution in copies:
        installed = Path(str(distribution.locate_file("medlake")))
        if installed.is_dir() and distribution.version == release:
            return installed
    return root


def packaged(*parts: str) -> Path:
    """A file or folder shipped inside the medlake distribution (package data); no parts:
    the package's own folder."""
    return _package_folder().joinpath(*parts)


def source_checkout() -> Path | None:
    """The source checkout the package runs from (an editable install: `pyproject.toml` and
    `.git` in the folder above the package), else None (an installed wheel, whatever folder
    or repository its environment happens to sit in)."""
    root = packaged().parent
    return root if (root / "pyproject.toml").is_file() and (root / ".git").exists() else None


DEFAULT_CONF_DIR = packaged("conf")  # the simulated group's configuration
DAGS_DIR = packaged(
    "dags"
)  # the Airflow DAG file (an Airflow deployment points its dags folder here)


def home_dir(conf_dir: Path | None = None) -> Path:
    """The folder relative paths of the configuration (tables, landing, scratch, lineage,
    MLflow, reports) resolve against: `$LAKEHOUSE_HOME`; else, for a configuration folder of
    one's own (`--conf`, `$LAKEHOUSE_CONF`), that folder, so a group's configuration says
    where its data lives wherever the command runs; else (the packaged configuration of the
    simulated group) the current directory."""
    if os.environ.get(HOME_VAR):
        return Path(os.environ[HOME_VAR]).resolve()
    if conf_dir is not None and Path(conf_dir).resolve() != DEFAULT_CONF_DIR.resolve():
        return Path(conf_dir).resolve()
    return Path.cwd().resolve()


Engine = Literal["delta-rs", "delta-spark", "auto"]


class ConfigError(Exception):
    """A configuration file is missing, unreadable or invalid; the message says where and why."""


class NotReadyError(ConfigError):
    """What a job needs is not there yet (no model trained, too little history): nothing was
    written. `lakehouse run` exits with 75 (EX_TEMPFAIL), which the DAGs turn into a skip."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSettings(_Strict):
    root: str = Field(description="folder or URI under which every table lives")
    engine: Engine = "delta-rs"
    checkpoint_interval: int = Field(default=10, ge=1)
    vacuum_retention_hours: int = Field(default=168, ge=0)
    target_file_mb: int = Field(default=128, ge=1)


class SparkSettings(_Strict):
    master: str = "local[2]"
    app_name: str = "medlake"
    driver_memory: str = "4g"
    shuffle_partitions: int = Field(default=4, ge=1)
    ui_enabled: bool = True
    local_dir: str = Field(
        default="var/spark-local", description="Spark's scratch folder (spills, shuffle files)"
    )
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("driver_memory")
    @classmethod
    def _memory_has_unit(cls, value: str) -> str:
        if not value[:-1].isdigit() or value[-1].lower() not in "kmgt":
            raise ValueError("expected a size such as 2g or 512m")
        return value

    @field_validator("conf")
    @classmethod
    def _only_spark_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [key for key in value if not key.startswith("spark.")]
        if bad:
            raise ValueError(f"keys must start with 'spark.': {', '.join(sorted(bad))}")
        return value


class MlflowSettings(_Strict):
    tracking_uri: str = "var/mlruns"  # a folder (SQLite store + artifacts in it) or a URI
    registry_uri: str | None = None  # model registry; None: the same store as tracking_uri


class GroupSettings(_Strict):
    currency: str = Field(
        default="EUR", pattern=r"^[A-Z]{3}$", description="group reporting currency"
    )


class SilverSettings(_Strict):
    plausible_years_before: int = Field(
        default=30, ge=0, description="a date this many years before its delivery is flagged"
    )
    plausible_years_after: int = Field(
        default=10, ge=0, description="a date this many years after its delivery is flagged"
    )

    @property
    def date_window(self) -> tuple[int, int]:
        return self.plausible_years_before, self.plausible_years_after


class LandingSettings(_Strict):
    root: str = Field(
        default="var/deliveries",
        description="folder holding <plant>/<YYYY-MM-DD>/<file> deliveries",
    )
    fail_on_refused: bool = Field(
        default=False,
        description="an ingest that refuses a whole file exits 1 (the file is still reported "
        "and its rows quarantined); false: it is reported and the run succeeds",
    )


class ReportSettings(_Strict):
    folder: str = Field(
        default="var/reports", description="where the nightly report job writes its HTML page"
    )


class BackfillSettings(_Strict):
    chunk_mib: float = Field(
        default=256,
        gt=0,
        description="delivered MiB per ingest + silver step of a backfill (whole months)",
    )
    chunk_months: int = Field(default=12, ge=1, description="at most this many months per step")


ANCHOR_ROOT_PLACEHOLDER = "{storage_root}"


class AuditSettings(_Strict):
    anchor: str = Field(
        default="var/audit-anchor/anchor.jsonl",
        description="append-only file outside storage.root that receives every head of the "
        "audit trail (one MAC'd JSON line per append); relative: against the home folder; "
        "`{storage_root}` stands for storage.root (e.g. `{storage_root}.anchor/anchor.jsonl`, "
        "a folder beside it). Production: a WORM / object-lock mount",
    )


class Settings(_Strict):
    """Everything that differs between environments; nothing else is read from the outside."""

    env: str
    conf_dir: Path
    home: Path = Field(default_factory=home_dir)  # relative locations resolve here
    storage: StorageSettings
    spark: SparkSettings = SparkSettings()
    mlflow: MlflowSettings = MlflowSettings()
    landing: LandingSettings = LandingSettings()
    group: GroupSettings = GroupSettings()
    silver: SilverSettings = SilverSettings()
    reports: ReportSettings = ReportSettings()
    backfill: BackfillSettings = BackfillSettings()
    audit: AuditSettings = AuditSettings()
    lineage: dict[str, Any] | None = None  # validated by medlake.lineage.emitter_from_config

    def resolve(self, location: str) -> str:
        """Return `location` as an absolute path (relative to the home folder) or unchanged URI."""
        if "://" in location:
            return location
        path = Path(location)
        return str(path if path.is_absolute() else self.home / path)

    @property
    def storage_root(self) -> str:
        return self.resolve(self.storage.root)

    @property
    def audit_anchor(self) -> Path:
        """The audit trail's anchor file (`audit.anchor`), checked by `check_audit_anchor`."""
        return check_audit_anchor(self)


def check_audit_anchor(settings: Settings) -> Path:
    """The anchor file of `settings`, absolute; `ConfigError` when it is a URI or lies inside
    storage.root (whoever can rewrite the tables could then rewrite the anchor too)."""
    text = settings.audit.anchor
    root = settings.storage_root
    if ANCHOR_ROOT_PLACEHOLDER in text:
        if "://" in root:
            raise ConfigError(
                f"audit.anchor {text!r} uses {ANCHOR_ROOT_PLACEHOLDER}, but storage.root is "
                f"the URI {root}; give the anchor as a local path (a WORM / object-lock mount)"
            )
        text = text.replace(ANCHOR_ROOT_PLACEHOLDER, root.rstrip("/"))
    if "://" in text:
        raise ConfigError(
            f"audit.anchor {text!r} is a URI; it must be a file the jobs append to with "
            "O_APPEND and fsync: a local path, e.g. a WORM / object-lock mount such as "
            "/mnt/medlake-worm/audit-anchor.jsonl"
        )
    anchor = Path(settings.resolve(text)).resolve()
    if "://" not in root and anchor.is_relative_to(Path(root).resolve()):
        raise ConfigError(
            f"audit.anchor {anchor} lies inside storage.root {root}: the anchor must live "
            "outside the lakehouse storage, where whoever can rewrite the tables cannot "
            "rewrite it (e.g. var/audit-anchor/anchor.jsonl beside var/lakehouse, or a WORM "
            "mount in production); set audit.anchor in conf/lakehouse.yaml or the env overlay"
        )
    return anchor


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _dotted(location: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in location)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _explicit_pairs(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    """The key/value pairs written in the mapping itself (not its `<<:` merge keys)."""
    return [(key, value) for key, value in node.value if key.tag != _MERGE_TAG]


def _merged_mappings(node: yaml.MappingNode) -> list[yaml.Node]:
    """The mappings merged in by `<<:` keys, the one whose keys win first (PyYAML's order: a
    later `<<:` key wins over an earlier one; in `<<: [*a, *b]` the first listed wins)."""
    found: list[yaml.Node] = []
    for key, value in reversed(node.value):
        if key.tag == _MERGE_TAG:
            found.extend(value.value if isinstance(value, yaml.SequenceNode) else [value])
    return found


class _DuplicateKeyError(Exception):
    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class _StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a mapping key written twice (the plain loader keeps the
    last value and drops the other silently). Keys a `<<:` merge brings in are no duplicates:
    an explicit key overriding one of them is what merge keys are for.

    The check runs on the composed document before anything is constructed: PyYAML flattens
    merged mappings in place while constructing, after which written and merged keys can no
    longer be told apart, and a node does not know the path it sits at."""

    def construct_document(self, node: yaml.Node) -> Any:
        self._refuse_duplicate_keys(node, (), set())
        return super().construct_document(node)

    def _key_identity(self, key: yaml.Node) -> Hashable:
        """What the key becomes in the loaded dict (`1` and `0x1` are the same key), else its
        text (a key that does not construct fails in the real construction, with its own
        message)."""
        if isinstance(key, yaml.ScalarNode) and key.tag in self.yaml_constructors:
            try:
                value = self.construct_object(key)
                hash(value)
            except Exception:
                self.recursive_objects.pop(key, None)  # let the real construction retry it
            else:
                return (True, value)
        return (False, key.tag, str(key.value))

    def _refuse_duplicate_keys(
        self, node: yaml.Node, location: tuple[str | int, ...], seen: set[int]
    ) -> None:
        if id(node) in seen:  # an alias of a node already checked where it is written
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._refuse_duplicate_keys(item, (*location, index), seen)
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[Hashable, int] = {}
            for key, value in _explicit_pairs(node):
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                identity = self._key_identity(key)
                if identity in first_line:
                    raise _DuplicateKeyError(
                        _dotted((*location, name)), first_line[identity], _line(key)
                    )
                first_line[identity] = _line(key)
                self._refuse_duplicate_keys(value, (*location, name), seen)
            for merged in _merged_mappings(node):
                self._refuse_duplicate_keys(merged, location, seen)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping, turning every failure into a `ConfigError` naming the file.

    A key written twice in one mapping is an error (plain YAML loaders keep the last value
    silently); keys brought in by a `<<:` merge may be overridden."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except _DuplicateKeyError as exc:
        raise ConfigError(
            f"{path}: line {exc.second}: key '{exc.key}' is given twice "
            f"(first on line {exc.first}); remove one"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


@functools.lru_cache(maxsize=64)
def _composed(path: str, mtime_ns: int, size: int) -> yaml.Node | None:
    """The node tree of a YAML file (every node knows its line), cached per file version;
    None when the file cannot be read or parsed."""
    del mtime_ns, size  # part of the cache key only
    try:
        return yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _child(node: yaml.Node, part: str | int, seen: set[int]) -> tuple[yaml.Node, yaml.Node] | None:
    """(the node to take the line of, the node below it) for one step of a location."""
    if isinstance(node, yaml.SequenceNode):
        if isinstance(part, int) and not isinstance(part, bool) and 0 <= part < len(node.value):
            item: yaml.Node = node.value[part]
            return item, item
        return None
    if not isinstance(node, yaml.MappingNode) or id(node) in seen:
        return None
    seen.add(id(node))
    written = [
        (key, value)
        for key, value in _explicit_pairs(node)
        if isinstance(key, yaml.ScalarNode) and key.value == str(part)
    ]
    if written:
        return written[-1]  # the last one is what loads
    for merged in _merged_mappings(node):
        if (found := _child(merged, part, seen)) is not None:
            return found
    return None


def key_line(path: Path, location: Sequence[str | int]) -> int | None:
    """The 1-based line of `path` where the key at `location` (mapping keys and list indexes,
    like a pydantic error's `loc`) is written, else where its deepest existing ancestor is
    (the document's first line when not even the first key exists); None when the file
    cannot be read or parsed, or holds no document. A key a `<<:` merge brings in is found
    where the merged mapping writes it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    node = _composed(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if node is None:
        return None
    line = _line(node)
    for part in location:
        found = _child(node, part, set())
        if found is None:
            break
        marker, node = found
        line = _line(marker)
    return line


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `overlay` into `base`: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _has_path(data: Mapping[str, Any], loc: tuple[int | str, ...]) -> bool:
    node: Any = data
    for part in loc:
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_mapping or in_list:
            node = node[part]
        else:
            return False
    return True


def format_validation_error(
    exc: ValidationError, sources: list[tuple[Path | str, Mapping[str, Any]]]
) -> str:
    """One message: every invalid field, the file it came from, what was expected and found.

    `sources` lists the files whose data was merged, last one wins, so a field is attributed
    to the last file that sets it (or to the first file when no file sets it). For a file
    given as a `Path` the message names the line the field (or its closest written parent)
    is on: `FILE: line N: field 'a.b': ...`.
    """
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        origin = next((p for p, data in reversed(sources) if _has_path(data, loc)), sources[0][0])
        field = _dotted(loc) or "(top level)"
        found = "" if err["type"] == "missing" else f"; found {err.get('input')!r}"
        line = key_line(origin, loc) if isinstance(origin, Path) else None
        where = f"{origin}: line {line}" if line is not None else str(origin)
        lines.append(f"{where}: field '{field}': {err['msg']}{found}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(
    env: str | None = None,
    *,
    conf_dir: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load `lakehouse.yaml` with the `env/<env>.yaml` overlay and optional in-code overrides.

    >>> settings = load_settings("local")
    >>> settings.spark.master
    'local[2]'
    """
    directory = Path(conf_dir or os.environ.get(CONF_DIR_VAR) or DEFAULT_CONF_DIR)
    env_name = env or os.environ.get(ENV_VAR) or "local"
    base_path = directory / "lakehouse.yaml"
    overlay_path = directory / "env" / f"{env_name}.yaml"
    if not overlay_path.exists():
        known = sorted(p.stem for p in (directory / "env").glob("*.yaml"))
        raise ConfigError(
            f"{overlay_path}: no overlay for environment {env_name!r}; "
            f"expected one of: {', '.join(known) or '(none found)'}"
        )
    sources: list[tuple[Path | str, Mapping[str, Any]]] = [
        (base_path, read_yaml(base_path)),
        (overlay_path, read_yaml(overlay_path)),
    ]
    if overrides:
        sources.append(("(overrides given in code)", overrides))
    raw: dict[str, Any] = {}
    for _, data in sources:
        raw = deep_merge(raw, data)
    raw.pop("pipeline", None)  # an overlay's DAG settings: medlake.pipeline reads them
    try:
        settings = Settings.model_validate(
            {**raw, "env": env_name, "conf_dir": directory, "home": home_dir(directory)}
        )
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, sources)) from None
    try:
        check_audit_anchor(settings)
    except ConfigError as exc:
        origin = next((p for p, data in reversed(sources) if _has_path(data, ("audit",))), None)
        raise ConfigError(f"{origin or base_path}: {exc}") from None
    return settings
