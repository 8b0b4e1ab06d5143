"""medlake's test suite; REPO is the checkout the tests run from (docs, var/, scripts)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
