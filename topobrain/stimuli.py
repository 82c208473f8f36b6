"""Stimulus sets: a validated tidy table of items, loaders, bundled sets and contrasts.

A :class:`StimulusSet` holds one row per item with the columns ``item_id``, ``condition``
and ``text``, plus any extra columns (``run``, ``category``, ``zipf`` ...). It is read from
and written to TSV (events-table style) or CSV, loaded from the Fedorenko lab's langloc
layout, or found by name among the sets the project bundles (``"langloc"``, ``"swjn"``,
``"noun-verb"``, ``"noun-verb-phrases"``). Contrasts over its conditions are strings
(``"S - N"``, ``"verb - noun"``, ``"0.5*J + 0.5*W - N"``) parsed by
:func:`topobrain.contrast.parse_contrast`, re-exported here.

Examples
--------
>>> from topobrain.stimuli import load_stimuli
>>> stim = load_stimuli("langloc")
>>> stim.conditions
['S', 'N']
>>> stim.contrast("S - N").weights
{'S': 1.0, 'N': -1.0}
>>> concrete = load_stimuli("noun-verb").where(category="concrete")
>>> sorted(set(concrete.to_frame()["category"]))
['concrete']
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ._utils._hashing import hash_bytes
from ._utils._io import atomic_write_text
from ._utils._validation import suggest
from .contrast import Contrast, parse_contrast

__all__ = [
    "StimulusSet",
    "Contrast",
    "parse_contrast",
    "load_stimuli",
    "read_table",
    "read_langloc",
    "available_stimuli",
    "bundled_path",
    "REQUIRED_COLUMNS",
    "FUNCTION_WORDS",
    "nonword_lists",
    "jabberwocky",
    "word_lists",
]

#: The columns every stimulus table has, in this order.
REQUIRED_COLUMNS = ("item_id", "condition", "text")

_LANGLOC_GLOB = "langloc_fmri_run*_stim_set*.csv"
_LANGLOC_NAME = re.compile(r"langloc_fmri_run(\d+)_stim_set(\d+)\.csv$")


def _short(value, limit: int = 40) -> str:
    """``repr(value)``, cut to about ``limit`` characters (a huge item stays one line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...' ({len(str(value))} chars)"


def _names(values, limit: int = 12) -> str:
    """A list of names for a message: each shortened, at most ``limit`` of them."""
    shown = ", ".join(_short(v) for v in list(values)[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def _rows(index: Iterable[int], limit: int = 5) -> str:
    """Rows as people count them: 1-based data rows (in a file, row i is on line i + 1)."""
    idx = [int(i) for i in index]
    shown = ", ".join(str(i + 1) for i in idx[:limit])
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"row{'s' if len(idx) > 1 else ''} {shown}{more}"


class StimulusSet:
    """A validated, read-only table of stimulus items.

    Parameters
    ----------
    table : pandas.DataFrame or mapping of str to sequence
        One row per item with the columns ``condition`` and ``text`` (strings) and,
        optionally, ``item_id`` (unique; ``"1"``, ``"2"`` ... when absent) and any extra
        columns. The caller's table is copied, never modified.
    name : str, optional
        A short name for reports (the bundled set's name, the file's stem).

    Raises
    ------
    TypeError
        If ``table`` is not a DataFrame or a mapping of columns.
    ValueError
        If a required column is missing, a text is empty, an id is repeated, text or
        condition holds stray whitespace, or a condition has fewer than 2 items. Each
        message names the rows or column and the fix.

    Notes
    -----
    Rows are numbered from 1 in the messages, in the order of the table (for a file
    with a header line, data row *i* is on line *i* + 1).

    Examples
    --------
    >>> s = StimulusSet({"condition": ["S", "S", "N", "N"],
    ...                  "text": ["a cat sat", "dogs ran", "blor fep", "nif tarp"]})
    >>> s.conditions, s.counts
    (['S', 'N'], {'S': 2, 'N': 2})
    >>> s.contrast("S - N").vector(s.conditions)
    array([ 1., -1.])
    """

    __slots__ = ("_table", "_name", "_identity")

    def __init__(self, table, name: str | None = None):
        if isinstance(table, StimulusSet):
            name = table.name if name is None else name
            table = table._table
        if isinstance(table, Mapping):
            table = pd.DataFrame(dict(table))
        if not isinstance(table, pd.DataFrame):
            raise TypeError(
                f"A StimulusSet is built from a pandas DataFrame (or a dict of columns); got "
                f"{type(table).__name__}. Use load_stimuli(path) to read a file."
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None; got {type(name).__name__}.")
        object.__setattr__(self, "_table", _validate_table(table))
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_identity", None)

    def __setattr__(self, key, value):
        raise AttributeError(
            "A StimulusSet is read-only; build a new one from set.to_frame() instead."
        )

    # ---------------------------------------------------------------- accessors
    @property
    def name(self) -> str | None:
        """The set's name (bundled name or file stem), or None."""
        return self._name

    @property
    def columns(self) -> list[str]:
        """All column names: ``item_id``, ``condition``, ``text``, then the extras."""
        return list(self._table.columns)

    def to_frame(self) -> pd.DataFrame:
        """The table as a new DataFrame (a copy: editing it leaves the set unchanged)."""
        return self._table.copy()

    @property
    def item_ids(self) -> list[str]:
        """Item identifiers, one per item, in table order."""
        return self._table["item_id"].tolist()

    @property
    def texts(self) -> list[str]:
        """Item texts, one per item, in table order."""
        return self._table["text"].tolist()

    @property
    def labels(self) -> np.ndarray:
        """ndarray of shape (n_items,), dtype object: the condition of each item."""
        return self._table["condition"].to_numpy(dtype=object, copy=True)

    @property
    def conditions(self) -> list[str]:
        """The distinct conditions in order of first appearance."""
        return list(dict.fromkeys(self._table["condition"]))

    @property
    def counts(self) -> dict:
        """Number of items per condition, in :attr:`conditions` order."""
        vc = self._table["condition"].value_counts()
        return {c: int(vc[c]) for c in self.conditions}

    def column(self, name: str) -> np.ndarray:
        """A copy of one column as an ndarray of shape (n_items,)."""
        self._check_column(name)
        return self._table[name].to_numpy(copy=True)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in self.counts.items())
        extra = [c for c in self._table.columns if c not in REQUIRED_COLUMNS]
        extras = f", extra columns {extra}" if extra else ""
        return (f"<StimulusSet {self._name or 'unnamed'!s}: {len(self)} items ({counts})"
                f"{extras}>")

    def __eq__(self, other) -> bool:
        if not isinstance(other, StimulusSet):
            return NotImplemented
        return self.identity == other.identity

    def __hash__(self) -> int:
        return hash(self.identity)

    @property
    def identity(self) -> str:
        """A stable sha256 hex digest of the table's content (column names, values, order).

        The name does not enter it, so the same items loaded from a TSV, a CSV or a
        bundled name share one identity: a safe cache key for activations.
        """
        if self._identity is None:
            def chunks():
                yield b"topobrain.StimulusSet.v1\x1e"
                for col in self._table.columns:
                    yield str(col).encode("utf-8") + b"\x1f"
                    for value in self._table[col].tolist():
                        yield _canonical(value).encode("utf-8") + b"\x1f"
                    yield b"\x1e"

            object.__setattr__(self, "_identity", hash_bytes(chunks()))
        return self._identity

    # ---------------------------------------------------------------- selection
    def subset(self, conditions, *, name: str | None = None) -> StimulusSet:
        """The items of some conditions, in the original row order.

        Parameters
        ----------
        conditions : str or list of str
            Condition names to keep (each must exist).
        name : str, optional
            Name of the new set (default: this set's name).
        """
        if isinstance(conditions, str):
            conditions = [conditions]
        conditions = list(conditions)
        if not conditions:
            raise ValueError(f"subset() needs at least one condition; the conditions are "
                             f"{self.conditions}.")
        for c in conditions:
            if c not in self.conditions:
                raise ValueError(
                    f"Unknown condition {c!r}; the conditions are {self.conditions}."
                    f"{suggest(c, self.conditions)}"
                )
        keep = self._table["condition"].isin(conditions)
        return StimulusSet(self._table.loc[keep].reset_index(drop=True),
                           name=self._name if name is None else name)

    def where(self, *, name: str | None = None, **columns) -> StimulusSet:
        """The items whose columns equal given values (a list of values means any of them).

        Examples
        --------
        ``stim.where(category="concrete")`` keeps the concrete nouns and verbs of the
        ``noun-verb`` set; ``stim.where(run=[1, 2])`` keeps two runs.
        """
        if not columns:
            raise ValueError("where() needs at least one column=value filter, e.g. "
                             "where(category='concrete').")
        keep = np.ones(len(self), dtype=bool)
        for col, value in columns.items():
            self._check_column(col)
            values = list(value) if isinstance(value, (list, tuple, set, frozenset,
                                                      np.ndarray, pd.Series)) else [value]
            keep &= self._table[col].isin(values).to_numpy()
        if not keep.any():
            raise ValueError(f"No item matches where({_kw(columns)}); the values of "
                             f"{list(columns)[0]!r} are "
                             f"{sorted(map(str, set(self._table[list(columns)[0]])))[:20]}.")
        return StimulusSet(self._table.loc[keep].reset_index(drop=True),
                           name=self._name if name is None else name)

    def contrast(self, expression) -> Contrast:
        """Parse a contrast over this set's conditions (``"S - N"``, ``"verb - noun"``).

        Unknown condition names raise a ValueError that suggests the closest ones.
        """
        return parse_contrast(expression, self.conditions)

    # ---------------------------------------------------------------- writing
    def to_tsv(self, path) -> Path:
        """Write the table as a tab-separated UTF-8 file (no index, no BOM).

        As in BIDS events files, a missing value in an extra column is written ``n/a``
        (and read back as missing). Quotes are written as they are.
        """
        for col in self._table.columns:
            values = self._table[col]
            if values.dtype == object or pd.api.types.is_string_dtype(values):
                bad = np.flatnonzero(values.astype(str).str.contains(r"[\t\n\r]").to_numpy())
                if bad.size:
                    raise ValueError(f"Column {col!r} holds tabs or line breaks at "
                                     f"{_rows(bad)}, which a TSV cannot hold; replace them "
                                     f"or write a CSV with to_csv().")
        return atomic_write_text(path, self._table.to_csv(sep="\t", index=False,
                                                          lineterminator="\n", na_rep="n/a",
                                                          quoting=csv.QUOTE_NONE))

    def to_csv(self, path) -> Path:
        """Write the table as a comma-separated UTF-8 file (no index, no BOM)."""
        return atomic_write_text(path, self._table.to_csv(index=False, lineterminator="\n"))

    def _check_column(self, name) -> None:
        if name not in self._table.columns:
            raise ValueError(f"No column {name!r}; the columns are {self.columns}."
                             f"{suggest(name, self.columns)}")


def _kw(d: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in d.items())


def _canonical(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "\x00NA"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def _validate_table(table: pd.DataFrame) -> pd.DataFrame:
    """Check a candidate stimulus table and return a clean copy (core columns first)."""
    cols = [str(c) for c in table.columns]
    if len(set(cols)) != len(cols):
        dup = sorted({c for c in cols if cols.count(c) > 1})
        raise ValueError(f"The table has repeated column names {_names(dup)}; rename them so "
                         f"that each column appears once.")
    table = table.copy()
    table.columns = cols
    for col in ("condition", "text"):
        if col not in table.columns:
            others = [c for c in cols if c not in REQUIRED_COLUMNS]
            hint = suggest(col, others)
            raise ValueError(
                f"The stimulus table has no {col!r} column; its columns are {_names(cols)}."
                f"{hint} "
                f"Rename yours with columns={{'<your column>': {col!r}}} "
                f"(e.g. load_stimuli(path, columns={{'cond': 'condition', "
                f"'sentence': 'text'}}))."
            )
    n = len(table)
    if n == 0:
        raise ValueError("The stimulus table has no rows; add one row per item.")
    if "item_id" not in table.columns:
        width = len(str(n))
        table.insert(0, "item_id", [f"{i + 1:0{width}d}" for i in range(n)])
    table = table.reset_index(drop=True)

    for col in REQUIRED_COLUMNS:
        values = table[col]
        missing = values.isna().to_numpy()
        if missing.any():
            raise ValueError(
                f"Column {col!r} is empty at {_rows(np.flatnonzero(missing))}; every item "
                f"needs a {col}. Fill those cells or drop those rows."
            )
        bad_type = [i for i, v in enumerate(values) if not isinstance(v, (str, np.str_))]
        if bad_type and col == "text":
            raise ValueError(
                f"Column 'text' must hold strings; {_rows(bad_type)} hold "
                f"{type(values.iloc[bad_type[0]]).__name__} values. Convert them with "
                f"df['text'].astype(str) if that is what you meant."
            )
        table[col] = [str(v) if isinstance(v, (str, np.str_)) else _canonical(v)
                      for v in values]
        strings = table[col]
        empty = np.flatnonzero(strings.str.strip().eq("").to_numpy())
        if empty.size:
            raise ValueError(
                f"Column {col!r} is empty (or only whitespace) at {_rows(empty)}; every item "
                f"needs a {col}. Fill those cells or drop those rows."
            )
        stray = np.flatnonzero((strings.ne(strings.str.strip())
                                | strings.str.contains(r"\s\s|[\t\n\r\f\v]", regex=True)
                                ).to_numpy())
        if stray.size:
            first = stray[0]
            raise ValueError(
                f"Column {col!r} has stray whitespace (leading, trailing, doubled, tabs or "
                f"line breaks) at {_rows(stray)}, e.g. {_short(strings.iloc[first])}. Clean "
                f"it with "
                f"' '.join(text.split()), or load with clean=True."
            )

    ids = table["item_id"]
    dup_mask = ids.duplicated(keep=False).to_numpy()
    if dup_mask.any():
        dups = list(dict.fromkeys(ids[dup_mask]))
        raise ValueError(
            f"Column 'item_id' repeats {len(dups)} id(s), e.g. {_short(dups[0])} at "
            f"{_rows(np.flatnonzero(ids.eq(dups[0]).to_numpy()))}. Each item needs a unique "
            f"id: renumber them, or drop the item_id column to number items 1..n."
        )

    counts = table["condition"].value_counts()
    small = [c for c in dict.fromkeys(table["condition"]) if counts[c] < 2]
    if small:
        raise ValueError(
            f"Condition(s) {_names(small)} have fewer than 2 items "
            f"({_rows(np.flatnonzero(table['condition'].isin(small).to_numpy()))}); "
            f"a contrast needs at least 2 items per condition. Add items, merge the "
            f"condition into another, or drop it."
        )
    extra = [c for c in table.columns if c not in REQUIRED_COLUMNS]
    return table[list(REQUIRED_COLUMNS) + extra]


def _clean_table(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    for col in table.columns:
        if table[col].dtype == object or pd.api.types.is_string_dtype(table[col]):
            table[col] = [" ".join(v.split()) if isinstance(v, str) else v
                          for v in table[col]]
    return table


# -------------------------------------------------------------------- file reading
#: Byte-order marks and the codec that reads the text after them (UTF-32 first: its
#: little-endian mark begins with UTF-16's).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))


def _check_encoding(encoding) -> str:
    """The codec's canonical name (``"utf-8"`` for None); one line for an unknown one."""
    if encoding is None:
        return "utf-8"
    if not isinstance(encoding, str):
        raise TypeError(f"encoding must be a string such as 'utf-8' or 'latin-1'; got "
                        f"{type(encoding).__name__}.")
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"Unknown encoding {encoding!r}; use e.g. 'utf-8', 'latin-1' or "
                         f"'cp1252'.") from None


def _read_text(path: Path, encoding) -> str:
    """Decode a text file; a byte-order mark is recognised and removed.

    A UTF-8, UTF-16 or UTF-32 byte-order mark (Excel writes one) decides the codec when
    ``encoding`` is a UTF codec (the default UTF-8 included); with another codec
    (``latin-1``) a mark is a contradiction and raises. Undecodable bytes and NUL
    characters raise a ValueError naming the line and the fix.
    """
    codec = _check_encoding(encoding)
    data = path.read_bytes()
    bom = next(((mark, name) for mark, name in _BOMS if data.startswith(mark)), None)
    if bom is not None:
        mark, name = bom
        family = name.split("-")[0] + "-" + name.split("-")[1]  # utf-8, utf-16, utf-32
        if not codec.startswith("utf"):
            raise ValueError(
                f"{path} starts with a {family.upper()} byte-order mark, so it is "
                f"{family.upper()}, not {encoding}; pass encoding={family!r} (or leave the "
                f"default)."
            )
        codec, data = name, data[len(mark):]
    if b"\x00" in data and not codec.startswith(("utf-16", "utf-32")):
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ValueError(
            f"{path} holds NUL bytes (first on line {line}): it is not a {codec} text "
            f"table. If it is UTF-16 without a byte-order mark, pass encoding='utf-16'."
        )
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path} is not valid {codec}: byte {data[exc.start:exc.start + 1]!r} at "
            f"offset {exc.start} (line {line}) cannot be decoded. Re-save the file as UTF-8, "
            f"or pass its encoding (e.g. encoding='latin-1' or 'cp1252')."
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ValueError(f"{path} holds NUL characters (first on line {line}); a stimulus "
                         f"table holds text only. Remove them.")
    return text


def _guess_sep(path: Path, sep: str | None) -> str:
    if sep is not None:
        if not isinstance(sep, str):
            raise TypeError(f"sep must be a string such as '\\t' or ','; got "
                            f"{type(sep).__name__}.")
        if len(sep) != 1 or sep in '"\r\n\x00':
            raise ValueError(f"sep must be one character other than a quote or a line "
                             f"break, such as '\\t', ',' or ';'; got {sep!r}.")
        return sep
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab", ".txt"):
        return "\t"
    if suffix == ".csv":
        return ","
    raise ValueError(f"Cannot tell the separator of {path.name!r} from its suffix; name it "
                     f".tsv or .csv, or pass sep='\\t' or sep=','.")


def _parse(text: str, sep: str, path: Path) -> pd.DataFrame:
    """Cells of a delimited text as strings, under the header's (stripped) names.

    Tabs separate events-table style, where quotes are text (no quoting); any other
    separator follows the CSV convention (quoted fields, doubled quotes). Blank lines
    are skipped; a row with fewer fields than the header gets empty cells, one with more
    is an error. The header is read as a row, so repeated names stay repeated (and are
    refused) instead of being renamed ``text.1``.
    """
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(io.StringIO(text), sep=sep, header=None, dtype=str,
                              keep_default_na=False, na_values=[], index_col=False,
                              quoting=quoting, skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.ParserWarning, csv.Error) as exc:
        detail = " ".join(str(exc).split())  # pandas ends its messages with a newline
        raise ValueError(f"{path} is not a well-formed table ({detail}). Check that every "
                         f"line has the same number of {sep!r}-separated fields"
                         f"{'' if sep == chr(9) else ' and that quotes are closed'}.") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty; a stimulus table needs a header and one row "
                         f"per item.") from None
    header = [str(h).strip() for h in raw.iloc[0]]
    unnamed = [i for i, h in enumerate(header) if not h]
    if unnamed:
        raise ValueError(f"{path}: column {unnamed[0] + 1} of the header line has no name; "
                         f"name every column or delete the empty ones.")
    table = raw.iloc[1:].reset_index(drop=True)
    table.columns = header
    return table


def _numeric_extras(table: pd.DataFrame) -> pd.DataFrame:
    """Turn extra columns that are all numbers (or blank) into numbers."""
    for col in table.columns:
        if col in REQUIRED_COLUMNS:
            continue
        values = table[col].replace({"": np.nan, "n/a": np.nan})
        try:
            converted = pd.to_numeric(values)
        except (ValueError, TypeError):
            table[col] = values
            continue
        table[col] = converted
    return table


def read_table(path, *, columns: Mapping[str, str] | None = None, sep: str | None = None,
               encoding: str | None = "utf-8", clean: bool = False,
               name: str | None = None) -> StimulusSet:
    """Read a TSV or CSV stimulus table (the generic loader).

    Parameters
    ----------
    path : str or path-like
        A ``.tsv`` (tab-separated, events-table style) or ``.csv`` file with a header.
    columns : dict of str to str, optional
        Renames the file's columns, e.g. ``{"sentence": "text", "cond": "condition"}``.
        Every key must be a column of the file.
    sep : str, optional
        The separator; by default ``"\\t"`` for ``.tsv``/``.txt`` and ``","`` for ``.csv``.
    encoding : str, default="utf-8"
        The file's encoding (None: UTF-8). A UTF-8, UTF-16 or UTF-32 byte-order mark, as
        Excel writes, is recognised and removed; with a non-UTF encoding it is refused.
    clean : bool, default=False
        Strip leading/trailing and collapse repeated whitespace in text columns instead of
        raising.
    name : str, optional
        The set's name (default: the file's stem).

    Returns
    -------
    StimulusSet
        All cells are read as text (so words such as ``"nan"`` or ``"null"`` stay words);
        in extra columns an empty cell or ``n/a`` (the BIDS events-file convention) is
        missing, and a column that holds only numbers becomes numeric.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No stimulus file at {path}.")
    sep = _guess_sep(path, sep)
    text = _read_text(path, encoding)
    table = _parse(text, sep, path)
    if columns is not None:
        table = _rename(table, columns, path)
    names = [str(c) for c in table.columns]
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(f"{path}: the table has repeated column names {_names(dup)}"
                         f"{' after columns=' if columns else ''}; rename them so that each "
                         f"column appears once.")
    table = _numeric_extras(table)
    if clean:
        table = _clean_table(table)
    try:
        return StimulusSet(table, name=path.stem if name is None else name)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _rename(table: pd.DataFrame, columns, path) -> pd.DataFrame:
    if not isinstance(columns, Mapping):
        raise TypeError(f"columns must be a dict mapping the file's column names to "
                        f"'item_id', 'condition', 'text' or other names; got "
                        f"{type(columns).__name__}.")
    have = [str(c) for c in table.columns]
    for key in columns:
        if key not in have:
            raise ValueError(f"columns= names {key!r}, which is not a column of {path}; its "
                             f"columns are {have}.{suggest(key, have)}")
    return table.rename(columns=dict(columns))


def read_langloc(folder, *, encoding: str | None = "utf-8",
                 name: str | None = None) -> StimulusSet:
    """Read the Fedorenko lab's language-localizer materials from their folder.

    The folder holds ``langloc_fmri_run{R}_stim_set{K}.csv`` files, each with a header,
    an item-number column, word columns in upper case (12 in the published materials)
    and a last column with the condition (``S`` sentence, ``N`` non-word list). Words are
    lower-cased and joined with single spaces, as published analyses do.

    Parameters
    ----------
    folder : str or path-like
        The folder with the CSV files (the materials as downloaded; nothing is copied).
    encoding : str, default="utf-8"
        The files' encoding; a byte-order mark is recognised and removed.
    name : str, optional
        The set's name (default: the folder's name).

    Returns
    -------
    StimulusSet
        Conditions ``S`` and ``N``; extra columns ``run``, ``stim_set``, ``item`` (the
        number within its file and condition) and ``n_words``. Ids are
        ``run{R}_set{K}_{condition}{item:02d}`` (``run1_set1_S01``).

    References
    ----------
    Fedorenko, E., Hsieh, P.-J., Nieto-Castañón, A., Whitfield-Gabrieli, S., & Kanwisher,
    N. (2010). New method for fMRI investigations of language: defining ROIs functionally
    in individual subjects. Journal of Neurophysiology, 104, 1177-1194.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No langloc folder at {folder}.")
    files = []
    for p in folder.glob(_LANGLOC_GLOB):
        m = _LANGLOC_NAME.search(p.name)
        if m:
            files.append((int(m.group(1)), int(m.group(2)), p))
    if not files:
        raise ValueError(
            f"{folder} holds no langloc files ({_LANGLOC_GLOB}); point to the folder with "
            f"langloc_fmri_run1_stim_set1.csv etc., or use load_stimuli(file.csv) for a "
            f"single table."
        )
    frames = []
    for run, stim_set, p in sorted(files):
        text = _read_text(p, encoding)
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[])
        if raw.shape[1] < 4:
            raise ValueError(f"{p.name}: expected an item column, word columns and a "
                             f"condition column; got {raw.shape[1]} columns.")
        words = raw.iloc[:, 1:-1].apply(lambda s: s.str.strip())
        empty = np.flatnonzero(words.eq("").any(axis=1).to_numpy())
        if empty.size:
            raise ValueError(f"{p.name}: empty word cell at {_rows(empty)}; every "
                             f"langloc item has one word in each of the "
                             f"{words.shape[1]} word columns. Fix the file.")
        cond = raw.iloc[:, -1].str.strip().str.upper()
        bad = np.flatnonzero(~cond.isin(["S", "N"]).to_numpy())
        if bad.size:
            raise ValueError(f"{p.name}: the last column must be the condition 'S' or 'N'; "
                             f"found {cond.iloc[bad[0]]!r} at {_rows(bad)}.")
        item = raw.iloc[:, 0].str.strip()
        frames.append(pd.DataFrame({
            "item_id": [f"run{run}_set{stim_set}_{c}{int(i):02d}" if i.isdigit()
                        else f"run{run}_set{stim_set}_{c}{i}"
                        for c, i in zip(cond, item, strict=True)],
            "condition": cond.to_numpy(),
            "text": [" ".join(w.lower() for w in row) for row in words.itertuples(False)],
            "run": run, "stim_set": stim_set,
            "item": pd.to_numeric(item, errors="coerce"),
            "n_words": words.shape[1],
        }))
    table = pd.concat(frames, ignore_index=True)
    return StimulusSet(table, name=folder.name if name is None else name)


