"""Contrasts written as strings over condition names, parsed once for every module.

``"S - N"``, ``"verb - noun"``, ``"0.5*J + 0.5*W - N"``, ``"S"`` (one-sample), ``"2 S - N"``.
Condition names are letters, digits, ``_``, ``.`` and ``-`` inside a name
(``noun-concrete``) must be quoted with backticks: ```noun-concrete` - `verb-concrete```.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ._utils._validation import suggest

__all__ = ["Contrast", "contrast_slug", "parse_contrast"]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|`(?P<quoted>[^`]+)`|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<op>[-+*/()]))"
)


@dataclass(frozen=True)
class Contrast:
    """A linear contrast over conditions.

    Attributes
    ----------
    expression : str
        The string as written.
    weights : dict of str to float
        Weight of each named condition (conditions not named have weight 0).
    """

    expression: str
    weights: dict

    @property
    def conditions(self) -> list[str]:
        return list(self.weights)

    @property
    def positive(self) -> list[str]:
        return [c for c, w in self.weights.items() if w > 0]

    @property
    def negative(self) -> list[str]:
        return [c for c, w in self.weights.items() if w < 0]

    @property
    def is_two_sample(self) -> bool:
        """True when the contrast compares conditions (weights sum to zero)."""
        return bool(self.positive and self.negative
                    and abs(sum(self.weights.values())) < 1e-12)

    def vector(self, conditions) -> np.ndarray:
        """Weights in the order of ``conditions`` (unknown names raise)."""
        conditions = list(conditions)
        unknown = [c for c in self.weights if c not in conditions]
        if unknown:
            raise ValueError(
                f"Contrast {self.expression!r} names unknown condition(s) {unknown}; the "
                f"conditions are {conditions}.{suggest(unknown[0], conditions)}"
            )
        return np.array([self.weights.get(c, 0.0) for c in conditions], dtype=np.float64)

    @property
    def slug(self) -> str:
        """A name for files, netCDF variables and CSV columns (see :func:`contrast_slug`)."""
        return contrast_slug(self.expression)

    def __str__(self) -> str:
        return self.expression


def parse_contrast(expression, conditions=None) -> Contrast:
    """Parse a contrast string into condition weights.

    Parameters
    ----------
    expression : str or Contrast or dict
        A linear expression such as ``"S - N"`` or ``"0.5*J + 0.5*W - N"``.
    conditions : list of str, optional
        The valid condition names; unknown names raise a ValueError that suggests the
        closest valid one.

    Returns
    -------
    Contrast

    Examples
    --------
    >>> parse_contrast("0.5*J + 0.5*W - N").weights
    {'J': 0.5, 'W': 0.5, 'N': -1.0}
    """
    if isinstance(expression, Contrast):
        result = expression
    elif isinstance(expression, dict):
        result = Contrast(" + ".join(f"{w:g}*{c}" for c, w in expression.items()),
                          {str(c): float(w) for c, w in expression.items()})
    elif isinstance(expression, str):
        result = Contrast(expression.strip(), _parse(expression))
    else:
        raise TypeError(
            f"A contrast must be a string like 'S - N' or a dict of weights; got "
            f"{type(expression).__name__}."
        )
    if not result.weights or all(w == 0 for w in result.weights.values()):
        raise ValueError(f"Contrast {result.expression!r} has no non-zero weight.")
    if conditions is not None:
        result.vector(conditions)
    return result


_OP_WORDS = {"-": "minus", "+": "plus", "*": "times", "/": "over", "(": "", ")": ""}


def contrast_slug(expression: str) -> str:
    """A name derived from a contrast that every file format accepts.

    Only ASCII letters, digits and ``_``, starting with a letter: a file name on every
    system, a netCDF/HDF5 variable name (no ``/``), a CSV header and a Python identifier.
    Operators become words and decimal points ``p``; the contrast text itself is kept by
    the caller as an attribute.

    Parameters
    ----------
    expression : str
        A contrast such as ``"(S + W)/2 - N"`` (it must parse).

    Returns
    -------
    str

    Examples
    --------
    >>> contrast_slug("(S + W)/2 - N")
    'S_plus_W_over_2_minus_N'
    >>> contrast_slug("`noun-concrete` - 0.5*verb")
    'noun_concrete_minus_0p5_times_verb'
    """
    words = []
    for kind, val in _tokens(str(expression)):
        if kind == "op":
            word = _OP_WORDS[val]
        elif kind == "num":
            word = val.replace(".", "p").replace("+", "").replace("-", "m")
        else:
            word = re.sub(r"[^A-Za-z0-9]+", "_", val).strip("_") or "x"
        if word:
            words.append(word)
    slug = "_".join(words)
    return slug if slug[:1].isalpha() else f"c_{slug}"


def _tokens(expr: str):
    pos, out = 0, []
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(
                f"Cannot parse contrast {expr!r} at character {pos + 1} "
                f"({expr[pos:pos + 10]!r}). Write it like 'S - N' or '0.5*J + 0.5*W - N'; "
                f"quote names holding '-' or spaces with backticks."
            )
        kind = m.lastgroup
        val = m.group(kind)
        out.append(("name" if kind == "quoted" else kind, val))
        pos = m.end()
    return out


def _parse(expr: str) -> dict:
    """Recursive-descent parse of a linear expression into {name: weight}."""
    toks = _tokens(expr)
    i = 0

    def peek():
        return toks[i] if i < len(toks) else (None, None)

    def take():
        nonlocal i
        i += 1
        return toks[i - 1]

    def add(a, b, s=1.0):
        if isinstance(a, float) and isinstance(b, float):
            return a + s * b
        if isinstance(a, float) or isinstance(b, float):
            raise ValueError(
                f"Contrast {expr!r} adds a constant to conditions; every term must name a "
                f"condition (like '0.5*J')."
            )
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0.0) + s * v
        return out

    def expr_():
        sign = 1.0
        if peek() == ("op", "-"):
            take()
            sign = -1.0
        elif peek() == ("op", "+"):
            take()
        acc = scale(term(), sign)
        while peek() in (("op", "+"), ("op", "-")):
            op = take()[1]
            acc = add(acc, term(), 1.0 if op == "+" else -1.0)
        return acc

    def scale(d, s):
        if isinstance(d, float):
            return d * s
        return {k: v * s for k, v in d.items()}

    def term():
        left = factor()
        while True:
            nxt = peek()
            if nxt == ("op", "*"):
                take()
                left = mul(left, factor())
            elif nxt == ("op", "/"):
                take()
                right = factor()
                if not isinstance(right, float) or right == 0:
                    raise ValueError(f"Contrast {expr!r}: divide only by a non-zero number.")
                left = scale(left, 1.0 / right)
            elif nxt[0] in ("name", "num") or nxt == ("op", "("):
                left = mul(left, factor())  # implicit product: "2 S"
            else:
                return left

    def mul(a, b):
        if isinstance(a, float):
            return scale(b, a)
        if isinstance(b, float):
            return scale(a, b)
        raise ValueError(f"Contrast {expr!r} multiplies two conditions; it must be linear.")

    def factor():
        kind, val = peek()
        if kind == "num":
            take()
            return float(val)
        if kind == "name":
            take()
            return {val: 1.0}
        if (kind, val) == ("op", "("):
            take()
            inner = expr_()
            if peek() != ("op", ")"):
                raise ValueError(f"Contrast {expr!r}: unbalanced parentheses.")
            take()
            return inner
        if (kind, val) == ("op", "-"):
            take()
            return scale(factor(), -1.0)
        raise ValueError(
            f"Contrast {expr!r}: expected a condition name or a number at token {i + 1}."
        )

    if not toks:
        raise ValueError("The contrast is empty. Write it like 'S - N'.")
    result = expr_()
    if i != len(toks):
        raise ValueError(f"Contrast {expr!r}: unexpected {toks[i][1]!r} at token {i + 1}.")
    if isinstance(result, float):
        raise ValueError(f"Contrast {expr!r} names no condition.")
    return {k: v for k, v in result.items() if v != 0.0} or result
