"""Reading a situation report page in tests (imported by the report tests, never through
conftest): the text of each element with an id, the rows of each table, the tags and
attributes the page holds."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


class ReportPage(HTMLParser):
    """``text[id]``: the text of the element with that id; ``tables[id]``: its rows (a list
    of cell texts per ``tr``; a table without id takes its section's id); ``tags``: every
    start tag as (tag, attributes); ``style``: the content of the style block."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.style = ""
        self._open: list[tuple[str, str | None]] = []  # (tag, id)
        self._buf: dict[str, list[str]] = {}
        self._section: str | None = None
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_style = False
        self.feed(page)
        self.close()
        self.text = {k: re.sub(r"\s+", " ", "".join(v)).strip() for k, v in self._buf.items()}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "style":
            self._in_style = True
        if tag == "section":
            self._section = a.get("id")
        if tag == "table":
            self._table = a.get("id") or self._section
            self.tables.setdefault(self._table or "", [])
        if tag == "tr":
            self._row = []
        if tag in ("td", "th"):
            self._cell = []
        if tag in VOID:
            return
        self._open.append((tag, a.get("id")))
        if a.get("id"):
            self._buf.setdefault(a["id"] or "", [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.tables[self._table or ""].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None
        while self._open:
            t, _ = self._open.pop()
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
            return
        for _, i in self._open:
            if i:
                self._buf[i].append(data)
        if self._cell is not None:
            self._cell.append(data)

    def images(self) -> dict[str, bytes]:
        """The decoded ``data:`` PNG of each image, by id."""
        out = {}
        for tag, a in self.tags:
            if tag == "img":
                src = a.get("src") or ""
                assert src.startswith("data:image/png;base64,"), src[:60]
                out[a.get("id") or ""] = base64.b64decode(src.split(",", 1)[1])
        return out

    def csp(self) -> str:
        found = [
            a.get("content") or ""
            for t, a in self.tags
            if t == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy"
        ]
        assert len(found) == 1, found
        return found[0]

    def style_hash(self) -> str:
        return "sha256-" + base64.b64encode(hashlib.sha256(self.style.encode()).digest()).decode()
