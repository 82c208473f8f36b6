"""Contrast strings, parsed once for every module."""

from __future__ import annotations

import numpy as np
import pytest

from topobrain.contrast import Contrast, parse_contrast


@pytest.mark.parametrize("expr, weights", [
    ("S - N", {"S": 1.0, "N": -1.0}),
    ("verb - noun", {"verb": 1.0, "noun": -1.0}),
    ("0.5*J + 0.5*W - N", {"J": 0.5, "W": 0.5, "N": -1.0}),
    ("(J + W)/2 - N", {"J": 0.5, "W": 0.5, "N": -1.0}),
    ("2 S - N - W", {"S": 2.0, "N": -1.0, "W": -1.0}),
    ("-N + S", {"N": -1.0, "S": 1.0}),
    ("S", {"S": 1.0}),
    ("`noun-concrete` - `verb concrete`", {"noun-concrete": 1.0, "verb concrete": -1.0}),
    ("1e-1*A - .1*B", {"A": 0.1, "B": -0.1}),
])
def test_parse(expr, weights):
    c = parse_contrast(expr)
    assert c.weights == pytest.approx(weights)


def test_two_sample_and_one_sample():
    assert parse_contrast("S - N").is_two_sample
    assert not parse_contrast("S").is_two_sample
    assert not parse_contrast("S - 0.5*N").is_two_sample
    c = parse_contrast("0.5*J + 0.5*W - N")
    assert c.positive == ["J", "W"] and c.negative == ["N"]


def test_vector_in_condition_order():
    c = parse_contrast("S - N")
    np.testing.assert_array_equal(c.vector(["N", "W", "S"]), [-1.0, 0.0, 1.0])


def test_unknown_condition_suggests_close_name():
    msg = r"unknown condition\(s\) \['verbs'\].*Did you mean 'verb'"
    with pytest.raises(ValueError, match=msg):
        parse_contrast("verbs - noun", ["noun", "verb"])


@pytest.mark.parametrize("expr, msg", [
    ("", "empty"),
    ("S - - ", "expected a condition name"),
    ("S * N", "must be linear"),
    ("S - N)", "unexpected"),
    ("(S - N", "unbalanced"),
    ("S $ N", "Cannot parse contrast"),
    ("2 - 1", "names no condition"),
    ("S - S", "no non-zero weight"),
    ("S / 0", "non-zero number"),
])
def test_malformed(expr, msg):
    with pytest.raises(ValueError, match=msg):
        parse_contrast(expr)


def test_dict_and_contrast_inputs():
    c = parse_contrast({"A": 1, "B": -1})
    assert c.weights == {"A": 1.0, "B": -1.0}
    assert parse_contrast(c) is c
    with pytest.raises(TypeError, match="string like 'S - N'"):
        parse_contrast(3)
    assert isinstance(c, Contrast)


@pytest.mark.parametrize("expr, slug", [
    ("S - N", "S_minus_N"),
    ("(S + W)/2 - N", "S_plus_W_over_2_minus_N"),
    ("0.5*J + 0.5*W - N", "c_0p5_times_J_plus_0p5_times_W_minus_N"),
    ("`noun-concrete` - `verb concrete`", "noun_concrete_minus_verb_concrete"),
    ("1e-1*A - B", "c_1em1_times_A_minus_B"),
    ("`é/ü` - N", "x_minus_N"),
])
def test_slug_is_safe_for_every_format(expr, slug):
    import re

    got = parse_contrast(expr).slug
    assert got == slug
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", got)
