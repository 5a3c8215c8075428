"""The OLMo ladder authors' two-step method (calibrate.ladder_method), on simulated ladders of known laws."""

import numpy as np
import pandas as pd
import pytest

from calibrate import ladder_method
from dynsim.config import RunConfig

TRUE = dict(a=np.log(40.0), alpha=0.3, b=np.log(300.0), beta=0.32, E=0.6)  # bpb law
LINK = (60.0, 1.0, -6.0, 25.0)  # acc = 60 / (1 + exp(6 (x − 1))) + 25


def ladder(sizes, mults, rng, noise=0.0):
    rows = []
    for n in sizes:
        for m in mults:
            total = int(20 * m * n)
            for seen in np.linspace(total / 20, total, 20).astype(np.int64):
                x = ladder_method._law([TRUE[k] for k in ("a", "alpha", "b", "beta", "E")], n, seen)
                acc = ladder_method._sigmoid(x, *LINK) + noise * rng.standard_normal()
                cfg = RunConfig(size=n, pretrain=int(seen), pretrain_schedule=0 if seen == total else total)
                for metric, v in (("bpb", x), ("acc", acc), ("loss", 2 * x)):
                    task = "c4" if metric == "loss" else "arc"
                    rows.append(dict(size=n, pretrain=cfg.pretrain, pretrain_schedule=cfg.pretrain_schedule, seed=0,
                                     task=task, metric=metric, value=v))
    return pd.DataFrame(rows)


def test_the_two_steps_recover_a_known_ladder_and_predict_a_larger_model():
    rng = np.random.default_rng(0)
    sizes = [2e8, 4e8, 8e8, 1.3e9]
    full = ladder(sizes + [3.2e9], [1, 2, 5, 10], rng)
    train = {RunConfig(size=int(n), pretrain=int(20 * m * n)).name for n in sizes for m in (1, 2, 5, 10)}
    test = [(RunConfig(size=int(3.2e9), pretrain=int(20 * m * 3.2e9)).name, t, metric)
            for m in (1, 10) for t, metric in (("arc", "acc"), ("c4", "loss"))]
    point, draws = ladder_method.predict(full, "c4", train, test)
    truth = [ladder_method._sigmoid(ladder_method._law(list(TRUE.values()), 3.2e9, 20 * m * 3.2e9), *LINK)
             if metric == "acc" else 2 * ladder_method._law(list(TRUE.values()), 3.2e9, 20 * m * 3.2e9)
             for m in (1, 10) for _, metric in (("arc", "acc"), ("c4", "loss"))]
    assert point == pytest.approx(truth, rel=0.02, abs=0.5)  # noise-free: the laws themselves
    assert draws.shape == (len(ladder_method.GRID), len(test))


def test_noise_widens_the_interval_from_the_methods_own_errors():
    rng = np.random.default_rng(1)
    sizes = [2e8, 4e8, 8e8, 1.3e9]
    train = {RunConfig(size=int(n), pretrain=int(20 * m * n)).name for n in sizes for m in (1, 2, 5, 10)}
    test = [(RunConfig(size=int(3.2e9), pretrain=int(64e9)).name, "arc", "acc")]
    widths = []
    for noise in (0.0, 3.0):
        _, draws = ladder_method.predict(ladder(sizes, [1, 2, 5, 10], rng, noise), "c4", train, test)
        widths.append(np.ptp(np.quantile(draws[:, 0], [0.05, 0.95])))
    assert widths[1] > widths[0] + 1.0
