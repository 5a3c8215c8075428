"""Leave-one-configuration-out validation: MAE and interval coverage per metric.

Each configuration (all numbers measured on one run) is held out in turn. Instead of refitting NUTS once per
configuration, the full posterior is reweighted to the posterior without that configuration's likelihood by
Pareto-smoothed importance sampling (PSIS-LOGO; Vehtari, Gelman & Gabry 2017). Pareto k̂ says, per held-out
configuration, whether the reweighting is trustworthy (k̂ < 0.7); the report counts those that are not.
"""

from __future__ import annotations

import numpy as np

from dynsim import observation
from dynsim.config import STAGE
from dynsim.errors import UserError
from dynsim.forward import AVERAGE_MIN_TASKS
from dynsim.posterior import Posterior

UNSEEN = "*"  # marks the metric of a held-out number whose task has no number in the fit


def _shared_sd(post: Posterior, obs) -> np.ndarray:
    """Each number's run-shared deviation scale (draws × numbers; 0 for losses and posteriors without it)."""
    if "run_shared" not in post.params:
        return np.zeros((post.n_draws, len(obs)))
    shared = post.params["run_shared"][:, np.minimum(obs.group, len(observation.SHARED_GROUPS) - 1)]
    return np.where(obs.scale == 1.0, 0.0, shared)


