"""Who wrote a commit and why: job, run id, logical date and code version on every commit."""

from __future__ import annotations

import datetime as dt
import functools
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from importlib import metadata

from medlake.config import source_checkout

CODE_VERSION_VAR = "LAKEHOUSE_CODE_VERSION"


@functools.cache
def code_version() -> str:
    """`LAKEHOUSE_CODE_VERSION`, else `<package version>+<git describe>` when running from a
    source checkout, else the package version."""
    if value := os.environ.get(CODE_VERSION_VAR):
        return value
    try:
        package = metadata.version("medlake")
    except metadata.PackageNotFoundError:
        package = "0+unknown"
    checkout = source_checkout()
    if checkout is None:  # an installed wheel: its version is the package's
        return package
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=checkout,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return package
    return f"{package}+g{described}" if described else package


def new_run_id(job: str) -> str:
    """A run id for a run no scheduler named: `manual__<UTC time>__<job>__<6 hex>`."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"manual__{stamp}__{job}__{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, kw_only=True)
class CommitContext:
    """Metadata stamped on every commit, so a table version can be traced to a run.

    >>> day = dt.date(2026, 1, 5)
    >>> ctx = CommitContext(job="silver_supplier", run_id="manual__1", logical_date=day)
    >>> ctx.metadata()["logical_date"]
    '2026-01-05'
    """

    job: str
    run_id: str
    logical_date: dt.date | None = None
    plant: str | None = None
    code_version: str = field(default_factory=code_version)

    def metadata(self) -> dict[str, str]:
        data = {"job": self.job, "run_id": self.run_id, "code_version": self.code_version}
        if self.logical_date is not None:
            data["logical_date"] = self.logical_date.isoformat()
        if self.plant is not None:
            data["plant"] = self.plant
        return data
