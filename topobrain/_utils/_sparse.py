"""Small sparse-matrix helpers shared by spatial and brain."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["submatrix"]


def submatrix(w: sp.csr_matrix, idx: np.ndarray) -> sp.csr_matrix:
    """Rows and columns ``idx`` (sorted, unique) of a square CSR matrix; ``w`` itself when
    ``idx`` is every index (a fancy-indexed copy of a 32k-vertex mesh costs milliseconds)."""
    if idx.size == w.shape[0]:
        return w
    return w[idx][:, idx]