# -------------------------------------------------------------------- bundled sets
def _bundled_root():
    return resources.files("topobrain") / "data" / "stimuli"


def available_stimuli() -> list[str]:
    """Names of the stimulus sets bundled with topobrain (sorted)."""
    root = _bundled_root()
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir()
                  if d.is_dir() and (d / f"{d.name}.tsv").is_file())


def bundled_path(name: str) -> Path:
    """The folder of a bundled set (its ``<name>.tsv`` and ``README.md``)."""
    names = available_stimuli()
    if name not in names:
        raise ValueError(f"No bundled stimulus set {name!r}; available: {names}."
                         f"{suggest(name, names)}")
    return Path(str(_bundled_root() / name))


def load_stimuli(name_or_path, *, columns: Mapping[str, str] | None = None,
                 sep: str | None = None, encoding: str | None = "utf-8",
                 clean: bool = False) -> StimulusSet:
    """Load a stimulus set by bundled name, from a TSV/CSV file, or from a langloc folder.

    Parameters
    ----------
    name_or_path : str, path-like or StimulusSet
        A bundled name (see :func:`available_stimuli`: ``"langloc"``, ``"swjn"``,
        ``"noun-verb"``, ``"noun-verb-phrases"``), a ``.tsv``/``.csv`` file, a folder in the
        Fedorenko langloc layout, or a folder holding ``<folder name>.tsv``. A
        StimulusSet is returned as is.
    columns, sep, encoding, clean
        Passed to :func:`read_table` for files.

    Returns
    -------
    StimulusSet

    Raises
    ------
    ValueError
        For an unknown name (listing the bundled sets, with a "did you mean").
    FileNotFoundError
        For a path that does not exist.
    """
    if isinstance(name_or_path, StimulusSet):
        return name_or_path
    _check_encoding(encoding)
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(f"load_stimuli takes a bundled name, a path or a StimulusSet; got "
                        f"{type(name_or_path).__name__}.")
    names = available_stimuli()
    if isinstance(name_or_path, str) and name_or_path in names:
        folder = bundled_path(name_or_path)
        return read_table(folder / f"{name_or_path}.tsv", name=name_or_path)
    path = Path(name_or_path)
    if path.is_dir():
        if any(_LANGLOC_NAME.search(p.name) for p in path.glob(_LANGLOC_GLOB)):
            return read_langloc(path, encoding=encoding)
        own = path / f"{path.name}.tsv"
        if own.is_file():
            return read_table(own, columns=columns, sep=sep, encoding=encoding, clean=clean)
        raise ValueError(f"{path} is a folder without langloc files ({_LANGLOC_GLOB}) or a "
                         f"{path.name}.tsv; pass the table file itself.")
    if path.is_file():
        return read_table(path, columns=columns, sep=sep, encoding=encoding, clean=clean)
    text = str(name_or_path)
    if path.suffix or "/" in text or "\\" in text:
        raise FileNotFoundError(f"No stimulus file or folder at {path}.")
    raise ValueError(f"Unknown stimulus set {text!r}: not a bundled name nor an existing "
                     f"path. Bundled sets: {names}.{suggest(text, names)}")


# -------------------------------------------------------------------- derived sets
#: Closed-class English words that Jabberwocky items keep (articles, pronouns,
#: prepositions, conjunctions, auxiliaries and modals, wh-words, quantifiers, particles
#: and a few function adverbs). Everything else counts as a content word.
FUNCTION_WORDS = frozenset("""
a an the this that these those my your his her its our their whose which what who whom
i me you he him she it we us they them myself yourself himself herself itself ourselves
themselves someone somebody anyone anybody everyone everybody nobody nothing something
anything everything
of in on at by for with from to into onto upon over under about above below between among
through during before after since until till against along across behind beyond near
without within around off out up down than as like
and or but nor so yet because although though while when whenever where wherever if unless
once whether why how then there here now also too very still just only even ever never not
no again else
be am is are was were been being have has had having do does did done will would shall
should can could may might must
all any both each every either neither few many much more most some several such other
another own same enough less least
""".split())

_SUFFIXES = ("ing", "ed", "ly", "s")


def _split_suffix(word: str) -> tuple[str, str]:
    """(stem, inflectional suffix) with the stem at least 3 letters long."""
    for suf in _SUFFIXES:
        if word.endswith(suf) and len(word) - len(suf) >= 3:
            if suf == "s" and word.endswith(("ss", "us", "is")):
                continue
            return word[: -len(suf)], suf
    return word, ""


def _target_lengths(lengths, rng, *, min_length: int) -> list[int]:
    """Raise short lengths to ``min_length``, then shorten the longest words so the total
    number of letters is unchanged where possible; return them in shuffled order."""
    out = [max(int(L), min_length) for L in lengths]
    surplus = sum(out) - sum(int(L) for L in lengths)
    while surplus > 0:
        i = int(np.argmax(out))
        if out[i] <= min_length + 1:
            break
        out[i] -= 1
        surplus -= 1
    rng.shuffle(out)
    return out


def _as_texts(stimuli, condition) -> tuple[list[str], list[str]]:
    if isinstance(stimuli, StimulusSet):
        chosen = stimuli.subset(condition) if condition is not None else stimuli
        return chosen.item_ids, chosen.texts
    if isinstance(stimuli, str):
        raise TypeError("Pass a StimulusSet or a list of texts, not a single string.")
    texts = [str(t) for t in stimuli]
    return [f"{i + 1}" for i in range(len(texts))], texts


def nonword_lists(stimuli, *, condition: str | None = None, label: str = "N", seed=None,
                  id_prefix: str = "N") -> StimulusSet:
    """Lists of pseudowords matched, item by item, to the word lengths of some texts.

    For each source item, one list with as many pseudowords as the item has words and
    the same word lengths in shuffled order. Words of 1-2 letters become 3-letter
    pseudowords (every pronounceable 1-2 letter string is a real word) and the longest
    pseudowords are shortened to keep the item's total number of letters. Pseudowords
    longer than 3 letters are never repeated within the set; 3-letter ones (a pool of
    about 50) are reused evenly across lists, never within one.

    Parameters
    ----------
    stimuli : StimulusSet or list of str
        The source items (typically sentences).
    condition : str, optional
        Use only this condition of a StimulusSet.
    label : str, default="N"
        Condition of the new items.
    seed : int or numpy.random.Generator, optional
        Seeds the lengths' order and the pseudowords.
    id_prefix : str, default="N"
        New ids are ``{id_prefix}{k:03d}``.

    Returns
    -------
    StimulusSet
        Columns ``item_id``, ``condition``, ``text``, ``source_item`` (the matched item).
    """
    from ._utils._validation import check_random_state
    from .pseudowords import MIN_LENGTH, PseudowordGenerator

    rng = check_random_state(seed)
    ids, texts = _as_texts(stimuli, condition)
    gen = PseudowordGenerator(rng)
    rows = []
    width = max(3, len(str(len(texts))))
    for k, (src, text) in enumerate(zip(ids, texts, strict=True)):
        lengths = _target_lengths([len(w) for w in text.split()], rng, min_length=MIN_LENGTH)
        words: list[str] = []
        for L in lengths:
            words.append(gen.one(L, unique=L > MIN_LENGTH, avoid=words))
        rows.append({"item_id": f"{id_prefix}{k + 1:0{width}d}", "condition": label,
                     "text": " ".join(words), "source_item": src})
    return StimulusSet(pd.DataFrame(rows), name=f"{label}-lists")


def jabberwocky(stimuli, *, condition: str | None = None, label: str = "J", seed=None,
                id_prefix: str = "J", function_words=FUNCTION_WORDS) -> StimulusSet:
    """Replace each content word with a pseudoword, keeping the function words.

    The inflectional endings ``-ing``, ``-ed``, ``-ly`` and ``-s`` are kept on a
    pseudo-stem of the stem's length (``bakes`` -> ``glorns``), so that the syntax stays
    visible; a replacement is never a real word.

    Parameters
    ----------
    stimuli : StimulusSet or list of str
        Source sentences (lower case, space-separated words).
    condition, label, seed, id_prefix
        As in :func:`nonword_lists`.
    function_words : set of str, default=FUNCTION_WORDS
        Words kept as they are.

    Returns
    -------
    StimulusSet
        Columns ``item_id``, ``condition``, ``text``, ``source_item``, ``n_replaced``.
    """
    from ._utils._validation import check_random_state
    from .pseudowords import MIN_LENGTH, PseudowordGenerator

    rng = check_random_state(seed)
    ids, texts = _as_texts(stimuli, condition)
    gen = PseudowordGenerator(rng)
    keep = frozenset(w.lower() for w in function_words)
    rows = []
    width = max(3, len(str(len(texts))))
    for k, (src, text) in enumerate(zip(ids, texts, strict=True)):
        out, n = [], 0
        for word in text.split():
            if word.lower() in keep or not word.isalpha():
                out.append(word)
                continue
            stem, suffix = _split_suffix(word.lower())
            target = max(len(stem), MIN_LENGTH)
            for _ in range(1000):
                new = gen.one(target, unique=target > MIN_LENGTH, avoid=out) + suffix
                if gen.accepts(new):
                    break
            else:  # pragma: no cover - 1000 rejections in a row do not happen in practice
                raise RuntimeError(f"No pseudoword replacement found for {word!r}.")
            out.append(new)
            n += 1
        rows.append({"item_id": f"{id_prefix}{k + 1:0{width}d}", "condition": label,
                     "text": " ".join(out), "source_item": src, "n_replaced": n})
    return StimulusSet(pd.DataFrame(rows), name=f"{label}-jabberwocky")


