"""Parameter recovery (issue 3, deliverable 7): data simulated from the forward model with known parameters,
fitted by the real fitting code, gives intervals that contain the known values.

Design: the bundled EvoLM Dataset's 94 scored observations (same configs, tasks, metrics). Known values: the bundled
posterior's median of every parameter (discrepancy scales included), a realistic point where NUTS behaves as it
does on the real data. Simulated values: the forward model there, in percent, plus the noise the likelihood
assumes, N(0, measurement_sd² + discrepancy[group]²) (no clipping: the likelihood does not clip either).

Two other choices were tried and failed, for reasons the docstring records so they are not tried again:
- one posterior *draw* (seed 7, draw 3779): 11/16 inside 90% in CI. Most globals are barely informed by this
  design (posterior width 0.6-1.0 of the prior's), so their recovered posterior is close to the prior, while a
  draw sits wherever the real data put it and can be in the prior's tail (domain_tokens 3.5e8 against a
  recovered [8.6e8, 1.6e10]); the binomial arithmetic below assumes known values typical of the prior.
- one *prior* draw (exact simulation-based calibration): 15/16 inside 90%, but NUTS did not converge (R-hat 1.36
  at target_accept 0.995): that draw's small discrepancy scales (0.4 points) made the posterior multimodal.
A median is central where the data say little, so weakly identified globals pass easily (the printed width
ratios show which ones carry evidence); the informed ones are the test.
Measured (2026-12-03, smoothmax form, 94 scored numbers, 2-core machine shared with the test suite): fit 173 s;
19/19 inside 90% (smoothmax_k's width ratio 1.00: on this design k is its prior, transferred from Gadre's fit),
19/19 inside 99.9%; R-hat 1.008, ESS bulk 869, 0 divergences at target_accept 0.97.

Criterion, on 18 scalars: the 16 global parameters (`forward.PARAMS` with group "global") and the size term
per kind (size_ability: ID, OOD), and where the posterior has them the base-quality loadings (quality_loss is
global; quality_ability per kind: 21 scalars):
  (a) at most 4 of the 18 known values outside their central 90% posterior interval (`allowed_outside`), and
  (b) every one inside its central 99.9% interval (≈ the range of the draws), and
  (c) the fit's diagnostics pass (R-hat ≤ 1.01, no divergences, after the fit's own retries).
False-alarm rate for a correct model and sampler, treating the 18 coverages as independent Bernoulli
trials (as if the known values were typical of the prior):
  P(Binomial(18, 0.9) ≤ 13) = 2.8% for (a); 1 − 0.999¹⁸ = 1.8% for (b); ≤ 4.6% together (union bound)
  (with the smoothmax form's k, 19 scalars: 3.5% and 1.9%).
Correlated parameters (A, α, B, β) widen the spread of the count, so the true rate is somewhat higher.
Both seeds are fixed, yet two runs on this machine can differ (R-hat 1.0088 and 1.0117 from the same seeds;
the cause, likely in XLA's parallel execution, is not established), so the draws are enough that R-hat's own
noise stays below the gate's margin. A real bug (a formula in the likelihood that differs from the one that
simulated, a unit slip, a mis-indexed task) shifts several parameters by many posterior widths and fails (a) or (b).

Weakly identified globals (their posterior ≈ prior on this design) pass trivially and carry no
evidence; the test prints each parameter's posterior-to-prior width ratio so that is visible.
On EvoLM's accuracies-only design the loss is latent, and E cancels exactly (ability reads loss − E, cloze
midpoints are E + shift), so E is recovered only as its prior; the printed width ratios show which globals the
design informs.
"""

import dataclasses
import time

import numpy as np
import pytest

SIM_SEED, FIT_SEED = 20241, 1
DRAWS, TUNE, CHAINS = 1000, 500, 4
# 1000 draws: at 300/300 R-hat max was 1.012 (> 1.01); with each task's mean success sampled (session 7,
# calibrate/model.py), 500/500 ended at R-hat 1.0088 in one run and 1.0117 in CI's, at target_accept 0.995.
# The fit's own retry ladder, starting at 0.97: on this design 0.9 left 4 divergences (one run, 500/500
# draws), as it did for the bundled fit, and each rung costs a full fit.
TARGET_ACCEPTS = (0.97, 0.995)
FALSE_ALARM = 0.04  # of criterion (a); see the arithmetic above


