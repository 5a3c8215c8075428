"""Fast prediction over many posterior draws (numpy only): `predict_many` gives `forward.predict`'s values for
thousands of draws and observations in a fraction of a second. Downstream metrics are tabulated in the ability
μ per draw and interpolated (Catmull-Rom), and blocks of draws run on threads (numpy releases the GIL). The
formulas themselves are dynsim/forward.py's; nothing here changes what they say."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dynsim.forward import KINDS, ability, downstream_metric, predict

BLOCK = 250  # draws per block of predict_many: the fastest here (1 MB float32 temporaries for 1,000 observations)


def predict_many(p, x, max_step: float = 0.3, min_tabulated: int = 64, block: int = BLOCK,
                 dtype=np.float32, finish=None) -> np.ndarray:
    """`predict` for many observations at once (numpy), within ~0.03 points of it; float32 draws (S, n).

    A downstream metric depends on the configuration only through the ability μ, and its item quadrature
    (24 strata × chance components; maj@k adds a (k+1)-term binomial sum) is a smooth function of μ given the
    draw's task parameters. `predict` evaluates that quadrature for every (draw, observation); here it is
    evaluated once per (draw, task, metric) on nodes at most max_step logits apart spanning the draw's range,
    and each observation's value is interpolated (cubic) — the table is `downstream_metric` itself
    (`_metric_table`). A (task, metric) with fewer than min_tabulated observations is computed exactly. Blocks of
    draws run on all cores (numpy releases the GIL) and keep temporaries small; float32 halves memory traffic.
    finish(block_index, draws, values): work on each block's values in place (e.g. noise), in its thread."""
    x = x.astype(dtype)
    p = {k: v.astype(dtype) for k, v in p.items()}
    S, n = len(next(iter(p.values()))), len(x["N"])
    groups: dict[tuple, list[int]] = {}
    for i in np.flatnonzero(np.isin(np.asarray(x["kind"]), KINDS)):
        groups.setdefault((int(x["task_idx"][i]), x["metric"][i]), []).append(i)
    tabulated = {key: (np.asarray(rows), x.subset(rows)) for key, rows in groups.items()
                 if len(rows) >= min_tabulated}
    exact = np.setdiff1d(np.arange(n), np.concatenate([rows for rows, _ in tabulated.values()] + [np.zeros(0, int)]))
    x_exact = x.subset(exact)
    out = np.empty((S, n), dtype=dtype)

    def fill(s: int) -> None:
        pb = {k: v[s : s + block] for k, v in p.items()}
        if exact.size:  # upstream numbers (elementwise already) and small downstream groups: the exact model
            out[s : s + block, exact] = predict(pb, x_exact, np)
        for (_, metric), (rows, xg) in tabulated.items():
            m = ability(pb, xg, np)
            lo, hi = m.min(axis=1), m.max(axis=1)
            nodes = int(np.ceil((hi - lo).max() / max_step)) + 4  # one extra node either side for the cubic's ends
            h = np.maximum(hi - lo, 1e-3) / (nodes - 3)
            table = _metric_table(pb, xg.subset(np.zeros(1, dtype=int)), lo - h, h, nodes)
            u = m - lo[:, None]  # position on the grid, in nodes
            u *= (1.0 / h)[:, None]
            u += 1.0
            out[s : s + block, rows] = _catmull_rom(table, u)
        if finish is not None:
            finish(s // block, slice(s, s + block), out[s : s + block])

    with ThreadPoolExecutor(min(os.cpu_count() or 1, -(-S // block))) as pool:
        list(pool.map(fill, range(0, S, block)))
    return out


def _metric_table(p, x1, start, step, n_grid: int) -> np.ndarray:
    """downstream_metric of one observation's task and metric at each draw's μ = start + step·j, j < n_grid:
    (S, n_grid)."""
    grid = start[:, None] + step[:, None] * np.arange(n_grid, dtype=start.dtype)
    return downstream_metric(p, x1.subset(np.zeros(n_grid, dtype=int)), np, mu=grid)


def _catmull_rom(table, u):
    """Cubic (Catmull–Rom) interpolation of each row of `table` (S, nodes) at positions u (S, n), in nodes, with
    1 ≤ u ≤ nodes − 2; error O(step⁴). The cubic's coefficients are formed per interval of the table (small),
    so each element costs four gathers and a Horner step, in place and in the table's dtype."""
    p0, p1, p2, p3 = table[:, :-3], table[:, 1:-2], table[:, 2:-1], table[:, 3:]
    coefs = (p1, 0.5 * (p2 - p0), p0 - 2.5 * p1 + 2.0 * p2 - 0.5 * p3, 1.5 * (p1 - p2) + 0.5 * (p3 - p0))
    rows, intervals = p1.shape
    i = np.clip(u.astype(np.int32), 1, intervals, dtype=np.int32)
    t = u - i.astype(u.dtype)  # fraction within the interval
    i += (intervals * np.arange(rows, dtype=np.int32) - 1)[:, None]  # flat index of the interval
    value = np.take(np.ascontiguousarray(coefs[3]).ravel(), i)
    for c in coefs[2::-1]:  # Horner
        value *= t
        value += np.take(np.ascontiguousarray(c).ravel(), i)
    return value
