"""Fixtures of the integration tests that run the `lakehouse` command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medlake.config import DEFAULT_CONF_DIR


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of medlake/conf/ whose `test` overlay keeps tables under tmp_path (also for the CLI)."""
    folder = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, folder)
    overlay = folder / "env" / "test.yaml"
    overlay.write_text(overlay.read_text() + f"\nstorage:\n  root: {tmp_path / 'lake'}\n")
    monkeypatch.setenv("LAKEHOUSE_CONF", str(folder))
    monkeypatch.setenv("LAKEHOUSE_ENV", "test")
    return folder
