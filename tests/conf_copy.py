"""A copy of the packaged configuration with an environment overlay of the test's own: the
one way tests point tables, landing, lineage and MLflow at their temporary folders."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from medlake.config import DEFAULT_CONF_DIR


def copy_conf(folder: Path, overlay: Mapping[str, Any], *, env: str = "test") -> Path:
    """Copy medlake/conf/ to `folder` and write `env/<env>.yaml`: the `test` overlay with the
    top-level sections of `overlay` replacing its own. Returns `folder`."""
    shutil.copytree(DEFAULT_CONF_DIR, folder)
    test = yaml.safe_load((folder / "env" / "test.yaml").read_text(encoding="utf-8")) or {}
    merged = {**test, **overlay}
    (folder / "env" / f"{env}.yaml").write_text(yaml.safe_dump(merged), encoding="utf-8")
    return folder
