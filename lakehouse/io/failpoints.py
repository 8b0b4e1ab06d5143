"""Named points inside a write where tests kill or pause the writer to prove its guarantees.

- `LAKEHOUSE_FAILPOINT=<point>`: the writer sends itself SIGKILL on reaching the point,
  exactly as an out-of-memory kill or a lost node would.
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
BARRIER_VAR = "LAKEHOUSE_BARRIER"
BARRIER_DIR_VAR = "LAKEHOUSE_BARRIER_DIR"
BARRIER_TIMEOUT_S = 300
POINTS = ("staged", "published", "committed")


def reach(name: str) -> None:
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(POINTS)}")
    if os.environ.get(FAILPOINT_VAR) == name:
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