def _loglik(post: Posterior, obs, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log p(y_i | θ_s) of each number alone under the observation model (dynsim/observation.py: its run's shared
    deviation in its variance), and its scales."""
    slope = post.loss_slope(post.design(obs.configs, obs.tasks, obs.metrics, obs.corpus))
    sd = post.noise_sd(obs.group, obs.values, obs.n_items, loss_slope=slope, run_groups=obs.run_group)
    sd = np.sqrt(sd ** 2 + _shared_sd(post, obs) ** 2)
    return observation.log_density(obs.values, mean, sd, obs.scale == 1.0, post.meta["loss_nu"]), sd


def _joint_loglik(post: Posterior, obs, mean: np.ndarray, ll: np.ndarray, sd: np.ndarray, held: np.ndarray):
    """log p(y_held | θ_s), (draws,): the held numbers' joint density, their run's shared deviation integrated
    out per (run, group) block (the sum of the numbers' own densities where there is none)."""
    shared = _shared_sd(post, obs)
    if not shared[:, held].any():
        return ll[:, held].sum(axis=1)
    rows = np.flatnonzero(held)
    is_loss = obs.scale[rows] == 1.0
    block, n_blocks = observation.run_blocks(obs.run_keys[rows], obs.group[rows])
    var = sd[:, rows] ** 2 - shared[:, rows] ** 2  # the numbers' own variance, the shared part apart
    acc = observation.block_log_density(obs.values[rows] - mean[:, rows], var, shared[:, rows], block, n_blocks)
    return acc.sum(axis=1) + ll[:, rows[is_loss]].sum(axis=1)


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, qs) -> np.ndarray:
    order = np.argsort(values)
    cdf = np.cumsum(weights[order])
    cdf /= cdf[-1]
    return np.interp(qs, cdf, values[order])


def refit_without(post: Posterior, obs, held: np.ndarray, draws=500, tune=500, chains=4, seed=0) -> Posterior:
    """An exact fold: NUTS on the observations that are not held out."""
    from calibrate import fit

    train = obs.subset(~held)
    idata = fit.sample(train, draws=draws, tune=tune, chains=chains, target_accept=0.95, seed=seed, progress=False)
    # the fold's own base checkpoints: a held-out one is new to it, and draws its quality
    return Posterior(fit.draws_of(idata), post.meta | {"diagnostics": fit.diagnostics(idata), "bases": list(train.bases)},
                     post.path)


def loco(post: Posterior, obs, level: float = 0.9, seed: int = 0, refit_above: float | None = None, log=None) -> dict:
    """Per-observation held-out predictions (PSIS-LOGO over configurations) and per-metric summaries.

    With refit_above=k, every configuration whose Pareto k̂ exceeds k is instead held out exactly (NUTS refit).
    """
    import arviz as az

    rng = np.random.default_rng(seed)
    mean = post.predict(obs.configs, obs.tasks, obs.metrics, noise=False, corpus=obs.corpus)
    ll, sd = _loglik(post, obs, mean)
    names = np.array([c.name for c in obs.configs])
    rows, khat, refitted = [], {}, []
    for name in sorted(set(names)):
        held = names == name
        log_w, k = az.psislw(-_joint_loglik(post, obs, mean, ll, sd, held))
        w = np.exp(log_w - log_w.max())
        khat[name] = float(k)
        if refit_above is not None and k > refit_above:
            fold = refit_without(post, obs, held, seed=seed)
            if log:
                log(f"refitted without {name} (k̂ {k:.2f}): R-hat max {fold.meta['diagnostics']['rhat_max']:.3f}")
            sub = obs.subset(held)
            fold_mean = fold.predict(sub.configs, sub.tasks, sub.metrics, noise=False, corpus=sub.corpus)
            fold_ll, fold_sd = _loglik(fold, sub, fold_mean)
            mean_f, sd_f, w_f = np.zeros((fold.n_draws, len(obs))), np.ones((fold.n_draws, len(obs))), np.ones(fold.n_draws)
            mean_f[:, held], sd_f[:, held] = fold_mean, fold_sd
            refitted.append(name)
        else:
            mean_f, sd_f, w_f = mean, sd, w
        for i in np.flatnonzero(held):
            if obs.scale[i] == 100.0:
                draws = np.clip(mean_f[:, i] + sd_f[:, i] * rng.standard_normal(len(w_f)), 0, 100)
            else:  # a loss: relative Student-t deviation (observation model)
                draws = mean_f[:, i] * np.exp(sd_f[:, i] * rng.standard_t(post.meta["loss_nu"], len(w_f)))
            lo, hi = _weighted_quantile(draws, w_f, [(1 - level) / 2, (1 + level) / 2])
            pred = float(np.sum(w_f * draws) / np.sum(w_f))
            rows.append(dict(config=name, task=obs.tasks[i], metric=obs.metrics[i], observed=float(obs.values[i]),
                             predicted=pred, lo=float(lo), hi=float(hi), khat=float(k)))
    return dict(rows=rows, khat=khat, refitted=refitted, level=level, summary=summarise(rows, level))


def interval_score(lo, hi, observed, alpha: float) -> np.ndarray:
    """The interval score of central (1 − alpha) intervals [lo, hi] (Gneiting & Raftery 2007, "Strictly proper
    scoring rules, prediction, and estimation", JASA 102:359–378, eq. 43):

        (hi − lo) + (2/alpha)·(lo − y)·1[y < lo] + (2/alpha)·(y − hi)·1[y > hi]

    The width, plus a penalty for every unit the observation falls outside. Lower is better, and in expectation
    it is lowest for the true alpha/2 and 1 − alpha/2 quantiles: an interval gains nothing by being narrow and
    missing, or wide and covering. Same units as the observations."""
    lo, hi, y = np.asarray(lo, float), np.asarray(hi, float), np.asarray(observed, float)
    return (hi - lo) + (2 / alpha) * np.maximum(lo - y, 0) + (2 / alpha) * np.maximum(y - hi, 0)


def summarise(rows: list[dict], level: float = 0.9) -> list[dict]:
    """Per metric: MAE, coverage, mean width, width / MAE, the mean interval score at alpha = 1 − level (and, for
    losses, the mean relative error). 'all' pools the per-number metrics (not the derived averages, not losses:
    their units differ)."""
    out = []
    metrics = sorted({r["metric"] for r in rows})
    pooled = [m for m in metrics if m not in ("loss", "avg_acc") and not m.endswith(UNSEEN)]
    for metric in metrics + (["all"] if len(pooled) > 1 else []):
        sel = [r for r in rows if r["metric"] == metric or (metric == "all" and r["metric"] in pooled)]
        err = np.array([abs(r["predicted"] - r["observed"]) for r in sel])
        cover = np.array([r["lo"] <= r["observed"] <= r["hi"] for r in sel])
        width = np.array([r["hi"] - r["lo"] for r in sel])
        score = interval_score([r["lo"] for r in sel], [r["hi"] for r in sel], [r["observed"] for r in sel], 1 - level)
        s = dict(metric=metric, n=len(sel), mae=float(err.mean()), coverage=float(cover.mean()),
                 mean_width=float(width.mean()), interval_score=float(score.mean()))
        # how many mean errors an interval spans: 4.1 for a calibrated 90% interval of normal errors (2·1.645σ
        # over the mean absolute error 0.80σ); far below, too narrow to cover; far above, too wide to inform
        s["width_to_mae"] = s["mean_width"] / s["mae"] if s["mae"] > 0 else float("inf")
        if metric == "loss":
            s["mean_rel_err"] = float(np.mean([abs(r["predicted"] / r["observed"] - 1) for r in sel]))
            s["max_rel_err"] = float(np.max([abs(r["predicted"] / r["observed"] - 1) for r in sel]))
        out.append(s)
    return out


def format_report(report: dict) -> str:
    level = report["level"] * 100
    refitted = report.get("refitted", [])
    bad = [n for n, k in report["khat"].items() if k > 0.7 and n not in refitted]
    method = "PSIS-LOGO" + (f"; {len(refitted)} refitted exactly by NUTS" if refitted else "")
    lines = [f"leave-one-configuration-out over {len(report['khat'])} configurations ({method})",
             f"{'metric':<16}{'n':>4}{'MAE':>8}{f'{level:g}% cover':>12}{'mean width':>12}{'width/MAE':>11}"
             f"{'int. score':>12}"]
    for s in report["summary"]:
        lines.append(f"{s['metric']:<16}{s['n']:>4}{s['mae']:>8.2f}{s['coverage'] * 100:>11.0f}%{s['mean_width']:>12.1f}"
                     f"{s['width_to_mae']:>11.1f}{s['interval_score']:>12.2f}")
    lines.append(f"Pareto k̂ > 0.7 (reweighting unreliable) and not refitted: {len(bad)} of {len(report['khat'])} "
                 "configurations" + (f": {', '.join(bad)} (use --refit)" if bad else ""))
    alpha = 1 - report["level"]
    lines.append(f"MAE, widths and interval scores (Gneiting & Raftery 2007, alpha = {alpha:.2g}: width + "
                 f"{2 / alpha:.0f} × the miss) in percentage points (nats for loss)")
    return "\n".join(lines)


# -- held-out splits: extrapolation in tokens, in size, and to post-training ----------------------------
SPLITS = ("loco", "largest-pt", "largest-size", "descendants")
DESCENDANTS_MIN_HELD = 10  # held-out numbers the descendants split gathers base runs for


def split_mask(obs, split: str, size_from: float | None = None) -> np.ndarray:
    """Which observations a split holds out: every run at the largest pretraining budget (extrapolation in
    tokens), at the largest model size — or, with size_from, every size ≥ size_from (extrapolation in size) —
    or the post-training descendants of some base runs (prediction of SFT / RL from the base run's own
    evaluations, which stay in the fit).

    descendants: the base runs (pretraining + CPT prefixes) that have post-trained descendants in the data are
    ordered by size, then pretraining tokens, then CPT tokens, largest first; every one at the largest such size is
    chosen, then the next ones in that order while fewer than DESCENDANTS_MIN_HELD numbers are held out — but never
    so many that no post-trained run stays in the fit. Every SFT and SFT+RL run of a chosen base is held out. One
    split, one NUTS refit (EvoLM: the descendants of 4B-80BT-8+42BT, 12 numbers)."""
    if split == "descendants":
        return _descendants_mask(obs)
    if split == "largest-pt":
        d = np.array([c.pretrain for c in obs.configs])
        return d == d.max()
    if split == "largest-size":
        n = np.array([c.size for c in obs.configs])
        return n >= (size_from if size_from else n.max())
    raise UserError(f"unknown split '{split}': choose one of {', '.join(SPLITS)}")


def _descendants_mask(obs) -> np.ndarray:
    bases = np.array([c.upstream().name for c in obs.configs])
    post_trained = np.array([c.post_trained for c in obs.configs])
    order = sorted({c.upstream() for c in obs.configs if c.post_trained},
                   key=lambda b: (b.size, b.pretrain, sum(STAGE["cpt"].counts(b)), b.name), reverse=True)
    held_of = lambda chosen: post_trained & np.isin(bases, [b.name for b in chosen])  # noqa: E731
    chosen = []
    for b in order:
        if held_of(chosen + [b]).sum() == post_trained.sum():
            break  # it would leave the fit no post-trained run to learn post-training from
        if b.size < order[0].size and held_of(chosen).sum() >= DESCENDANTS_MIN_HELD:
            break
        chosen.append(b)
    if not chosen:
        raise UserError("split 'descendants' needs post-trained descendants of at least two base runs")
    return held_of(chosen)


def interval_rows(obs, held: np.ndarray, draws: np.ndarray, method: str, split: str, level: float,
                  weights: np.ndarray | None = None, point: np.ndarray | None = None) -> list[dict]:
    """One row per held-out observation: observed, predicted (the draws' mean unless a point prediction is
    given) and central interval from predictive draws. A task with no number left in the fit (EvoLM's
    GSM8K-Platinum is measured at the largest budget only) is predicted from the pooled prior alone: its metric is
    marked UNSEEN and summarised on its own line."""
    w = np.ones(len(draws)) if weights is None else weights
    seen = {obs.tasks[i] for i in np.flatnonzero(~held)}
    rows = []
    for j, i in enumerate(np.flatnonzero(held)):
        lo, hi = _weighted_quantile(draws[:, j], w, [(1 - level) / 2, (1 + level) / 2])
        metric = obs.metrics[i] + ("" if obs.tasks[i] in seen else UNSEEN)
        rows.append(dict(split=split, method=method, config=obs.configs[i].name, corpus=int(obs.corpus[i]),
                         task=obs.tasks[i], metric=metric, observed=float(obs.values[i]),
                         predicted=float(np.sum(w * draws[:, j]) / np.sum(w) if point is None else point[j]),
                         lo=float(lo), hi=float(hi)))
    return rows


def bayes_holdout(post: Posterior, obs, held: np.ndarray, split: str, level=0.9, refit=True, seed=0,
                  draws=500, tune=500) -> list[dict]:
    """Predict the held-out observations from a posterior fitted without them (a NUTS refit unless the given
    posterior already excluded them, refit=False)."""
    fold = refit_without(post, obs, held, draws=draws, tune=tune, seed=seed) if refit else post
    sub = obs.subset(held)
    pred = fold.predict(sub.configs, sub.tasks, sub.metrics, rng=np.random.default_rng(seed), corpus=sub.corpus,
                        n_items=sub.n_items)
    rows = interval_rows(obs, held, pred, "bayes", split, level) + average_rows(obs, held, pred, "bayes", split, level)
    diag = fold.meta.get("diagnostics", {})
    for r in rows:
        r["rhat_max"], r["divergences"] = diag.get("rhat_max"), diag.get("divergences")
    return rows


def lsq_holdout(obs, held: np.ndarray, split: str, level=0.9, n_boot=30, seed=0, two_step=False) -> list[dict]:
    """The least-squares baseline with predictive-bootstrap intervals on the same split."""
    from calibrate import baselines

    fitter = baselines.TwoStepFitter(obs) if two_step else baselines.Fitter(obs)
    draws, _ = baselines.bootstrap_predict(fitter, np.flatnonzero(~held), obs.subset(held), n_boot=n_boot, seed=seed)
    method = "lsq-2step" if two_step else "lsq"
    return interval_rows(obs, held, draws, method, split, level) + average_rows(obs, held, draws, method, split, level)


def average_rows(obs, held: np.ndarray, draws: np.ndarray, method: str, split: str, level: float,
                 point: np.ndarray | None = None) -> list[dict]:
    """The average accuracy over a held-out run's upstream tasks (Gadre et al.'s downstream target), scored
    from the draws of the per-task predictions — so its interval carries the tasks' joint uncertainty; the
    prediction is the mean of the tasks' point predictions where those are given."""
    idx = np.flatnonzero(held)
    is_acc = np.array([obs.metrics[i] != "loss" and obs.table.kind(obs.tasks[i]) == "upstream" for i in idx])
    keys = [(obs.configs[i].name, int(obs.corpus[i])) for i in idx]
    rows = []
    for key in sorted(set(k for k, a in zip(keys, is_acc) if a)):
        cols = np.array([k == key and a for k, a in zip(keys, is_acc)])
        if cols.sum() < AVERAGE_MIN_TASKS:  # a run evaluated on this many upstream tasks has its average scored
            continue
        avg = draws[:, cols].mean(axis=1)
        lo, hi = np.quantile(avg, [(1 - level) / 2, (1 + level) / 2])
        rows.append(dict(split=split, method=method, config=key[0], corpus=key[1], task=f"average of {cols.sum()}",
                         metric="avg_acc", observed=float(obs.values[idx[cols]].mean()),
                         predicted=float(avg.mean() if point is None else point[cols].mean()),
                         lo=float(lo), hi=float(hi)))
    return rows


def summarise_by(rows: list[dict], keys=("split", "method"), level: float = 0.9) -> list[dict]:
    """summarise's lines per (split, method, metric), plus an 'all' line per (split, method)."""
    out = []
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    for key, sel in groups.items():
        for s in summarise(sel, level):
            out.append(dict(zip(keys, key)) | s)
    return out


def lsq_loco(obs, level=0.9, n_boot=0, seed=0) -> list[dict]:
    """Leave-one-configuration-out for the least-squares baseline: a warm-started refit per configuration; its
    interval is the fold's prediction plus resampled training residuals (n_boot=0, the default: a parameter
    bootstrap per fold costs n_boot refits × configurations), or a full predictive bootstrap (n_boot > 0)."""
    from calibrate import baselines

    fitter = baselines.Fitter(obs)
    full = fitter.fit()
    names = np.array([c.name for c in obs.configs])
    rows = []
    for name in sorted(set(names)):
        held = names == name
        point = fitter.fit(np.flatnonzero(~held), theta0=full.theta, group_sd=full.group_sd)
        draws, _ = baselines.bootstrap_predict(fitter, np.flatnonzero(~held), obs.subset(held), n_boot=n_boot,
                                               seed=seed, point=point)
        rows += interval_rows(obs, held, draws, "lsq", "loco", level)
    return rows


def naive_holdout(obs, held: np.ndarray, split: str, level=0.9) -> list[dict]:
    """The naive baselines (calibrate.naive: carry-forward, loglinear) on a split, beside least squares."""
    from calibrate import naive

    train, test = np.flatnonzero(~held), np.flatnonzero(held)
    rows = []
    for method, predict in naive.METHODS.items():
        point, draws = predict(obs, train, test)
        rows += (interval_rows(obs, held, draws, method, split, level, point=point) +
                 average_rows(obs, held, draws, method, split, level, point=point))
    return rows


AUTHORS = {"olmo_ladder": "authors (ladder)", "gadre2024": "authors (Gadre)"}


def authors_holdout(method: str, full, obs, held: np.ndarray, split: str, level=0.9) -> list[dict]:
    """A testbed's authors' own method (calibrate.ladder_method for olmo_ladder, calibrate.gadre_method for
    gadre2024), fitted on its training runs and scored on every held-out number; full is the testbed's whole long
    table (every checkpoint and metric the ladder's method reads)."""
    if method == "olmo_ladder":
        from calibrate import ladder_method

        loss_task = next(t for t, k in zip(obs.table.names, obs.table.kinds) if k == "text")
        keys = [(obs.configs[i].name, obs.tasks[i], obs.metrics[i]) for i in np.flatnonzero(held)]
        train = {c.name for c, h in zip(obs.configs, held) if not h}
        point, draws = ladder_method.predict(full, loss_task, train, keys)
    else:
        from calibrate import gadre_method

        assert method == "gadre2024", method
        point, draws = gadre_method.predict(obs, held)
    name = AUTHORS[method]
    return (interval_rows(obs, held, draws, name, split, level, point=point) +
            average_rows(obs, held, draws, name, split, level, point=point))


def naive_loco(obs, level=0.9) -> list[dict]:
    """Leave-one-configuration-out for the naive baselines: each configuration predicted from all the others."""
    names = np.array([c.name for c in obs.configs])
    return [r for name in sorted(set(names)) for r in naive_holdout(obs, names == name, "loco", level)]


def format_split_report(rows: list[dict], level: float, by_task: bool = False) -> str:
    """Per split: one line per method and metric — MAE, coverage of the central interval, mean width, width / MAE,
    mean interval score; by_task: then the same per task."""
    lines = []
    summary = summarise_by(rows, level=level)
    for split in dict.fromkeys(r["split"] for r in summary):
        sel = [s for s in summary if s["split"] == split]
        bayes = [r for r in rows if r["split"] == split and r["method"].startswith("bayes")]
        n_cfg = len({r["config"] for r in rows if r["split"] == split})
        fold = ""
        if bayes and bayes[0].get("rhat_max") is not None:
            fold = f" (Bayesian fold: R-hat max {bayes[0]['rhat_max']:.3f}, {bayes[0]['divergences']} divergences)"
        lines.append(f"split {split}: {n_cfg} held-out configurations{fold}")
        lines.append(f"  {'method':<18}{'metric':<15}{'n':>5}{'MAE':>8}{f'{level * 100:g}% cover':>12}{'width':>8}"
                     f"{'width/MAE':>10}{'int. score':>11}{'rel err':>9}")
        for s in sel:
            rel = f"{s['mean_rel_err'] * 100:7.2f}%" if "mean_rel_err" in s else ""
            lines.append(f"  {s['method']:<18}{s['metric']:<15}{s['n']:>5}{s['mae']:>8.2f}{s['coverage'] * 100:>11.0f}%"
                         f"{s['mean_width']:>8.1f}{s['width_to_mae']:>10.1f}{s['interval_score']:>11.2f}{rel:>9}")
        if by_task:
            per_task = summarise_by([r for r in rows if r["split"] == split], keys=("task", "method"), level=level)
            lines.append(f"  {'task':<28}{'method':<18}{'metric':<15}{'n':>5}{'MAE':>8}{'cover':>7}{'width':>8}"
                         f"{'int. score':>11}")
            for s in sorted(per_task, key=lambda s: s["task"]):
                if s["metric"] != "all":
                    lines.append(f"  {s['task'][:27]:<28}{s['method']:<18}{s['metric']:<15}{s['n']:>5}{s['mae']:>8.2f}"
                                 f"{s['coverage'] * 100:>6.0f}%{s['mean_width']:>8.1f}{s['interval_score']:>11.2f}")
    if any(r["metric"].endswith(UNSEEN) for r in rows):
        lines.append(f"{UNSEEN}: a task with no number in the fit, predicted from the prior pooled over its kind "
                     "(left out of 'all')")
    lines.append("bayes: posterior predictive (NUTS); lsq: least squares of the same model, predictive bootstrap; "
                 "lsq-2step: loss law, then each task's link; carry-forward: the same number at the nearest training "
                 "run, interval from its leave-one-run-out errors; loglinear: a line in log tokens and log size "
                 "through the training runs of the same stages, its prediction interval; authors (ladder): the OLMo "
                 "ladder's two steps, task bpb law then a sigmoid to accuracy (calibrate/ladder_method.py); authors "
                 "(Gadre): one-exponent loss law on five runs per corpus, then an exponential loss-to-error law "
                 "(calibrate/gadre_method.py).")
    lines.append(f"MAE, width and int. score (Gneiting & Raftery 2007: width + {2 / (1 - level):.0f} × the miss; "
                 "lower is better) in points (nats for loss); rel err = mean |pred/obs − 1|")
    return "\n".join(lines)


# -- model comparison ---------------------------------------------------------------------------------
def pointwise_loglik(post: Posterior, obs) -> np.ndarray:
    """log p(y_i | θ_s) of every observation under every draw: (draws, observations)."""
    obs = obs.with_form(post.meta.get("form", "chinchilla"))
    mean = post.predict(obs.configs, obs.tasks, obs.metrics, noise=False, corpus=obs.corpus)
    return _loglik(post, obs, mean)[0]


def loo_compare(posteriors: dict[str, Posterior], obs):
    """PSIS-LOO (Vehtari et al. 2017) of each posterior on the same observations, ranked by ArviZ: elpd,
    its standard error, the difference to the best and that difference's standard error, stacking weights."""
    import arviz as az

    idatas = {}
    for name, post in posteriors.items():
        ll = pointwise_loglik(post, obs)
        idatas[name] = az.from_dict(posterior={"mu": np.zeros((1, ll.shape[0]))}, log_likelihood={"y": ll[None]})
    return az.compare(idatas, ic="loo")


def format_comparison(table) -> str:
    lines = ["model comparison by PSIS-LOO (higher elpd predicts held-out numbers better)",
             f"  {'model':<30}{'elpd_loo':>10}{'se':>8}{'Δelpd':>9}{'Δse':>8}{'p_loo':>8}{'weight':>8}  warning"]
    for name, r in table.iterrows():
        lines.append(f"  {name:<30}{r['elpd_loo']:>10.1f}{r['se']:>8.1f}{r['elpd_diff']:>9.1f}{r['dse']:>8.1f}"
                     f"{r['p_loo']:>8.1f}{r['weight']:>8.2f}  {'k̂ > 0.7 for some points' if r['warning'] else ''}")
    runner_up = table.iloc[1]
    if runner_up["elpd_diff"] > 2 * runner_up["dse"]:
        lines.append(f"{table.index[0]} leads the next by more than 2 Δse: the data prefer it")
    else:
        lines.append("Δelpd within 2 Δse: the data do not distinguish the forms")
    return "\n".join(lines)
