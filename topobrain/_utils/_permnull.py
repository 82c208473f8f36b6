"""Compiled kernels of the global permutation null (Moran's I, Geary's C).

Private and trusting: :mod:`topobrain.spatial` validates inputs and calls these.

A permuted statistic of a map ``x`` (centred, shape ``(n,)``) under a cell permutation
``P`` is ``a * y'Uy + c * g'(y * y)`` with ``y = x[P]``, ``U`` the upper form of the
weights and ``g`` their row plus column sums (Geary only). Everything here is computed
in double precision with a fixed order of operations per permutation, so a permuted
statistic depends only on the map, the weights and the permutation's 64-bit key: not on
the other maps, the other permutations, the batch, the thread or the chunking.

Permutation stream
------------------
Permutation ``P`` of key ``k`` is the inside-out Fisher-Yates shuffle of ``0..n-1``: for
``i = 1 .. n-1``, ``j_i = floor(r_i * (i + 1) / 2**64)`` with
``r_i = splitmix64(k + i * 0x9E3779B97F4A7C15)``, then ``P[i] = P[j_i]; P[j_i] = i``.
``j_i`` is uniform on ``0..i`` up to a relative bias below ``(i + 1) / 2**64`` (below
``2**-33`` for any ``n`` up to ``2**31``, the int32 limit of the indices), so ``P`` is a
uniform random permutation for every practical purpose. :func:`permutations` returns it;
tests check it against a plain Python transcription.

Layout
------
Permutations are evaluated eight at a time, one per lane of an ``(n, 8)`` block (their
draws are made 512 steps at a time, vectorised across the lanes), and the
weights' upper form is stored by row length ("ELL" groups: every row of a group has the
same number of entries), which keeps the inner loop free of unpredictable branches.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["LANES", "ell_groups", "lane_quadratic_forms", "null_statistics", "permutations"]

LANES = 8
_DRAW_ROWS = 512  # shuffle steps whose draws are made at once
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LOW32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@njit(inline="always")
def _splitmix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _bounded(key, i):
    """The swap partner ``j_i`` (uniform on ``0..i``) of step ``i`` of ``key``'s shuffle."""
    r = _splitmix64(key + np.uint64(i) * _GOLDEN)
    m = np.uint64(i + 1) & _LOW32  # < 2**31; the mask lets LLVM use 32-bit multiplies
    # floor(r * m / 2**64) without 128-bit integers (exact for m < 2**32)
    return np.int32(((r >> _S32) * m + (((r & _LOW32) * m) >> _S32)) >> _S32)


@njit(inline="always")
def _draw_lane_swaps(lane_keys, i0, i1, out):
    """``out[i - i0, b]``: step ``i``'s swap partner for lane ``b``, ``i`` in ``[i0, i1)``
    (the lanes innermost, so the draws vectorise across them)."""
    for i in range(i0, i1):
        for b in range(LANES):
            out[i - i0, b] = _bounded(lane_keys[b], i)


def ell_groups(u: sp.csr_matrix):
    """The rows of a CSR matrix grouped by their number of entries.

    Returns
    -------
    rows : ndarray of int32, shape (n_rows_nonempty,)
        Row indices, group after group (ascending within a group).
    cols : ndarray of int32, shape (nnz,)
        Column indices, row after row in the order of ``rows``.
    vals : ndarray of float64, shape (nnz,)
    row_ptr, ent_ptr : ndarray of int64, shape (n_groups + 1,)
        Group ``g`` holds ``rows[row_ptr[g]:row_ptr[g+1]]`` and its entries are
        ``cols[ent_ptr[g]:ent_ptr[g+1]]`` (``widths[g]`` per row).
    widths : ndarray of int64, shape (n_groups,)
    """
    u = sp.csr_matrix(u)
    u.sort_indices()
    lens = np.diff(u.indptr)
    widths = np.unique(lens[lens > 0]).astype(np.int64)
    rows, cols, vals = [], [], []
    row_ptr, ent_ptr = [0], [0]
    for w in widths:
        r = np.flatnonzero(lens == w)
        idx = (u.indptr[r][:, None] + np.arange(w)).ravel()
        rows.append(r)
        cols.append(u.indices[idx])
        vals.append(u.data[idx])
        row_ptr.append(row_ptr[-1] + r.size)
        ent_ptr.append(ent_ptr[-1] + idx.size)

    def cat(parts, dtype):
        return (np.concatenate(parts) if parts else np.empty(0)).astype(dtype)

    return (cat(rows, np.int32), cat(cols, np.int32), cat(vals, np.float64),
            np.asarray(row_ptr, dtype=np.int64), np.asarray(ent_ptr, dtype=np.int64), widths)


