"""Multi-plant source simulator: deterministic, heterogeneous per-plant extracts."""

from __future__ import annotations

import hashlib
from pathlib import Path


def fingerprint() -> str:
    """A short digest of the simulator's own code: caches of generated deliveries are keyed
    by it (with the seed, scale and days), so any change to the simulator rebuilds them."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name in ("cli.py", "demo.py"):  # they generate nothing
            continue
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
