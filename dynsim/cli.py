"""`dynsim`: one verb-style command line. Heavy imports (xarray, pymc, torch) happen inside the verbs that
need them, so `dynsim predict` starts with numpy alone."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from pathlib import Path

from dynsim import checks
from dynsim.errors import UserError, shown

PREDICT_EXAMPLES = """examples:
  dynsim predict --pretrain 320BT --cpt 8+42BT                 1B model, EvoLM's standard SFT/RL after CPT
  dynsim predict --size 4B --pretrain 160BT --sft 100Kep2      a 4B model fine-tuned for 2 epochs
  dynsim predict 1B-160BT-8+42BT-100Kep1-100Kep8 --json        a full EvoLM name, machine-readable
  dynsim predict --pretrain 80BT --posterior my_fit.npz        any posterior written by `dynsim fit`
  dynsim predict --calibration gadre2024 --size 1.4B --pretrain 28BT --corpus rpj
                                                              Gadre et al.'s testbed: C4 loss, 46-task average
"""


class UsageError(UserError):
    """Flags that do not go together, or that argparse refused."""


class _Parser(argparse.ArgumentParser):
    def parse_known_args(self, args=None, namespace=None):
        """As argparse, but an option given twice is refused (argparse keeps the last one silently: `--seed 1
        --seed 2`, `--at A --at B`), and the namespace's `_given` names the options typed (not defaulted)."""
        args = list(sys.argv[1:] if args is None else args)
        seen, given = {}, set()
        for token in args:
            if token == "--":
                break
            action = self._option_string_actions.get(token.split("=", 1)[0] if token.startswith("--") else token)
            if action is None or isinstance(action, argparse._HelpAction):
                continue
            given.add(action.dest)
            if action.dest in seen and not isinstance(action, argparse._AppendAction):
                self.error(f"argument {'/'.join(action.option_strings)}: given twice ({shown(seen[action.dest])} and "
                           f"{shown(token)}); give it once")
            seen[action.dest] = token
        ns, rest = super().parse_known_args(args, namespace)
        ns._given = getattr(ns, "_given", set()) | given
        return ns, rest

    def error(self, message):  # one line, exit 2 (argparse prints usage + error by default)
        raise UsageError(f"{self.prog}: {message}".replace("\n", "\\n"))  # argparse does not quote every value


_LINE_BREAKS = {c: repr(chr(c))[1:-1] for c in (10, 11, 12, 13, 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029)}


def _fail(message: str, lines: bool = False) -> int:
    # a byte-flipped file can put undecodable text into a message: escaped, so that the error itself prints
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    if not lines:  # a newline in a path or name the message quotes: still one line (str.splitlines' breaks escaped)
        message = message.translate(_LINE_BREAKS)
    print(f"dynsim: error: {message}", file=sys.stderr)
    return 2


# -- predict ---------------------------------------------------------------------------------------
def _load_posterior(args, path=None):
    """args.posterior (or path, or the bundled calibration's), verified on load; refused, saying why, where its
    diagnostics failed unless --force."""
    from dynsim import posterior

    path = path or args.posterior or posterior.bundled_path(args.calibration)
    post = posterior.load(path)
    problems = post.diagnostic_problems()
    if problems and not getattr(args, "force", False):
        raise posterior.PosteriorError(f"{path}: posterior failed its diagnostics ({'; '.join(problems)}); "
                                       "refit it, or pass --force to use it anyway")
    return post


def _unused_calibration(args, used: bool, by: str) -> None:
    """--calibration typed where other flags replace all it would give: refused rather than ignored (a misspelt
    or another calibration would pass silently)."""
    if "calibration" in getattr(args, "_given", ()) and not used:
        raise UsageError(f"--calibration {shown(args.calibration)} is not used with {by}: give one or the other")


def _results_output(path, flag: str) -> None:
    """A results Dataset to write: a .nc file (netCDF) that is not an existing folder, in a writable place."""
    checks.output_file(path, flag)
    if Path(path).suffix != ".nc":
        raise UsageError(f"{flag} {shown(str(path))}: a results Dataset is a .nc (netCDF) file")


def _same_data(ds, post, flag: str) -> None:
    """A posterior drawn or scored against a Dataset must have been fitted to it: another calibration's posterior
    has no observed point in common with it, and a plot or a score of the pair would pass silently as one."""
    fitted = {post.meta.get("data_hash"), post.meta.get("earlier_data_hash")} - {None, ""}
    have = {ds.attrs.get("data_hash"), ds.attrs.get("earlier_data_hash")} - {None, ""}
    if fitted and not fitted & have:
        raise UsageError(f"{flag}: the posterior was fitted to data {post.meta['data_hash']}, not to this Dataset "
                         f"(data {ds.attrs.get('data_hash', '?')}); give the posterior fitted to it")
    # the data hash leaves out the task table: a task's kind edited since the fit is told by the posterior's copy
    kinds = dict(zip(map(str, ds.tasks.values), map(str, ds.task_kind.values)))
    tasks = post.meta["tasks"]
    for name, kind in zip(tasks["names"], tasks["kinds"]):
        if kinds.get(name, kind) != kind:
            raise UsageError(f"{flag}: task {shown(name)} is of kind {shown(kinds[name])} in the Dataset and "
                             f"{shown(kind)} in the posterior fitted to it: the Dataset's task table was edited")


