"""One namespace (issue 9 item 6): the folders install as riskmap.geo, riskmap.api, ...; nothing
called ``api``, ``geo``, ``tiles`` or ``data`` lands on ``sys.path``."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("geo", "api", "tiles", "data")


def test_the_installed_package_exposes_only_the_riskmap_namespace(tmp_path: Path) -> None:
    # -I: isolated mode, neither the working directory nor PYTHONPATH on sys.path
    code = (
        "import importlib.util, riskmap, riskmap.api.cli, riskmap.geo.zones, riskmap.data\n"
        f"print([n for n in {FOLDERS!r} if importlib.util.find_spec(n) is not None])\n"
        "print(riskmap.compute_zones.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    found, module = out.stdout.split("\n")[:2]
    assert found == "[]"
    assert module == "riskmap.geo.zones.engine"


def test_the_wheel_puts_every_folder_under_riskmap(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    wheel = Path(next(WheelBuilder(str(ROOT)).build(directory=str(tmp_path))))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"riskmap"}
    for folder in FOLDERS:
        assert f"riskmap/{folder}/__init__.py" in names
    assert "riskmap/__init__.py" in names
    assert any(n.startswith("riskmap/data/policies/") and n.endswith(".yaml") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "riskmap = riskmap.api.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
