"""The report as one self-contained HTML page: tables and figures (PNG embedded as base64), CSS inline, no
script or font from the network, so it opens from the file system anywhere.

An inline script sets, after the load event, `document.body.dataset.images` to the number of images that decoded
(`complete && naturalWidth > 0`) and `dataset.total` to the number of images, so a headless browser's DOM dump
shows whether every figure loaded.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Sequence

from core.io import write_text_atomic
from harness.paper_tables import MISSING, Table
from harness.plots import Figure

CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1.5em; color: #1a1a1a; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; margin-top: 1.6em; }
.scope { font-size: 0.82em; color: #444; margin: 0.15em 0; }
.mark { color: #a00; font-weight: bold; }
.notes { font-size: 0.8em; color: #444; margin-top: 0.4em; padding-left: 1.2em; }
.wrap { overflow-x: auto; }
table.booktabs { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; border-top: 2px solid #000;
                 border-bottom: 2px solid #000; }
table.booktabs th { border-bottom: 1px solid #000; padding: 4px 7px; text-align: right; vertical-align: bottom;
                   max-width: 9em; }
table.booktabs td { padding: 3px 7px; text-align: right; white-space: nowrap; }
table.booktabs .text { text-align: left; white-space: normal; }
table.booktabs tr.rule td { border-top: 1px solid #000; }
figure { margin: 1.2em 0; } figure img { max-width: min(100%, 1000px); height: auto; }
figcaption { font-size: 0.85em; color: #333; max-width: 900px; }
.skipped { font-size: 0.9em; color: #a05a00; }
nav a { margin-right: 1em; font-size: 0.9em; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  document.body.dataset.total = String(images.length);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.images = String(loaded.length);
});
"""


def table_html(table: Table) -> str:
    """`table` as a booktabs-styled HTML table with its scope lines above and its notes below."""
    e = html.escape
    head = "".join(f'<th class="{"text" if j < table.text_columns else ""}">{e(c)}</th>'
                   for j, c in enumerate(table.columns))
    rows = []
    for i, row in enumerate(table.rows):
        cells = []
        for j, c in enumerate(row):
            text = f"<b>{e(c)}</b>" if (i, j) in table.bold and c != MISSING else e(c)
            cells.append(f'<td class="{"text" if j < table.text_columns else ""}">{text}</td>')
        rows.append(f'<tr class="{"rule" if i in table.rules else ""}">{"".join(cells)}</tr>')
    scope = "".join(f'<p class="scope{" mark" if s.startswith("MIXED") else ""}">{e(s)}</p>' for s in table.scope)
    notes = "".join(f"<li>{e(n)}</li>" for n in table.notes)
    return (f'<section id="{e(table.key)}"><h3>{e(table.title)}</h3>{scope}<div class="wrap">'
            f'<table class="booktabs" data-table="{e(table.key)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div><ul class="notes">{notes}</ul></section>')


def figure_html(figure: Figure) -> str:
    """`figure` with its PNG embedded, or its note where it was not drawn."""
    e = html.escape
    note = f'<p class="skipped">{e(figure.note)}</p>' if figure.note else ""
    if figure.png is None:
        return f'<section id="{e(figure.key)}"><h3>{e(figure.title)}</h3>{note}</section>'
    data = base64.b64encode(Path(figure.png).read_bytes()).decode()
    return (f'<section id="{e(figure.key)}"><h3>{e(figure.title)}</h3><figure>'
            f'<img alt="{e(figure.title)}" src="data:image/png;base64,{data}">'
            f'<figcaption>{e(figure.caption)}</figcaption></figure>{note}</section>')


def write_html(path: Path, title: str, intro: Sequence[str], tables: Sequence[Table],
               figures: Sequence[Figure]) -> Path:
    """Write the page to `path` (atomically): title, intro lines, a table of contents, the tables, the figures."""
    e = html.escape
    nav = " ".join(f'<a href="#{e(x.key)}">{e(x.title)}</a>' for x in [*tables, *figures])
    body = (f"<h1>{e(title)}</h1>" + "".join(f'<p class="scope">{e(line)}</p>' for line in intro)
            + f"<nav>{nav}</nav><h2>Tables</h2>" + "".join(table_html(t) for t in tables)
            + "<h2>Figures</h2>" + "".join(figure_html(f) for f in figures))
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{CSS}</style></head><body>{body}<script>{SCRIPT}</script></body></html>\n")
    write_text_atomic(path, page)
    return path
