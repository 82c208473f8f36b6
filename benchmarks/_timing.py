"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import time


def best_times(fn, repeats: int):
    """Run ``fn`` ``repeats`` times; the smallest wall and CPU times (s) and the last output.

    The minimum is the figure least disturbed by other processes on a shared machine.
    """
    walls, cpus, out = [], [], None
    for _ in range(max(1, int(repeats))):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus), out


def best_of(fn, repeats: int):
    """The smallest wall time (s) of ``repeats`` runs of ``fn``, and its last output."""
    wall, _, out = best_times(fn, repeats)
    return wall, out
