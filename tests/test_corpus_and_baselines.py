"""Datasets that compare pretraining corpora (the Gadre et al. 2024 testbed), the compute-only model form,
measurement noise from item counts, and the least-squares baselines."""

import dataclasses

import numpy as np
import pytest

from calibrate import baselines, validate
from calibrate.model import observations
from dynsim import forward, results
from dynsim.config import RunConfig
from dynsim.observation import measurement_sd

TABLE = forward.TaskTable(["c4_val", "arc_easy"], ["text", "upstream"], [[0.0], [0.25]])
TRUE = dict(E=1.9, A=0.4, alpha=0.3, B=0.3, beta=0.28, up_slope=[3.0], up_mid=[2.9], up_ceiling=[0.9],
            corpus_E=[0.0, 0.08], corpus_logB=[0.0, 0.2],
            anneal_gap=0.05, forget_max=0.2, forget_tokens=5e9, replay_protect=15.0)  # unused by these runs


def _numpy(p):
    return {k: np.atleast_1d(np.asarray(v, float))[None] if np.ndim(v) else np.array([[v]]) for k, v in p.items()}


def test_gadre_testbed_imports_with_its_corpora_and_counts():
    ds = results.from_gadre_csv(per_task=True)
    assert list(ds.corpora.values) == list(results.GADRE_CORPORA)
    df = results.to_long(ds)
    assert ((df.task == "c4_val") & (df.metric == "loss")).sum() == 104  # every run's C4 loss, one per (size, tokens, corpus)
    assert len(results.configs(ds)) == 37  # (size, tokens) pairs: the corpora share their grid
    avg = results.from_gadre_csv()  # the default: loss and the 46-task average
    assert list(avg.tasks.values) == [results.GADRE_AVG_TASK, "c4_val"]
    run = ["size", "pretrain", "corpus"]
    mean_of_46 = df[df.metric == "acc"].groupby(run).value.mean()
    printed = results.to_long(avg).query("task == @results.GADRE_AVG_TASK").set_index(run).value
    np.testing.assert_allclose(printed.sort_index(), mean_of_46.sort_index(), atol=1e-9)
    obs = observations(ds)
    assert set(obs.metrics) == {"loss", "acc"} and len(set(obs.tasks)) == 47
    assert obs.n_items is not None and np.isfinite(obs.n_items[np.array(obs.metrics) == "acc"]).all()
    loss = obs.values[np.array(obs.metrics) == "loss"]
    assert 2.0 < loss.min() and loss.max() < 7.0  # nats/token on C4 validation


def test_an_average_of_many_benchmarks_gets_a_ceiling_near_the_benchmarks_mean(tmp_path):
    """Gadre et al.'s target averages 46 benchmarks: its ceiling is the mean of theirs, whose prior spread shrinks
    as 1/√46, while a single benchmark keeps the wide prior (the marking survives netCDF)."""
    import pymc as pm

    from calibrate.model import build

    avg = results.load(results.save(results.from_gadre_csv(), tmp_path / "gadre.nc"))
    assert dict(zip(avg.tasks.values, avg.task_n_benchmarks.values.tolist())) == {results.GADRE_AVG_TASK: 46, "c4_val": 1}
    obs = observations(avg)
    draws = {}
    for name, table in (("average", obs.table), ("single", dataclasses.replace(obs.table, n_benchmarks=None))):
        sub = dataclasses.replace(obs, table=table).subset(np.arange(0, len(obs), 4))
        draws[name] = pm.draw(build(sub)["up_ceiling"], draws=4000, random_seed=0)[:, 0]
    for d in draws.values():
        assert np.mean(d) == pytest.approx(10 / 11.5, abs=0.01)  # the same centre, 0.87
    assert np.std(draws["single"]) > 0.07 and np.std(draws["average"]) < 0.02  # sd 0.085 vs 0.085/√46 ≈ 0.0146


def test_corpus_offsets_move_only_their_corpus():
    cfg = [RunConfig(size=10**8, pretrain=2 * 10**9)] * 2
    x = forward.design(cfg, ["c4_val"] * 2, ["loss"] * 2, TABLE, corpus_idx=[0, 1])
    a, b = forward.predict(_numpy(TRUE), x)[0]
    base = forward.predict(_numpy(TRUE | dict(corpus_E=[0.0, 0.0], corpus_logB=[0.0, 0.0])), x)[0]
    assert a == pytest.approx(base[0]) and b > base[1] + 0.08


def test_compute_form_depends_on_compute_only():
    same_c = [RunConfig(size=10**8, pretrain=4 * 10**9), RunConfig(size=4 * 10**8, pretrain=10**9)]
    x = forward.design(same_c, ["c4_val"] * 2, ["loss"] * 2, TABLE, form="compute")
    a, b = forward.predict(_numpy(TRUE), x)[0]
    assert a == pytest.approx(b)
    x = forward.design(same_c, ["c4_val"] * 2, ["loss"] * 2, TABLE)  # chinchilla: the split matters
    a, b = forward.predict(_numpy(TRUE), x)[0]
    assert a != pytest.approx(b)
    with pytest.raises(ValueError, match="unknown model form"):
        forward.design(same_c, ["c4_val"] * 2, ["loss"] * 2, TABLE, form="magic")


