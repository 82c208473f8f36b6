"""One self-contained HTML page per run: what a reader looks at first, first.

The page leads with the summary sentences, then the figures (the main figure, then
Moran's I against its null by layer), and keeps the wide tables in collapsible sections
that show a few columns by default, sort on a click on their header and link to the
CSV files that hold every row and column. Images are embedded as base64 data URIs and
the sorting is a few lines of inline JavaScript, so the page opens anywhere, offline,
with no other file.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ._utils._io import atomic_write_text
from ._utils._repr import image_html

__all__ = ["Section", "Table", "render_report", "write_report"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.45;overflow-wrap:anywhere}
h1{font-size:1.5em;border-bottom:2px solid #ccc;padding-bottom:.3em;margin-top:0}
h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0 1.2em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;white-space:nowrap}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2";font-size:.7em}
table.sortable th[aria-sort=descending]::after{content:" \\25BC";font-size:.7em}
table.compact .extra{display:none}
figure{margin:1em 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555} .settings td{text-align:left;white-space:normal}
ul.findings li{margin:.3em 0} .note{color:#666;font-size:.85em}
details{margin:.6em 0;border:1px solid #e4e4e4;border-radius:4px;padding:.3em .8em}
details>summary{cursor:pointer;font-weight:600}
details .scroll{overflow-x:auto;max-width:100%}
label.columns{font-size:.85em;color:#444;margin-left:.5em}
"""

# Sort a table on a click on a header cell (numbers as numbers, "–" last) and show or
# hide its extra columns. No external script: the report stays one file.
_JS = """
(function(){
function key(cell){var t=cell.textContent.trim();if(t===''||t==='\\u2013')return null;
var n=Number(t.replace(/,/g,''));return isNaN(n)?t.toLowerCase():n;}
function cmp(a,b){if(a===b)return 0;if(a===null)return 1;if(b===null)return -1;
if(typeof a===typeof b)return a<b?-1:1;return typeof a==='number'?-1:1;}
document.querySelectorAll('table.sortable').forEach(function(table){
 var heads=table.tHead?table.tHead.rows[0].cells:[];
 Array.prototype.forEach.call(heads,function(th,col){
  th.setAttribute('role','button');th.tabIndex=0;
  function sort(){var dir=th.getAttribute('aria-sort')==='ascending'?'descending':'ascending';
   Array.prototype.forEach.call(heads,function(h){h.removeAttribute('aria-sort');});
   th.setAttribute('aria-sort',dir);var body=table.tBodies[0];
   var rows=Array.prototype.slice.call(body.rows);
   rows.sort(function(r1,r2){var a=key(r1.cells[col]),b=key(r2.cells[col]);
    if(a===null||b===null)return cmp(a,b);var c=cmp(a,b);
    return dir==='ascending'?c:-c;});
   rows.forEach(function(r){body.appendChild(r);});}
  th.addEventListener('click',sort);
  th.addEventListener('keydown',function(e){if(e.key==='Enter')sort();});});});
document.querySelectorAll('input.toggle-columns').forEach(function(box){
 box.addEventListener('change',function(){var t=document.getElementById(box.dataset.table);
  t.classList.toggle('compact',!box.checked);});});
})();
"""


@dataclass(frozen=True)
class Table:
    """A table of the report, shown collapsed.

    Parameters
    ----------
    caption : str
        The line shown on the collapsed section.
    frame : pandas.DataFrame
        Every row and column; the page shows the first ``max_rows`` rows.
    columns : sequence of str, optional
        Columns shown by default (the others behind a "show all columns" switch);
        default all.
    csv : str, optional
        Path of the CSV that holds the whole table, relative to the report (a link).
    max_rows : int, default=60
    """

    caption: str
    frame: pd.DataFrame
    columns: Sequence[str] | None = None
    csv: str | None = None
    max_rows: int = 60


@dataclass
class Section:
    """A report section: a heading, sentences, figures and tables.

    Parameters
    ----------
    heading : str
    sentences : list of str
        Plain-sentence findings, shown first.
    tables : list of Table or (caption, DataFrame)
        Shown after the figures, each collapsed.
    figures : list of (caption, path)
        PNG (or other image) files, embedded in the page.
    """

    heading: str
    sentences: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    figures: list = field(default_factory=list)


