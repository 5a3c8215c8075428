"""Leave-one-configuration-out validation: MAE and interval coverage per metric.

Each configuration (all numbers measured on one run) is held out in turn. Instead of refitting NUTS once per
configuration, the full posterior is reweighted to the posterior without that configuration's likelihood by
Pareto-smoothed importance sampling (PSIS-LOGO; Vehtari, Gelman & Gabry 2017). Pareto k̂ says, per held-out
configuration, whether the reweighting is trustworthy (k̂ < 0.7); the report counts those that are not.
"""

from __future__ import annotations

import numpy as np

from dynsim.posterior import OBS_GROUP_OF_KIND, Posterior


def _loglik(post: Posterior, obs, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    groups = np.array([3 if m == "loss" else OBS_GROUP_OF_KIND.get(post.table.kind(t), 0)
                       for t, m in zip(obs.tasks, obs.metrics)])
    floor = np.where(obs.scale == 1.0, 0.0, post.meta.get("noise_floor", 0.3))
    sd = np.sqrt(post.params["discrepancy"][:, groups] ** 2 + floor ** 2)
    ll = -0.5 * ((obs.values - mean) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
    return ll, sd


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, qs) -> np.ndarray:
    order = np.argsort(values)
    cdf = np.cumsum(weights[order])
    cdf /= cdf[-1]
    return np.interp(qs, cdf, values[order])


def refit_without(post: Posterior, obs, held: np.ndarray, draws=500, tune=500, chains=4, seed=0) -> Posterior:
    """An exact fold: NUTS on the observations that are not held out."""
    from calibrate import fit

    idata = fit.sample(obs.subset(~held), draws=draws, tune=tune, chains=chains, target_accept=0.95, seed=seed,
                       progress=False)
    return Posterior(fit.draws_of(idata), post.meta | {"diagnostics": fit.diagnostics(idata)}, post.path)


def loco(post: Posterior, obs, level: float = 0.9, seed: int = 0, refit_above: float | None = None, log=None) -> dict:
    """Per-observation held-out predictions (PSIS-LOGO over configurations) and per-metric summaries.

    With refit_above=k, every configuration whose Pareto k̂ exceeds k is instead held out exactly (NUTS refit).
    """
    import arviz as az

    rng = np.random.default_rng(seed)
    mean = post.predict(obs.configs, obs.tasks, obs.metrics, noise=False)
    ll, sd = _loglik(post, obs, mean)
    names = np.array([c.name for c in obs.configs])
    rows, khat, refitted = [], {}, []
    for name in sorted(set(names)):
        held = names == name
        log_w, k = az.psislw(-ll[:, held].sum(axis=1))
        w = np.exp(log_w - log_w.max())
        khat[name] = float(k)
        if refit_above is not None and k > refit_above:
            fold = refit_without(post, obs, held, seed=seed)
            if log:
                log(f"refitted without {name} (k̂ {k:.2f}): R-hat max {fold.meta['diagnostics']['rhat_max']:.3f}")
            sub = obs.subset(held)
            fold_mean = fold.predict(sub.configs, sub.tasks, sub.metrics, noise=False)
            fold_ll, fold_sd = _loglik(fold, sub, fold_mean)
            mean_f, sd_f, w_f = np.zeros((fold.n_draws, len(obs))), np.ones((fold.n_draws, len(obs))), np.ones(fold.n_draws)
            mean_f[:, held], sd_f[:, held] = fold_mean, fold_sd
            refitted.append(name)
        else:
            mean_f, sd_f, w_f = mean, sd, w
        for i in np.flatnonzero(held):
            draws = mean_f[:, i] + sd_f[:, i] * rng.standard_normal(len(w_f))
            if obs.scale[i] == 100.0:
                draws = np.clip(draws, 0, 100)
            lo, hi = _weighted_quantile(draws, w_f, [(1 - level) / 2, (1 + level) / 2])
            pred = float(np.sum(w_f * draws) / np.sum(w_f))
            rows.append(dict(config=name, task=obs.tasks[i], metric=obs.metrics[i], observed=float(obs.values[i]),
                             predicted=pred, lo=float(lo), hi=float(hi), khat=float(k)))
    return dict(rows=rows, khat=khat, refitted=refitted, level=level, summary=summarise(rows))


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for metric in sorted({r["metric"] for r in rows}) + ["all"]:
        sel = [r for r in rows if metric in ("all", r["metric"])]
        err = np.array([abs(r["predicted"] - r["observed"]) for r in sel])
        cover = np.array([r["lo"] <= r["observed"] <= r["hi"] for r in sel])
        width = np.array([r["hi"] - r["lo"] for r in sel])
        out.append(dict(metric=metric, n=len(sel), mae=float(err.mean()), coverage=float(cover.mean()),
                        mean_width=float(width.mean())))
    return out


def format_report(report: dict) -> str:
    level = report["level"] * 100
    refitted = report.get("refitted", [])
    bad = [n for n, k in report["khat"].items() if k > 0.7 and n not in refitted]
    method = "PSIS-LOGO" + (f"; {len(refitted)} refitted exactly by NUTS" if refitted else "")
    lines = [f"leave-one-configuration-out over {len(report['khat'])} configurations ({method})",
             f"{'metric':<16}{'n':>4}{'MAE':>8}{f'{level:g}% cover':>12}{'mean width':>12}"]
    for s in report["summary"]:
        lines.append(f"{s['metric']:<16}{s['n']:>4}{s['mae']:>8.2f}{s['coverage'] * 100:>11.0f}%{s['mean_width']:>12.1f}")
    lines.append(f"Pareto k̂ > 0.7 (reweighting unreliable) and not refitted: {len(bad)} of {len(report['khat'])} "
                 "configurations" + (f": {', '.join(bad)} (use --refit)" if bad else ""))
    lines.append("MAE and widths in percentage points (nats for loss)")
    return "\n".join(lines)
