"""Maps for notebooks (riskmap.tiles.notebook): one page that needs no network, whatever the
data's names hold."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pydeck as pdk
import pytest

import riskmap
from riskmap.tiles.deck import DECK_BUNDLE

HOSTILE = "</script><script>window.__xss=1</script><!--"


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.attrs: list[tuple[str, dict[str, str | None]]] = []
        self._in: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs.append((tag, dict(attrs)))
        if tag == "script":
            self._in, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in is not None:
            self.scripts.append((self._in, "".join(self._text)))
            self._in = None


def _deck(name: str) -> pdk.Deck:
    square = [[[114.3, 30.5], [114.31, 30.5], [114.31, 30.51], [114.3, 30.51], [114.3, 30.5]]]
    data = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": square},
                "properties": {"name": name},
            }
        ],
    }
    layer = pdk.Layer("GeoJsonLayer", data=data, id="squares", get_fill_color=[200, 0, 0, 120])
    view = pdk.ViewState(longitude=114.305, latitude=30.505, zoom=12)
    return pdk.Deck(layers=[layer], initial_view_state=view, map_style=None, map_provider=None)


def test_a_page_needs_no_network_and_keeps_names_as_data() -> None:
    m = riskmap.show_deck(_deck(HOSTILE), title=HOSTILE, legend=[(HOSTILE, "#c0392b")], height=320)
    p = _Scripts()
    p.feed(m.html)
    # three scripts: deck.gl inline, the deck as JSON, the few lines that draw it
    assert len(p.scripts) == 3
    (bundle_attrs, bundle), (json_attrs, config), (_, draw) = p.scripts
    assert bundle == Path(DECK_BUNDLE).read_text(encoding="utf-8")
    assert json_attrs.get("type") == "application/json"
    assert "createDeck" in draw and "window.__xss" not in draw
    # the hostile name is data in the JSON block, read back as it was
    deck = json.loads(config)["deck"]
    assert deck["layers"][0]["data"]["features"][0]["properties"]["name"] == HOSTILE
    assert deck.get("mapStyle") is None
    # no tag loads anything
    for tag, attrs in p.attrs:
        assert "src" not in attrs and "href" not in attrs, (tag, attrs)
    rest = m.html.replace(bundle, "")
    assert not re.search(r"https?://", rest)
    # the title and legend show the name as text
    assert html.escape(HOSTILE) in rest
    assert "height: 320px" in m._repr_html_()


def test_a_layer_whose_data_is_a_url_is_refused() -> None:
    layer = pdk.Layer("GeoJsonLayer", data="https://example.org/zones.geojson", id="remote")
    deck = pdk.Deck(layers=[layer], map_style=None, map_provider=None)
    with pytest.raises(ValueError, match="layer 'remote'.*is a URL"):
        riskmap.show_deck(deck)
