"""Every notebook's code cells run top to bottom without error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    ns: dict[str, object] = {"__name__": "__notebook__"}
    ran = 0
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        try:
            exec(compile(src, f"{path.name}[cell {i}]", "exec"), ns)
        except Exception as e:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{path.name} cell {i} failed: {e!r}")
        ran += 1
    assert ran > 0, f"{path.name} has no code cells"


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS
