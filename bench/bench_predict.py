"""Prediction benchmarks.

1. Cold wall time of `dynsim predict --pretrain 320BT --cpt 8+42BT` (a fresh process each run).
   Goal (issue 2): median ≤ 0.5 s on a 2-core machine.
2. The posterior predictive for 1,000 configurations over all draws of the bundled posterior
   (`Posterior.predict`, noise included), per downstream metric. Goal (issue 3): median ≤ 0.2 s.
   `Posterior.predict` uses `fastpath.predict_many` (tabulated in ability, float32, draw blocks on all cores);
   beside it the exact `forward.predict`, and the largest deviation between the two on the first 200 draws.
   Wall and CPU (process) time are both printed: on a shared machine wall time is inflated by other
   processes; CPU time is what this process needs, summed over its threads.

Usage: python bench/bench_predict.py [--runs 15] [--repeats 5] [--exact-metrics greedy_pass@1,pass@16]
                                     [--skip-cli] [--skip-exact]
The exact path of maj@16 over all 4000 draws allocates several (4000, 1000, 2, 24) float64 temporaries
(≈ 1.5 GB each): it is left out of --exact-metrics by default.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


ap = argparse.ArgumentParser()
ap.add_argument("runs_pos", nargs="?", type=int, help=argparse.SUPPRESS)  # old usage: bench_predict.py [runs]
ap.add_argument("--runs", type=int, default=15)
ap.add_argument("--repeats", type=int, default=5)
ap.add_argument("--exact-metrics", default="greedy_pass@1,pass@16")
ap.add_argument("--skip-cli", action="store_true")
ap.add_argument("--skip-exact", action="store_true")
args = ap.parse_args()
runs = args.runs_pos or args.runs

# -- 1. CLI cold wall time ---------------------------------------------------------------------------
if not args.skip_cli:
    exe = shutil.which("dynsim") or f"{sys.executable} -m dynsim.cli"
    cmd = exe.split() + ["predict", "--pretrain", "320BT", "--cpt", "8+42BT"]
    subprocess.run(cmd, capture_output=True, check=True)  # warm the OS file cache once
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    baseline = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy"], check=True)
        baseline.append(time.perf_counter() - t)
    print(f"dynsim predict cold wall time over {runs} runs: median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}); python+numpy alone: {statistics.median(baseline):.3f} s",
          flush=True)

# -- 2. posterior predictive, 1,000 configurations × all draws -----------------------------------------
from dynsim import fastpath, forward, posterior  # noqa: E402
from dynsim.config import parse_config  # noqa: E402

post = posterior.load(posterior.bundled_path("evolm"))
cfgs = [parse_config(f"1B-{pt}BT-{r}+{50 - r}BT-100Kep1-100Kep8") for pt in range(20, 420, 10) for r in range(0, 25)]
assert len(cfgs) == 1000


def timed(fn, repeats):
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


exact_metrics = [] if args.skip_exact else [m for m in args.exact_metrics.split(",") if m]
print(f"posterior predictive, {len(cfgs)} configs × {post.n_draws} draws, noise included (goal: median ≤ 0.2 s)",
      flush=True)
for task, metric in [("ID_avg", "greedy_pass@1"), ("ID_avg", "pass@16"), ("ID_avg", "maj@16")]:
    tasks, metrics = [task] * len(cfgs), [metric] * len(cfgs)
    x = post.design(cfgs, tasks, metrics)  # at the posterior's scales, bases and form, as predict builds it
    params = post.parameters(x, np.random.default_rng(0))  # a base checkpoint no fit saw draws its quality
    head = {k: v[:200] for k, v in params.items()}
    if metric in exact_metrics:
        reps = max(1, min(3, args.repeats))
        w, c = timed(lambda: forward.predict(params, x, np), reps)
        print(f"  {task} {metric:14s} exact forward.predict (no noise):  median wall {w:7.3f} s, cpu {c:7.3f} s "
              f"({reps} repeats)", flush=True)
    dev = 100 * np.abs(fastpath.predict_many(head, x) - forward.predict(head, x, np)).max()
    w, c = timed(lambda: post.predict(cfgs, tasks, metrics, noise=True), args.repeats)
    print(f"  {task} {metric:14s} Posterior.predict (predict_many): median wall {w:7.3f} s, cpu {c:7.3f} s "
          f"({args.repeats} repeats; max |Δ| vs exact {dev:.1e} points on 200 draws)", flush=True)
