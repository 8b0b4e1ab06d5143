"""What the table layer reports besides data writes: maintenance, schema changes, restores."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from medlake.io.commit import CommitContext

Operation = Literal["optimize", "vacuum", "schema_change", "restore"]


@dataclass(frozen=True)
class TableChange:
    """One committed change to a table that is not a data write.

    >>> TableChange("silver.supplier", "vacuum", 12, {"retention_hours": 0}).operation
    'vacuum'

    `details` says what was done: `optimize` files removed and added, `vacuum` the retention
    used (and whether it was below `storage.vacuum_retention_hours`) and files removed,
    `schema_change` the columns added, `restore` the version restored to.
    """

    table: str
    operation: Operation
    version: int | None  # the table's version after the change
    details: Mapping[str, Any] = field(default_factory=dict)


OnChange = Callable[[TableChange, CommitContext | None], None]