def _as_table(entry) -> Table:
    if isinstance(entry, Table):
        return entry
    try:
        caption, frame = entry
    except (TypeError, ValueError):
        raise TypeError("a section's tables must be Table objects or (caption, DataFrame) "
                        f"pairs; got {type(entry).__name__}.") from None
    return Table(str(caption), frame)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    if isinstance(v, float):
        return html.escape(f"{v:.4g}")
    return html.escape(str(v))


def _table(tab: Table, table_id: str) -> str:
    df = tab.frame
    shown = df.head(tab.max_rows)
    default = list(df.columns) if tab.columns is None else \
        [c for c in tab.columns if c in df.columns]
    extra = [c for c in df.columns if c not in default]
    cls = lambda c: ' class="extra"' if c in extra else ""  # noqa: E731
    head = "".join(f"<th{cls(c)} scope=\"col\">{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in shown.itertuples(index=False, name=None):
        body.append("<tr>" + "".join(f"<td{cls(c)}>{_cell(v)}</td>"
                                     for c, v in zip(df.columns, row, strict=True)) + "</tr>")
    compact = " compact" if extra else ""
    out = (f'<div class="scroll"><table id="{table_id}" class="sortable{compact}">'
           f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
    notes = []
    if extra:
        notes.append(f'<label class="columns"><input type="checkbox" class="toggle-columns" '
                     f'data-table="{table_id}"> show all {len(df.columns)} columns</label>')
    if len(df) > tab.max_rows:
        notes.append(f"First {tab.max_rows} of {len(df)} rows.")
    if tab.csv:
        notes.append(f'Every row and column: <a href="{html.escape(tab.csv, quote=True)}">'
                     f"{html.escape(tab.csv)}</a>.")
    if notes:
        out += '<p class="note">' + " ".join(notes) + "</p>"
    return out


def render_report(*, title: str, settings: dict, sections: list[Section]) -> str:
    """The report as an HTML string.

    Each section shows its sentences, then its figures, then its tables collapsed;
    the settings come last, collapsed too. Put the sections in reading order: the
    summary and the main figures first.

    Parameters
    ----------
    title : str
    settings : dict
        The run's settings (shown as a two-column table).
    sections : list of Section

    Returns
    -------
    str
        A complete HTML document with inline CSS, JavaScript and images.

    Examples
    --------
    >>> import pandas as pd
    >>> page = render_report(title="demo", settings={"seed": 0}, sections=[
    ...     Section("Main results", sentences=["3 of 4 units are selective."],
    ...             tables=[Table("Units", pd.DataFrame({"unit": [0, 1], "t": [2.5, -1.0]}),
    ...                           columns=["unit"], csv="units.csv")])])
    >>> page.startswith("<!DOCTYPE html>"), "<details>" in page, 'href="units.csv"' in page
    (True, True, True)
    """
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    n_tables = 0
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.heading)}</h2>")
        if sec.sentences:
            parts.append('<ul class="findings">' + "".join(
                f"<li>{html.escape(s)}</li>" for s in sec.sentences) + "</ul>")
        for caption, path in sec.figures:
            parts.append(f"<figure>{image_html(path)}<figcaption>{html.escape(caption)}"
                         f"</figcaption></figure>")
        for entry in sec.tables:
            tab = _as_table(entry)
            n_tables += 1
            rows = f"{len(tab.frame)} row{'s' if len(tab.frame) != 1 else ''}"
            parts.append(f"<details><summary>{html.escape(tab.caption)} "
                         f'<span class="note">({rows})</span></summary>'
                         f"{_table(tab, f'table-{n_tables}')}</details>")
    parts.append('<h2>Settings</h2><details><summary>Settings of this run</summary>'
                 '<table class="settings">')
    for k, v in settings.items():
        parts.append(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>")
    parts.append(f"</table></details><script>{_JS}</script></body></html>")
    return "\n".join(parts)


def write_report(path, *, title: str, settings: dict, sections: list[Section]) -> Path:
    """Write the report atomically; returns its path."""
    return atomic_write_text(path, render_report(title=title, settings=settings,
                                                 sections=sections))
