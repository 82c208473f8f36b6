"""THE adjacency parameter: names, matrices, libpysal W, defaults, and old names' warnings."""

from __future__ import annotations

import doctest
import inspect
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from topobrain._utils import _adjacency
from topobrain._utils._adjacency import (
    DEFAULT_ADJACENCY,
    UNSET,
    adjacency_name,
    check_adjacency,
    deprecated_alias,
    renamed_parameter,
)


def test_default_is_queen_and_none_means_it():
    assert DEFAULT_ADJACENCY == "queen"
    assert check_adjacency(None) == "queen"
    assert adjacency_name(None) == "queen"


@pytest.mark.parametrize("value, allowed, expected", [
    ("rook", ("rook", "queen"), "rook"),
    ("queen", ("rook", "queen"), "queen"),
    (6, (6, 18, 26), 6),
    (np.int64(26), (6, 18, 26), 26),
    ("18", (6, 18, 26), 18),
])
def test_names_are_returned_canonical(value, allowed, expected):
    out = check_adjacency(value, allowed=allowed)
    assert out == expected and type(out) is type(expected)


def test_bad_names_give_one_line_with_the_options():
    with pytest.raises(ValueError, match=r"Invalid adjacency 'qeen'.*'rook', 'queen'.*Did you "
                                         r"mean 'queen'"):
        check_adjacency("qeen")
    with pytest.raises(ValueError, match="Invalid adjacency 8: allowed are 6, 18, 26"):
        check_adjacency(8, allowed=(6, 18, 26))
    with pytest.raises(ValueError, match="Invalid adjacency 6"):
        check_adjacency(6)  # a lattice name where only grid names are allowed
    with pytest.raises(ValueError, match="adjacency is required here"):
        check_adjacency(None, allowed=(6, 18, 26))
    with pytest.raises(TypeError, match="got list"):
        check_adjacency([[0, 1], [1, 0]])
    with pytest.raises(TypeError, match="got bool"):
        check_adjacency(True)
    with pytest.raises(ValueError, match="Invalid connectivity"):
        check_adjacency("x", name="connectivity")


def test_matrices_are_copied_validated_and_normalised():
    rng = np.random.default_rng(0)
    dense = (rng.random((6, 6)) < 0.4) * rng.random((6, 6))
    for given in (sp.csr_matrix(dense), sp.coo_array(dense), sp.lil_matrix(dense), dense):
        before = given.copy()
        out = check_adjacency(given, n=6)
        assert isinstance(out, sp.csr_array) and out.dtype == np.float64
        assert out is not given and out.has_sorted_indices
        np.testing.assert_array_equal(out.toarray(), dense)
        assert np.count_nonzero(out.data == 0) == 0
        prev = before.toarray() if sp.issparse(before) else before
        now = given.toarray() if sp.issparse(given) else given
        np.testing.assert_array_equal(now, prev)  # never modified
    with pytest.raises(ValueError, match=r"covers 6 locations but the data have 5: pass an "
                                         r"adjacency of shape \(5, 5\)"):
        check_adjacency(sp.csr_matrix(dense), n=5)
    with pytest.raises(ValueError, match=r"must be square \(n, n\); got shape \(2, 3\)"):
        check_adjacency(sp.csr_matrix(np.ones((2, 3))))
    with pytest.raises(ValueError, match="array of shape"):
        check_adjacency(np.ones(4))
    bad = sp.csr_matrix(np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="1 NaN or infinite entries"):
        check_adjacency(bad)
    with pytest.raises(ValueError, match="4 negative entries"):
        check_adjacency(sp.csr_matrix(-np.ones((2, 2))))


def test_libpysal_w_is_read_through_its_sparse_matrix():
    libpysal = pytest.importorskip("libpysal", reason="libpysal W is one accepted form")
    w = libpysal.weights.lat2W(3, 4, rook=False)
    out = check_adjacency(w, n=12)
    np.testing.assert_array_equal(out.toarray(), w.sparse.toarray())
    assert adjacency_name(w) == f"libpysal W (12 x 12, {w.sparse.nnz} nonzero)"


def test_names_recorded():
    assert adjacency_name("rook") == "rook"
    assert adjacency_name(18) == "18"
    assert adjacency_name(np.int32(6)) == "6"
    a = sp.csr_matrix(np.array([[0, 1.0], [1.0, 0]]))
    assert adjacency_name(a) == "custom sparse (2 x 2, 2 nonzero)"
    assert adjacency_name(a.toarray()) == "dense (2 x 2, 2 nonzero)"


def _user_call(f, **kw):
    return f(1, **kw)


def test_renamed_parameter_warns_at_the_user_line_and_refuses_both():
    assert renamed_parameter("weights", "adjacency", UNSET, "rook") == "rook"
    assert renamed_parameter("weights", "adjacency", UNSET) is None
    with pytest.warns(DeprecationWarning, match="'weights' parameter is deprecated.*use "
                                               "adjacency= instead") as rec:
        assert renamed_parameter("weights", "adjacency", "rook") == "rook"
    assert rec[0].filename == __file__
    with pytest.raises(TypeError, match="Got both weights= and adjacency="):
        renamed_parameter("weights", "adjacency", "rook", "queen")


def test_deprecated_alias_decorator():
    @deprecated_alias(weights="adjacency", connectivity="adjacency")
    def f(x, adjacency=None, *, y=0):
        return x, adjacency, y

    assert list(inspect.signature(f).parameters) == ["x", "adjacency", "y"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1, "rook") == (1, "rook", 0)
        assert f(1, adjacency="queen", y=2) == (1, "queen", 2)
    with pytest.warns(DeprecationWarning, match="'connectivity' parameter") as rec:
        assert _user_call(f, connectivity=26) == (1, 26, 0)
    assert rec[0].filename == __file__
    with pytest.raises(TypeError, match="Got both weights= and adjacency="):
        f(1, weights="rook", adjacency="queen")


def test_docstring_examples_run():
    result = doctest.testmod(_adjacency, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0
