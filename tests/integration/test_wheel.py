"""The built wheel is the product: installed in a clean virtual environment, away from the
checkout, it runs one day of the pipeline from its own entry point with its configuration given
by a setting ($LAKEHOUSE_CONF) and its files under another ($LAKEHOUSE_HOME).

The environment is built from the lock with uv, offline, from the package cache that `make
venv` filled; the wheel is built from a copy of the sources, so the checkout stays untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from medlake.config import DEFAULT_CONF_DIR
from medlake_simulator.generate import generate
from tests import REPO

pytestmark = pytest.mark.slow

DAY = dt.date(2026, 1, 5)
PLANTS = ["GW", "SZ"]  # one plant in each of two jurisdictions and languages
UV = Path(sys.executable).parent / "uv"


def _run(command: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, check=False, **kwargs
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtual environment with the locked dependencies and the built wheel only."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "medlake", source / "medlake", ignore=shutil.ignore_patterns("__pycache__")
    )
    _run([UV, "build", "--offline", "--wheel", "--out-dir", work / "dist", source])
    (wheel,) = (work / "dist").glob("medlake-*.whl")
    venv = work / "venv"
    _run([UV, "venv", "--offline", "--python", sys.executable, venv])
    python = venv / "bin" / "python"
    _run([UV, "pip", "sync", "--offline", "--python", python, REPO / "requirements.lock"])
    _run([UV, "pip", "install", "--offline", "--no-deps", "--python", python, wheel])
    return venv


def test_the_installed_wheel_runs_a_day_from_its_entry_point_outside_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    python = installed / "bin" / "python"
    home = tmp_path / "home"
    home.mkdir()
    # what the environment imports: the wheel's package, no simulator, nothing of the checkout
    where = _run(
        [python, "-c", "import medlake, importlib.util as u; print(medlake.__file__); "
         "print(u.find_spec('medlake_simulator'))"],
        cwd=home,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    ).stdout.split()  # fmt: skip
    assert Path(where[0]).is_relative_to(installed), where
    assert where[1] == "None", "the product must not need the simulator"

    landing = tmp_path / "landing"
    generate(landing, start=DAY, days=1, scale=0.2, seed=5, progress=False)
    conf = tmp_path / "group-conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    for source in (conf / "sources").glob("*.yaml"):
        if source.stem not in PLANTS:
            source.unlink()  # this group has two plants
    overlay = conf / "env" / "test.yaml"
    overlay.write_text(
        overlay.read_text(encoding="utf-8")
        + f"\nlanding:\n  root: {landing}\nlineage:\n  transport: none\n",
        encoding="utf-8",
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "LAKEHOUSE_CONF", "LAKEHOUSE_HOME", "VIRTUAL_ENV")
    }
    env |= {
        "LAKEHOUSE_CONF": str(conf),
        "LAKEHOUSE_ENV": "test",
        "LAKEHOUSE_HOME": str(home),
        "PYSPARK_PYTHON": str(python),
        "PYSPARK_DRIVER_PYTHON": str(python),
        "PATH": f"{installed / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    }
    _run(  # exits 0 only when ingest, silver and gold all passed
        [installed / "bin" / "lakehouse", "run", "backfill", "--date", DAY.isoformat()],
        cwd=tmp_path,  # not the home: relative paths follow the setting, not the directory
        env=env,
        timeout=900,
    )

    lake = home / "var" / "lakehouse"  # storage.root `var/lakehouse` under $LAKEHOUSE_HOME
    orders = DeltaTable(str(lake / "silver" / "purchase_orders")).to_pyarrow_table()
    assert orders.num_rows > 0
    assert set(orders.column("plant_id").to_pylist()) <= set(PLANTS)
    delivered = {p.name for p in landing.iterdir() if not p.name.startswith("_")}
    assert set(orders.column("plant_id").to_pylist()) == delivered & set(PLANTS)
    assert (lake / "gold").is_dir()
    assert not (tmp_path / "var").exists()  # nothing resolved against the working directory
