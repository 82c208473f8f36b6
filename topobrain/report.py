"""One self-contained HTML page per run: settings, plain-sentence results, tables, figures.

Images are embedded as base64 data URIs, so the page opens anywhere with no other file.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ._utils._io import atomic_write_text

__all__ = ["Section", "render_report", "write_report"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ccc;padding-bottom:.3em}
h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0 1.2em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555} .settings td{text-align:left}
ul.findings li{margin:.3em 0} .note{color:#666;font-size:.85em}
.scroll{overflow-x:auto;max-width:100%}
"""


@dataclass
class Section:
    """A report section: a heading, sentences, tables and figures (PNG paths)."""

    heading: str
    sentences: list = field(default_factory=list)
    tables: list = field(default_factory=list)  # (caption, DataFrame)
    figures: list = field(default_factory=list)  # (caption, path to PNG)


_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
         ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}


def _img(path) -> str:
    path = Path(path)
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"figure {path} must be an image file ({', '.join(_MIME)}); got "
                         f"suffix {path.suffix!r}. Pass the PNG that save_figure wrote.")
    if not path.is_file():
        raise FileNotFoundError(f"figure {path} does not exist: save the figure first "
                                f"(plotting.save_figure) and pass its .png path.")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:{mime};base64,{data}">'


def _table(df: pd.DataFrame, max_rows: int = 60) -> str:
    shown = df.head(max_rows)
    out = shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0,
                        na_rep="–", escape=True)
    if len(df) > max_rows:
        out += f'<p class="note">First {max_rows} of {len(df)} rows; the CSV has all.</p>'
    return out


def render_report(*, title: str, settings: dict, sections: list[Section]) -> str:
    """The report as an HTML string."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.heading)}</h2>")
        if sec.sentences:
            parts.append('<ul class="findings">' + "".join(
                f"<li>{html.escape(s)}</li>" for s in sec.sentences) + "</ul>")
        for caption, df in sec.tables:
            parts.append(f"<h3>{html.escape(caption)}</h3>"
                         f"<div class=\"scroll\">{_table(df)}</div>")
        for caption, path in sec.figures:
            parts.append(f"<figure>{_img(path)}<figcaption>{html.escape(caption)}"
                         f"</figcaption></figure>")
    parts.append("<h2>Settings</h2><table class=\"settings\">")
    for k, v in settings.items():
        parts.append(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def write_report(path, *, title: str, settings: dict, sections: list[Section]) -> Path:
    """Write the report atomically; returns its path."""
    return atomic_write_text(path, render_report(title=title, settings=settings,
                                                 sections=sections))
