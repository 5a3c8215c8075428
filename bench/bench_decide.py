"""optimize and suggest, shown to work on the bundled EvoLM calibration (issue 21). Prints three figures:

(a) optimize: wall time, and the regret under a known truth — truths are posterior draws left out of the
    posterior, so the truth is a plausible world the posterior does not know (Bayesian decision check).
(b) a simulated sequential study: a truth is a posterior draw, the other draws are the ensemble; runs are added one
    at a time, picked by suggest, at random or in a fixed grid order (the baselines at the cost of suggest's pick
    at the same step), each run's numbers simulated from the truth and revealed by the ensemble Kalman update (no
    refit); the error of the target prediction at the configurations of interest and the coverage of its 90%
    interval after each run, averaged over truths.
(c) a backtest on EvoLM's real numbers: a posterior fitted without some runs (`dynsim fit --hold-out`, made once
    into bench/out/ when missing: ~5 min on 2 cores), those runs' real numbers revealed one at a time by the
    ensemble Kalman update, in suggest's order or in random orders; the error on two test runs that are never
    revealed, after each reveal (and at equal spend), beside a NUTS refit with every revealed run (fitted once
    too): how much of what a refit learns the update without one recovers.

    python bench/bench_decide.py [--reps N] [--out bench/out] [--skip a,b,c]
Writes bench/out/decide_curves.png when matplotlib is present.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dynsim import decide, posterior
from dynsim.config import parse_config
from dynsim.tree import lineage

OUT = Path(__file__).parent / "out"
# (c): runs the backtest's posterior is fitted without. TEST are never revealed; REVEAL are revealed one at a time.
# The test runs are EvoLM's full pipeline at 1B-160BT and a 4B SFT run; the reveals are post-trained runs around
# them (another pretraining length, SFT under it, CPT-less SFT runs), so which to reveal first is a real choice.
TEST = ["1B-160BT-8+42BT-100Kep1-100Kep8", "4B-80BT-8+42BT-100Kep1"]
REVEAL = ["1B-80BT-8+42BT-100Kep1-100Kep8", "1B-80BT-8+42BT-100Kep1", "1B-160BT-8+42BT-100Kep1",
          "1B-40BT-100Kep1", "1B-20BT-100Kep1", "1B-40of160BT-100Kep1"]


def part_a(post, target, reps: int):
    budget = 2e21
    t = time.time()
    grid = decide.space(post, target, 1e22)
    decide.optimize(post, target, 1e22, grid)
    wall_full = time.time() - t
    grid = decide.space(post, target, budget, in_range=True)
    rng = np.random.default_rng(0)
    every = [grid.config(i) for i in np.ndindex(*grid.shape) if decide.run_flops(grid.config(i)) <= budget]
    regret, regret_usual, regret_random, reported = [], [], [], []
    usual = parse_config("1B-160BT-8+42BT-100Kep1-100Kep8")
    for s in rng.choice(post.n_draws, reps, replace=False):
        rest = decide.subset(post, np.delete(np.arange(post.n_draws), s))
        found = decide.optimize(rest, target, budget, grid)
        truth = decide.target_draws(decide.subset(post, np.array([s])), target, every)[0]
        regret.append(truth.max() - truth[every.index(found.allocations[0].config)])
        regret_usual.append(truth.max() - truth[every.index(usual)])
        regret_random.append(np.mean(truth.max() - truth))
        reported.append(found.allocations[0].regret)
    print(f"(a) optimize, {target.name}: full grid at 1e22 FLOPs {wall_full:.2f} s; in-range grid at {budget:g} FLOPs "
          f"({len(every)} feasible pipelines), {reps} truths left out of the posterior:")
    print(f"    regret of optimize's pick under the truth  mean {np.mean(regret):.3f}  median {np.median(regret):.3f}"
          f"  (reported expected regret {np.mean(reported):.3f}) points")
    print(f"    regret of EvoLM's usual {usual.name}: mean {np.mean(regret_usual):.3f}; of a random feasible "
          f"pipeline: mean {np.mean(regret_random):.3f} points")


def part_b(post, target, reps: int, steps: int = 6):
    grid = decide.space(post, target, 4e21, in_range=True)
    best = decide.optimize(post, target, 4e21, grid, top=3)
    cfgs = [a.config for a in best.allocations]
    interest = decide.target_draws(post, target, cfgs)
    runs = decide.candidate_runs(post, grid, float("inf"), extra=cfgs)
    pool = decide.Pool.build(post, runs)
    rng = np.random.default_rng(3)
    arms = ("suggest", "random", "grid")
    err, cover, flops = ({a: [] for a in arms} for _ in range(3))
    grid_order = sorted(pool.runs)  # size, then pretraining tokens, CPT, SFT, RL: a one-axis-at-a-time sweep
    t0 = time.time()
    for s in rng.choice(post.n_draws, reps, replace=False):
        members = np.delete(np.arange(post.n_draws), s)  # the truth is not among the draws that explain it
        values, truth = pool.mean[s] + pool.noise[s], interest[s]
        spent = []  # suggest's cost at each step, which the baselines match

        def by_suggest(ens, remaining, done):
            pick = decide.best_next(ens, pool, remaining, done)
            spent.append(pick.flops)
            return pick.config

        choosers = {"suggest": by_suggest,
                    "random": lambda ens, rem, done: decide.equal_cost(pool, rem, done, spent[len(picked)],
                                                                  [rem[i] for i in rng.permutation(len(rem))]),
                    "grid": lambda ens, rem, done: decide.equal_cost(pool, rem, done, spent[len(picked)], grid_order)}
        for arm in arms:
            ens, picked = decide.Ensemble.of(interest, pool, members), []
            e, c, f = [ens.T.mean(axis=0) - truth], [coverage(ens, truth)], [0.0]
            for run, cost, ens in decide.reveal(ens, pool, values, choosers[arm], min(steps, len(pool.runs))):
                picked.append(run)
                e.append(ens.T.mean(axis=0) - truth)
                c.append(coverage(ens, truth))
                f.append(f[-1] + cost)
            err[arm].append(e)
            cover[arm].append(c)
            flops[arm].append(f)
    print(f"\n(b) simulated sequential study, {reps} truths (posterior draws left out of the ensemble), pool of "
          f"{len(pool.runs)} candidate runs ({len(pool.rows)} numbers), target {target.name} at "
          f"{', '.join(c.name for c in cfgs)}; {time.time() - t0:.0f} s")
    print("    after 0, 1, ... added runs: mean |posterior mean - truth| and its RMS (points; over truths and "
          "configurations), coverage of the 90% interval, cumulative new FLOPs (mean over truths)")
    for arm in arms:
        e = np.array(err[arm])  # (truths, steps + 1, configurations)
        print(f"    {arm:<8} |err| " + " ".join(f"{x:.3f}" for x in np.abs(e).mean(axis=(0, 2))))
        print(f"    {'':<8} RMS   " + " ".join(f"{x:.3f}" for x in np.sqrt((e ** 2).mean(axis=(0, 2)))))
        print(f"    {'':<8} cover " + " ".join(f"{x:.2f}" for x in np.mean(cover[arm], axis=0)))
        print(f"    {'':<8} FLOPs " + " ".join(f"{x:.2g}" for x in np.mean(flops[arm], axis=0)))
    return {a: (np.sqrt((np.array(err[a]) ** 2).mean(axis=(0, 2))), np.mean(flops[a], axis=0)) for a in arms}


def coverage(ens, truth) -> float:
    lo, hi = ens.interval()
    return float(np.mean((lo <= truth) & (truth <= hi)))


def backtest_posterior(path: Path, hold_out: list[str]):
    """The EvoLM posterior fitted without the runs `hold_out`, fitted here once when missing."""
    if not path.exists():
        print(f"(c) fitting EvoLM without {len(hold_out)} runs into {path} (once; ~5 min on 2 cores)", flush=True)
        subprocess.run([sys.executable, "-m", "dynsim.cli", "fit", "--calibration", "evolm", "--quiet", "-o",
                        str(path), "--hold-out", *hold_out], check=True)
    return posterior.load(path)


def part_c(out: Path, orders: int = 20):
    """EvoLM backtest: reveal the held-out runs' real numbers one at a time (ensemble Kalman), test on TEST."""
    from calibrate.model import observations
    from dynsim import calibrations

    post = backtest_posterior(out / "evolm_backtest.npz", TEST + REVEAL)
    # what a refit learns from every reveal: NUTS on all runs but the test ones (the ensemble update's yardstick)
    refit_post = backtest_posterior(out / "evolm_backtest_refit.npz", TEST)
    obs = observations(calibrations.get("evolm").dataset()).with_form(post.meta.get("form", "chinchilla"))
    real = {}  # run name → its measured (row, value) pairs
    for c, t, m, v in zip(obs.configs, obs.tasks, obs.metrics, obs.values):
        real.setdefault(c.name, []).append(((c, t, m), float(v)))
    value_of = {row: v for pairs in real.values() for row, v in pairs}
    trained = decide.trained_prefixes(post)
    # revealing a run reveals every hidden stage under it (training it trains them), test runs excepted
    rows = {parse_config(r): [row for c in lineage(parse_config(r)) if c.name in REVEAL for row, _ in real[c.name]]
            for r in REVEAL}
    pool = decide.Pool.build(post, list(rows), trained=trained, rows=rows)
    values = np.array([value_of[row] for row in pool.rows])
    test_rows = [row for r in TEST for row, _ in real[r]]
    test_values = np.array([value_of[row] for row in test_rows])
    interest = decide.predict_rows(post, test_rows, noise=False)
    refit = np.abs(decide.predict_rows(refit_post, test_rows, noise=False).mean(axis=0) - test_values).mean()

    def curve(choose):
        ens = decide.Ensemble.of(interest, pool)
        out_, order, f = [np.abs(ens.T.mean(axis=0) - test_values).mean()], [], [0.0]
        for run, cost, ens in decide.reveal(ens, pool, values, choose, len(pool.runs)):
            out_.append(np.abs(ens.T.mean(axis=0) - test_values).mean())
            order.append(run)
            f.append(f[-1] + cost)
        return np.array(out_), order, np.array(f)

    ours, order, f_ours = curve(lambda ens, rem, done: decide.best_next(ens, pool, rem, done).config)
    rng = np.random.default_rng(5)
    rand = [curve(lambda ens, rem, done: rem[rng.integers(len(rem))]) for _ in range(orders)]
    # an order that reveals a child before its parent has one reveal fewer (the parent's numbers came with it):
    # after its last reveal everything is known, so its curve stays where it ended
    n = max(len(r[0]) for r in rand + [(ours,)])
    pad = lambda a: np.concatenate([a, np.repeat(a[-1:], n - len(a))])  # noqa: E731
    ours, f_ours = pad(ours), pad(f_ours)
    rand_err, rand_f = np.mean([pad(r[0]) for r in rand], axis=0), np.mean([pad(r[2]) for r in rand], axis=0)
    # at equal spend: each random order's error after the last reveal it could afford with what suggest had spent
    at_spend = np.mean([[e[np.searchsorted(f, spend * (1 + 1e-9), side="right") - 1] for spend in f_ours]
                        for e, _, f in rand], axis=0)
    print(f"\n(c) EvoLM backtest: posterior fitted without {len(TEST) + len(REVEAL)} runs ({post.n_draws} draws); "
          f"test runs {', '.join(TEST)} ({len(test_rows)} numbers), never revealed; {len(pool.runs)} runs revealed "
          f"one at a time ({len(pool.rows)} numbers) by the ensemble Kalman update")
    print(f"    suggest's order: {', '.join(r.name for r in order)}")
    print("    test MAE (points) after 0, 1, ... reveals, suggest:  " + "  ".join(f"{x:.2f}" for x in ours))
    print(f"    random order (mean of {orders}):                      " + "  ".join(f"{x:.2f}" for x in rand_err))
    print("    random orders at suggest's spend after each reveal: " + "  ".join(f"{x:.2f}" for x in at_spend))
    print("    cumulative new FLOPs, suggest: " + " ".join(f"{x:.2g}" for x in f_ours))
    print("    cumulative new FLOPs, random:  " + " ".join(f"{x:.2g}" for x in rand_f))
    print(f"    NUTS refitted with every revealed run (all but the test runs): test MAE {refit:.2f}")
    return dict(ours=ours, f_ours=f_ours, rand=rand_err, curves=rand, refit=refit)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--skip", default="", help="parts to leave out, e.g. a,c")
    args = ap.parse_args()
    post = posterior.load(posterior.bundled_path("evolm"))
    target = decide.parse_target(None, post)
    skip = set(args.skip.split(","))
    t0 = time.time()
    if "a" not in skip:
        part_a(post, target, min(args.reps, 8))
    b = part_b(post, target, args.reps) if "b" not in skip else None
    c = part_c(Path(args.out)) if "c" not in skip else None
    print(f"\ntotal {time.time() - t0:.0f} s")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    colours = {"suggest": "#0072B2", "random": "#E69F00", "grid": "#009E73"}
    if b:
        for arm, (e, _) in b.items():
            ax[0].plot(range(len(e)), e, "o-", color=colours[arm], label=arm)
        ax[0].set(xlabel="runs added (baselines at suggest's cost)", ylabel=f"RMS error of {target.name} (points)",
                  title="(b) simulated study")
        ax[0].legend()
    if c:
        ax[1].plot(range(len(c["ours"])), c["ours"], "o-", color=colours["suggest"], label="suggest")
        ax[1].plot(range(len(c["rand"])), c["rand"], "o-", color=colours["random"], label="random order (mean)")
        for e, _, f in c["curves"]:
            ax[2].plot(np.maximum(f, 1e17), e, "-", color=colours["random"], alpha=0.3, lw=0.8, drawstyle="steps-post")
        ax[2].plot(np.maximum(c["f_ours"], 1e17), c["ours"], "o-", color=colours["suggest"], label="suggest",
                   drawstyle="steps-post")
        ax[2].set(xscale="log", xlabel="cumulative new FLOPs (0 drawn at 1e17)", ylabel="test MAE (points)",
                  title="(c) against spend (random orders thin)")
        for a in ax[1:]:
            a.axhline(c["refit"], color="grey", ls="--", label="NUTS refit with every reveal")
        ax[1].set(xlabel="hidden runs revealed", ylabel="test MAE (points)", title="(c) EvoLM backtest")
        ax[1].legend()
    fig.tight_layout()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    fig.savefig(Path(args.out) / "decide_curves.png", dpi=120)
    print(f"wrote {Path(args.out) / 'decide_curves.png'}")

if __name__ == "__main__":
    main()
