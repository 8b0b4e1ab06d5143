"""Errors the table layer raises; each message names the table and says what to do."""

from __future__ import annotations


class TableIOError(Exception):
    """Base class of every table-layer error."""


class SchemaMismatchError(TableIOError):
    """The data or the stored table does not match the table's declared schema."""


class ConstraintViolationError(TableIOError):
    """Rows break a NOT NULL column or a CHECK constraint; nothing was committed."""


class TableConflictError(TableIOError):
    """Another writer committed to the same table first; nothing of this write is visible."""


class CommitOutcomeUnknownError(TableIOError):
    """The commit call failed and the log could not be read to tell whether it landed."""


class UnsupportedTableError(TableIOError):
    """The table uses a Delta feature this engine's read path cannot honour."""


class TableNotFoundError(TableIOError):
    """The table has never been written (or the version asked for does not exist)."""
