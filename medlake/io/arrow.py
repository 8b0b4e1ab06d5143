"""Small system tables read and appended through pyarrow and deltalake, without a Spark session.

>>> table = ArrowTable(settings, "_audit")                                    # doctest: +SKIP
>>> with table.lock():                                                        # doctest: +SKIP
...     snap = table.snapshot(create=True)
...     last = snap.last_row("seq")
...     snap.append([{...}], metadata={"lakehouse_operation": "audit append"})
>>> read_table(settings, "_vault_eu", filter=("token", "=", "PERSON_eu_1a2b"))  # doctest: +SKIP

Tables are found where `TableIO` finds them (`<storage.root>/<TableSpec.path>`), created
as the delta-rs engine creates them, and checked against their declared schema. A snapshot
pins one table version: `Snapshot.append` commits on top of exactly that version or raises
`TableConflictError`, so a writer that read the table's tail never appends after rows it has
not seen. Files are read with pyarrow's own Parquet reader and file system (deltalake's
scanner can abort the interpreter at exit, delta-io/delta-rs#2184, and `pyarrow.dataset`
alone takes over a second to import). Meant for tables of thousands of small files, not
for data tables: those go through `TableIO`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, Field, Schema, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound
from deltalake.transaction import CommitProperties, PostCommitHookProperties
from pyarrow import fs as pafs

from medlake.config import Settings
from medlake.io.commit import code_version
from medlake.io.deltars import check_readable
from medlake.io.errors import (
    ConstraintViolationError,
    TableConflictError,
    TableIOError,
)
from medlake.io.schema import evolution_needed, struct_from_delta
from medlake.io.storage import Storage, table_location
from medlake.tables import Registry, TableSpec

Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not in"]
RowFilter = tuple[str, Op, Any]
LOCK_TIMEOUT_S = 60.0
PARALLEL_FROM = 8  # files; fewer are read one after the other
READ_THREADS = 8
ENGINE = "delta-rs (arrow)"
log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _declared_tables(conf_dir: str) -> Registry:
    return Registry.load(Path(conf_dir) / "tables")


def default_registry(settings: Settings) -> Registry:
    """The tables declared in `<conf_dir>/tables` (system tables live there), loaded once."""
    return _declared_tables(str(settings.conf_dir))


def arrow_schema(spec: TableSpec) -> pa.Schema:
    """The declared columns as an Arrow schema, typed as Delta stores them (UTC timestamps)."""
    return pa.schema(Schema.from_json(spec.spark_schema.json()).to_arrow())


class ArrowTable:
    """One registered table, addressed like `TableIO` does, read and appended without Spark."""

    def __init__(self, settings: Settings, name: str, registry: Registry | None = None) -> None:
        self.settings = settings
        self.spec = (registry or default_registry(settings)).get(name)
        # as TableIO.location: <storage.root>/<path of the table under the root>
        self.location = table_location(settings, self.spec)
        self.storage = Storage(self.location)
        self.schema = arrow_schema(self.spec)

    @property
    def name(self) -> str:
        return self.spec.name

    # ----------------------------------------------------------------- snapshots

    def snapshot(self, *, create: bool = False) -> Snapshot | None:
        """The table's latest version, or None when it was never created (unless `create`)."""
        try:
            table = DeltaTable(self.storage.root_uri)
        except DeltaTableNotFound:
            if not create:
                return None
            table = self._create()
        except (DeltaError, OSError) as exc:
            raise self.unreadable(exc) from None
        return Snapshot(self, table, writing=create)

    def _create(self) -> DeltaTable:
        props = CommitProperties(
            custom_metadata={
                "engine": ENGINE,
                "lakehouse_operation": "create",
                "code_version": code_version(),
            }
        )
        try:
            return DeltaTable.create(
                self.storage.root_uri,
                Schema.from_json(self.spec.spark_schema.json()),
                mode="ignore",  # a concurrent writer may create it first
                partition_by=self.spec.partition_by or None,
                name=self.spec.name,
                description=self.spec.description,
                configuration={
                    "delta.checkpointInterval": str(self.settings.storage.checkpoint_interval)
                },
                commit_properties=props,
            )
        except (DeltaError, OSError) as exc:
            raise TableIOError(
                f"{self.name}: cannot create the table at {self.location}: {exc}; check that "
                "the storage root exists and is writable (storage.root in conf)"
            ) from None

    def unreadable(self, exc: BaseException) -> TableIOError:
        """The error for a table whose log or files cannot be read."""
        return TableIOError(
            f"{self.name}: the Delta table at {self.location} cannot be read "
            f"({type(exc).__name__}: {exc}); its log or data files are damaged or missing. "
            "Do not delete or rewrite it: restore the folder from backup, or inspect it with "
            f"`lakehouse table history {self.name}`"
        )

    # ----------------------------------------------------------------- locking

    @contextmanager
    def lock(self, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold an exclusive lock on the table against other processes on this machine.

        On the local file system (the embedded default) the lock is `fcntl.flock` on
        `<table folder>.lock`, next to the table. On object storage there is no such lock:
        the orchestrator serialises the writers of a table (one Airflow pool), and
        `Snapshot.append` still refuses to commit on top of a version it did not read.
        """
        if not isinstance(self.storage.fs, pafs.LocalFileSystem):
            yield
            return
        path = Path(f"{self.storage.root}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+b") as handle:
            if not _flock(handle.fileno(), timeout_s):
                raise TableConflictError(
                    f"{self.name}: another process has held {path} for over "
                    f"{timeout_s:.0f} s; find it with `fuser {path}` and check whether it hangs"
                )
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _flock(fd: int, timeout_s: float) -> bool:
    """Take an exclusive `flock` on `fd`'s open file, waiting at most `timeout_s`.

    The wait is a blocking `flock` in a helper thread, so the kernel wakes this process as
    soon as the holder lets go (polling with LOCK_NB would lose every time to a holder that
    appends in a loop). On timeout the helper stays queued and lets go of the lock if it
    gets it later.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    waiter = os.dup(fd)  # same open file, so the lock it takes is the caller's
    decided = threading.Lock()
    taken = threading.Event()
    state = ["waiting"]

    def wait() -> None:
        try:
            fcntl.flock(waiter, fcntl.LOCK_EX)
            with decided:
                if state[0] == "abandoned":
                    fcntl.flock(waiter, fcntl.LOCK_UN)
                else:
                    state[0] = "taken"
                    taken.set()
        finally:
            os.close(waiter)

    threading.Thread(target=wait, name="flock-wait", daemon=True).start()
    taken.wait(timeout_s)
    with decided:
        if state[0] == "taken":
            return True
        state[0] = "abandoned"
        return False


@dataclass(frozen=True)
class _File:
    path: str  # relative to the table root, as on disk
    partitions: dict[str, pa.Array]  # column -> its value in this file (length-1 array)
    stats: dict[str, Any]


class Snapshot:
    """One version of an `ArrowTable`: read it, find its last row, append on top of it."""

    def __init__(self, table: ArrowTable, delta: DeltaTable, *, writing: bool) -> None:
        self.table = table
        self._delta = delta
        self.added_columns: list[str] = []  # declared columns this snapshot added (writing)
        self._check(writing=writing)

    @property
    def version(self) -> int:
        return int(self._delta.version())

    def _check(self, *, writing: bool) -> None:

        spec = self.table.spec
        try:
            check_readable(spec, self._delta)  # no deletion vectors, mapping
            stored = struct_from_delta(self._delta.schema().to_json())
        except (DeltaError, OSError) as exc:
            raise self.table.unreadable(exc) from None
        # reads tolerate declared columns the table lacks (read as null); writes add them
        tolerant = spec if writing else spec.model_copy(update={"schema_evolution": "additive"})
        added = evolution_needed(tolerant, stored)
        if added and writing:
            self._delta.alter.add_columns(
                [Field.from_json(json.dumps(f.jsonValue())) for f in added],
                commit_properties=CommitProperties(
                    custom_metadata={"engine": ENGINE, "lakehouse_operation": "add columns"}
                ),
            )
            self._delta.update_incremental()
            self.added_columns = [f"{f.name} {f.dataType.simpleString()}" for f in added]

    # ----------------------------------------------------------------- reads

    def _files(self, *stats: str) -> list[_File]:
        """The snapshot's files with their partition values and the given statistics (e.g.
        `max.seq`; None where a file has none)."""
        try:
            actions = pa.RecordBatchReader.from_stream(
                self._delta.get_add_actions(flatten=True)
            ).read_all()  # (pa.table would import pandas: a second per process)
        except (DeltaError, OSError) as exc:
            raise self.table.unreadable(exc) from None
        paths = actions.column("path").to_pylist()
        partitions = {c: actions.column(f"partition.{c}") for c in self.table.spec.partition_by}
        found = {s: actions.column(s).to_pylist() for s in stats if s in actions.column_names}
        return [
            _File(
                path=unquote(str(path)),  # the log's form is percent-encoded
                partitions={c: values.slice(i, 1) for c, values in partitions.items()},
                stats={s: found[s][i] if s in found else None for s in stats},
            )
            for i, path in enumerate(paths)
        ]

    def read(self, *, filter: RowFilter | None = None) -> pa.Table:
        """The snapshot's rows in the declared schema; `filter` is (column, op, value)."""
        files = self._files()
        if filter is not None and filter[0] in self.table.spec.partition_by:
            column = filter[0]
            kind = self.table.schema.field(column).type
            files = [
                f
                for f in files
                if _mask(pa.table({column: f.partitions[column].cast(kind)}), filter)[0].as_py()
            ]
        data = self._read_files(files)
        return data if filter is None else data.filter(_mask(data, filter))

    def last_row(self, by: str) -> dict[str, Any] | None:
        """The row with the highest `by` (an integer column), reading only the file(s) whose
        statistics say they hold it; every file when some file has no statistics."""
        stat = f"max.{by}"
        files = self._files(stat)
        known = [f.stats[stat] for f in files if f.stats[stat] is not None]
        if files and len(known) == len(files):
            files = [f for f in files if f.stats[stat] == max(known)]
        rows = to_rows(self._read_files(files))
        return max(rows, key=lambda r: (r[by] is not None, r[by]), default=None)

    def _read_files(self, files: Sequence[_File]) -> pa.Table:
        if len(files) > PARALLEL_FROM:  # pyarrow releases the GIL while it reads
            with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
                parts = list(pool.map(self._read_file, files))
        else:
            parts = [self._read_file(f) for f in files]
        # (no schema.empty_table() or pa.array(...): both import pandas, a second per process)
        return pa.concat_tables([pa.Table.from_batches([], schema=self.table.schema), *parts])

    def _read_file(self, file: _File) -> pa.Table:
        storage = self.table.storage
        path = storage.abs(file.path)
        try:
            with storage.fs.open_input_file(path) as handle:
                stored = pq.ParquetFile(handle).read()
        except (OSError, pa.ArrowException) as exc:
            raise self.table.unreadable(exc) from None
        rows = stored.num_rows
        columns = []
        for field in self.table.schema:
            if field.name in file.partitions:  # the file's one value, repeated
                zeros = pa.Array.from_buffers(
                    pa.int32(), rows, [None, pa.py_buffer(bytes(4 * rows))]
                )
                column = file.partitions[field.name].take(zeros)
            elif field.name in stored.column_names:
                column = stored.column(field.name)
            else:  # a column added after this file was written
                column = pa.nulls(rows, field.type)
            try:
                columns.append(column.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise self.table.unreadable(
                    ValueError(f"column {field.name} in {path}: {exc}")
                ) from None
        return pa.Table.from_arrays(columns, schema=self.table.schema)

    def commits(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Commit information, newest first (Delta's history with our custom metadata)."""
        try:
            return list(self._delta.history(limit))
        except (DeltaError, OSError) as exc:
            raise self.table.unreadable(exc) from None

    # ----------------------------------------------------------------- writes

    def compact(self, *, min_extra_files: int) -> bool:
        """Merge the small files of each partition (into files near `storage.target_file_mb`)
        when the table holds `min_extra_files` or more files beyond one per partition;
        return whether it did.

        One commit that changes no data (`dataChange=false`): readers see the same rows,
        and the replaced files stay until `vacuum`. Best effort: a compaction that fails or
        loses a race with another writer is skipped with a warning (the next one catches up).
        """
        try:
            files = self._files()
        except TableIOError as exc:
            log.warning("%s: compaction skipped: %s", self.table.name, exc)
            return False
        partitions = {tuple(str(v[0]) for v in f.partitions.values()) for f in files}
        if len(files) - len(partitions) < min_extra_files:
            return False
        try:
            self._delta.optimize.compact(
                target_size=self.table.settings.storage.target_file_mb * 1024 * 1024,
                commit_properties=CommitProperties(
                    custom_metadata={
                        "engine": ENGINE,
                        "code_version": code_version(),
                        "lakehouse_operation": "compact",
                    }
                ),
                post_commithook_properties=PostCommitHookProperties(
                    create_checkpoint=True, cleanup_expired_logs=False
                ),
            )
        except (CommitFailedError, DeltaError, OSError) as exc:
            log.warning("%s: compaction skipped: %s", self.table.name, exc)
            return False
        return True

    def append(self, rows: Sequence[Mapping[str, Any]], *, metadata: Mapping[str, str]) -> int:
        """Append `rows` in one commit on top of this snapshot's version; return the new one.

        Raises `TableConflictError` when another writer committed since the snapshot was
        taken (nothing of this append is visible then), `ConstraintViolationError` when a
        NOT NULL column has no value.
        """
        spec = self.table.spec
        schema = pa.schema(self._delta.schema().to_arrow())
        unknown = sorted({k for r in rows for k in r} - set(schema.names))
        if unknown:
            raise TableIOError(f"{spec.name}: rows have undeclared columns: {', '.join(unknown)}")
        try:
            data = pa.Table.from_pylist([dict(r) for r in rows], schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise TableIOError(f"{spec.name}: rows do not fit the declared schema: {exc}") from None
        nulls = [
            f"{data.column(c.name).null_count} rows have NULL in NOT NULL column {c.name}"
            for c in spec.columns
            if not c.nullable and data.column(c.name).null_count
        ]
        if nulls:
            raise ConstraintViolationError(
                f"{spec.name}: nothing was committed; " + "; ".join(nulls)
            )
        props = CommitProperties(
            custom_metadata={
                "engine": ENGINE,
                "code_version": code_version(),
                "lakehouse_operation": "append",
                **metadata,
            },
            max_commit_retries=0,  # never re-based onto rows this writer has not seen
        )
        before = self.version
        try:
            write_deltalake(
                self._delta,
                data,
                mode="append",
                commit_properties=props,
                # keep every commit file: the log is part of the record
                post_commithook_properties=PostCommitHookProperties(
                    create_checkpoint=True, cleanup_expired_logs=False
                ),
            )
        except CommitFailedError:
            raise TableConflictError(
                f"{spec.name}: another writer committed after version {before}; "
                "nothing of this append is visible"
            ) from None
        return self.version


def to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """`table.to_pylist()`, UTC timestamps as datetimes with `datetime.UTC`.

    (Converting zoned timestamps itself, pyarrow imports pandas: a second per process.)
    """
    zoned = [f.name for f in table.schema if pa.types.is_timestamp(f.type) and f.type.tz]
    for name in zoned:
        field = table.schema.field(name)
        if field.type.tz not in ("UTC", "+00:00", "Z"):
            raise TableIOError(f"column {name} has time zone {field.type.tz}, expected UTC")
        naive = table.column(name).cast(pa.timestamp(field.type.unit))
        table = table.set_column(table.schema.get_field_index(name), name, naive)
    rows: list[dict[str, Any]] = table.to_pylist()
    for row in rows:
        for name in zoned:
            if row[name] is not None:
                row[name] = row[name].replace(tzinfo=dt.UTC)
    return rows


def _mask(data: pa.Table, where: RowFilter) -> pa.ChunkedArray:

    column, op, value = where
    if column not in data.column_names:
        raise TableIOError(f"filter names an unknown column {column!r}")
    values = data.column(column)
    if op in ("in", "not in"):
        found = pc.is_in(values, value_set=pa.array(list(value), values.type))
        mask = found if op == "in" else pc.invert(found)
    else:
        compare = {
            "=": pc.equal,
            "!=": pc.not_equal,
            "<": pc.less,
            "<=": pc.less_equal,
            ">": pc.greater,
            ">=": pc.greater_equal,
        }
        if op not in compare:
            raise TableIOError(f"unknown filter operator {op!r}; use =, !=, <, <=, >, >=, in")
        mask = compare[op](values, pa.scalar(value, values.type))
    return pc.fill_null(mask, False)


def read_table(
    settings: Settings,
    name: str,
    *,
    filter: RowFilter | None = None,
    registry: Registry | None = None,
) -> list[dict[str, Any]]:
    """The rows of a small registered table as dicts ([] when it was never written).

    >>> read_table(settings, "_vault_eu", filter=("token", "=", "PERSON_eu_1a2b"))  # doctest: +SKIP
    [{'token': 'PERSON_eu_1a2b', 'entity_type': 'PERSON', 'value': ..., ...}]
    """
    snapshot = ArrowTable(settings, name, registry).snapshot()
    if snapshot is None:
        return []
    return to_rows(snapshot.read(filter=filter))
