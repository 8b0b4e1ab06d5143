"""Fixtures of the integration tests that run the `lakehouse` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conf_copy import copy_conf


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of medlake/conf/ whose `test` overlay keeps tables under tmp_path (also for the CLI)."""
    folder = copy_conf(tmp_path / "conf", {"storage": {"root": str(tmp_path / "lake")}})
    monkeypatch.setenv("LAKEHOUSE_CONF", str(folder))
    monkeypatch.setenv("LAKEHOUSE_ENV", "test")
    return folder
