"""optimize and suggest (dynsim/decide.py) on the bundled EvoLM posterior and on posteriors whose truth is known.
numpy only, no sampling: a "posterior" with a known truth is built from stored draws."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dynsim import cli, decide, posterior
from dynsim.config import parse_config


@pytest.fixture(scope="module")
def post():
    return posterior.load(posterior.bundled_path("evolm"))


@pytest.fixture(scope="module")
def target(post):
    return decide.parse_target(None, post)


def without_quality(post):
    """post with no base-checkpoint quality: a checkpoint nobody trained draws its quality anew in every prediction
    (forward.pretrain_loss), so a truth at one draw is a fixed number only without it."""
    zero = {k: np.zeros_like(v) for k, v in post.params.items() if k in ("quality_loss", "quality_ability")}
    return posterior.Posterior(post.params | zero, post.meta, post.path)


def narrow_around(post, s: int, spread: float = 0.01, n: int = 200, seed: int = 0):
    """A posterior of n draws scattered by `spread` (relative) around draw s, which is the truth (without base
    quality: the search is what is tested)."""
    rng = np.random.default_rng(seed)
    params = {k: np.repeat(v[s:s + 1], n, axis=0) for k, v in without_quality(post).params.items()}
    params = {k: v * np.exp(spread * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in params.items()}
    return posterior.Posterior(params, post.meta, post.path)


def truth_values(post, s, target, configs):
    return decide.target_draws(decide.subset(without_quality(post), np.array([s])), target, configs)[0]


def small_space(post, target, budget):
    """1B models, the calibrated CPT mixes and usual post-training: a grid small enough to search exhaustively."""
    fix = decide.parse_constraints(["size=1B", "sft=100Kep1", "rl=100Kep8"], "--fix")
    return decide.space(post, target, budget, fix=fix, maximum=decide.parse_constraints(["pretrain=320BT"], "--max"))


def test_default_target_and_costs(post, target):
    assert target.name == "ID_avg:maj@16"
    cfg = parse_config("1B-160BT-8+42BT-100Kep1-100Kep8")
    expected = 6e9 * (160e9 + 50e9) + 6e9 * 100_000 * 512 + 6e9 * 800_000 * 1024
    assert decide.run_flops(cfg, (512, 1024)) == pytest.approx(expected)
    assert decide.parse_budget("1e22FLOPs") == 1e22
    assert decide.parse_budget("1000GPUh", gpu_flops=1e15) == pytest.approx(3.6e21)


def test_optimize_finds_the_truths_optimum_on_a_narrow_posterior(post, target):
    """A posterior concentrated on a known truth: the search's pick is the truth's best of the grid (exhaustive)
    or within 0.2 points of it, and the truth's best allocation has high posterior probability of being best."""
    budget = 2e21
    for s in (7, 1234):
        narrow = narrow_around(post, s)
        grid = small_space(post, target, budget)
        found = decide.optimize(narrow, target, budget, grid)
        every = [grid.config(i) for i in itertools.product(*map(range, grid.shape))
                 if decide.run_flops(grid.config(i)) <= budget]
        truth = truth_values(post, s, target, every)
        pick = truth_values(post, s, target, [found.allocations[0].config])[0]
        assert truth.max() - pick < 0.2
        assert found.allocations[0].p_best > 0.2


def test_optimize_beats_random_allocations_when_truth_is_a_posterior_draw(post, target):
    """Truths drawn from the posterior (left out of it): the regret of optimize's pick under each truth is on
    average below that of random feasible allocations of the same budget."""
    budget, rng = 2e21, np.random.default_rng(1)
    grid = small_space(post, target, budget)
    every = [grid.config(i) for i in itertools.product(*map(range, grid.shape))
             if decide.run_flops(grid.config(i)) <= budget]
    ours, random_ = [], []
    for s in rng.choice(post.n_draws, 6, replace=False):
        rest = decide.subset(post, np.delete(np.arange(post.n_draws), s))
        pick = decide.optimize(rest, target, budget, grid).allocations[0].config
        truth = truth_values(post, s, target, every)
        ours.append(truth.max() - truth[every.index(pick)])
        random_.append(np.mean(truth.max() - truth))
    assert np.mean(ours) < np.mean(random_)


def test_suggest_reduces_variance_more_than_random_picks(post, target):
    """The realised posterior variance of the target after revealing one run, with outcomes simulated from truths
    drawn from the posterior: suggest's pick leaves less of it than a random candidate, on average."""
    interest_cfgs = [parse_config("1B-160BT-8+42BT-100Kep1-100Kep8")]
    interest = decide.target_draws(post, target, interest_cfgs)
    grid = decide.space(post, target, 4e21, in_range=True)
    runs = decide.candidate_runs(post, grid, float("inf"), extra=interest_cfgs)
    runs = [runs[i] for i in np.random.default_rng(0).choice(len(runs), 16, replace=False)]
    pool = decide.Pool.build(post, runs)
    # rank by reduction itself (equal cost is not the question here)
    logw0 = np.zeros(post.n_draws)
    sims = decide.simulating_draws(post, logw0, 16, 0)
    best = max(pool.runs, key=lambda r: -pool.expected_variance(post, r, interest, logw0, sims)[0])
    rng = np.random.default_rng(2)
    ours, random_ = [], []
    for s in rng.choice(post.n_draws, 30, replace=False):
        logw = np.zeros(post.n_draws)
        logw[s] = -np.inf  # the truth is not among the draws that explain it
        for run, out in ((best, ours), (runs[rng.integers(len(runs))], random_)):
            update = pool.reveal(post, run, pool.y[s, pool.cols[run]])
            out.append(float(decide.weighted_variance(interest, logw + update)))
    assert np.mean(ours) < np.mean(random_)
    assert np.mean(ours) < float(decide.weighted_variance(interest, np.zeros(post.n_draws)))


@pytest.mark.parametrize("argv, words", [
    (["optimize", "--budget", "1e15FLOPs"], "below the smallest"),
    (["optimize", "--budget", "1e22FLOPs", "--target", "NoSuchTask"], "unknown target task"),
    (["optimize", "--budget", "1e22FLOPs", "--target", "ID_avg:0shot_acc"], "predicted as"),
    (["optimize", "--budget", "lots"], "bad budget"),
    (["optimize"], "--budget is required"),
    (["optimize", "--budget", "1e22", "--fix", "width=3"], "KEY=VALUE"),
    (["optimize", "--budget", "1e22", "--risk", "1.5"], "strictly between 0 and 1"),
    (["suggest", "--budget-per-run", "10FLOPs"], "budget-per-run"),
])
def test_impossible_requests_exit_2_with_one_line(capsys, argv, words):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_optimize_cli_json(capsys):
    import json

    assert cli.main(["optimize", "--budget", "2e21FLOPs", "--in-range", "--top", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["allocations"]) == 3 and out["target"] == "ID_avg:maj@16"
    assert all(a["flops"] <= 2e21 and not a["outside_calibrated_range"] for a in out["allocations"])
    assert 0 <= sum(a["p_best"] for a in out["allocations"]) <= 1
