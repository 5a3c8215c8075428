"""optimize and suggest, shown to work on the bundled EvoLM calibration (issue 21). Prints three figures:

(a) optimize: wall time, and the regret under a known truth — truths are posterior draws left out of the
    posterior, so the truth is a plausible world the posterior does not know (Bayesian decision check).
(b) a simulated sequential study: from the stored posterior, reveal runs one at a time picked by suggest or at
    random from the same candidate pool, each outcome simulated from the truth, the draws reweighted (no refit);
    the error of the target prediction at the configurations of interest after each run, averaged over truths.
(c) a backtest on EvoLM's real numbers: some post-trained runs are hidden (their likelihood divided out of the
    posterior by Pareto-smoothed importance weights), then revealed in suggest's order or at random; the error
    on two test runs that are never revealed, after each reveal.

    python bench/bench_decide.py [--reps N] [--out bench/out]
Writes bench/out/decide_curves.png when matplotlib is present.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from dynsim import decide, posterior
from dynsim.config import parse_config


def rms_error(interest, logw, truth) -> float:
    w = np.exp(logw - logw.max())
    w /= w.sum()
    return float(np.sqrt(np.mean((w @ interest - truth) ** 2)))


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


def sequential(post, pool, interest, truth_of, logw0, steps, rng, pick, n_sims=16):
    """Reveal `steps` runs of the pool chosen by pick(ranked, remaining); errors and cumulative FLOPs after each."""
    logw, remaining, errors, flops = logw0.copy(), list(pool.runs), [], [0.0]
    errors.append(rms_error(interest, logw, truth_of))
    for step in range(steps):
        run = pick(logw, remaining, step)
        remaining.remove(run)
        logw = logw + pool.reveal(post, run, pool_values(pool, run))
        errors.append(rms_error(interest, logw, truth_of))
        flops.append(flops[-1] + pool.flops[run])
    return errors, flops


def pool_values(pool, run):
    return pool.truth[pool.cols[run]]


def part_b(post, target, reps: int, steps: int = 4):
    grid = decide.space(post, target, 4e21, in_range=True)
    best = decide.optimize(post, target, 4e21, grid, top=3)
    cfgs = [a.config for a in best.allocations]
    interest = decide.target_draws(post, target, cfgs)
    runs = decide.candidate_runs(post, grid, float("inf"), extra=cfgs)
    pool = decide.Pool.build(post, runs)
    rng = np.random.default_rng(3)
    curves = {"suggest": [], "random": []}
    flops = {"suggest": [], "random": []}
    for rep, s in enumerate(rng.choice(post.n_draws, reps, replace=False)):
        logw0 = np.zeros(post.n_draws)
        logw0[s] = -np.inf
        pool.truth = pool.y[s]
        truth = interest[s]

        def by_suggest(logw, remaining, step):
            sub = decide.Pool(remaining, pool.rows, pool.cols, pool.mean, pool.y, pool.flops, pool.new)
            return decide.rank(post, interest, sub, logw, n_sims=16, seed=rep * 10 + step, k=1)[0].config

        def at_random(logw, remaining, step):
            return remaining[rng.integers(len(remaining))]

        for name, pick in (("suggest", by_suggest), ("random", at_random)):
            e, f = sequential(post, pool, interest, truth, logw0, steps, rng, pick)
            curves[name].append(e)
            flops[name].append(f)
    print(f"\n(b) simulated sequential study, {reps} truths (posterior draws left out), pool of {len(pool.runs)} "
          f"candidate runs, target {target.name} at {', '.join(c.name for c in cfgs)}:")
    print("    RMS error of the target prediction (points) and cumulative FLOPs after each added run")
    for name in curves:
        e, f = np.mean(curves[name], axis=0), np.mean(flops[name], axis=0)
        print(f"    {name:<8} " + "  ".join(f"{x:.3f}" for x in e) + "   FLOPs " + " ".join(f"{x:.2g}" for x in f))
    return {k: np.mean(v, axis=0) for k, v in curves.items()}, {k: np.mean(v, axis=0) for k, v in flops.items()}


def part_c(post, target, orders: int = 20):
    """EvoLM backtest: hide post-trained runs, divide their likelihood out (PSIS), reveal them back."""
    import arviz as az

    from calibrate.model import observations
    from dynsim import calibrations

    obs = observations(calibrations.get("evolm").dataset()).with_form(post.meta.get("form", "chinchilla"))
    names = [c.name for c in obs.configs]
    test = ["1B-160BT-8+42BT-100Kep1-100Kep8", "4B-80BT-8+42BT-100Kep1-100Kep8"]
    reveal = ["1B-80BT-8+42BT-100Kep1-100Kep8", "1B-80BT-8+42BT-100Kep1", "4B-80BT-8+42BT-100Kep1",
              "1B-160BT-8+42BT-100Kep1", "1B-40BT-100Kep1", "1B-20BT-100Kep1"]
    hidden = test + reveal

    def rows_of(run):
        idx = [i for i, n in enumerate(names) if n == run]
        return idx, [(obs.configs[i], obs.tasks[i], obs.metrics[i]) for i in idx], obs.values[idx]

    def loglik(run):
        _, rows, values = rows_of(run)
        cs, ts, ms = map(list, zip(*rows))
        return post.log_likelihood(cs, ts, ms, values, decide.predict_rows(post, rows, noise=False))

    ll = {run: loglik(run) for run in hidden}
    raw = -sum(ll.values())
    logw0, k_hat = az.psislw(raw - raw.max())
    logw0 = np.asarray(logw0)
    print(f"\n(c) EvoLM backtest: {len(hidden)} post-trained runs hidden by PSIS (Pareto k {float(k_hat):.2f}, "
          f"ESS {float(decide.ess(logw0)):.0f} of {post.n_draws}); test runs {', '.join(test)}; "
          f"{len(reveal)} runs to reveal")
    test_rows = [r for run in test for r in rows_of(run)[1]]
    test_values = np.concatenate([rows_of(run)[2] for run in test])
    interest = decide.predict_rows(post, test_rows, noise=False)
    trained = decide.trained_prefixes(post)
    pool = decide.Pool.build(post, [parse_config(r) for r in reveal], trained=trained - {parse_config(r) for r in hidden})

    def mae(logw):
        w = np.exp(logw - logw.max())
        return float(np.mean(np.abs(w / w.sum() @ interest - test_values)))

    def run_order(order):
        logw, out = logw0.copy(), [mae(logw0)]
        for run in order:
            logw = logw + ll[run.name]
            out.append(mae(logw))
        return out

    logw, remaining, order = logw0.copy(), list(pool.runs), []
    for step in range(len(reveal)):
        sub = decide.Pool(remaining, pool.rows, pool.cols, pool.mean, pool.y, pool.flops, pool.new)
        run = decide.rank(post, interest, sub, logw, n_sims=16, seed=step, k=1)[0].config
        order.append(run)
        remaining.remove(run)
        logw = logw + ll[run.name]
    ours = run_order(order)
    rng = np.random.default_rng(5)
    rand = np.mean([run_order([pool.runs[i] for i in rng.permutation(len(pool.runs))]) for _ in range(orders)], axis=0)
    print(f"    suggest's order: {', '.join(r.name for r in order)}")
    print("    test MAE (points) after each reveal, suggest: " + "  ".join(f"{x:.2f}" for x in ours))
    print(f"    test MAE, random order (mean of {orders}):   " + "  ".join(f"{x:.2f}" for x in rand))
    return np.array(ours), rand


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = ap.parse_args()
    post = posterior.load(posterior.bundled_path("evolm"))
    target = decide.parse_target(None, post)
    t0 = time.time()
    part_a(post, target, args.reps)
    (b_err, b_flops) = part_b(post, target, args.reps)
    c = part_c(post, target)
    print(f"\ntotal {time.time() - t0:.0f} s")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for name, colour in (("suggest", "#0072B2"), ("random", "#E69F00")):
        ax[0].plot(range(len(b_err[name])), b_err[name], "o-", color=colour, label=name)
    ax[0].set(xlabel="runs added", ylabel=f"RMS error of {target.name} (points)", title="(b) simulated study")
    ax[1].plot(range(len(c[0])), c[0], "o-", color="#0072B2", label="suggest")
    ax[1].plot(range(len(c[1])), c[1], "o-", color="#E69F00", label="random order")
    ax[1].set(xlabel="hidden runs revealed", ylabel="test MAE (points)", title="(c) EvoLM backtest")
    for a in ax:
        a.legend()
    fig.tight_layout()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    fig.savefig(Path(args.out) / "decide_curves.png", dpi=120)
    print(f"wrote {Path(args.out) / 'decide_curves.png'}")


if __name__ == "__main__":
    main()
