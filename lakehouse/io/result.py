"""What a table operation reports back: the version it made and what it changed."""

from __future__ import annotations

from dataclasses import dataclass


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
    # upsert with `count_by`: value of that column -> (inserted, updated, ignored)
    changes_by: dict[str, tuple[int, int, int]] | None = None


@dataclass(frozen=True)
class OptimizeResult:
    table: str
    version: int
    files_removed: int
    files_added: int
