"""Named points inside a write where tests kill or pause the writer to prove its guarantees.

- `LAKEHOUSE_FAILPOINT=<point>`: the writer sends itself SIGKILL on reaching the point,
  exactly as an out-of-memory kill or a lost node would; with `LAKEHOUSE_FAILPOINT_SKIP=N`
  only on the (N+1)th time (a backfill killed after its first N steps).
- `LAKEHOUSE_BARRIER=<point>` with `LAKEHOUSE_BARRIER_DIR=<dir>`: the writer announces
  itself with `<dir>/ready.<pid>` and waits for `<dir>/go`, so a test can line up two
  writers to commit at the same moment.

Unset, each point costs two environment lookups.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

FAILPOINT_VAR = "LAKEHOUSE_FAILPOINT"
SKIP_VAR = "LAKEHOUSE_FAILPOINT_SKIP"
BARRIER_VAR = "LAKEHOUSE_BARRIER"
BARRIER_DIR_VAR = "LAKEHOUSE_BARRIER_DIR"
BARRIER_TIMEOUT_S = 300
# a write's steps (medlake.io.deltars); a backfill step whose job finished but whose
# progress is not recorded yet (medlake.jobs.backfill)
POINTS = ("staged", "published", "committed", "backfill-step")
_passed: dict[str, int] = {}


def reach(name: str) -> None:
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(POINTS)}")
    if os.environ.get(FAILPOINT_VAR) == name:
        _passed[name] = _passed.get(name, 0) + 1
        if _passed[name] > int(os.environ.get(SKIP_VAR, "0")):
            os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(BARRIER_VAR) == name:
        folder = Path(os.environ[BARRIER_DIR_VAR])
        (folder / f"ready.{os.getpid()}").touch()
        deadline = time.monotonic() + BARRIER_TIMEOUT_S
        while not (folder / "go").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"barrier at {name!r}: no {folder / 'go'} after {BARRIER_TIMEOUT_S}s"
                )
            time.sleep(0.02)
