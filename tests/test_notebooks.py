"""The analysts' notebooks (notebooks/*.ipynb).

Each notebook runs top to bottom in a Jupyter kernel (nbclient) on a temporary copy, with no
error; every cell that shows a plot shows an image; every map is a self-contained page that
needs no network (deck.gl inline, no URL of a script, style, tile or CDN) and draws in
Chromium with every request refused. The saved notebooks carry no outputs, begin with the
marked settings cell and use only ``import riskmap``. ``04-korea`` needs the Korean data in
../shared (skipped with the reason outside CI when it is missing, a failure in CI); without it,
the notebook says so and stops at its data cell, which is checked anywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from riskmap.tiles.deck import DECK_BUNDLE
from tests.browser import CHROMIUM, playwright
from tests.helpers import KOREA, REPO, need_shared

try:  # the test extra installs them (make install)
    import nbclient
    import nbformat
except ImportError as missing:  # a failure in CI, a skip with the reason elsewhere
    if os.environ.get("CI"):
        raise
    pytest.skip(f"{missing} (`make install` installs the test extra)", allow_module_level=True)

NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
NAMES = [p.stem for p in NOTEBOOKS]
NEEDS_KOREA = {"04-korea"}
ARTIFACTS = REPO / "var" / "test-artifacts"
URL = re.compile(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", re.I)
KERNEL = "riskmap-test"

# executed notebooks of this session: name -> (notebook, seconds)
_RUNS: dict[str, tuple[Any, float]] = {}


def test_the_four_notebooks_are_there() -> None:
    assert NAMES == ["01-tour", "02-rules", "03-early-warning", "04-korea"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_saved_without_outputs_with_the_marked_cell_and_the_public_surface(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    for i, cell in enumerate(code):
        assert cell.outputs == [], f"{path.name}: code cell {i} was saved with outputs"
        assert cell.execution_count is None, f"{path.name}: code cell {i} has an execution count"
        assert "execution" not in cell.metadata, f"{path.name}: code cell {i} keeps timings"
        # the public surface only: `import riskmap`, never its modules
        assert not re.search(r"^\s*(from|import)\s+riskmap\.", cell.source, re.M), (
            f"{path.name}: code cell {i} imports a riskmap module, not the public surface"
        )
    assert "widgets" not in nb.metadata
    # the first code cell is the marked settings cell: a temporary store unless DB is set
    first = code[0].source
    assert "settings: the only cell to edit" in first
    assert re.search(r"^DB = None\s+# set a path", first, re.M), first
    assert any("import riskmap" in c.source for c in code)


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A kernel spec of this interpreter (so the notebooks run with this virtual
    environment's riskmap whatever kernels the machine has), found through JUPYTER_PATH."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "riskmap tests", "language": "python"})
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root))
        mp.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        yield root


def _client(path: Path, workdir: Path) -> tuple[Any, Any]:
    """A client that runs a copy of the notebook in ``workdir`` (its working directory)."""
    copy = workdir / path.name
    shutil.copy(path, copy)
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=900, kernel_name=KERNEL, resources={"metadata": {"path": str(workdir)}}
    )
    return nb, client


def _execute(path: Path, workdir: Path) -> tuple[Any, float]:
    nb, client = _client(path, workdir)
    start = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - start


def _run(name: str, workdir: Path) -> tuple[Any, float]:
    if name not in _RUNS:
        _RUNS[name] = _execute(NOTEBOOK_DIR / f"{name}.ipynb", workdir)
    return _RUNS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_and_shows_its_plots_and_offline_maps(
    name: str, kernel_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name in NEEDS_KOREA:
        monkeypatch.setenv("RISKMAP_KOREA_DATA", str(need_shared(KOREA)))
    nb, seconds = _run(name, tmp_path)
    print(f"{name}: executed in {seconds:.1f} s")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a cell did not run"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    plots = [c for c in code if "plt.show()" in c.source]
    maps = [c for c in code if re.search(r"\brm\.map\(", c.source)]
    assert plots and maps, f"{name} shows no plot or no map"
    for cell in plots:
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert images, f"{name}: a plotting cell shows no image:\n{cell.source[:200]}"
    for cell in maps:
        pages = [
            _map_page(o["data"]["text/html"])
            for o in cell.outputs
            if "text/html" in o.get("data", {})
        ]
        assert len(pages) == 1, f"{name}: a map cell shows no map:\n{cell.source[:200]}"
        _assert_offline(pages[0])


def test_korea_notebook_says_the_data_is_missing_and_stops(
    kernel_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = tmp_path / "no-such-folder"
    monkeypatch.setenv("RISKMAP_KOREA_DATA", str(absent))
    nb, client = _client(NOTEBOOK_DIR / "04-korea.ipynb", tmp_path)
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    ran = [c for c in code if c.execution_count]
    stop = ran[-1]
    assert "find_korea" in stop.source  # it stopped at the data cell, nothing after it ran
    assert all(c.outputs == [] for c in code[len(ran) :])
    said = "".join(o.get("text", "") for o in stop.outputs if o.output_type == "stream")
    assert "The Korean data is not available" in said and str(absent) in said, said
    assert "RISKMAP_KOREA_DATA" in said
    (error,) = [o for o in stop.outputs if o.output_type == "error"]
    assert error.ename == "KoreaDataMissing"
    # its message only, no stack trace
    assert error.traceback == [f"KoreaDataMissing: {error.evalue}"]


# -- the maps ------------------------------------------------------------------------------


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of every <script> and <style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.blocks: list[tuple[str, dict[str, str | None], str]] = []
        self._open: tuple[str, dict[str, str | None]] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._open, self._text = (tag, dict(attrs)), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == self._open[0]:
            self.blocks.append((*self._open, "".join(self._text)))
            self._open = None


def _parse(text: str) -> _Tags:
    p = _Tags()
    p.feed(text)
    p.close()
    return p


def _map_page(output_html: str) -> str:
    """The page of a map output: the srcdoc of its one iframe (which has no src)."""
    frames = [a for t, a in _parse(output_html).tags if t == "iframe"]
    assert len(frames) == 1, output_html[:300]
    assert "src" not in frames[0]
    page = frames[0].get("srcdoc")
    assert page, "the map's iframe has no srcdoc"
    return page


def _assert_offline(page: str) -> None:
    """The page loads nothing: no external script, style sheet, image, tile or CDN URL;
    deck.gl (pydeck's bundle) is inline, the deck's data inline."""
    parsed = _parse(page)
    for tag, attrs in parsed.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed"), tag
        for key, value in attrs.items():
            assert key not in ("src", "href", "srcset", "data", "poster"), (tag, key, value)
            assert not URL.search(value or ""), (tag, key, value)
    bundle = Path(DECK_BUNDLE).read_text(encoding="utf-8")
    scripts = [text for tag, _, text in parsed.blocks if tag == "script"]
    assert sum(text == bundle for text in scripts) == 1, "deck.gl's bundle is not inline"
    # outside the bundle (whose code names URLs it never fetches here), no URL at all
    rest = [text for _, _, text in parsed.blocks if text != bundle]
    rest.append(page.replace(bundle, ""))
    for text in rest:
        assert not URL.search(text), URL.search(text)
        assert "@import" not in text and "url(" not in text
    config = next(
        json.loads(text)
        for tag, attrs, text in parsed.blocks
        if tag == "script" and attrs.get("type") == "application/json"
    )
    layers = config["deck"]["layers"]
    assert layers and all(isinstance(layer["data"], (list, dict)) for layer in layers)
    assert config["deck"].get("mapStyle") is None


@pytest.mark.slow
def test_a_notebook_map_draws_in_chromium_with_no_network(kernel_env: Path, tmp_path: Path) -> None:
    sync_playwright = playwright()  # a skip outside CI when it or Chromium is missing
    nb, _ = _run("01-tour", tmp_path)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "rm.map(" in c.source)
    page = _map_page(
        next(o for o in cell.outputs if "text/html" in o.get("data", {}))["data"]["text/html"]
    )
    config = next(
        json.loads(text)
        for tag, attrs, text in _parse(page).blocks
        if tag == "script" and attrs.get("type") == "application/json"
    )
    n_communities = len(
        next(la for la in config["deck"]["layers"] if la["id"] == "communities")["data"]["features"]
    )
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            tab = browser.new_page(viewport={"width": 900, "height": 600})
            tab.route("**/*", lambda route: (requests.append(route.request.url), route.abort()))
            tab.set_content(page)
            tab.wait_for_function(
                "() => window.riskmapDeck && riskmapDeck.isInitialized &&"
                " riskmapDeck.layerManager.getLayers().length > 0 &&"
                " riskmapDeck.layerManager.getLayers().every(l => l.isLoaded)",
                timeout=60_000,
            )
            drawn = tab.evaluate(
                "() => riskmapDeck.layerManager.getLayers()"
                ".find(l => l.id === 'communities').props.data.features.length"
            )
            # a community at the view's centre can be picked: the polygons were drawn
            picked = tab.evaluate(
                "() => { const o = riskmapDeck.pickObject({x: 450, y: 300,"
                " layerIds: ['communities']}); return o && o.object.properties.id; }"
            )
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(ARTIFACTS / "notebook-01-tour-map.png"))
        finally:
            browser.close()
    assert requests == []
    assert drawn == n_communities > 0
    assert picked is not None
