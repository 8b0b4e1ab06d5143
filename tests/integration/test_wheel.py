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
from pathlib import Path

import pytest
from deltalake import DeltaTable

from medlake.config import DEFAULT_CONF_DIR
from medlake_simulator.generate import generate
from tests.wheel_build import build_wheel, install, locked_venv
from tests.wheel_build import run as _run

pytestmark = pytest.mark.slow

DAY = dt.date(2026, 1, 5)
PLANTS = ["GW", "SZ"]  # one plant in each of two jurisdictions and languages


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtual environment with the locked dependencies and the built wheel only."""
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(work)
    venv = work / "venv"
    install(locked_venv(venv), wheel)
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


def test_the_installed_wheel_writes_nothing_into_its_own_package(
    installed: Path, tmp_path: Path
) -> None:
    """An installed release is read-only configuration: `metrics lock` on the packaged
    defaults is refused with the fix, and the code version is the package's (no git)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "LAKEHOUSE_CONF", "LAKEHOUSE_HOME", "LAKEHOUSE_CODE_VERSION")
    }
    package = installed / "lib" / "python3.11" / "site-packages" / "medlake"
    before = (package / "conf" / "metrics" / "versions.lock").read_bytes()
    result = subprocess.run(
        [installed / "bin" / "lakehouse", "metrics", "lock"],
        capture_output=True, text=True, check=False, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode != 0
    assert "is the installed package's configuration" in result.stderr
    assert "lakehouse --conf DIR metrics lock" in result.stderr
    assert (package / "conf" / "metrics" / "versions.lock").read_bytes() == before
    version = _run(
        [installed / "bin" / "python", "-c",
         "from medlake.io.commit import code_version; print(code_version())"],
        cwd=tmp_path, env=env,
    ).stdout.strip()  # fmt: skip
    assert version == metadata_version(installed)


def metadata_version(venv: Path) -> str:
    """The version the wheel's metadata declares, read from its dist-info folder."""
    (info,) = (venv / "lib" / "python3.11" / "site-packages").glob("medlake-*.dist-info")
    for line in (info / "METADATA").read_text(encoding="utf-8").splitlines():
        if line.startswith("Version: "):
            return line.removeprefix("Version: ")
    raise AssertionError(f"no version in {info}")
