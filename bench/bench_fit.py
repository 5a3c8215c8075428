"""Wall time of a full fit of the bundled EvoLM data (NUTS via numpyro, 4 chains × 1000 draws), and of the
posterior predictive for 1,000 configurations over all draws. Run twice to see a warm compile cache.

Usage: python bench/bench_fit.py
"""

import time

import numpy as np

from calibrate import fit
from calibrate.model import observations
from dynsim import posterior, results
from dynsim.config import parse_config

ds = results.from_evolm_csv()
obs = observations(ds)
t = time.perf_counter()
idata, diag, ok = fit.fit(obs, progress=False, log=lambda *_: None)
print(f"fit: {time.perf_counter() - t:.1f} s wall, R-hat max {diag['rhat_max']:.4f}, divergences {diag['divergences']}")

post = posterior.load(posterior.bundled_path("evolm"))
cfgs = [parse_config(f"1B-{pt}BT-{r}+{50 - r}BT-100Kep1-100Kep8") for pt in range(20, 420, 10) for r in range(0, 25)]
for task, metric in [("ID_avg", "greedy_pass@1"), ("ID_avg", "pass@16"), ("ID_avg", "maj@16")]:
    times = []
    for _ in range(5):
        t = time.perf_counter()
        post.predict(cfgs, [task] * len(cfgs), [metric] * len(cfgs), noise=True)
        times.append(time.perf_counter() - t)
    print(f"posterior predictive, {len(cfgs)} configs × {post.n_draws} draws, {task} {metric}: "
          f"median {np.median(times):.3f} s")
