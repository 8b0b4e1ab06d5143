"""Re-identification vaults: the clear value behind each new pseudonym, one per jurisdiction."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medlake.governance.classes import vault_table
from medlake.io import CommitContext, TableIO

ERASURES = "_vault_erasures"
_LOCK = threading.Lock()  # silver builds entities in threads; one vault writer at a time


def store(
    io: TableIO,
    rows: DataFrame,
    jurisdictions: Iterable[str],
    *,
    table: str,
    ctx: CommitContext,
) -> dict[str, int]:
    """Append the tokens not yet in each jurisdiction's vault (rows: jurisdiction, token,
    entity_type, value); erased subjects are never stored again. Returns rows added per vault.

    Called before the masked rows are promoted, so every token in silver can be re-identified.
    """
    added: dict[str, int] = {}
    rows = rows.localCheckpoint()
    try:
        with _LOCK:
            erased = _erased(io)
            for jurisdiction in sorted(set(jurisdictions)):
                name = vault_table(jurisdiction)
                new = rows.where(F.col("jurisdiction") == jurisdiction).drop("jurisdiction")
                if io.version(name) is not None:
                    new = new.join(io.read(name).select("token"), "token", "left_anti")
                if erased is not None:
                    new = new.join(erased, "token", "left_anti")
                new = new.select(
                    "token",
                    "entity_type",
                    "value",
                    F.lit(table).alias("first_table"),
                    F.lit(ctx.run_id).alias("first_run_id"),
                    F.current_timestamp().alias("recorded_at"),
                ).localCheckpoint()
                count = new.count()
                if count:
                    io.append(name, new, ctx=ctx)
                added[jurisdiction] = count
    finally:
        rows.unpersist()
    return added


def _erased(io: TableIO) -> DataFrame | None:
    if io.version(ERASURES) is None:
        return None
    return io.read(ERASURES).select("token")
