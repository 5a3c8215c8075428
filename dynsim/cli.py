"""`dynsim`: one verb-style command line. `VERBS` names the module that owns each verb; each such module has
`PARSERS`, verb → a function adding the verb's parser, whose `func` default runs it. `main` imports only the owner
of the verb typed, so `dynsim predict` starts with numpy alone and a light install (`pip install dynsim`, no
extras) runs it; a verb whose extra is missing says which, in one line.

This module owns predict, optimize, suggest and results (the light core's verbs) and the kit every verb's
command line shares: the parser that refuses a repeated option, one-line errors, the calibration and posterior
flags and their checks. The others: calibrate/cli.py (fit, validate), train_runs/cli.py (train, tokenize, sweep),
paper_figs/cli.py (figs)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from pathlib import Path

from dynsim import checks
from dynsim.config import AFTER_PT, EXAMPLE_STAGES, STAGE
from dynsim.errors import UserError, shown

VERBS = {  # verb → (the module that owns it, the pip extra it needs beyond numpy, its one-line help), as listed
    "predict": ("dynsim.cli", "", "predict metrics of an untrained configuration"),
    "optimize": ("dynsim.cli", "", "the allocation of a compute budget across the stages that maximises a target"),
    "suggest": ("dynsim.cli", "", "the next runs that most reduce the target's uncertainty per FLOP"),
    "fit": ("calibrate.cli", "fit", "fit the Bayesian model to a results Dataset (NUTS) and write its posterior"),
    "validate": ("calibrate.cli", "fit", "held-out and leave-one-configuration-out errors, coverage and interval "
                                         "scores"),
    "train": ("train_runs.cli", "train", "train the missing stages of one run for real (torch) and record its results"),
    "tokenize": ("train_runs.cli", "train", "a corpus (text or JSONL files) into memory-mapped token shards, once, "
                                            "for [data] general_corpus / domain_corpus"),
    "results": ("dynsim.cli", "data", "results Datasets"),
    "sweep": ("train_runs.cli", "train", "a study's stage tree: plan, submit (local processes or Slurm), status, "
                                         "collect"),
    "figs": ("paper_figs.cli", "figs", "the paper figures (PNG + PDF) and their index figures.md"),
}
OPTIONAL = {"xarray", "pandas", "h5netcdf", "h5py", "scipy", "pymc", "pytensor", "arviz", "jax", "jaxlib", "numpyro",
            "torch", "tokenizers", "submitit", "rich", "matplotlib"}  # what the extras install (pyproject.toml)


STAGE_FLAGS = ("pretrain", *STAGE)  # predict's flags that name a run, stage by stage

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


class Parser(argparse.ArgumentParser):
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


def fail(message: str, lines: bool = False) -> int:
    # a byte-flipped file can put undecodable text into a message: escaped, so that the error itself prints
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    if not lines:  # a newline in a path or name the message quotes: still one line (str.splitlines' breaks escaped)
        message = message.translate(_LINE_BREAKS)
    print(f"dynsim: error: {message}", file=sys.stderr)
    return 2


# -- the kit every verb's command line shares ----------------------------------------------------
def load_posterior(args, path=None):
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


def refuse_unused_calibration(args, used: bool, by: str) -> None:
    """--calibration typed where other flags replace all it would give: refused rather than ignored (a misspelt
    or another calibration would pass silently)."""
    if "calibration" in getattr(args, "_given", ()) and not used:
        raise UsageError(f"--calibration {shown(args.calibration)} is not used with {by}: give one or the other")


def results_output(path, flag: str) -> None:
    """A results Dataset to write: a .nc file (netCDF) that is not an existing folder, in a writable place."""
    checks.output_file(path, flag)
    if Path(path).suffix != ".nc":
        raise UsageError(f"{flag} {shown(str(path))}: a results Dataset is a .nc (netCDF) file")


def same_data(ds, post, flag: str) -> None:
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


def dataset(args):
    from dynsim import calibrations, results

    if getattr(args, "data", None):
        return results.load(args.data)
    try:
        return calibrations.get(args.calibration).dataset()
    except calibrations.CalibrationError as e:
        raise UsageError(f"{e}; or pass --data RESULTS.nc") from None


def add_calibration_flags(q):
    q.add_argument("--calibration", type=checks.nonempty, default="evolm",
                   help="bundled calibration (default: evolm)")
    q.add_argument("--posterior", type=checks.nonempty,
                   help="a posterior .npz written by `dynsim fit` (overrides --calibration)")
    q.add_argument("--force", action="store_true", help="use a posterior even if its diagnostics failed")


def cmd_predict(args) -> int:
    import numpy as np

    from dynsim.config import STAGE_LABEL, config_from_flags, parse_config

    if args.name is not None:  # '' too: an empty name is refused as one, not taken for stage flags
        if any(getattr(args, s) is not None for s in STAGE_FLAGS):
            raise UsageError(f"give either a run name or stage flags ({'/'.join('--' + s for s in STAGE_FLAGS)}), "
                             f"not both")
        cfg = parse_config(args.name)
    else:
        cfg = config_from_flags(args.size, args.pretrain, **{s: getattr(args, s) for s in STAGE_FLAGS[1:]})
    refuse_unused_calibration(args, not args.posterior, "--posterior")
    if args.csv and "interval" in getattr(args, "_given", ()):
        raise UsageError("--interval has no effect with --csv (raw draws, no interval): give one or the other")
    post = load_posterior(args)
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

    if args.csv:
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
            print(f"\n{c.name}  ({STAGE_LABEL[c.stage()]})\n  {'task':<{width}}{'metric':<15}{'mean':>7}   {level:g}% interval")
        digits = 3 if m == "loss" else 1
        print(f"  {t:<{width}}{m:<15}{a:7.{digits}f}   [{l:5.{digits}f}, {h:5.{digits}f}]")
    print("\naccuracy in percent, loss in nats/token; intervals are posterior-predictive for a new measurement")
    return 0


# -- optimize / suggest (logic in dynsim/decide.py) ---------------------------------------------------
def _decision_setup(args):
    """The posterior, target, cost assumptions and candidate grid both verbs share; every bad flag refused here,
    before any search."""
    from dynsim import decide

    refuse_unused_calibration(args, not args.posterior, "--posterior")
    budgets = [b for b in (args.budget, getattr(args, "budget_per_run", None)) if b]
    if args.gpu_flops and not any("gpu" in b.lower() for b in budgets):
        raise UsageError("--gpu-flops converts budgets in GPU-hours, and no budget is given in GPU-hours")
    post = load_posterior(args)
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
    each = " and ".join(f"{STAGE[k].title} {n}" for k, n in tpe.items())
    return f"cost: 6·N·tokens per stage; {each} tokens per example-epoch ({source}); RL rollout generation not counted"


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
                          "data_hash": post.meta.get("data_hash"), "tokens_per_example": tpe,
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
                          "tokens_per_example": tpe,
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


# -- results ---------------------------------------------------------------------------------------
def cmd_results_import(args) -> int:
    from dynsim import results, runs_csv

    results_output(args.out, "-o")
    csvs = [p for p in args.paths if p.lower().endswith((".csv", ".csv.gz"))]  # a bundled testbed's runs.csv.gz too
    if csvs and len(args.paths) > 1:
        raise UsageError("give one CSV (or result records alone): a CSV is one study's table")
    ds = runs_csv.read(csvs[0]) if csvs else results.from_records(args.paths)
    path = results.save(ds, args.out)
    n = len(results.configs(ds))
    print(f"wrote {path}: {n} configurations, {int(ds.value.notnull().sum())} numbers, data {ds.attrs['data_hash']}")
    return 0


# -- the parsers of this module's verbs -------------------------------------------------------------
def add_predict(sub, help: str) -> None:
    q = sub.add_parser("predict", help=help, epilog=PREDICT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("name", nargs="?", help="an EvoLM run name, e.g. 1B-160BT-8+42BT-100Kep1-100Kep8")
    q.add_argument("--size", default="1B", help="parameters, e.g. 1B, 125M (default 1B)")
    q.add_argument("--pretrain", help="pretraining tokens, e.g. 320BT")
    for s in AFTER_PT:
        q.add_argument(f"--{s.key}", help=s.help + (f" (needs --{s.follows})" if s.follows else ""))
    q.add_argument("--interval", type=checks.percent, default=90.0, help="credible interval in percent (default 90)")
    output = q.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable output")
    output.add_argument("--csv", action="store_true", help="print the raw posterior-predictive draws as CSV")
    q.add_argument("--seed", type=checks.seed, default=0, help="seed for the predictive noise draws")
    q.add_argument("--corpus", type=checks.nonempty,
                   help="pretraining corpus, for calibrations that compare several "
                        "(gadre2024: c4_original, rpj, rw_original; default the first)")
    add_calibration_flags(q)
    q.set_defaults(func=cmd_predict)


def _add_decision_flags(q, budget_help):
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
    q.add_argument("--tokens-per-example", type=tokens_per_example, metavar=",".join(EXAMPLE_STAGES).upper(),
                   help="tokens one example of each example stage costs per epoch (default: the calibration's study)")
    q.add_argument("--seed", type=checks.seed, default=0)
    q.add_argument("--json", action="store_true", help="machine-readable output")
    add_calibration_flags(q)


def tokens_per_example(text: str) -> dict[str, int]:
    """'512,1024' → {'sft': 512, 'rl': 1024}: one integer >= 1 for each stage trained on examples."""
    counts = checks.token_counts(text)
    if len(counts) != len(EXAMPLE_STAGES):
        raise argparse.ArgumentTypeError(f"expected {len(EXAMPLE_STAGES)} integers >= 1 as "
                                         f"{','.join(EXAMPLE_STAGES).upper()}, got {shown(text)}")
    return dict(zip(EXAMPLE_STAGES, counts))


def add_optimize(sub, help: str) -> None:
    q = sub.add_parser("optimize", help=help)
    _add_decision_flags(q, "compute budget: FLOPs (1e22FLOPs) or GPU-hours (5000GPUh)")
    q.add_argument("--top", type=checks.bounded(1, 1000), default=5, help="allocations to report (default 5)")
    q.set_defaults(func=cmd_optimize)


def add_suggest(sub, help: str) -> None:
    q = sub.add_parser("suggest", help=help)
    _add_decision_flags(q, "the budget whose best allocations the target is about (default: the largest calibrated "
                      "run's cost)")
    q.add_argument("--at", nargs="+", metavar="RUN", help="configurations whose target to pin down instead")
    q.add_argument("--budget-per-run", type=checks.nonempty, help="the most a suggested run may cost (FLOPs or GPUh)")
    q.add_argument("-k", type=checks.bounded(1, 100), default=3, help="runs to suggest (default 3)")
    q.set_defaults(func=cmd_suggest)


def add_results(sub, help: str) -> None:
    q = sub.add_parser("results", help=help)
    rsub = q.add_subparsers(dest="results_verb", required=True, parser_class=Parser)
    r = rsub.add_parser("import", help="load a long CSV of your runs (format: dynsim/runs_csv.py, README), or result "
                                       "records (folders or result.json files), into one Dataset")
    r.add_argument("paths", nargs="+", help="runs.csv, or run store folders / result.json files")
    r.add_argument("-o", "--out", required=True, help="output netCDF, e.g. results.nc")
    r.set_defaults(func=cmd_results_import)


PARSERS = dict(predict=add_predict, optimize=add_optimize, suggest=add_suggest, results=add_results)


def build_parser(verbs=None) -> argparse.ArgumentParser:
    """The `dynsim` parser; verbs: the verbs to build in full (default all), the others listed by name only."""
    p = Parser(prog="dynsim", description="Scaling-law and training-dynamics simulator for LM training.")
    sub = p.add_subparsers(dest="verb", required=True, parser_class=Parser)
    for verb, (module, _, text) in VERBS.items():
        if verbs is None or verb in verbs:
            importlib.import_module(module).PARSERS[verb](sub, text)
        else:
            sub.add_parser(verb, help=text)
    return p


def main(argv=None) -> int:
    """Exit 0 on success, 2 with one line on stderr for a refused input (UserError, a missing file, a verb whose
    extra is not installed); any other exception is a bug and shows its traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)  # `dynsim` has no options of its own
    try:
        args = build_parser({verb} & VERBS.keys()).parse_args(argv)
        return args.func(args)
    except (UserError, FileNotFoundError) as e:
        return fail(str(e), lines=getattr(e, "lines", False))
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in OPTIONAL or verb not in VERBS:
            raise
        extra = VERBS[verb][1] or "all"
        return fail(f"dynsim {verb} needs {e.name}, which this install leaves out: pip install 'dynsim[{extra}]'")
    except KeyboardInterrupt:
        return fail("interrupted")
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