@intrinsic
def _lane_shuffle_rows(typingctx, y, x, swaps, i0, i1):
    """Steps ``i0 .. i1-1`` of the lanes' inside-out shuffles of ``x`` into ``y``.

    ``y`` has shape ``(n, LANES)`` and ``x`` shape ``(n,)`` (the same dtype), ``swaps``
    shape ``(>= i1 - i0, LANES)`` (int32, :func:`_draw_lane_swaps`). Step ``i`` is
    ``y[i, b] = y[j_b, b]`` for every lane (one vector store), then ``y[j_b, b] = x[i]``:
    the same as the scalar loop, with one store instead of eight for row ``i``.
    """
    if not (isinstance(y, types.Array) and y.ndim == 2 and y.layout == "C"
            and isinstance(swaps, types.Array) and swaps.layout == "C"
            and swaps.dtype == types.int32 and x.dtype == y.dtype):
        return None
    sig = types.void(y, x, swaps, i0, i1)

    def codegen(context, builder, signature, args):
        t_y, t_x, t_s, _, _ = signature.args
        a_y = context.make_array(t_y)(context, builder, args[0])
        a_x = context.make_array(t_x)(context, builder, args[1])
        a_s = context.make_array(t_s)(context, builder, args[2])
        start, stop = args[3], args[4]
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)
        elem = context.get_data_type(t_y.dtype)
        vec = ir.VectorType(elem, LANES)
        lanes = ir.Constant(intp, LANES)
        y_ptr = builder.bitcast(a_y.data, elem.as_pointer())
        s_ptr = builder.bitcast(a_s.data, i32.as_pointer())
        with cgutils.for_range_slice(builder, start, stop, ir.Constant(intp, 1)) as (i, _):
            xi = builder.load(cgutils.get_item_pointer(context, builder, t_x, a_x, [i]))
            s_row = builder.mul(builder.sub(i, start), lanes)
            row = ir.Constant(vec, ir.Undefined)
            targets = []
            for b in range(LANES):
                lane = ir.Constant(intp, b)
                j = builder.sext(builder.load(builder.gep(s_ptr, [builder.add(s_row, lane)])),
                                 intp)
                target = builder.gep(y_ptr, [builder.add(builder.mul(j, lanes), lane)])
                targets.append(target)
                row = builder.insert_element(row, builder.load(target), ir.Constant(i32, b))
            dst = builder.gep(y_ptr, [builder.mul(i, lanes)])
            builder.store(row, builder.bitcast(dst, vec.as_pointer()),
                          align=t_y.dtype.bitwidth // 8)
            for target in targets:
                builder.store(xi, target)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _lane_quadratic_forms(typingctx, y, rows, cols, vals, row_ptr, ent_ptr, widths):
    """``y[:, b]' U y[:, b]`` for the ``LANES`` columns of ``y`` (shape ``(n, LANES)``,
    C-contiguous), ``U`` given by :func:`ell_groups`; a tuple of ``LANES`` floats.

    Written as LLVM vector code because numba does not vectorise across the lanes by
    itself. Each lane is computed exactly as the scalar loop ``q += y[i] * t`` over rows,
    ``t += v * y[k]`` over a row's entries (``t`` from 0, separate multiply and add, no
    fused multiply-add), so every lane's value is bitwise that of a scalar computation.
    """
    sig = types.UniTuple(types.float64, LANES)(y, rows, cols, vals, row_ptr, ent_ptr, widths)

    def codegen(context, builder, signature, args):
        t_y, t_rows, t_cols, t_vals, t_rp, t_ep, t_w = signature.args
        a_y, a_rows, a_cols, a_vals, a_rp, a_ep, a_w = (
            context.make_array(t)(context, builder, a)
            for t, a in zip(signature.args, args, strict=True))
        vec = ir.VectorType(ir.DoubleType(), LANES)
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)
        zero = ir.Constant(vec, [0.0] * LANES)
        one = ir.Constant(intp, 1)

        def item(aty, ary, idx):
            val = builder.load(cgutils.get_item_pointer(context, builder, aty, ary, [idx]))
            if isinstance(val.type, ir.IntType) and val.type.width < intp.width:
                val = builder.sext(val, intp)
            return val

        def row(k):
            ptr = cgutils.get_item_pointer(context, builder, t_y, a_y, [k, ir.Constant(intp, 0)])
            return builder.load(builder.bitcast(ptr, vec.as_pointer()), align=8)

        def splat(v):
            undef = ir.Constant(vec, ir.Undefined)
            one_lane = builder.insert_element(undef, v, ir.Constant(i32, 0))
            return builder.shuffle_vector(one_lane, undef,
                                          ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))

        q = cgutils.alloca_once_value(builder, zero)
        t = cgutils.alloca_once_value(builder, zero)
        e = cgutils.alloca_once_value(builder, ir.Constant(intp, 0))
        with cgutils.for_range(builder, builder.extract_value(a_w.shape, 0)) as group:
            width = item(t_w, a_w, group.index)
            builder.store(item(t_ep, a_ep, group.index), e)
            r0 = item(t_rp, a_rp, group.index)
            r1 = item(t_rp, a_rp, builder.add(group.index, one))
            with cgutils.for_range_slice(builder, r0, r1, one) as (r, _):
                builder.store(zero, t)
                with cgutils.for_range(builder, width):
                    ei = builder.load(e)
                    v = item(t_vals, a_vals, ei)
                    term = builder.fmul(splat(v), row(item(t_cols, a_cols, ei)))
                    builder.store(builder.fadd(builder.load(t), term), t)
                    builder.store(builder.add(ei, one), e)
                term = builder.fmul(row(item(t_rows, a_rows, r)), builder.load(t))
                builder.store(builder.fadd(builder.load(q), term), q)
        qv = builder.load(q)
        lanes = [builder.extract_element(qv, ir.Constant(i32, b)) for b in range(LANES)]
        return context.make_tuple(builder, signature.return_type, lanes)

    return sig, codegen


