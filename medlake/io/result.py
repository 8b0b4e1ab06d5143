"""What a table operation reports back: the version it made and what it changed."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class Retract:
    """Stored rows an upsert withdraws: those meeting `condition` (SQL over the table's
    columns) whose key is neither among the incoming rows nor in `keep` (a frame of key
    columns, e.g. keys the source still mentions in rows that were not usable).

    `within` (optional) states that every row meeting `condition` has its value of each
    named column among the given values; the upsert then skips stored files whose
    partition values or column statistics rule that out instead of reading them."""

    condition: str
    keep: DataFrame | None = None
    within: Mapping[str, Collection[Any]] | None = None


class Changes(NamedTuple):
    """What an upsert did to one group of rows (`count_by`)."""

    inserted: int
    updated: int
    ignored: int  # incoming rows that lost to a later sequence
    retracted: int = 0  # stored rows removed by `retract`


@dataclass(frozen=True)
class WriteResult:
    table: str
    version: int
    operation: str
    files_added: int
    files_removed: int
    rows_written: int
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_ignored: int | None = None  # upsert: incoming rows that lost to a later sequence
    rows_retracted: int | None = None  # upsert: stored rows removed by `retract`
    # upsert with `count_by`: value of that column -> its changes
    changes_by: dict[str, Changes] | None = None


@dataclass(frozen=True)
class OptimizeResult:
    table: str
    version: int
    files_removed: int
    files_added: int
