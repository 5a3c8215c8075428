"""A faster posterior predictive, proposed for `Posterior.predict` (issue 3, bench goal ≤ 0.2 s for 1,000
configurations over all draws). Not used by dynsim yet: bench_predict.py times it beside the exact path.

Why it is faster. In the forward model a downstream metric depends on the configuration only through the
ability logit μ (per draw, per observation); the item quadrature (24 strata × up to 4 chance components,
and for maj@k a 17-term binomial sum) is a smooth function of μ given the draw's task parameters. The exact
path evaluates that quadrature for every (draw, observation): S × n × components × 24 transcendental
evaluations (4000 × 1000 × 2 × 24 ≈ 2·10⁸ for ID_avg, ×17 more exp() for maj@16). Here it is evaluated
once per (draw, task, metric) on a grid of G values of μ spanning that draw's μ range, and each
observation's value is linearly interpolated: S × G × components × 24 + S × n cheap operations.

No formula is copied: the table is `forward.downstream_metric` itself, evaluated on a design of G copies of
one observation with `ability0` set so that `forward.ability` returns exactly the grid (ability is
ability0[task] plus terms that do not involve ability0, whatever the model form).
"""

from __future__ import annotations

import numpy as np

from dynsim import forward

TASK_PARAMS = tuple(p.name for p in forward.PARAMS if p.group == "task")


def _table(p: dict, x1: dict, metric, lo: np.ndarray, hi: np.ndarray, n_grid: int) -> np.ndarray:
    """forward.downstream_metric at each draw on μ = linspace(lo_s, hi_s, n_grid): (S, n_grid)."""
    G = n_grid
    xg = forward._sub(x1, np.zeros(G, dtype=int))  # G copies of one observation
    t = int(x1["task_idx"][0])
    xg["task_idx"] = np.arange(G)  # grid point j reads per-task parameters from column j
    pg = dict(p)
    for name in TASK_PARAMS:
        pg[name] = np.repeat(p[name][:, t : t + 1], G, axis=1)
    pg["ability0"] = np.zeros_like(pg["ability0"])
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, G)
    pg["ability0"] = grid - forward.ability(pg, xg, np)  # now ability(pg, xg) == grid
    return forward.downstream_metric(pg, xg, np, metric)


def _interp(tab: np.ndarray, lo: np.ndarray, hi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    G = tab.shape[1]
    h = (hi - lo) / (G - 1)
    u = (mu - lo[:, None]) / h[:, None]
    i = np.clip(np.floor(u).astype(np.intp), 0, G - 2)
    w = u - i
    return np.take_along_axis(tab, i, axis=1) * (1.0 - w) + np.take_along_axis(tab, i + 1, axis=1) * w


def predict_mean(post, configs, tasks, metrics, n_grid: int = 64, block: int = 0, dtype=np.float64) -> np.ndarray:
    """Draws (S, n) of the forward model (fractions; nats for loss), like forward.predict(post.gathered(), x).
    block > 0: draws in blocks of that many, so temporaries stay small (cache-resident, no fresh pages);
    dtype float32 halves memory traffic."""
    x = forward.design(configs, tasks, metrics, post.table)
    if dtype != np.float64:
        x = {k: v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v for k, v in x.items()}
    p_all = {k: v.astype(dtype) for k, v in post.gathered().items()}
    down = np.array([post.table.kind(t) in forward.KINDS for t in tasks])
    S = post.n_draws
    block = block or S
    mean = np.empty((S, len(configs)), dtype=dtype)
    for s0 in range(0, S, block):
        p = {k: v[s0 : s0 + block] for k, v in p_all.items()}
        mean[s0 : s0 + block] = _mean_block(p, x, tasks, metrics, down, n_grid)
    return mean


def _mean_block(p, x, tasks, metrics, down, n_grid):
    mean = np.empty((len(next(iter(p.values()))), len(tasks)), dtype=next(iter(p.values())).dtype)
    if (~down).any():  # upstream accuracies and losses: (S, n) elementwise already, exact
        rest = np.flatnonzero(~down)
        mean[:, rest] = forward.predict(p, forward._sub(x, rest), np)
    if down.any():
        idx = np.flatnonzero(down)
        xd = forward._sub(x, idx)
        mu = forward.ability(p, xd, np)  # (S, nd), exact
        groups: dict[tuple, list[int]] = {}
        for j, i in enumerate(idx):
            groups.setdefault((tasks[i], metrics[i]), []).append(j)
        for (task, metric), cols in groups.items():
            cols = np.array(cols)
            m = mu[:, cols]
            lo, hi = m.min(axis=1), m.max(axis=1)
            hi = np.maximum(hi, lo + 1e-6)
            tab = _table(p, forward._sub(xd, cols[:1]), forward.metric_kind(metric), lo, hi, n_grid)
            mean[:, idx[cols]] = _interp(tab, lo, hi, m)
    return mean


def predict(post, configs, tasks, metrics, rng=None, noise: bool = True, n_grid: int = 64, block: int = 0,
            dtype=np.float64) -> np.ndarray:
    """Drop-in for Posterior.predict (default corpus, no item counts): draws (S, n), percent (nats for loss)."""
    scale = np.array([1.0 if m == "loss" else 100.0 for m in metrics])
    out = predict_mean(post, configs, tasks, metrics, n_grid, block, dtype) * scale
    if noise:
        rng = rng or np.random.default_rng(0)
        out = out + post.noise_sd(tasks, metrics, out) * rng.standard_normal(out.shape)
    return np.where(scale == 100.0, np.clip(out, 0.0, 100.0), out)
