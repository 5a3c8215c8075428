"""The OLMo ladder authors' method (Bhagia et al. 2024, §3), written here from its published form as a baseline
for `dynsim validate --calibration olmo_ladder --baselines`:

step 1  task loss (bits per byte of the correct answer) `x = exp(a)/N^α + exp(b)/D^β + E`, one point per run (the
        mean of its last 5 checkpoints), fitted by L-BFGS-B on a Huber loss (δ = 1e-3) of log(pred) − log(actual);
step 2  accuracy `acc = a / (1 + exp(−k (x − x0))) + b` in the task loss, least squares over every checkpoint after
        the first 10% of each run (a 5-checkpoint moving average);
chained step 2 of step 1's prediction. The C4 loss is predicted by step 1 alone. Training runs: those of the fit at
1, 2, 5 and 10 × 20 tokens per parameter (the authors' split leaves the 0.5× runs out).

The authors give points, not intervals; the interval here is the point plus the spread of the method's own chained
errors on the training runs' final checkpoints, per task (so its interval score can be read beside the others).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import curve_fit, minimize

from calibrate.naive import GRID

HUBER_DELTA = 1e-3
LAST = 5  # checkpoints averaged for a run's step-1 point
SKIP = 0.1  # the first part of each run left out of step 2
SMOOTH = 5  # moving-average window of step 2
MIN_TPP = 18.0  # training runs: ≥ 1 × 20 tokens per parameter (0.9 of it, for rounding of the token counts)


def _huber(r):
    a = np.abs(r)
    return np.where(a <= HUBER_DELTA, 0.5 * r**2, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))


def _law(theta, N, D):
    a, alpha, b, beta, E = theta
    return np.exp(a) / N**alpha + np.exp(b) / D**beta + E


def fit_step1(N, D, y) -> np.ndarray:
    """The loss law, from a grid of starts (as the authors do), the best Huber objective kept."""
    def objective(theta):
        pred = _law(theta, N, D)
        return np.inf if np.any(pred <= 0) else float(np.sum(_huber(np.log(pred) - np.log(y))))

    best = None
    for a in (0.0, 5.0, 10.0):
        for b in (0.0, 5.0, 10.0):
            for alpha in (0.2, 0.5):
                start = np.array([a, alpha, b, alpha, 0.5 * float(np.min(y))])
                res = minimize(objective, start, method="L-BFGS-B",
                               bounds=[(-10, 30), (0.01, 2), (-10, 30), (0.01, 2), (0, float(np.min(y)))])
                if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                    best = res
    return best.x


def _sigmoid(x, a, x0, k, b):
    return a / (1 + np.exp(-k * (x - x0))) + b


def fit_step2(x, acc) -> np.ndarray:
    p0 = [float(np.ptp(acc)) or 1.0, float(np.median(x)), -5.0, float(np.min(acc))]
    params, _ = curve_fit(_sigmoid, x, acc, p0=p0, maxfev=20000)
    return params


def _smooth(v):
    return np.convolve(v, np.ones(SMOOTH) / SMOOTH, mode="valid") if len(v) >= SMOOTH else v


def predict(full, loss_task: str, train_configs: set, test_keys: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """full: the testbed's whole long table (results.to_long: every checkpoint, bpb and acc); train_configs: names
    of the fit's final checkpoints; test_keys: (config, task, metric) to predict. Returns (points, draws (S, n))."""
    from dynsim.config import RunConfig, parse_config

    df = full[full.seed == 0].copy()
    run_total = np.where(df.pretrain_schedule > 0, df.pretrain_schedule, df.pretrain)
    df["run_total"] = run_total
    runs = df[["size", "run_total"]].drop_duplicates()
    name = {(n, t): RunConfig(size=int(n), pretrain=int(t)).name for n, t in runs.itertuples(index=False)}
    df["run"] = [name[k] for k in zip(df["size"], df["run_total"])]
    train = df[df.run.isin(train_configs) & (df.run_total >= MIN_TPP * df["size"])]
    tasks = sorted({t for _, t, _ in test_keys})
    steps, errors = {}, {}
    for task in tasks:
        metric = "loss" if task == loss_task else "bpb"
        rows = train[(train.task == task) & (train.metric == metric)].sort_values(["run", "pretrain"])
        finals = rows.groupby("run").agg(N=("size", "first"), D=("run_total", "first"),
                                         x=("value", lambda v: v.iloc[-LAST:].mean()))
        theta = fit_step1(finals.N.to_numpy(float), finals.D.to_numpy(float), finals.x.to_numpy(float))
        link = None
        if task != loss_task:
            xs, ys = [], []
            acc = train[(train.task == task) & (train.metric == "acc")]
            for run, r in rows.groupby("run"):
                a = acc[acc.run == run].set_index("pretrain").value
                r = r[r.pretrain >= SKIP * r.run_total.iloc[0]].set_index("pretrain").value
                both = r.index.intersection(a.index).sort_values()
                xs.append(_smooth(r.loc[both].to_numpy()))
                ys.append(_smooth(a.loc[both].to_numpy()))
            link = fit_step2(np.concatenate(xs), np.concatenate(ys))
        steps[task] = (theta, link)
        # the chained errors at the training runs' final checkpoints: the interval's spread
        chained = _law(theta, finals.N.to_numpy(float), finals.D.to_numpy(float))
        if link is not None:
            chained = _sigmoid(chained, *link)
            final_metric = "acc"
        else:
            final_metric = "loss"
        last = train[(train.task == task) & (train.metric == final_metric) & (train.pretrain == train.run_total)]
        truth = last.set_index("run").value.reindex(finals.index).to_numpy()
        errors[task] = truth - chained
    points = np.empty(len(test_keys))
    draws = np.empty((len(GRID), len(test_keys)))

    for j, (config, task, metric) in enumerate(test_keys):
        c = parse_config(config)
        theta, link = steps[task]
        x = _law(theta, float(c.size), float(c.pretrain))
        points[j] = x if link is None else _sigmoid(x, *link)
        draws[:, j] = points[j] + np.quantile(errors[task][np.isfinite(errors[task])], GRID)
    return points, draws
