"""Interval quality (the interval score), the naive baselines (carry-forward, loglinear) and the descendants split
of `dynsim validate` (issue 18, deliverable 7). No NUTS: toy Observations and the bundled EvoLM tables."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from calibrate import naive, validate
from calibrate.model import Observations, observations
from dynsim import forward, results
from dynsim.cli import build_parser
from dynsim.config import parse_config

TABLE = forward.TaskTable(["c4_val", "arc_easy"], ["text", "upstream"], [[0.0], [0.25]])


def _obs(names, values, metric="acc", task="arc_easy"):
    return Observations([parse_config(n) for n in names], [task] * len(names), [metric] * len(names),
                        np.array(values, float), TABLE)


# -- the interval score -------------------------------------------------------------------------------------
def test_interval_score_by_hand():
    # [1, 3] at alpha 0.1: width 2; a miss by 1 below adds 20 × 1, a miss by 1.5 above adds 20 × 1.5
    got = validate.interval_score([1, 1, 1, 1], [3, 3, 3, 3], [2, 1, 0, 4.5], alpha=0.1)
    np.testing.assert_allclose(got, [2.0, 2.0, 22.0, 32.0])


@given(lo=st.floats(-100, 100), width=st.floats(0, 50), y=st.floats(-200, 200))
def test_interval_score_is_the_width_when_covered_and_more_when_missed(lo, width, y):
    hi = lo + width
    score = float(validate.interval_score(lo, hi, y, alpha=0.1))
    assert score >= hi - lo - 1e-9
    if lo <= y <= hi:
        assert score == pytest.approx(hi - lo)
    else:  # a miss costs 2/alpha per unit of distance to the interval
        assert score - (hi - lo) == pytest.approx(20 * max(lo - y, y - hi), rel=1e-6, abs=1e-9)


# y on a fine grid of a standard normal's quantiles: the mean over it is the expectation to about 1e-5
NORMAL = norm.ppf((np.arange(40_000) + 0.5) / 40_000)


@settings(max_examples=40, deadline=None)
@given(shift_lo=st.floats(-0.6, 0.6), shift_hi=st.floats(-0.6, 0.6))
def test_interval_score_is_lowest_in_expectation_at_the_true_quantiles(shift_lo, shift_hi):
    """A proper score: for y ~ N(0, 1) no interval beats the 5% and 95% quantiles in expected score (a penalty of
    1/alpha instead of 2/alpha would move the optimum to the 10% and 90% quantiles, and fail here)."""
    alpha = 0.1
    lo, hi = norm.ppf(alpha / 2), norm.ppf(1 - alpha / 2)
    best = validate.interval_score(lo, hi, NORMAL, alpha).mean()
    other = validate.interval_score(lo + shift_lo, hi + shift_hi, NORMAL, alpha).mean()
    assert other >= best - 1e-6
    if max(abs(shift_lo), abs(shift_hi)) > 0.05:
        assert other > best + 1e-4


# -- the descendants split ---------------------------------------------------------------------------------
def _ancestors(c):
    while (c := c.parent()) is not None:
        yield c


def test_descendants_split_holds_out_post_training_and_keeps_its_base_runs():
    obs = observations(results.from_evolm_csv())
    held = validate.split_mask(obs, "descendants")
    configs = np.array(obs.configs)
    assert held.sum() >= validate.DESCENDANTS_MIN_HELD
    assert all(c.has_sft for c in configs[held])  # only post-trained numbers leave the fit...
    assert any(c.has_sft for c in configs[~held])  # ...not all of them
    training = {c.name for c in configs[~held]}
    measured = {c.name for c in configs}
    for c in configs[held]:  # ...and its base run's own evaluations (PT, and CPT where measured) stay in it
        before_post_training = [a for a in _ancestors(c) if not a.has_sft and a.name in measured]
        assert before_post_training and all(a.name in training for a in before_post_training)
    # the largest size with descendants is 4B: its one base run, 4B-80BT-8+42BT, with SFT and SFT+RL after it
    assert {c.upstream().name for c in configs[held]} == {"4B-80BT-8+42BT"}
    assert {c.name for c in configs[held]} == {"4B-80BT-8+42BT-100Kep1", "4B-80BT-8+42BT-100Kep1-100Kep8"}


def test_descendants_split_adds_base_runs_until_enough_numbers_are_held():
    names = ["1B-10BT", "1B-10BT-1Kep1", "1B-20BT", "1B-20BT-1Kep1", "4B-10BT", "4B-10BT-1Kep1"]
    obs = _obs(names, np.arange(len(names)))  # one number per run: 4B's base holds out 1, far below 10
    held = validate.split_mask(obs, "descendants")
    # 4B first, then 1B-20BT; never 1B-10BT too, which would leave no SFT run to fit
    assert [n for n, h in zip(names, held) if h] == ["1B-20BT-1Kep1", "4B-10BT-1Kep1"]


def test_the_cli_offers_every_split():
    validate_parser = build_parser()._subparsers._group_actions[0].choices["validate"]
    split = next(a for a in validate_parser._actions if a.dest == "split")
    assert set(split.choices) == set(validate.SPLITS) | {"all"}


# -- the naive baselines -----------------------------------------------------------------------------------
def test_carry_forward_predicts_a_repeated_configuration_by_its_value():
    obs = _obs(["1B-20BT", "1B-40BT", "1B-80BT", "1B-40BT", "1B-40BT-1Kep1"], [40.0, 50.0, 55.0, 51.0, 60.0])
    test = np.array([3, 4])  # the second 1B-40BT, and an SFT run whose nearest training run is its base
    point, draws = naive.carry_forward(obs, np.array([0, 1, 2]), test)
    assert point.tolist() == [50.0, 50.0]
    assert draws.shape == (len(naive.GRID), 2) and np.all(np.diff(draws, axis=0) >= 0)
    # the spread: the errors of carrying forward within the training runs, each from its nearest other one:
    # 40 from 50; 50 from 40 and 55, equally near in log tokens (their mean, 47.5); 55 from 50
    np.testing.assert_allclose(draws - 50.0, np.tile(np.quantile([-10.0, 2.5, 5.0], naive.GRID)[:, None], 2))


def test_loglinear_recovers_a_line_in_log_tokens_and_size_per_stage_shape():
    sizes, tokens = (10**8, 3 * 10**8, 10**9), (2 * 10**9, 8 * 10**9, 32 * 10**9, 128 * 10**9)
    cfgs = [parse_config(f"{n / 1e9:g}B-{d / 1e9:g}BT{sft}") for n in sizes for d in tokens for sft in ("", "-1Kep1")]
    law = lambda c: 20 + 3 * np.log(c.pretrain / 1e9) + 2 * np.log(c.size / 1e8) + (15 if c.has_sft else 0)  # noqa
    obs = Observations(cfgs, ["arc_easy"] * len(cfgs), ["acc"] * len(cfgs), np.array([law(c) for c in cfgs]), TABLE)
    held = validate.split_mask(obs, "largest-pt")
    point, draws = naive.loglinear(obs, np.flatnonzero(~held), np.flatnonzero(held))
    np.testing.assert_allclose(point, obs.values[held], atol=1e-9)  # exact data: the line, and no spread
    np.testing.assert_allclose(draws, np.tile(obs.values[held], (len(naive.GRID), 1)), atol=1e-9)
    noisy = Observations(cfgs, obs.tasks, obs.metrics, obs.values + np.random.default_rng(0).normal(0, 1, len(cfgs)),
                         TABLE)
    rows = validate.naive_holdout(noisy, held, "largest-pt")
    line = [r for r in rows if r["method"] == "loglinear"]
    assert len(line) == held.sum()
    assert np.mean([abs(r["predicted"] - law(parse_config(r["config"]))) for r in line]) < 1.5
    assert all(r["lo"] < r["predicted"] < r["hi"] for r in line)


def test_naive_baselines_on_every_split_of_the_evolm_tables():
    obs = observations(results.from_evolm_csv())
    for split in validate.SPLITS[1:]:
        held = validate.split_mask(obs, split)
        rows = validate.naive_holdout(obs, held, split)
        assert {r["method"] for r in rows} == set(naive.METHODS)
        assert len(rows) == 2 * held.sum()  # EvoLM's runs have too few upstream tasks for a scored average
        assert all(0 <= r["lo"] <= r["hi"] <= 100 for r in rows)


def test_naive_baselines_score_gadres_average_over_the_held_out_runs_tasks():
    """Gadre et al.'s target, the average over 46 tasks, from the per-task numbers of the nine ≥1.3B runs held out."""
    obs = observations(results.from_gadre_csv(per_task=True))
    held = np.array([c.size >= 1e9 for c in obs.configs])
    rows = validate.naive_holdout(obs, held, "held-out")
    for method in naive.METHODS:
        average = [r for r in rows if r["method"] == method and r["metric"] == "avg_acc"]
        assert len(average) == 9 and all(r["task"] == "average of 46" for r in average)
        for r in average:  # the mean of the run's task predictions, within its interval's bounds
            run = (method, r["config"], r["corpus"], "acc")
            tasks = [t for t in rows if (t["method"], t["config"], t["corpus"], t["metric"]) == run]
            assert r["predicted"] == pytest.approx(np.mean([t["predicted"] for t in tasks]))
            assert r["lo"] <= r["hi"]


# -- the report ------------------------------------------------------------------------------------------
def test_the_reports_print_width_to_mae_and_the_interval_score():
    obs = _obs(["1B-20BT", "1B-40BT", "1B-80BT", "1B-160BT"], [40.0, 50.0, 55.0, 58.0])
    held = np.array([False, False, False, True])
    rows = validate.naive_holdout(obs, held, "largest-pt")
    summary = {s["method"]: s for s in validate.summarise_by(rows) if s["metric"] == "acc"}
    for method, s in summary.items():
        r = next(r for r in rows if r["method"] == method)
        score = validate.interval_score(r["lo"], r["hi"], r["observed"], alpha=0.1)
        assert s["interval_score"] == pytest.approx(float(score))
        assert s["width_to_mae"] == pytest.approx((r["hi"] - r["lo"]) / abs(r["predicted"] - r["observed"]))
    text = validate.format_split_report(rows, 0.9)
    assert "width/MAE" in text and "int. score" in text and "carry-forward" in text and "loglinear" in text
    loco_text = validate.format_report(dict(rows=rows, khat={}, level=0.9, summary=validate.summarise(rows, 0.9)))
    assert "width/MAE" in loco_text and "int. score" in loco_text