def cmd_predict(args) -> int:
    import numpy as np

    from dynsim.config import config_from_flags, parse_config

    if args.name is not None:  # '' too: an empty name is refused as one, not taken for stage flags
        if any(v is not None for v in (args.pretrain, args.cpt, args.sft, args.rl)):
            raise UsageError("give either a run name or stage flags (--pretrain/--cpt/--sft/--rl), not both")
        cfg = parse_config(args.name)
    else:
        cfg = config_from_flags(args.size, args.pretrain, args.cpt, args.sft, args.rl)
    _unused_calibration(args, not args.posterior, "--posterior")
    if args.draws and "interval" in getattr(args, "_given", ()):
        raise UsageError("--interval has no effect with --draws (raw draws, no interval): give one or the other")
    post = _load_posterior(args)
    unseen = post.unseen_stages(cfg)
    if unseen:
        raise UsageError(f"{args.posterior or args.calibration} has no runs with {' or '.join(unseen)} to extrapolate "
                         f"from: it cannot predict {cfg.name}")
    rows = post.default_outputs(cfg)
    if args.corpus and not post.corpora:
        raise UsageError("--corpus: this calibration was fitted to one pretraining corpus")
    with warnings.catch_warnings():  # an overflow is caught below, in one line, not as a RuntimeWarning
        warnings.simplefilter("ignore", RuntimeWarning)  # (np.errstate would not reach predict's worker threads)
        draws = post.predict([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                             rng=np.random.default_rng(args.seed), corpus=args.corpus)
    bad = ~np.isfinite(draws).all(axis=0)
    if bad.any():  # never `nan [nan, nan]` with exit 0, nor a bare NaN in --json
        c, t, m = rows[int(np.argmax(bad))]
        raise UsageError(f"the posterior gives non-finite predictions for {int(bad.sum())} of {len(rows)} numbers "
                         f"(first: {c.name} {t} {m}): {cfg.name} is beyond what its model can extrapolate to")
    level = args.interval
    lo, hi = np.percentile(draws, [50 - level / 2, 50 + level / 2], axis=0)
    mean, median = draws.mean(axis=0), np.median(draws, axis=0)
    outside = post.outside_range(cfg)
    nearest = post.nearest_observed(rows[-1][0]).name if outside else None  # for the fullest reported stage

    if args.draws:
        header = ",".join(f"{c.name}|{t}|{m}" for c, t, m in rows)
        print(header)
        np.savetxt(sys.stdout, draws, delimiter=",", fmt="%.4g")
        return 0
    if args.json:
        print(json.dumps({
            "config": cfg.name, "posterior": post.path, "data_hash": post.meta.get("data_hash"),
            "interval": level / 100, "outside_calibrated_range": outside, "nearest_calibrated": nearest,
            "predictions": [dict(config=c.name, stage=c.stage(), task=t, metric=m,
                                 units="nats/token" if m == "loss" else "percent",
                                 mean=round(float(a), 3), median=round(float(b), 3),
                                 lo=round(float(l), 3), hi=round(float(h), 3))
                            for (c, t, m), a, b, l, h in zip(rows, mean, median, lo, hi)],
        }, indent=1, allow_nan=False))  # strict JSON: a NaN that got this far is a bug, not a bare `NaN`
        return 0
    corpus = f", pretraining corpus {args.corpus or post.corpora[0]}" if post.corpora else ""
    print(f"dynsim predict {cfg.name}   (posterior: {post.meta.get('data_title', '')}{corpus}, "
          f"{post.n_draws} draws, data {post.meta.get('data_hash', '?')})")
    if outside:
        print(f"! extrapolating: {'; '.join(outside)}. Nearest calibrated configuration: {nearest}")
    current = None
    width = max(16, 2 + max(len(t) for _, t, _ in rows))  # task names up to OLMo's mmlu_social_sciences_val
    for (c, t, m), a, l, h in zip(rows, mean, lo, hi):
        if c != current:
            current = c
            label = {"pt": "base model", "cpt": "after CPT", "sft": "after SFT", "rl": "after SFT+RL"}[c.stage()]
            print(f"\n{c.name}  ({label})\n  {'task':<{width}}{'metric':<15}{'mean':>7}   {level:g}% interval")
        digits = 3 if m == "loss" else 1
        print(f"  {t:<{width}}{m:<15}{a:7.{digits}f}   [{l:5.{digits}f}, {h:5.{digits}f}]")
    print("\naccuracy in percent, loss in nats/token; intervals are posterior-predictive for a new measurement")
    return 0


# -- optimize / suggest (logic in dynsim/decide.py) ---------------------------------------------------
def _decision_setup(args):
    """The posterior, target, cost assumptions and candidate grid both verbs share; every bad flag refused here,
    before any search."""
    from dynsim import decide

    _unused_calibration(args, not args.posterior, "--posterior")
    budgets = [b for b in (args.budget, getattr(args, "budget_per_run", None)) if b]
    if args.gpu_flops and not any("gpu" in b.lower() for b in budgets):
        raise UsageError("--gpu-flops converts budgets in GPU-hours, and no budget is given in GPU-hours")
    post = _load_posterior(args)
    target = decide.parse_target(args.target, post)
    if args.tokens_per_example:
        tpe, source = args.tokens_per_example, "--tokens-per-example"
    else:
        tpe, source = decide.tokens_per_example(None if args.posterior else args.calibration)
    fix = decide.parse_constraints(args.fix, "--fix")
    maximum = decide.parse_constraints(args.max, "--max")
    budget = decide.parse_budget(args.budget, args.gpu_flops) if args.budget else None
    return post, target, tpe, source, fix, maximum, budget


def _progress(args):
    """Search progress on stderr, where a person watches (a terminal) and not in --json."""
    return (lambda m: print(f"  {m}", file=sys.stderr, flush=True)) if sys.stderr.isatty() and not args.json else None


def _cost_note(tpe, source) -> str:
    return (f"cost: 6·N·tokens per stage; SFT {tpe[0]} and RL {tpe[1]} tokens per example-epoch ({source}); "
            f"RL rollout generation not counted")


def cmd_optimize(args) -> int:
    import time

    from dynsim import decide

    t0 = time.time()
    post, target, tpe, source, fix, maximum, budget = _decision_setup(args)
    if budget is None:
        raise UsageError("--budget is required, e.g. --budget 1e22FLOPs or --budget 5000GPUh")
    grid = decide.space(post, target, budget, tpe, fix, maximum, in_range=args.in_range)
    best = decide.optimize(post, target, budget, grid, tpe, risk=args.risk, top=args.top, seed=args.seed,
                           progress=_progress(args))
    wall = time.time() - t0
    what = "posterior mean" if args.risk is None else f"{args.risk:g}-quantile over the posterior"
    if args.json:
        print(json.dumps({"target": target.name, "units": target.units, "higher_is_better": target.sign > 0,
                          "budget_flops": budget, "objective": what, "posterior": post.path,
                          "data_hash": post.meta.get("data_hash"), "tokens_per_example": dict(sft=tpe[0], rl=tpe[1]),
                          "tokens_per_example_source": source, "space": grid.describe(), "evaluated": best.evaluated,
                          "interval": decide.LEVEL, "wall_s": round(wall, 2),
                          "allocations": [a.as_dict(target) for a in best.allocations]}, indent=1))
        return 0
    sense = "higher" if target.sign > 0 else "lower"
    print(f"dynsim optimize: {target.name} ({target.units}, {sense} is better), {what}, within {budget:.3g} FLOPs"
          f"   (posterior: {post.meta.get('data_title', '')}, {post.n_draws} draws)")
    print(_cost_note(tpe, source))
    print(f"searched {grid.describe()}: {best.evaluated} pipelines evaluated in {wall:.1f} s")
    width = max(len(a.config.name) for a in best.allocations) + 2
    print(f"\n  {'#':<3}{'allocation':<{width}}{'FLOPs':>9}{'mean':>8}   {decide.LEVEL:.0%} interval"
          f"{'P(best)':>10}{'E[regret]':>11}")
    for n, a in enumerate(best.allocations, 1):
        print(f"  {n:<3}{a.config.name:<{width}}{a.flops:9.2e}{a.mean:8.2f}   [{a.lo:5.1f}, {a.hi:5.1f}]"
              f"{a.p_best:10.3f}{a.regret:11.2f}{'  !' if a.outside else ''}")
    flags: dict[str, list[str]] = {}  # each extrapolation once, with the allocations it applies to
    for n, a in enumerate(best.allocations, 1):
        for message in a.outside:
            flags.setdefault(message, []).append(f"#{n}")
    for message, ranks in flags.items():
        print(f"  ! extrapolating: {message} ({' '.join(ranks)})")
    print(f"\nP(best), E[regret]: per posterior draw, the best of the {decide.TOP_SET} best allocations found and "
          f"each one's shortfall from it ({target.units}); intervals are posterior-predictive for a new run")
    return 0


def cmd_suggest(args) -> int:
    import time

    from dynsim import decide
    from dynsim.config import parse_config

    t0 = time.time()
    post, target, tpe, source, fix, maximum, budget = _decision_setup(args)
    at = [parse_config(n) for n in args.at or []]
    per_run = decide.parse_budget(args.budget_per_run, args.gpu_flops) if args.budget_per_run else float("inf")
    if budget is None:  # the budget of the largest calibrated run: where the next decision is likely to be made
        budget = max(decide.run_flops(c, tpe) for c in post.observed)
    grid = decide.space(post, target, budget, tpe, fix, maximum, in_range=args.in_range)
    if at:
        for c in at:
            if post.unseen_stages(c):
                raise UsageError(f"--at {c.name}: the calibration has no runs with {' or '.join(post.unseen_stages(c))}")
        interest, why = at, "the configurations given by --at"
    else:
        best = decide.optimize(post, target, budget, grid, tpe, risk=args.risk, top=3, seed=args.seed,
                               progress=_progress(args))
        interest, why = [a.config for a in best.allocations], f"the 3 best allocations of {budget:.3g} FLOPs"
    values = decide.target_draws(post, target, interest)
    runs = decide.candidate_runs(post, grid, per_run, tpe, extra=[target.config(c, post) for c in interest])
    if not runs:
        raise UsageError(f"no candidate run's new stages fit within --budget-per-run {per_run:.3g} FLOPs")
    ranked, var0 = decide.suggest(post, values, runs, tpe, k=args.k, seed=args.seed)
    wall = time.time() - t0
    if args.json:
        print(json.dumps({"target": target.name, "units": target.units, "interest": [c.name for c in interest],
                          "interest_rule": why, "prior_variance": round(var0, 4), "candidates": len(runs),
                          "tokens_per_example": dict(sft=tpe[0], rl=tpe[1]),
                          "tokens_per_example_source": source, "wall_s": round(wall, 2),
                          "suggestions": [s.as_dict(target, var0) for s in ranked],
                          "study_snippet": decide.study_snippet([s.config for s in ranked])}, indent=1))
        return 0
    print(f"dynsim suggest: the runs that most reduce the posterior variance of {target.name} per FLOP, at "
          f"{why}:\n  " + "\n  ".join(c.name for c in interest))
    print(f"variance now {var0:.3g} {target.units}² (summed over the {len(interest)} configurations); {len(runs)} "
          f"candidate runs, chosen together (each given the ones above it), {wall:.1f} s")
    print(_cost_note(tpe, source) + "; checkpoints of calibrated runs are reused")
    width = max(len(s.config.name) for s in ranked) + 2
    print(f"\n  {'#':<3}{'run':<{width}}{'new FLOPs':>10}{'E[Δvar]':>9}{'share':>7}{'per 1e21 FLOPs':>16}{'var left':>10}")
    for n, s in enumerate(ranked, 1):
        print(f"  {n:<3}{s.config.name:<{width}}{s.flops:10.2e}{s.reduction:9.3f}{s.reduction / var0:7.1%}"
              f"{s.reduction / s.flops * 1e21:16.3f}{s.left:10.3f}")
    print("\nE[Δvar]: the expected reduction of the variance given the runs above it (Bayes-linear, dynsim/decide.py)")
    print("\ntrain them:\n" + "\n".join(f"  {decide.train_command(s.config)}" for s in ranked))
    print("\nor as a study for `dynsim sweep` (studies/README.md):\n" + decide.study_snippet([s.config for s in ranked]))
    return 0


# -- fit -------------------------------------------------------------------------------------------
def _too_few_tokens(obs, min_tpp) -> "np.ndarray":
    """Runs with fewer pretraining tokens per parameter than min_tpp (left out of fits, and of their scoring)."""
    import numpy as np

    return np.array([bool(min_tpp) and c.pretrain < min_tpp * c.size for c in obs.configs])


def _dataset(args):
    from dynsim import calibrations, results

    if getattr(args, "data", None):
        return results.load(args.data)
    try:
        return calibrations.get(args.calibration).dataset()
    except calibrations.CalibrationError as e:
        raise UsageError(f"{e}; or pass --data RESULTS.nc") from None


def _hold_out(args, obs) -> dict | None:
    """The runs a fit holds out for validation: --hold-out names, --hold-out-size-from, --hold-out-study, or the
    bundled calibration's rule. Returns dict(rule, configs) or None."""
    from dynsim import calibrations
    from dynsim.study import StudyError, load_study

    rule = dict(size_from=args.hold_out_size_from) if args.hold_out_size_from else \
        dict(study=args.hold_out_study) if args.hold_out_study else \
        dict(names=args.hold_out) if args.hold_out else \
        ({} if args.data else calibrations.get(args.calibration).hold_out)
    if "size_from" in rule:
        text, names = f"size >= {rule['size_from']:g}", {c.name for c in obs.configs if c.size >= rule["size_from"]}
    elif "tuned_from" in rule:
        text = f"post-trained runs of checkpoints >= {rule['tuned_from']:g} tokens"
        names = {c.name for c in obs.configs if c.has_sft and c.pretrain >= rule["tuned_from"]}
    elif "study" in rule:
        path = Path(rule["study"])
        if not path.is_absolute() and not path.exists():
            from dynsim import posterior
            path = posterior.repo_root() / path  # a bundled study's spec, from the repository
        try:
            names = {c.name for c in load_study(path).holdout}
        except (StudyError, OSError) as e:
            raise UsageError(str(e)) from None
        text = f"the blind-validation runs of {Path(rule['study']).name}"
    elif "names" in rule:
        from dynsim.config import parse_config

        names = {parse_config(n).name for n in rule["names"]}
        text = "the runs named by --hold-out"
    else:
        return None
    return dict(rule=text, configs=sorted(names))


def _fit_output(args):
    """The posterior path a fit will write, checked before the data is read or the sampler imported: a fit takes
    minutes, and a path it cannot write must not cost them."""
    from dynsim import posterior

    out = Path(args.out) if args.out is not None else \
        posterior.bundled_path(args.calibration) if not args.data else Path("posterior.npz")
    if out.suffix != ".npz":
        raise UsageError(f"-o {shown(str(out))}: a posterior is a .npz file (its ArviZ .nc is written beside it)")
    checks.output_file(out.with_suffix(".nc"), "-o")
    for path in (out, out.with_suffix(".nc")):  # fit --data r.nc -o r.npz would write its ArviZ file over r.nc
        checks.not_an_input(path, [args.data], "-o")
    return checks.output_file(out, "-o")


def cmd_fit(args) -> int:
    out = _fit_output(args)
    _unused_calibration(args, not args.data, "--data")
    if args.thin > args.draws:
        raise UsageError(f"--thin {args.thin} is more than --draws {args.draws}: it would keep one draw a chain")
    if args.hold_out:  # a misspelt run name: refused before the sampler is imported
        from dynsim.config import parse_config

        for name in args.hold_out:
            parse_config(name)
    ds = _dataset(args)  # a bad --data or --calibration before the sampler's imports

    import time

    import numpy as np

    from calibrate import fit as fitting
    from calibrate.model import observations
    from dynsim import calibrations, posterior

    form = args.form or ("chinchilla" if args.data else calibrations.get(args.calibration).form)
    obs = observations(ds).with_form(form)
    extra = {}
    few = _too_few_tokens(obs, args.min_tokens_per_param)
    if few.all():
        raise UsageError(f"--min-tokens-per-param {args.min_tokens_per_param:g} leaves no run to fit")
    if few.any():
        extra["excluded"] = dict(rule=f"pretraining tokens per parameter < {args.min_tokens_per_param:g}",
                                 min_tokens_per_param=args.min_tokens_per_param,
                                 configs=sorted({c.name for c, f in zip(obs.configs, few) if f}))
        print(f"leaving out {len(extra['excluded']['configs'])} configurations with fewer than "
              f"{args.min_tokens_per_param:g} pretraining tokens per parameter ({int(few.sum())} numbers)")
        obs = obs.subset(~few)
    held_out = _hold_out(args, obs)
    if held_out:
        held = np.array([c.name in held_out["configs"] for c in obs.configs])
        if held.all() or not held.any():
            raise UsageError(f"holding out {held_out['rule']} holds out {'every' if held.all() else 'no'} run")
        held_out["configs"] = sorted({c.name for c, h in zip(obs.configs, held) if h})  # those in the data
        extra["held_out"] = held_out
        print(f"holding out {len(held_out['configs'])} configurations ({held_out['rule']}; {int(held.sum())} "
              f"numbers) for validation")
        obs = obs.subset(~held)
    obs = obs.rescaled()  # reference scales of the fitted runs alone
    print(f"fitting {len(obs)} observations of {ds.attrs.get('title', 'results')} "
          f"(data {ds.attrs.get('data_hash')}) with NUTS, {args.chains} chains × {args.draws} draws")
    t0 = time.time()
    idata, diag, ok = fitting.fit(obs, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                                  progress=not args.quiet)
    diag |= {"wall_s": round(time.time() - t0, 1), "seed": args.seed}
    path = fitting.write(idata, obs, ds, diag, out, extra_meta=extra, thin=args.thin)
    print(f"R-hat max {diag['rhat_max']:.4f}  ESS bulk min {diag['ess_bulk_min']:.0f}  "
          f"ESS tail min {diag['ess_tail_min']:.0f}  divergences {diag['divergences']}  ({diag['wall_s']} s)")
    print(f"wrote {path} and {path.with_suffix('.nc')}")
    if not ok:
        return _fail(f"diagnostics failed after retries ({'; '.join(posterior.diagnostic_problems(diag))}); the "
                     "posterior was written but predict will refuse it")
    return 0


# -- validate --------------------------------------------------------------------------------------
def cmd_validate(args) -> int:
    _unused_calibration(args, not (args.posterior and args.data), "--posterior and --data")
    if args.refit and args.split not in ("loco", "all"):
        raise UsageError(f"--refit refits leave-one-out folds (--split loco or all); --split {args.split} "
                         "always refits")
    ds = _dataset(args)  # a bad --data, --calibration or --posterior before the model's imports
    post = _load_posterior(args)
    _same_data(ds, post, "--data" if args.data else "--posterior" if args.posterior else "--calibration")

    import numpy as np

    from calibrate import validate
    from calibrate.model import observations
    from dynsim import calibrations

    obs = observations(ds).with_form(post.meta.get("form", "chinchilla"))  # the baselines fit the same law
    level = args.interval / 100
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    excluded = post.meta.get("excluded")
    if excluded:  # runs the posterior's fit left out as outside its model: the baselines leave them out too
        obs = obs.subset(np.array([c.name not in excluded["configs"] for c in obs.configs]))
        log(f"leaving out {len(excluded['configs'])} configurations ({excluded['rule']}), as the fit did")
    held_out = post.meta.get("held_out")
    held = np.array([c.name in held_out["configs"] for c in obs.configs]) if held_out else np.zeros(len(obs), bool)
    split = f"held-out ({held_out['rule']})" if held_out else ""
    if args.compare:  # two model forms of the same data: PSIS-LOO on the fitted runs, and the held-out runs
        from dynsim import posterior as posteriors

        other = _load_posterior(args, posteriors.bundled_path(args.compare) if args.compare in posteriors.BUNDLED
                                else args.compare)
        if Path(other.path).resolve() == Path(post.path).resolve():
            raise UsageError(f"--compare {args.compare}: that is the posterior being validated; compare another")
        if other.meta.get("held_out", {}).get("configs") != (held_out or {}).get("configs"):
            raise UsageError(f"--compare {args.compare}: it was fitted on other runs than this posterior")
        posts = {f"{p.meta.get('form', 'chinchilla')} ({label})": p
                 for p, label in ((post, args.posterior or args.calibration), (other, args.compare))}
        print(validate.format_comparison(validate.loo_compare(posts, obs.subset(~held))))
        if held_out:
            rows = [r | {"method": f"bayes-{p.meta.get('form', 'chinchilla')}"} for p in posts.values()
                    for r in validate.bayes_holdout(p, obs, held, split, level, refit=False)]
            print("\n" + validate.format_split_report(rows, level))
        return 0
    if held_out:  # the posterior was fitted without these runs: score it on them, beside the baseline
        obs = dataclasses.replace(obs, scales=post.meta.get("scales"))  # the baseline at the fit's scales too
        log(f"{split}: {len(held_out['configs'])} configurations; least-squares baseline with {args.boot} bootstraps")
        rows = validate.bayes_holdout(post, obs, held, split, level, refit=False)
        # the two-step recipe needs measured losses; a testbed of accuracies alone (Pythia) gets the joint fit
        two_step = "loss" in obs.metrics
        rows += validate.lsq_holdout(obs, held, split, level, n_boot=args.boot, two_step=two_step)
        if args.baselines:
            rows += validate.naive_holdout(obs, held, split, level)
            authors = "" if args.data or args.posterior else calibrations.get(args.calibration).authors_method
            if authors:
                log(f"{split}: the authors' own method ({authors})")
                from dynsim import results

                full = results.to_long(calibrations.get(args.calibration).dataset(selected=False))
                rows += validate.authors_holdout(authors, full, obs, held, split, level)
        print(validate.format_split_report(rows, level, by_task=args.by_task))
        return 0
    splits = list(validate.SPLITS) if args.split == "all" else [args.split]
    rows = []
    for split in splits:
        if split == "loco":
            report = validate.loco(post, obs, level=level, refit_above=0.7 if args.refit else None, log=log)
            print(validate.format_report(report) + "\n")
            rows += [r | dict(split="loco", method="bayes") for r in report["rows"]]
        else:
            held = validate.split_mask(obs, split)
            log(f"{split}: refitting NUTS without {len({c.name for c, h in zip(obs.configs, held) if h})} configurations")
            rows += validate.bayes_holdout(post, obs, held, split, level)
        if args.baselines:
            log(f"{split}: least-squares baseline with {args.boot} bootstraps; carry-forward and loglinear")
            if split == "loco":
                rows += validate.lsq_loco(obs, level) + validate.naive_loco(obs, level)
            else:
                held = validate.split_mask(obs, split)
                rows += (validate.lsq_holdout(obs, held, split, level, n_boot=args.boot) +
                         validate.naive_holdout(obs, held, split, level))
    if args.baselines or args.split != "loco":
        print(validate.format_split_report(rows, level, by_task=args.by_task))
    return 0


# -- train / results -------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from dynsim.config import parse_config
    from train_runs.distributed import Ranks
    from train_runs.train import train

    checks.output_folder(args.out, "--out")
    cfg = parse_config(args.name)
    if cfg.sft_data:  # it would fine-tune on its own task mix and record the run as fine-tuned on this data set
        raise UsageError(f"{cfg.name}: dynsim's trainer has no SFT data sets to choose from; drop "
                         f"'{cfg.sft_data}:' (a study's [trainer] command can train them)")
    record = train(cfg, args.out, seed=args.seed, recipe=args.recipe, progress=not args.quiet)
    if not Ranks.from_env().main:  # a job of several processes (torchrun): rank 0 reports
        return 0
    print(f"{cfg.name} seed {args.seed}: result in {args.out}/{cfg.name}/seed{args.seed}/result.json")
    for m in record["metrics"]:
        print(f"  {m['task']:<18}{m['metric']:<15}{m['value']:9.3f}" + (f"   ({m['n_correct']}/{m['n_items']})"
                                                                            if "n_correct" in m else ""))
    return 0


def cmd_tokenize(args) -> int:
    from train_runs import shards

    if args.tokenizer and args.vocab_size is not None:
        raise UsageError("--vocab-size sizes a BPE trained here; --tokenizer gives one: not both")
    manifest = shards.write_shards([Path(p) for p in args.corpus], Path(args.out), args.vocab_size or 32000,
                                   Path(args.tokenizer) if args.tokenizer else None, args.shard_tokens,
                                   args.heldout_docs, log=lambda m: print(m, file=sys.stderr, flush=True))
    n = {s: sum(e["tokens"] for e in manifest["splits"][s]) for s in shards.SPLITS}
    docs = manifest["documents"]
    dropped = f", {docs['dropped']:,} more dropped" if docs["dropped"] else ""
    print(f"wrote {args.out}: {n['train']:,} training tokens in {len(manifest['splits']['train'])} shard(s) "
          f"({docs['train']:,} documents), {n['heldout']:,} held-out tokens ({docs['heldout']:,} documents{dropped}), "
          f"vocabulary {manifest['vocab_size']:,}, {manifest['dtype']}; use it as [data] general_corpus = "
          f"\"{args.out}\"")
    return 0


def cmd_results_import(args) -> int:
    from dynsim import results, runs_csv

    _results_output(args.out, "-o")
    csvs = [p for p in args.paths if p.lower().endswith((".csv", ".csv.gz"))]  # a bundled testbed's runs.csv.gz too
    if csvs and len(args.paths) > 1:
        raise UsageError("give one CSV (or result records alone): a CSV is one study's table")
    ds = runs_csv.read(csvs[0]) if csvs else results.from_records(args.paths)
    path = results.save(ds, args.out)
    n = len(results.configs(ds))
    print(f"wrote {path}: {n} configurations, {int(ds.value.notnull().sum())} numbers, data {ds.attrs['data_hash']}")
    return 0


# -- sweep (logic in train_runs/sweep.py; plan needs neither torch nor submitit) ----------------------------
def cmd_sweep(args) -> int:
    from train_runs import sweep

    out = getattr(args, "out", None)
    if args.sweep_verb == "collect":
        _results_output(args.output, "-o")
    if args.sweep_verb == "submit" and out is not None:
        checks.output_folder(out, "--out")
    elif out is not None and Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {shown(out)} is an existing file; give the run store folder")
    study = sweep.load(args.study)
    if args.sweep_verb == "plan":
        print(sweep.plan(study, out))
    elif args.sweep_verb == "submit" and args.dry_run:
        if args.detach or args.retries is not None:
            raise UsageError("--dry-run submits nothing: drop --detach and --retries")
        if (args.executor or study.executor) != "slurm":
            raise UsageError("--dry-run shows the Slurm scripts a submit would queue: add --executor slurm")
        folder = sweep.write_sbatch_scripts(study, out)
        scripts = sorted(folder.iterdir())
        print(f"{len(scripts)} sbatch script(s) that `dynsim sweep submit {args.study} --executor slurm` would queue "
              f"(nothing submitted), in {folder}:")
        for stage in ("pt", "cpt", "sft", "rl"):  # one whole script per stage, the rest by name
            first = next((p for p in scripts if f"-{stage}-" in p.name), None)
            if first is not None:
                print(f"\n== {first.name} (first {stage.upper()} script)\n{first.read_text()}")
        print("all: " + " ".join(p.name for p in scripts))
    elif args.sweep_verb == "submit":
        summary = sweep.submit(study, args.executor, out, max_retries=args.retries, wait=not args.detach)
        if summary["failed"] or summary["blocked"]:
            return _fail(f"{summary['failed']} job(s) failed after retries, {summary['blocked']} blocked behind them "
                         f"(see the log tails above); `dynsim sweep submit {args.study}` again retries them")
    elif args.sweep_verb == "status":
        import time
        while True:
            st = sweep.status(study, out)
            print(sweep.format_status(study, st), flush=True)
            live = sum(st["counts"].get(k, 0) for k in ("running", "pending", "waiting"))
            if not args.watch or not live:
                break
            time.sleep(args.watch)
            print()
    else:
        path, n, missing = sweep.collect(study, args.output, out)
        print(f"wrote {path}: {n} result record(s)" + (f", {missing} job(s) without a result yet" if missing else ""))
    return 0


# -- figs (logic in paper_figs/) --------------------------------------------------------------------
def cmd_figs(args) -> int:
    checks.output_folder(args.out, "--out")
    _unused_calibration(args, not (args.posterior and args.data), "--posterior and --data")
    import shlex

    import paper_figs
    from dynsim import posterior

    paper_figs.select(args.only)  # an unknown figure: one line before any work
    if args.data and not args.posterior:
        raise UsageError("--data needs --posterior (the posterior fitted to that Dataset)")
    if not args.data:
        posterior.bundled_path(args.calibration)  # unknown calibration: one-line error before any work
    ds = _dataset(args)  # --data, or the Dataset the bundled calibration was fitted to (as `dynsim fit`)
    names = paper_figs.select(args.only, ds)
    post = _load_posterior(args)
    _same_data(ds, post, "--posterior" if args.posterior else "--calibration")
    label = args.posterior or f"bundled calibration '{args.calibration}'"
    command = shlex.join(["dynsim", "figs"] + (["--data", args.data] if args.data else [])
                         + (["--posterior", args.posterior] if args.posterior else ["--calibration", args.calibration])
                         + (["--only", args.only] if args.only else []) + ["--out", args.out]
                         + (["--force"] if args.force else []))
    paper_figs.run(ds, post, args.out, names, command=command, posterior_label=label, log=print)
    print(f"wrote {len(names)} figure(s) and {Path(args.out) / paper_figs.INDEX}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dynsim", description="Scaling-law and training-dynamics simulator for LM training.")
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    def calibration_flags(q):
        q.add_argument("--calibration", type=checks.nonempty, default="evolm",
                       help="bundled calibration (default: evolm)")
        q.add_argument("--posterior", type=checks.nonempty,
                       help="a posterior .npz written by `dynsim fit` (overrides --calibration)")
        q.add_argument("--force", action="store_true", help="use a posterior even if its diagnostics failed")

    q = sub.add_parser("predict", help="predict metrics of an untrained configuration",
                       epilog=PREDICT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("name", nargs="?", help="an EvoLM run name, e.g. 1B-160BT-8+42BT-100Kep1-100Kep8")
    q.add_argument("--size", default="1B", help="parameters, e.g. 1B, 125M (default 1B)")
    q.add_argument("--pretrain", help="pretraining tokens, e.g. 320BT")
    q.add_argument("--cpt", help="continued pretraining replay+domain tokens, e.g. 8+42BT")
    q.add_argument("--sft", help="SFT examples×epochs, e.g. 100Kep1, or with its data set, mnli:6Kep3")
    q.add_argument("--rl", help="RL examples×epochs, e.g. 100Kep8 (needs --sft)")
    q.add_argument("--interval", type=checks.percent, default=90.0, help="credible interval in percent (default 90)")
    output = q.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable output")
    output.add_argument("--draws", action="store_true", help="print raw posterior-predictive draws as CSV")
    q.add_argument("--seed", type=checks.seed, default=0, help="seed for the predictive noise draws")
    q.add_argument("--corpus", type=checks.nonempty,
                   help="pretraining corpus, for calibrations that compare several "
                        "(gadre2024: c4_original, rpj, rw_original; default the first)")
    calibration_flags(q)
    q.set_defaults(func=cmd_predict)

    def decision_flags(q, budget_help):
        q.add_argument("--target", type=checks.nonempty,
                       help="TASK[:METRIC], e.g. ID_avg:maj@16 or ARC-Easy (default: the calibration's main "
                            "downstream metric, EvoLM's ID_avg:maj@16)")
        q.add_argument("--budget", type=checks.nonempty, help=budget_help)
        q.add_argument("--gpu-flops", type=checks.positive, default=None, metavar="FLOP/S",
                       help="sustained FLOP/s per GPU for budgets in GPU-hours (default: an H100's dense bf16 peak at 40%% "
                            "utilisation, dynsim/decide.py GPU_FLOPS)")
        q.add_argument("--fix", action="append", metavar="KEY=VALUE",
                       help="hold an axis: size=1B, pretrain=160BT, cpt=8+42BT, sft=100Kep1, rl=100Kep8 or none")
        q.add_argument("--max", action="append", metavar="KEY=VALUE",
                       help="bound an axis: size=4B, pretrain=320BT, cpt=50BT (total), sft=200Kep2, rl=100Kep8")
        q.add_argument("--in-range", action="store_true", help="only values within the calibrated range")
        q.add_argument("--risk", type=checks.quantile, default=None, metavar="Q",
                       help="maximise the Q-quantile of the target over the posterior instead of its mean "
                            "(a cautious user: 0.1)")
        q.add_argument("--tokens-per-example", type=checks.token_pair, metavar="SFT,RL",
                       help="tokens one SFT and one RL example cost per epoch (default: the calibration's study)")
        q.add_argument("--seed", type=checks.seed, default=0)
        q.add_argument("--json", action="store_true", help="machine-readable output")
        calibration_flags(q)

    q = sub.add_parser("optimize", help="the allocation of a compute budget across the stages that maximises a target")
    decision_flags(q, "compute budget: FLOPs (1e22FLOPs) or GPU-hours (5000GPUh)")
    q.add_argument("--top", type=checks.bounded(1, 1000), default=5, help="allocations to report (default 5)")
    q.set_defaults(func=cmd_optimize)

    q = sub.add_parser("suggest", help="the next runs that most reduce the target's uncertainty per FLOP")
    decision_flags(q, "the budget whose best allocations the target is about (default: the largest calibrated "
                      "run's cost)")
    q.add_argument("--at", nargs="+", metavar="RUN", help="configurations whose target to pin down instead")
    q.add_argument("--budget-per-run", type=checks.nonempty, help="the most a suggested run may cost (FLOPs or GPUh)")
    q.add_argument("-k", type=checks.bounded(1, 100), default=3, help="runs to suggest (default 3)")
    q.set_defaults(func=cmd_suggest)

    q = sub.add_parser("fit", help="fit the Bayesian model to a results Dataset (NUTS) and write its posterior")
    q.add_argument("--calibration", type=checks.nonempty, default="evolm",
                   help="bundled data to fit (default: evolm)")
    q.add_argument("--data", type=checks.nonempty, help="a results Dataset (netCDF) to fit instead")
    q.add_argument("-o", "--out", help="posterior path (.npz; an ArviZ .nc is written beside it)")
    q.add_argument("--draws", type=checks.bounded(1, 10**6), default=1000)
    q.add_argument("--thin", type=checks.count, default=1, metavar="N",
                   help="store every N-th draw in the .npz (predict's time grows with draws; the .nc keeps all)")
    q.add_argument("--tune", type=checks.bounded(1, 10**6), default=1000)
    q.add_argument("--chains", type=checks.bounded(1, 64), default=4)
    q.add_argument("--seed", type=checks.seed, default=0)
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--form", default=None, choices=["chinchilla", "smoothmax", "compute"],
                   help="how scale enters: size and tokens as added terms (chinchilla), the same terms as a smooth "
                        "maximum (each size saturates in data), or compute 6ND alone; default: the bundled "
                        "calibration's own (README), chinchilla for --data")
    q.add_argument("--min-tokens-per-param", type=checks.positive, default=None, metavar="X",
                   help="leave out runs with fewer pretraining tokens per parameter than X (runs too short for "
                        "the loss law, e.g. warmup-dominated); default: keep every run")
    held = q.add_mutually_exclusive_group()  # one rule: a second one would be ignored
    held.add_argument("--hold-out-size-from", type=checks.positive, default=None,
                      help="fit without the runs of at least this size, kept for `validate` (gadre2024: 1e9)")
    held.add_argument("--hold-out", nargs="+", metavar="RUN", help="fit without these runs, kept for `validate`")
    held.add_argument("--hold-out-study", type=checks.nonempty, metavar="STUDY.toml",
                      help="fit without the blind-validation runs ([study] holdout) of this study (mini: its own)")
    q.set_defaults(func=cmd_fit)

    q = sub.add_parser("validate", help="leave-one-configuration-out MAE and interval coverage")
    calibration_flags(q)
    q.add_argument("--data", type=checks.nonempty, help="a results Dataset (netCDF) matching --posterior")
    q.add_argument("--interval", type=checks.percent, default=90.0)
    q.add_argument("--refit", action="store_true",
                   help="hold out exactly (NUTS refit) every configuration whose PSIS Pareto k̂ > 0.7 (minutes each)")
    # calibrate.validate.SPLITS, spelled out here so that building the parser imports no calibrate module
    q.add_argument("--split", default="loco", choices=["loco", "largest-pt", "largest-size", "descendants", "all"],
                   help="leave-one-config-out (PSIS), or hold out the largest pretraining budget / model size, or "
                        "the SFT/RL descendants of the largest base runs (NUTS refit, minutes); a posterior fitted "
                        "with held-out runs is scored on those")
    q.add_argument("--by-task", action="store_true", help="also report every held-out task on its own lines")
    q.add_argument("--baselines", action="store_true",
                   help="also score least-squares fits of the same model with bootstrap intervals, and the naive "
                        "carry-forward (nearest training run) and loglinear (a line in log tokens and size)")
    q.add_argument("--boot", type=checks.bounded(1, 100_000), default=20,
                   help="bootstrap resamples for the baselines on held-out splits (default 20; leave-one-out folds "
                        "use residuals only)")
    q.add_argument("--compare", type=checks.nonempty, metavar="POSTERIOR",
                   help="compare with another posterior of the same data (a bundled name such as gadre2024_compute, "
                        "or a .npz) by PSIS-LOO")
    q.set_defaults(func=cmd_validate)

    q = sub.add_parser("train", help="train the missing stages of one run for real (torch) and record its results")
    q.add_argument("name", help="run name, e.g. 0.3M-4MT-1+3MT-2Kep1-2Kep4")
    q.add_argument("--out", type=checks.nonempty, default="runs", help="run store folder (default: runs)")
    q.add_argument("--seed", type=checks.seed, default=0)
    q.add_argument("--recipe", type=checks.nonempty, help="recipe TOML (default: the bundled one for the model size)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_train)

    q = sub.add_parser("tokenize", help="a corpus (text or JSONL files) into memory-mapped token shards, once, for "
                                        "[data] general_corpus / domain_corpus")
    q.add_argument("corpus", nargs="+", help="UTF-8 text files (blank lines between documents) or .jsonl (\"text\")")
    q.add_argument("-o", "--out", required=True, type=checks.nonempty, help="a new folder for the shards")
    q.add_argument("--vocab-size", type=checks.bounded(300, 1 << 24), help="BPE trained here (default 32000)")
    q.add_argument("--tokenizer", type=checks.nonempty, help="a tokenizers JSON file to use instead")
    q.add_argument("--shard-tokens", type=checks.bounded(1, 1 << 34), default=1 << 28,
                   help="tokens a shard file (default 2^28: 512 MB of uint16)")
    q.add_argument("--heldout-docs", type=checks.bounded(1, 1 << 30), default=10_000,
                   help="held-out documents kept (default 10,000)")
    q.set_defaults(func=cmd_tokenize)

    q = sub.add_parser("results", help="results Datasets")
    rsub = q.add_subparsers(dest="results_verb", required=True, parser_class=_Parser)
    r = rsub.add_parser("import", help="load a long CSV of your runs (format: dynsim/runs_csv.py, README), or result "
                                       "records (folders or result.json files), into one Dataset")
    r.add_argument("paths", nargs="+", help="runs.csv, or run store folders / result.json files")
    r.add_argument("-o", "--out", required=True, help="output netCDF, e.g. results.nc")
    r.set_defaults(func=cmd_results_import)

    q = sub.add_parser("sweep", help="a study's stage tree: plan, submit (local processes or Slurm), status, collect")
    wsub = q.add_subparsers(dest="sweep_verb", required=True, parser_class=_Parser)
    for verb, text in (("plan", "the stage tree, jobs, tokens and FLOPs per stage, what is already done"),
                       ("submit", "train every missing job (submitit), retrying failures"),
                       ("status", "done / running / pending / failed per job"),
                       ("collect", "the results Dataset of every finished job")):
        w = wsub.add_parser(verb, help=text)
        w.add_argument("study", help="a study spec, e.g. studies/mini.toml")
        w.add_argument("--out", type=checks.nonempty, help="run store (default: the study's [study] out)")
        w.set_defaults(func=cmd_sweep)
        if verb == "submit":
            w.add_argument("--executor", choices=("local", "slurm"), help="default: the study's executor")
            w.add_argument("--retries", type=checks.bounded(0, 100),
                           help="retries per failed job (default: the study's max_retries)")
            w.add_argument("--detach", action="store_true", help="slurm: submit the tree with dependencies and exit")
            w.add_argument("--dry-run", action="store_true",
                           help="slurm: write and show the sbatch scripts a submit would queue; submit nothing")
        elif verb == "status":
            w.add_argument("--watch", type=checks.seconds, metavar="S",
                           help="refresh every S seconds until nothing is live")
        elif verb == "collect":
            w.add_argument("-o", "--output", required=True, help="output netCDF, e.g. results.nc")

    q = sub.add_parser("figs", help="the paper figures (PNG + PDF) and their index figures.md")
    calibration_flags(q)
    q.add_argument("--data", type=checks.nonempty,
                   help="a results Dataset (netCDF) to draw, with --posterior fitted to it")
    q.add_argument("--only", type=checks.nonempty,
                   help="comma-separated figures: fig2..fig8, forgetting, overtraining (default: all)")
    q.add_argument("--out", type=checks.nonempty, default="figures", help="output folder (default: figures)")
    q.set_defaults(func=cmd_figs)
    return p


def main(argv=None) -> int:
    """Exit 0 on success, 2 with one line on stderr for a refused input (UserError, a missing file); any other
    exception is a bug and shows its traceback."""
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (UserError, FileNotFoundError) as e:
        return _fail(str(e), lines=getattr(e, "lines", False))
    except KeyboardInterrupt:
        return _fail("interrupted")
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
