"""The command line of `dynsim figs` (verb table: dynsim/cli.py)."""

from __future__ import annotations

from pathlib import Path

from dynsim import checks
from dynsim.cli import (UsageError, add_calibration_flags, dataset, load_posterior, refuse_unused_calibration,
                        same_data)
from paper_figs import FIGURES


def cmd_figs(args) -> int:
    checks.output_folder(args.out, "--out")
    refuse_unused_calibration(args, not (args.posterior and args.data), "--posterior and --data")
    import shlex

    import paper_figs
    from dynsim import posterior

    paper_figs.select(args.only)  # an unknown figure: one line before any work
    if args.data and not args.posterior:
        raise UsageError("--data needs --posterior (the posterior fitted to that Dataset)")
    if not args.data:
        posterior.bundled_path(args.calibration)  # unknown calibration: one-line error before any work
    ds = dataset(args)  # --data, or the Dataset the bundled calibration was fitted to (as `dynsim fit`)
    names = paper_figs.select(args.only, ds)
    post = load_posterior(args)
    same_data(ds, post, "--posterior" if args.posterior else "--calibration")
    label = args.posterior or f"bundled calibration '{args.calibration}'"
    command = shlex.join(["dynsim", "figs"] + (["--data", args.data] if args.data else [])
                         + (["--posterior", args.posterior] if args.posterior else ["--calibration", args.calibration])
                         + (["--only", args.only] if args.only else []) + ["--out", args.out]
                         + (["--force"] if args.force else []))
    paper_figs.run(ds, post, args.out, names, command=command, posterior_label=label, log=print)
    print(f"wrote {len(names)} figure(s) and {Path(args.out) / paper_figs.INDEX}")
    return 0


def add_figs(sub, help: str) -> None:
    q = sub.add_parser("figs", help=help)
    add_calibration_flags(q)
    q.add_argument("--data", type=checks.nonempty,
                   help="a results Dataset (netCDF) to draw, with --posterior fitted to it")
    q.add_argument("--only", type=checks.nonempty,
                   help=f"comma-separated figures: {', '.join(FIGURES)} (default: all)")
    q.add_argument("-o", "--out", type=checks.nonempty, default="figures", help="output folder (default: figures)")
    q.set_defaults(func=cmd_figs)


PARSERS = dict(figs=add_figs)
