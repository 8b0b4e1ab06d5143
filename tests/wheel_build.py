"""The built artifact for the tests that use it (tests/integration/test_wheel.py and
test_cluster_artifact.py): medlake's wheel, built from a copy of the sources so that the
checkout stays untouched, and virtual environments made from the lock. Everything runs with
uv, offline, from the package cache that `make venv` filled.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests import REPO

UV = Path(sys.executable).parent / "uv"


def run(command: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run `command`, failing the test with the end of its output unless it exits with 0."""
    result: subprocess.CompletedProcess[str] = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, check=False, **kwargs
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def build_wheel(work: Path) -> Path:
    """`uv build --wheel` of pyproject.toml, README.md and medlake/ copied under `work`."""
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "medlake", source / "medlake", ignore=shutil.ignore_patterns("__pycache__")
    )
    run([UV, "build", "--offline", "--wheel", "--out-dir", work / "dist", source])
    (wheel,) = (work / "dist").glob("medlake-*.whl")
    return wheel


def locked_venv(venv: Path) -> Path:
    """A virtual environment at `venv` with requirements.lock's packages only; its Python."""
    run([UV, "venv", "--offline", "--python", sys.executable, venv])
    python = venv / "bin" / "python"
    run([UV, "pip", "sync", "--offline", "--python", python, REPO / "requirements.lock"])
    return python


def install(python: Path, wheel: Path) -> None:
    """Install the wheel, without its dependencies, into the environment of `python`."""
    run([UV, "pip", "install", "--offline", "--no-deps", "--python", python, wheel])