def allowed_outside(n: int) -> int:
    """Known values allowed outside their 90% intervals: the fewest m with P(Binomial(n, 0.1) > m) ≤ FALSE_ALARM
    (4 of 18 or 19 scalars, 5 of 21 with the base-quality loadings)."""
    from scipy.stats import binom

    return next(m for m in range(n + 1) if binom.sf(m, n, 0.1) <= FALSE_ALARM)


def simulate(obs, post, draw: int, rng):
    """Observed values for obs's design from the forward model at one draw of `post` (a Posterior), plus the
    likelihood's noise: N(0, measurement_sd² + discrepancy[group]²), as in calibrate.model.build."""
    from dynsim import forward

    p = {k: v[draw : draw + 1] for k, v in post.gathered().items()}  # globals (1, 1), grouped (1, T)
    mean = forward.predict(p, obs.x, np)[0] * obs.scale
    sd = np.sqrt(dataclasses.replace(obs, values=mean).measurement_sd() ** 2
                 + post.params["discrepancy"][draw, obs.group] ** 2)
    return dataclasses.replace(obs, values=mean + sd * rng.standard_normal(len(obs))), mean


@pytest.mark.slow
def test_known_parameters_are_recovered():
    import pymc as pm

    from calibrate import fit
    from calibrate.model import build, observations
    from dynsim import forward, posterior, results

    bundled = posterior.load(posterior.bundled_path("evolm"))
    obs = observations(results.from_evolm_csv()).with_form(bundled.meta.get("form", "chinchilla"))
    with build(obs):
        prior = pm.sample_prior_predictive(4000, random_seed=0).prior
    known = posterior.Posterior({k: np.median(v, axis=0, keepdims=True) for k, v in bundled.params.items()},
                                bundled.meta)
    draw = 0
    sim, mean = simulate(obs, known, draw, np.random.default_rng(SIM_SEED))
    assert np.isfinite(sim.values).all() and ((mean[obs.scale == 100] >= 0) & (mean[obs.scale == 100] <= 100)).all()

    t = time.perf_counter()
    idata, diag, ok = fit.fit(sim, draws=DRAWS, tune=TUNE, chains=CHAINS, seed=FIT_SEED, progress=False,
                                target_accepts=TARGET_ACCEPTS)
    wall = time.perf_counter() - t
    draws = fit.draws_of(idata)

    # the global scalars (16, and the smoothmax form's k) and the size term per kind
    checked = ([(p.name, None) for p in forward.PARAMS if p.group == "global" and p.name in known.params]
               + [(name, k) for name in ("size_ability", "quality_ability") if name in known.params
                  for k in range(len(forward.KINDS))])
    rows, inside90, inside999 = [], 0, 0
    for name, k in checked:
        true, d = known.params[name][draw], draws[name]
        true, d = (float(true), d) if k is None else (float(true[k]), d[:, k])
        label = name if k is None else f"{name}[{forward.KINDS[k]}]"
        lo5, hi95 = np.quantile(d, [0.05, 0.95])
        lo, hi = np.quantile(d, [0.0005, 0.9995])
        pr = prior[name].values.reshape(-1, *prior[name].shape[2:])
        pr = pr if k is None else pr[:, k]
        f = np.log if (pr > 0).all() else (lambda v: v)  # positive parameters: widths on the log scale
        prior_w = np.subtract(*np.quantile(f(pr), [0.95, 0.05]))
        in90, in999 = lo5 <= true <= hi95, lo <= true <= hi
        inside90 += in90
        inside999 += in999
        rows.append(f"  {label:18s} true {true:11.4g}  90% [{lo5:11.4g}, {hi95:11.4g}]  "
                    f"{'in ' if in90 else 'OUT'}{'' if in999 else ' (outside 99.9%)'}  "
                    f"90% width posterior/prior {(f(hi95) - f(lo5)) / prior_w:5.2f}")
    print(f"\nrecovery: posterior median, fit {wall:.0f} s, {diag}")
    print("\n".join(rows))
    print(f"inside 90%: {inside90}/{len(checked)}; inside 99.9%: {inside999}/{len(checked)}")

    assert ok, f"diagnostics failed: {diag}"
    assert inside90 >= len(checked) - allowed_outside(len(checked)), f"only {inside90}/{len(checked)} known values inside their 90% intervals"
    assert inside999 == len(checked), "a known value lies outside its 99.9% interval"