@njit(inline="always")
def _load_lane_keys(keys, p0, lane_keys):
    """Keys ``p0 ..`` into the lanes; idle lanes of a short last group rerun the last key.
    Returns the number of lanes in use."""
    lanes = min(LANES, keys.shape[0] - p0)
    for b in range(LANES):
        lane_keys[b] = keys[p0 + min(b, lanes - 1)]
    return lanes


@njit(inline="always")
def _shuffle_lanes(lane_keys, values, y, swaps):
    """``y[:, b] = values[P_b]`` with ``P_b`` the permutation of ``lane_keys[b]``: the
    lanes' inside-out shuffles of ``values`` (``swaps`` is scratch, ``_DRAW_ROWS`` rows)."""
    n = values.shape[0]
    for b in range(LANES):
        y[0, b] = values[0]
    for i0 in range(1, n, _DRAW_ROWS):
        i1 = min(i0 + _DRAW_ROWS, n)
        _draw_lane_swaps(lane_keys, i0, i1, swaps)
        _lane_shuffle_rows(y, values, swaps, i0, i1)


@njit(nogil=True, cache=True)
def permutations(keys, n):
    """The permutations of ``keys``, shape ``(keys.size, n)``, int32 (computed by the same
    lane shuffles as :func:`null_statistics`)."""
    out = np.empty((keys.shape[0], n), dtype=np.int32)
    if n == 0:
        return out
    iota = np.arange(n, dtype=np.int32)
    lane_keys = np.empty(LANES, dtype=np.uint64)
    swaps = np.empty((_DRAW_ROWS, LANES), dtype=np.int32)
    perm = np.empty((n, LANES), dtype=np.int32)
    for p0 in range(0, keys.shape[0], LANES):
        lanes = _load_lane_keys(keys, p0, lane_keys)
        _shuffle_lanes(lane_keys, iota, perm, swaps)
        for b in range(lanes):
            out[p0 + b] = perm[:, b]
    return out


@njit(nogil=True, cache=True)
def lane_quadratic_forms(y, rows, cols, vals, row_ptr, ent_ptr, widths):
    """:func:`_lane_quadratic_forms` callable from Python (tests)."""
    return _lane_quadratic_forms(y, rows, cols, vals, row_ptr, ent_ptr, widths)


@njit(nogil=True, cache=True)
def null_statistics(xs, keys, a, c, g, rows, cols, vals, row_ptr, ent_ptr, widths, out):
    """Permuted statistics of every map under every key, written into ``out``.

    Parameters
    ----------
    xs : ndarray of float64, shape (n_maps, n)
        Maps (C-contiguous).
    keys : ndarray of uint64, shape (n_perm,)
    a, c : ndarray of float64, shape (n_maps,)
        Coefficients of ``y'Uy`` and of ``g'(y * y)``.
    g : ndarray of float64, shape (n,) or (0,)
        Weights of the squared term; empty when ``c`` is all zero (Moran).
    rows, cols, vals, row_ptr, ent_ptr, widths
        :func:`ell_groups` of ``U``.
    out : ndarray of float64, shape (n_maps, n_perm)
    """
    m, n = xs.shape
    n_perm = keys.shape[0]
    lane_keys = np.empty(LANES, dtype=np.uint64)
    swaps = np.empty((_DRAW_ROWS, LANES), dtype=np.int32)  # 16 KiB: stays in L1
    perm = np.empty((n if m > 1 else 0, LANES), dtype=np.int32)
    iota = np.arange(n if m > 1 else 0, dtype=np.int32)  # the values an index shuffle moves
    y = np.zeros((n, LANES))
    sq = np.zeros(LANES)
    has_g = g.shape[0] > 0
    for p0 in range(0, n_perm, LANES):
        lanes = _load_lane_keys(keys, p0, lane_keys)
        if m > 1:  # one shuffle of the indices, then a gather per map
            _shuffle_lanes(lane_keys, iota, perm, swaps)
        for mi in range(m):
            x = xs[mi]
            if m > 1:
                for i in range(n):
                    for b in range(LANES):
                        y[i, b] = x[perm[i, b]]
            else:  # one map: shuffle its values directly (the same y)
                _shuffle_lanes(lane_keys, x, y, swaps)
            q = _lane_quadratic_forms(y, rows, cols, vals, row_ptr, ent_ptr, widths)
            if has_g:
                sq[:] = 0.0
                for i in range(n):
                    gi = g[i]
                    for b in range(LANES):
                        sq[b] += gi * (y[i, b] * y[i, b])
                for b in range(lanes):
                    out[mi, p0 + b] = a[mi] * q[b] + c[mi] * sq[b]
            else:
                for b in range(lanes):
                    out[mi, p0 + b] = a[mi] * q[b]