def word_lists(stimuli, *, condition: str | None = None, label: str = "W", seed=None,
               id_prefix: str = "W") -> StimulusSet:
    """Scramble the words of sentences across items into word lists.

    Every word token of the source items is used exactly once, and each list takes its
    words from as many different source items as it has words (list *i*, slot *k*
    draws from item ``(i + k * step) mod n``, with a shuffled choice of word within
    each item and a shuffled order within each list), so no list keeps two words of
    one sentence. The lists therefore have the same words (and word frequencies) as the
    sentences but no syntax or compositional meaning.

    Parameters
    ----------
    stimuli : StimulusSet or list of str
        Source sentences, all with the same number of words.
    condition, label, seed, id_prefix
        As in :func:`nonword_lists`.

    Returns
    -------
    StimulusSet
        Columns ``item_id``, ``condition``, ``text``, ``source_items`` (the items the
        words came from, ``;``-separated).
    """
    from ._utils._validation import check_random_state

    rng = check_random_state(seed)
    ids, texts = _as_texts(stimuli, condition)
    words = [t.split() for t in texts]
    n_items, n_words = len(words), len(words[0]) if words else 0
    if any(len(w) != n_words for w in words):
        raise ValueError("word_lists() needs items with the same number of words; got "
                         f"{sorted({len(w) for w in words})}. Select items of one length.")
    if n_items < n_words:
        raise ValueError(f"word_lists() needs at least as many items ({n_items}) as words "
                         f"per item ({n_words}) so that each list draws from distinct items.")
    step = max(1, n_items // n_words)
    for w in words:
        rng.shuffle(w)
    rows = []
    width = max(3, len(str(n_items)))
    for i in range(n_items):
        picks = [((i + k * step) % n_items, k) for k in range(n_words)]
        order = rng.permutation(n_words)
        chosen = [picks[j] for j in order]
        rows.append({"item_id": f"{id_prefix}{i + 1:0{width}d}", "condition": label,
                     "text": " ".join(words[s][k] for s, k in chosen),
                     "source_items": ";".join(ids[s] for s, _ in chosen)})
    return StimulusSet(pd.DataFrame(rows), name=f"{label}-lists")


# --------------------------------------------------------------------------- minimal pairs
# (lesion measures: a pair is right when the good sentence is the less surprising one)

__all__ += ["load_minimal_pairs", "read_blimp", "read_syntaxgym", "available_minimal_pairs"]

_PAIR_COLUMNS = ["pair_id", "phenomenon", "good", "bad", "source"]


def _minimal_pairs_root() -> Path:
    return Path(str(resources.files("topobrain") / "data" / "minimal_pairs"))


def available_minimal_pairs() -> list[str]:
    """Names of the bundled minimal-pair sets (``"agreement"``)."""
    root = _minimal_pairs_root()
    return sorted(p.stem for p in root.glob("*.jsonl")) if root.is_dir() else []


def read_blimp(path) -> pd.DataFrame:
    """Read minimal pairs in BLiMP's JSONL layout (a file, or a folder of ``*.jsonl``).

    Each line is one pair with ``sentence_good`` and ``sentence_bad``; the phenomenon is
    ``UID`` (else ``linguistics_term``, else the file name), the pair id
    ``{phenomenon}:{pairID}`` (else the line number).

    Returns
    -------
    DataFrame
        Columns ``pair_id, phenomenon, good, bad, source``, one row per pair.

    References
    ----------
    Warstadt, A. et al. (2020). BLiMP: The Benchmark of Linguistic Minimal Pairs for
    English. TACL 8, 377-392.
    """
    import json

    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(f"{path}: no BLiMP JSONL file (one pair per line, with "
                                f"sentence_good and sentence_bad).")
    rows = []
    for f in files:
        for n, line in enumerate(_read_text(f, "utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{f}, line {n}: not valid JSON ({exc.msg}).") from None
            if not isinstance(rec, dict) or not {"sentence_good", "sentence_bad"} <= set(rec):
                got = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
                raise ValueError(f"{f}, line {n}: a BLiMP pair needs 'sentence_good' and "
                                 f"'sentence_bad'; got {got}.")
            phen = str(rec.get("UID") or rec.get("linguistics_term") or f.stem)
            rows.append({"pair_id": f"{phen}:{rec.get('pairID', n)}", "phenomenon": phen,
                         "good": str(rec["sentence_good"]), "bad": str(rec["sentence_bad"]),
                         "source": f.name})
    if not rows:
        raise ValueError(f"{path} holds no minimal pairs.")
    frame = pd.DataFrame(rows, columns=_PAIR_COLUMNS)
    dup = frame["pair_id"].duplicated()
    if dup.any():
        frame.loc[dup, "pair_id"] = [f"{p}#{i}" for i, p in zip(frame.index[dup],
                                                               frame["pair_id"][dup], strict=True)]
    return frame


_SG_TERM = re.compile(r"\(\s*(\d+)\s*;\s*%([^%]+)%\s*\)\s*([<>])\s*\(\s*(\d+)\s*;\s*%([^%]+)%\s*\)")


def read_syntaxgym(path) -> pd.DataFrame:
    """Read a SyntaxGym-style test suite (JSON) as minimal pairs.

    Each prediction of the simple form ``(R;%A%) > (R;%B%)`` (conjunctions with ``&``
    give several) says that condition ``A`` is more surprising than ``B``: every item
    then yields one pair with ``B``'s sentence as good and ``A``'s as bad, each sentence
    the item's regions joined by spaces. Whole sentences are compared, as for BLiMP (the
    suite's region-level criterion is not reproduced); predictions of any other form
    (differences of differences) are skipped, and a suite with none of the simple form
    is refused.

    Returns
    -------
    DataFrame
        Columns ``pair_id, phenomenon, good, bad, source``; phenomenon is the suite's
        ``meta.name``.
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SyntaxGym suite {path} does not exist.")
    try:
        suite = json.loads(_read_text(path, "utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc.msg}).") from None
    if not isinstance(suite, dict) or "items" not in suite or "predictions" not in suite:
        raise ValueError(f"{path} is not a SyntaxGym suite: it needs 'items' and "
                         f"'predictions' (and 'meta').")
    name = str((suite.get("meta") or {}).get("name") or path.stem)
    comparisons = []
    for pred in suite["predictions"]:
        formula = pred.get("formula") if isinstance(pred, dict) else pred
        for term in str(formula).split("&"):
            m = _SG_TERM.fullmatch(term.strip().strip("()").strip()) or _SG_TERM.search(term)
            if m is None or "-" in term.replace("%", "").split(";")[0]:
                continue
            a, op, b = m.group(2), m.group(3), m.group(5)
            comparisons.append((b, a) if op == ">" else (a, b))  # (good, bad)
    if not comparisons:
        raise ValueError(f"{path}: no prediction of the form (R;%A%) > (R;%B%); this "
                         f"suite cannot be read as minimal pairs.")
    rows = []
    for item in suite["items"]:
        sentences = {}
        for cond in item.get("conditions", []):
            regions = sorted(cond.get("regions", []), key=lambda r: r.get("region_number", 0))
            text = " ".join(str(r.get("content", "")).strip() for r in regions)
            sentences[cond.get("condition_name")] = re.sub(r"\s+", " ", text).strip()
        for good, bad in dict.fromkeys(comparisons):
            if good not in sentences or bad not in sentences:
                raise ValueError(f"{path}: item {item.get('item_number')} has no condition "
                                 f"{good if good not in sentences else bad!r}; it has "
                                 f"{list(sentences)}.")
            rows.append({"pair_id": f"{name}:{item.get('item_number')}:{good}>{bad}",
                         "phenomenon": name, "good": sentences[good],
                         "bad": sentences[bad], "source": path.name})
    return pd.DataFrame(rows, columns=_PAIR_COLUMNS)


def load_minimal_pairs(name_or_path) -> pd.DataFrame:
    """Minimal pairs by bundled name (``"agreement"``), BLiMP JSONL file or folder, or
    SyntaxGym suite (``.json``).

    Returns
    -------
    DataFrame
        Columns ``pair_id, phenomenon, good, bad, source``.
    """
    path = Path(name_or_path)
    if path.exists():
        if path.is_file() and path.suffix.lower() == ".json":
            return read_syntaxgym(path)
        return read_blimp(path)
    names = available_minimal_pairs()
    if str(name_or_path) in names:
        return read_blimp(_minimal_pairs_root() / f"{name_or_path}.jsonl")
    raise FileNotFoundError(
        f"No minimal-pair file or bundled set {str(name_or_path)!r}. Bundled sets: "
        f"{names}.{suggest(str(name_or_path), names)} Or give a BLiMP .jsonl file or "
        f"folder, or a SyntaxGym suite .json.")
