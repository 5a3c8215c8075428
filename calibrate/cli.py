"""The command lines of `dynsim fit` and `dynsim validate` (verb table: dynsim/cli.py). PyMC is imported inside the
verbs, after every flag is checked: a fit takes minutes, and a path it cannot write must not cost them."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from dynsim import checks
from dynsim.cli import (UsageError, add_calibration_flags, dataset, fail, load_posterior, refuse_unused_calibration,
                        same_data)
from dynsim.errors import shown


# -- fit ---------------------------------------------------------------------------------------------
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


def _hold_out_rule(args) -> dict:
    """The runs a fit holds out for validation (dynsim.calibrations.held_out_configs): --hold-out-size-from,
    --hold-out-study, --hold-out names, or the bundled calibration's own rule (none for --data)."""
    from dynsim import calibrations

    if args.hold_out_size_from:
        return dict(size_from=args.hold_out_size_from)
    if args.hold_out_study:
        return dict(study=args.hold_out_study)
    if args.hold_out:
        return dict(names=args.hold_out)
    return {} if args.data else calibrations.get(args.calibration).hold_out


def cmd_fit(args) -> int:
    out = _fit_output(args)
    refuse_unused_calibration(args, not args.data, "--data")
    if args.thin > args.draws:
        raise UsageError(f"--thin {args.thin} is more than --draws {args.draws}: it would keep one draw a chain")
    if args.hold_out:  # a misspelt run name: refused before the sampler is imported
        from dynsim.config import parse_config

        for name in args.hold_out:
            parse_config(name)
    ds = dataset(args)  # a bad --data or --calibration before the sampler's imports

    import time

    from calibrate import fit as fitting
    from dynsim import calibrations, posterior

    form = args.form or ("chinchilla" if args.data else calibrations.get(args.calibration).form)
    obs, extra = fitting.fit_data(ds, form, args.min_tokens_per_param, _hold_out_rule(args))
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
        return fail(f"diagnostics failed after retries ({'; '.join(posterior.diagnostic_problems(diag))}); the "
                    "posterior was written but predict will refuse it")
    return 0


# -- validate ----------------------------------------------------------------------------------------
def cmd_validate(args) -> int:
    refuse_unused_calibration(args, not (args.posterior and args.data), "--posterior and --data")
    if args.refit and args.split not in ("loco", "all"):
        raise UsageError(f"--refit refits leave-one-out folds (--split loco or all); --split {args.split} "
                         "always refits")
    ds = dataset(args)  # a bad --data, --calibration or --posterior before the model's imports
    post = load_posterior(args)
    same_data(ds, post, "--data" if args.data else "--posterior" if args.posterior else "--calibration")

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

        other = load_posterior(args, posteriors.bundled_path(args.compare) if args.compare in posteriors.BUNDLED
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


def add_fit(sub, help: str) -> None:
    q = sub.add_parser("fit", help=help)
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


def add_validate(sub, help: str) -> None:
    q = sub.add_parser("validate", help=help)
    add_calibration_flags(q)
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


PARSERS = dict(fit=add_fit, validate=add_validate)
