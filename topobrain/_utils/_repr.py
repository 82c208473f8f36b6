"""Rich display of results in Jupyter: a result with ``to_frame`` shows as an HTML table.

Notebooks call ``_repr_html_`` when a cell's value has one; terminals keep ``__repr__``.
"""

from __future__ import annotations

import html

__all__ = ["FrameReprMixin", "frame_html"]

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


class FrameReprMixin:
    """Adds ``_repr_html_`` to a result class that defines ``to_frame()``."""

    def _repr_html_(self) -> str:
        return frame_html(repr(self), self.to_frame())
