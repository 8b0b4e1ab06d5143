"""What one silver build works on (`SilverRun`) and what it reports (`SilverResult`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medlake.entities import EntitySpec
from medlake.governance.masking import Masker
from medlake.io import CommitContext, TableIO
from medlake.silver.quality import RuleResult, RuleSet
from medlake.sources import PlantSource


@dataclass
class EntityOutcome:
    entity: str
    rows_read: int = 0
    versions_read: dict[str, int | None] = field(default_factory=dict)
    versions_written: dict[str, int] = field(default_factory=dict)
    failed: list[RuleResult] = field(default_factory=list)
    recon: list[dict[str, Any]] = field(default_factory=list)
    dq_rows: list[dict[str, Any]] = field(default_factory=list)
    vaulted: dict[str, int] = field(default_factory=dict)  # new vault rows per jurisdiction


@dataclass
class SilverResult:
    run_id: str
    entities: list[EntityOutcome] = field(default_factory=list)

    @property
    def failed_gates(self) -> list[tuple[str, RuleResult]]:
        return [(e.entity, r) for e in self.entities for r in e.failed]


@dataclass(frozen=True)
class SilverRun:
    io: TableIO
    specs: Mapping[str, EntitySpec]
    rules: Mapping[str, RuleSet]
    sources: Mapping[str, PlantSource]  # every configured plant (master data spans them all)
    plants: Sequence[str]  # the plants this run processes
    dates: Sequence[dt.date]
    run_id: str
    group_currency: str
    masker: Masker  # masks personal data before anything is ranked or written
    date_window: tuple[int, int] = (30, 10)  # plausible years before / after the delivery

    @property
    def logical_date(self) -> dt.date:
        return max(self.dates)

    def ctx(self) -> CommitContext:
        return CommitContext(job="silver", run_id=self.run_id, logical_date=self.logical_date)
