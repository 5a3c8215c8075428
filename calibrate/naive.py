"""Naive baselines for `dynsim validate --baselines`: held-out numbers predicted with no scaling law at all, the
floor against which the model and its least-squares fit are read.

carry-forward  the same number (task, metric, corpus) at the nearest training run (dynsim.config.config_distance):
               the guess of someone who looks up the closest run already trained. Its interval is the empirical
               spread of that guess's errors within the training data, each training number carried from its
               nearest *other* training run (leave one configuration out), per observation group.
loglinear      per number, a least-squares line in log pretraining tokens and log size through the training runs of
               the same stage shape (which of CPT, SFT, RL they ran): the straight line on a scaling plot's log
               axes. Its interval is the line's prediction interval: t-quantile × residual sd × √(1 + leverage).

Both return point predictions and predictive draws (S, n) of the test numbers, the form `validate.interval_rows`
scores. The draws lie on one grid of probabilities shared by every column, so a run's numbers err together (as
numbers carried from one neighbour, or read off lines through the same runs, do): the interval of an average over
a run's tasks is the mean of its tasks' intervals, the cautious end. numpy (and scipy's Student-t quantiles): seconds
on every bundled calibration, no fit.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import t as student_t

from dynsim.config import STAGES, config_distance
from dynsim.errors import UserError

GRID = (np.arange(200) + 0.5) / 200  # the probabilities at which each number's predictive distribution is drawn
MIN_FIT = 2  # numbers a line needs to leave a residual: fewer, and the fit falls back to a broader pool


def stage_shape(c) -> str:
    """Which stages a run trained, e.g. 'pt+cpt+sft': runs of one shape lie on one scaling curve."""
    return "+".join(stage for stage in STAGES if c.has(stage))


class _Numbers:
    """What the baselines read of each observation, as arrays, and the distances between its configurations."""

    def __init__(self, obs):
        self.obs = obs
        self.tasks, self.metrics = np.array(obs.tasks), np.array(obs.metrics)
        self.kinds = np.array([obs.table.kind(t) for t in obs.tasks])
        self.corpus = np.asarray(obs.corpus)
        self.shape = np.array([stage_shape(c) for c in obs.configs])
        self.log_scale = np.log([[c.pretrain, c.size] for c in obs.configs])
        _, first, self.run = np.unique([c.name for c in obs.configs], return_index=True, return_inverse=True)
        runs = [obs.configs[i] for i in first]  # one per configuration, in the order of self.run's indices
        self.distance = np.array([[config_distance(a, b) for b in runs] for a in runs])

    def pools(self, rows: np.ndarray, i: int, by_shape: bool):
        """Rows to predict number i from, most specific first: the same task, metric and corpus; then, for a task
        with no such number (a benchmark measured on held-out runs only), any task of the same kind. by_shape
        puts each pool's runs of i's stage shape before the pool itself."""
        same_metric = (self.metrics[rows] == self.metrics[i]) & (self.corpus[rows] == self.corpus[i])
        for same_task in (self.tasks[rows] == self.tasks[i], self.kinds[rows] == self.kinds[i]):
            match = rows[same_metric & same_task]
            if by_shape:
                yield match[self.shape[match] == self.shape[i]]
            yield match

    def carried(self, rows: np.ndarray, i: int) -> float | None:
        """Number i carried forward from the nearest run among rows (the mean over runs equally near); None where
        no row has its metric."""
        pool = next((p for p in self.pools(rows, i, by_shape=False) if len(p)), None)
        if pool is None:
            return None
        d = self.distance[self.run[i], self.run[pool]]
        return float(self.obs.values[pool[d <= d.min() + 1e-9]].mean())


def _nothing_to_predict_from(obs, i: int) -> str:
    return (f"no training number of metric {obs.metrics[i]} for a task of kind {obs.table.kind(obs.tasks[i])} "
            f"to predict {obs.configs[i].name} {obs.tasks[i]} from")


def _clipped(obs, test, point, draws):
    pct = obs.scale[test] == 100.0
    return np.where(pct, np.clip(point, 0, 100), point), np.where(pct, np.clip(draws, 0, 100), draws)


def carry_forward(obs, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Point predictions and draws (len(GRID), len(test)) of the test numbers from the training numbers (indices)."""
    num = _Numbers(obs)
    # the errors carrying forward makes within the training data, each number from its nearest other run
    errors: dict[int, list[float]] = {}
    for i in train:
        guess = num.carried(train[num.run[train] != num.run[i]], i)
        if guess is not None:
            errors.setdefault(int(obs.group[i]), []).append(obs.values[i] - guess)
    point = np.array([num.carried(train, i) for i in test], dtype=float)
    if np.isnan(point).any():
        raise UserError(_nothing_to_predict_from(obs, test[np.isnan(point)][0]))
    # a group without a single training error has no evidence of its spread: its numbers get a point
    spread = np.stack([np.quantile(errors.get(int(obs.group[i]), [0.0]), GRID) for i in test], axis=1)
    return _clipped(obs, test, point, point + spread)


def _line(log_scale: np.ndarray, y: np.ndarray, at: np.ndarray) -> tuple[float, np.ndarray]:
    """A least-squares line of y in the log-scale columns that vary (log tokens before log size, dropped from the
    end while the numbers cannot leave a residual), evaluated at `at`: point and prediction-interval offsets at
    GRID's probabilities."""
    varies = np.ptp(log_scale, axis=0) > 1e-9
    columns = [np.ones(len(y))] + [log_scale[:, k] for k in np.flatnonzero(varies)]
    x0 = np.concatenate([[1.0], at[varies]])
    while len(columns) > 1 and len(y) <= len(columns):
        columns, x0 = columns[:-1], x0[:-1]
    X = np.stack(columns, axis=1)
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    dof = len(y) - X.shape[1]
    if dof == 0:  # a single number: nothing says how far off it is
        return float(x0 @ beta), np.zeros(len(GRID))
    sd = np.sqrt(np.sum((y - X @ beta) ** 2) / dof)
    leverage = x0 @ np.linalg.pinv(X.T @ X) @ x0  # grows as the held-out run lies farther outside the fitted ones
    return float(x0 @ beta), sd * np.sqrt(1 + leverage) * student_t.ppf(GRID, dof)


def loglinear(obs, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Point predictions and draws (len(GRID), len(test)) of the test numbers from the training numbers (indices)."""
    num = _Numbers(obs)
    point, spread = np.empty(len(test)), np.empty((len(GRID), len(test)))
    for j, i in enumerate(test):
        pools = [p for p in num.pools(train, i, by_shape=True) if len(p)]
        if not pools:
            raise UserError(_nothing_to_predict_from(obs, i))
        rows = next((p for p in pools if len(p) >= MIN_FIT), pools[0])
        point[j], spread[:, j] = _line(num.log_scale[rows], obs.values[rows], num.log_scale[i])
    return _clipped(obs, test, point, point + spread)


METHODS = {"carry-forward": carry_forward, "loglinear": loglinear}