def test_binomial_measurement_noise():
    sd = measurement_sd([False, False, True, False], np.array([50.0, 50.0, 3.0, 0.0]), [100, np.nan, np.nan, 400], 0.3)
    assert sd[0] == pytest.approx(5.0)  # 100·sqrt(.25/100)
    assert sd[1] == 0.3 and sd[2] == 0.0  # no count: the floor; a loss: none
    assert 0 < sd[3] < 0.6  # a task at 0% keeps some noise


def _simulated(seed=0):
    """Losses and accuracies simulated from known parameters on a Gadre-like grid of sizes and tokens."""
    rng = np.random.default_rng(seed)
    cfgs, tasks, metrics, corpus = [], [], [], []
    for n in (10**7, 3 * 10**7, 10**8, 3 * 10**8, 10**9):
        for mult in (0.5, 2, 8, 32):
            for c in (0, 1):
                for t, m in (("c4_val", "loss"), ("arc_easy", "acc")):
                    cfgs.append(RunConfig(size=n, pretrain=int(20 * mult * n)))
                    tasks.append(t), metrics.append(m), corpus.append(c)
    x = forward.design(cfgs, tasks, metrics, TABLE, corpus_idx=corpus)
    scale = np.array([1.0 if m == "loss" else 100.0 for m in metrics])
    truth = forward.predict(_numpy(TRUE), x)[0] * scale
    noise = np.where(scale == 1.0, 0.002, 1.0) * rng.standard_normal(len(truth))
    from calibrate.model import Observations
    return Observations(cfgs, tasks, metrics, truth + noise, TABLE, corpus=np.array(corpus), corpora=["a", "b"])


def test_two_step_least_squares_reproduces_a_known_loss_law():
    # E, A and α trade off along a ridge that 40 losses at 0.002 nats of noise cannot resolve (measured: a fit
    # at E 1.73 and one at 1.90 have the same residuals), so the check is on the law, not on each parameter.
    obs = _simulated()
    fit = baselines.TwoStepFitter(obs).fit()
    grid = [RunConfig(size=n, pretrain=20 * m * n) for n in (2 * 10**7, 2 * 10**8) for m in (1, 10)] * 2
    corpus = [0] * 4 + [1] * 4
    x = forward.design(grid, ["c4_val"] * 8, ["loss"] * 8, TABLE, corpus_idx=corpus)
    truth = forward.predict(_numpy(TRUE), x)[0]
    got = fit.predict(grid, ["c4_val"] * 8, ["loss"] * 8, TABLE, corpus)
    np.testing.assert_allclose(got, truth, rtol=0.005)
    assert np.all(got[4:] > got[:4])  # corpus b is worse everywhere, as simulated


def test_bootstrap_intervals_cover_held_out_large_runs():
    obs = _simulated(seed=1)
    held = validate.split_mask(obs, "largest-size")
    assert {c.size for c, h in zip(obs.configs, held) if h} == {10**9}
    rows = validate.lsq_holdout(obs, held, "largest-size", n_boot=10, two_step=True)
    loss = [r for r in rows if r["metric"] == "loss"]
    assert len(loss) == 8  # four budgets × two corpora
    assert np.mean([abs(r["predicted"] / r["observed"] - 1) for r in loss]) < 0.02
    assert np.mean([r["lo"] <= r["observed"] <= r["hi"] for r in rows]) >= 0.6
    text = validate.format_split_report([r | {"method": "bayes"} for r in rows] + rows, 0.9)
    assert "largest-size" in text and "lsq-2step" in text and "rel err" in text
    per_task = validate.format_split_report(rows, 0.9, by_task=True).splitlines()
    for task in {r["task"] for r in rows}:  # each held-out task's own line, its numbers counted
        line = next(li for li in per_task if li.split()[:2] == [task, "lsq-2step"])
        assert int(line.split()[3]) == sum(r["task"] == task for r in rows)


def test_a_task_absent_from_the_fit_is_scored_on_its_own_line():
    """EvoLM measures GSM8K-Platinum at its largest budget only: holding that budget out leaves the task without a
    number in the fit, so its held-out numbers are marked, summarised apart and kept out of the pooled line."""
    from calibrate.model import observations

    obs = observations(results.from_evolm_csv())
    held = validate.split_mask(obs, "largest-pt")
    unseen = {t for t, h in zip(obs.tasks, held) if h} - {t for t, h in zip(obs.tasks, held) if not h}
    assert unseen == {"GSM8K-Platinum"}
    draws = np.tile(obs.values[held], (50, 1)) + np.random.default_rng(0).normal(0, 1, (50, int(held.sum())))
    rows = validate.interval_rows(obs, held, draws, "bayes", "largest-pt", 0.9)
    marked = [r for r in rows if r["metric"].endswith(validate.UNSEEN)]
    assert {r["task"] for r in marked} == unseen and len(marked) == sum(t in unseen for t in np.array(obs.tasks)[held])
    summary = {s["metric"]: s for s in validate.summarise(rows)}
    assert summary["all"]["n"] == len(rows) - len(marked)
    assert "greedy_pass@1" + validate.UNSEEN in summary
    assert "no number in the fit" in validate.format_split_report(rows, 0.9)
