"""Rich display of results in Jupyter: a result with ``to_frame`` shows as an HTML table.

Notebooks call ``_repr_html_`` when a cell's value has one; terminals keep ``__repr__``.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

__all__ = ["FrameReprMixin", "frame_html", "image_html"]

MAX_ROWS = 20


def frame_html(title: str, frame, *, max_rows: int = MAX_ROWS) -> str:
    """A result's one-screen summary above the first rows of its tidy table.

    Parameters
    ----------
    title : str
        The result's ``repr`` (escaped, shown preformatted).
    frame : pandas.DataFrame
    max_rows : int, default=20

    Returns
    -------
    str
        An HTML fragment.
    """
    n = len(frame)
    table = frame.head(max_rows).to_html(index=False, border=0, na_rep="–",
                                         float_format=lambda v: f"{v:.4g}", escape=True)
    note = (f"<p style='font-size:.85em;color:#666'>First {max_rows} of {n} rows; "
            "<code>.to_frame()</code> has all.</p>") if n > max_rows else ""
    return (f"<div class='topobrain-result'><pre style='margin:0 0 .4em'>"
            f"{html.escape(title)}</pre>{table}{note}</div>")


_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
         ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}


def image_html(path) -> str:
    """An ``<img>`` tag holding the image file itself (a base64 data URI).

    Parameters
    ----------
    path : path-like
        A PNG, SVG, JPEG, GIF or WebP file.

    Returns
    -------
    str
    """
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


class FrameReprMixin:
    """Adds ``_repr_html_`` to a result class that defines ``to_frame()``."""

    def _repr_html_(self) -> str:
        return frame_html(repr(self), self.to_frame())
