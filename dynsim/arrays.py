"""The array operations the forward model's formulas are written in, over numpy (prediction from stored draws)
or pytensor (the PyMC likelihood): gathering a grouped parameter per observation, a stable sigmoid, powers, and
`per_distinct`, which evaluates a term once per distinct value of the data columns it reads.

Why `per_distinct`: a grid of configurations repeats its sizes and token counts many times, and the
transcendental functions of a term (exp, log, power) dominate prediction's cost; a term of model size alone is
computed once per size and gathered back. With pytensor it is just the term. Numpy-only speed machinery that
is not about one formula (draw blocks on threads, tabulated metrics) lives in dynsim/fastpath.py.
"""

from __future__ import annotations

import threading

import numpy as np


def sigmoid(xp, v):
    """The logistic function without overflow at any argument (1/(1 + e^−v) overflows e^−v below v ≈ −89 in
    float32): tanh's form in numpy, pytensor's own stable sigmoid in a compiled graph."""
    if xp is np:
        return 0.5 + 0.5 * np.tanh(0.5 * v)
    return xp.sigmoid(v)


def take(xp, p, idx):
    return xp.take(p, idx, axis=-1)


def gather(xp, p, idx):
    """A grouped parameter (…, groups) per observation. numpy keeps one column where every observation reads the
    same group (it broadcasts: a prediction for one task needs no full-size gather)."""
    if xp is np and len(idx) > 1 and (idx == idx[0]).all():
        return p[..., idx[:1]]
    return take(xp, p, idx)


def full(xp, v, n: int):
    """v with its observation axis at full length n (numpy terms that were the same for every observation
    stay one broadcasting column until a result leaves the model)."""
    if xp is not np or np.shape(v)[-1] == n:
        return v
    return np.broadcast_to(v, np.shape(v)[:-1] + (n,)).copy()


def power(xp, base: np.ndarray, exponent):
    """base ** exponent for a positive data column and parameter draws, as exp(exponent · log base): the log is
    taken once per column value, and numpy's exp is vectorised where its float32 pow is not (4× faster here)."""
    return xp.exp(exponent * np.log(base))


def per_distinct(xp, f, *cols):
    """f(*cols), a term combining per-observation columns with (S, 1) draws. With numpy, f runs once per distinct
    combination of the columns and is gathered back (a grid of configurations repeats its values, and the
    transcendental functions dominate the cost), or left one broadcasting column where all rows share one
    combination; pytensor gets f(*cols)."""
    if xp is not np or len(cols[0]) < 2:
        return f(*cols)
    distinct, inverse = _unique_rows(np.stack(cols, axis=1))
    values = f(*distinct.T)
    return values if len(distinct) == 1 else np.take(values, inverse, axis=-1)


_UNIQUE_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_UNIQUE_LOCK = threading.Lock()


def _unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(a, axis=0, return_inverse=True), remembered by content: predict_many asks for the same design
    columns in every block of draws, and np.unique along an axis costs ~1 ms where a lookup costs µs."""
    key = (a.shape, a.dtype.str, a.tobytes())
    with _UNIQUE_LOCK:  # blocks of draws run in threads
        if key not in _UNIQUE_CACHE:
            if len(_UNIQUE_CACHE) >= 64:
                _UNIQUE_CACHE.pop(next(iter(_UNIQUE_CACHE)))
            distinct, inverse = np.unique(a, axis=0, return_inverse=True)
            _UNIQUE_CACHE[key] = distinct, inverse.ravel()
        return _UNIQUE_CACHE[key]


def in_order(xp, parts, rows):
    """Per-group results (…, len(rows_g)) back in observation order."""
    order = np.concatenate(rows)
    inverse = np.empty(len(order), dtype=int)
    inverse[order] = np.arange(len(order))
    return take(xp, xp.concatenate(parts, axis=-1), inverse)
