"""Multi-plant source simulator: deterministic, heterogeneous per-plant extracts."""

from __future__ import annotations

import hashlib
from pathlib import Path


def fingerprint() -> str:
    """A short digest of the simulator's own code and source contracts: caches of generated
    deliveries are keyed by it (with the seed, scale and days), so any change to the
    simulator rebuilds them."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.glob("*.py")) + sorted(root.glob("source_contracts/*.yaml")):
        if path.name in ("cli.py", "demo.py"):  # they generate nothing
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
