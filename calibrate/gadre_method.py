"""Gadre et al. 2024's own method (§2-3 of *Language models scale reliably with over-training and on downstream
tasks*), written here from its published form as a baseline for `dynsim validate --calibration gadre2024
--baselines`:

loss    `L(N, D) = E + A·N^(−η) + B·D^(−η)`, one exponent for size and data (their Eq. 4, which they write in compute
        and tokens per parameter), least squares from a grid of starts, the best residual kept (as Hoffmann et al.);
error   the average top-1 error over the downstream evaluations as `Err(L) = ε − k·exp(−γ·L)` in the C4 validation
        loss (their Eq. 5), least squares;
chained the error law at the loss law's prediction. Both laws are fitted per training corpus on the paper's five
        runs: 0.011B, 0.079B, 0.154B and 0.411B parameters at 20 tokens per parameter and 0.011B at 320 (N counts
        every parameter, as theirs does).

The authors give points, not intervals; the interval here is the point plus the spread of the chained method's
errors on every training run (the runs below 1B the five-run fits did not see are most of them), per quantity, so
its interval score can be read beside the others.
"""

from __future__ import annotations

import csv
import io
import itertools
from importlib import resources

import numpy as np
from scipy.optimize import curve_fit

from calibrate.naive import GRID

FIT_RUNS = ((1.0, "smallest"), (1.0, "all"), (16.0, "smallest"))  # (Chinchilla multiplier, which sizes) below 1B
FIT_BELOW = 1e9
CSV = "gadre2024_runs.csv"


def _loss_law(x, E, A, B, eta):
    N, D = x
    return E + A * N ** -eta + B * D ** -eta


def _error_law(L, eps, k, gamma):
    return eps - k * np.exp(-gamma * L)


def fit_loss(N, D, L) -> np.ndarray:
    """The loss law from a grid of starts, the smallest residual kept."""
    best, best_res = None, np.inf
    for A, B, eta, E in itertools.product((1e2, 1e3), (1e2, 1e3), (0.1, 0.3), (0.0, 1.0, 2.0)):
        try:
            theta, _ = curve_fit(_loss_law, (N, D), L, p0=[E, A, B, eta], maxfev=10000)
        except RuntimeError:  # no convergence from this start
            continue
        res = float(np.sum((_loss_law((N, D), *theta) - L) ** 2))
        if np.isfinite(res) and res < best_res:
            best, best_res = theta, res
    return best


def fit_error(L, err) -> np.ndarray:
    for p0 in ([1.0, 1.0, 1.0], [0.8, 10.0, 1.0], [0.8, 100.0, 2.0]):
        try:
            return curve_fit(_error_law, L, err, p0=p0, maxfev=20000)[0]
        except RuntimeError:
            continue
    raise RuntimeError("the loss-to-error law did not converge from any start")


def _runs(path=None) -> dict:
    """(non-embedding params, tokens, corpus) → params, multiplier, C4 loss, average accuracy (percent)."""
    path = path or resources.files("dynsim") / "data" / "gadre2024" / CSV
    runs: dict[tuple, dict] = {}
    for r in csv.DictReader(io.StringIO(path.read_text())):
        key = (int(r["params_no_embed"]), int(r["tokens"]), r["dataset"])
        run = runs.setdefault(key, dict(N=float(r["params"]), M=float(r["chinchilla_multiplier"]), acc=[]))
        if r["kind"] == "loss" and r["task"] == "c4_val":
            run["loss"] = float(r["value"])
        elif r["kind"] == "downstream_acc":
            run["acc"].append(100 * float(r["value"]))
    return {k: dict(v, D=float(k[1]), avg=float(np.mean(v["acc"]))) for k, v in runs.items() if "loss" in v}


def _is_fit_run(run: dict, smallest: float) -> bool:
    return run["N"] < FIT_BELOW and any(run["M"] == m and (which == "all" or run["N"] == smallest)
                                        for m, which in FIT_RUNS)


def predict(obs, held: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points and predictive draws (len(GRID), n held) of the held-out loss and average-accuracy numbers."""
    runs, corpora = _runs(), obs.corpora
    laws = {}
    for corpus in corpora:
        mine = [r for (_, _, c), r in runs.items() if c == corpus]
        smallest = min(r["N"] for r in mine)
        fit = [r for r in mine if _is_fit_run(r, smallest)]
        N, D, L = (np.array([r[k] for r in fit]) for k in ("N", "D", "loss"))
        laws[corpus] = (fit_loss(N, D, L), fit_error(L, 1 - np.array([r["avg"] for r in fit]) / 100))

    def chained(run, corpus, metric):
        theta, phi = laws[corpus]
        loss = _loss_law((run["N"], run["D"]), *theta)
        return loss if metric == "loss" else 100 * (1 - _error_law(loss, *phi))

    def key(i):
        return (obs.configs[i].size, obs.configs[i].pretrain, corpora[int(obs.corpus[i])])

    errors = {m: [] for m in ("loss", "acc")}
    for i in np.flatnonzero(~held):
        run = runs[key(i)]
        truth = run["loss"] if obs.metrics[i] == "loss" else run["avg"]
        errors[obs.metrics[i]].append(truth - chained(run, key(i)[2], obs.metrics[i]))
    test = np.flatnonzero(held)
    points = np.array([chained(runs[key(i)], key(i)[2], obs.metrics[i]) for i in test])
    spread = np.stack([np.quantile(errors[obs.metrics[i]], GRID) for i in test], axis=1)
    return points, points + spread
