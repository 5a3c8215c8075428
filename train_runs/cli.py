"""The command lines of `dynsim train`, `tokenize` and `sweep` (verb table: dynsim/cli.py). torch and submitit are
imported inside the verbs that run jobs: `sweep plan` needs neither."""

from __future__ import annotations

import sys
from pathlib import Path

from dynsim import checks
from dynsim.cli import Parser, UsageError, fail, results_output
from dynsim.config import STAGES
from dynsim.errors import shown


def cmd_train(args) -> int:
    from dynsim.config import parse_config
    from train_runs.distributed import Ranks
    from dynsim.tree import run_dir
    from train_runs.train import train

    checks.output_folder(args.runs, "--runs")
    cfg = parse_config(args.name)
    if cfg.sft_data:  # it would fine-tune on its own task mix and record the run as fine-tuned on this data set
        raise UsageError(f"{cfg.name}: dynsim's trainer has no SFT data sets to choose from; drop "
                         f"'{cfg.sft_data}:' (a study's [trainer] command can train them)")
    record = train(cfg, args.runs, seed=args.seed, recipe=args.recipe, progress=not args.quiet)
    if not Ranks.from_env().main:  # a job of several processes (torchrun): rank 0 reports
        return 0
    print(f"{cfg.name} seed {args.seed}: result in {run_dir(args.runs, cfg, args.seed) / 'result.json'}")
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


def cmd_sweep(args) -> int:
    from train_runs import sweep

    runs = args.runs  # the run store; None: the study's [study] out
    if args.sweep_verb == "collect":
        results_output(args.out, "-o")
    if args.sweep_verb == "submit" and runs is not None:
        checks.output_folder(runs, "--runs")
    elif runs is not None and Path(runs).exists() and not Path(runs).is_dir():
        raise UsageError(f"--runs {shown(runs)} is an existing file; give the run store folder")
    study = sweep.load(args.study)
    if args.sweep_verb == "plan":
        print(sweep.plan(study, runs))
    elif args.sweep_verb == "submit" and args.dry_run:
        if args.detach or args.retries is not None:
            raise UsageError("--dry-run submits nothing: drop --detach and --retries")
        if (args.executor or study.executor) != "slurm":
            raise UsageError("--dry-run shows the Slurm scripts a submit would queue: add --executor slurm")
        folder = sweep.write_sbatch_scripts(study, runs)
        scripts = sorted(folder.iterdir())
        print(f"{len(scripts)} sbatch script(s) that `dynsim sweep submit {args.study} --executor slurm` would queue "
              f"(nothing submitted), in {folder}:")
        for stage in STAGES:  # one whole script per stage, the rest by name
            first = next((p for p in scripts if f"-{stage}-" in p.name), None)
            if first is not None:
                print(f"\n== {first.name} (first {stage.upper()} script)\n{first.read_text()}")
        print("all: " + " ".join(p.name for p in scripts))
    elif args.sweep_verb == "submit":
        summary = sweep.submit(study, args.executor, runs, max_retries=args.retries, wait=not args.detach)
        if summary["failed"] or summary["blocked"]:
            return fail(f"{summary['failed']} job(s) failed after retries, {summary['blocked']} blocked behind them "
                        f"(see the log tails above); `dynsim sweep submit {args.study}` again retries them")
    elif args.sweep_verb == "status":
        import time
        while True:
            st = sweep.status(study, runs)
            print(sweep.format_status(study, st), flush=True)
            live = sum(st["counts"].get(k, 0) for k in ("running", "pending", "waiting"))
            if not args.watch or not live:
                break
            time.sleep(args.watch)
            print()
    else:
        path, n, missing = sweep.collect(study, args.out, runs)
        print(f"wrote {path}: {n} result record(s)" + (f", {missing} job(s) without a result yet" if missing else ""))
    return 0


def add_train(sub, help: str) -> None:
    q = sub.add_parser("train", help=help)
    q.add_argument("name", help="run name, e.g. 0.3M-4MT-1+3MT-2Kep1-2Kep4")
    q.add_argument("--runs", type=checks.nonempty, default="runs", help="run store folder (default: runs)")
    q.add_argument("--seed", type=checks.seed, default=0)
    q.add_argument("--recipe", type=checks.nonempty, help="recipe TOML (default: the bundled one for the model size)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_train)


def add_tokenize(sub, help: str) -> None:
    q = sub.add_parser("tokenize", help=help)
    q.add_argument("corpus", nargs="+", help="UTF-8 text files (blank lines between documents) or .jsonl (\"text\")")
    q.add_argument("-o", "--out", required=True, type=checks.nonempty, help="a new folder for the shards")
    q.add_argument("--vocab-size", type=checks.bounded(300, 1 << 24), help="BPE trained here (default 32000)")
    q.add_argument("--tokenizer", type=checks.nonempty, help="a tokenizers JSON file to use instead")
    q.add_argument("--shard-tokens", type=checks.bounded(1, 1 << 34), default=1 << 28,
                   help="tokens a shard file (default 2^28: 512 MB of uint16)")
    q.add_argument("--heldout-docs", type=checks.bounded(1, 1 << 30), default=10_000,
                   help="held-out documents kept (default 10,000)")
    q.set_defaults(func=cmd_tokenize)


def add_sweep(sub, help: str) -> None:
    q = sub.add_parser("sweep", help=help)
    wsub = q.add_subparsers(dest="sweep_verb", required=True, parser_class=Parser)
    for verb, text in (("plan", "the stage tree, jobs, tokens and FLOPs per stage, what is already done"),
                       ("submit", "train every missing job (submitit), retrying failures"),
                       ("status", "done / running / pending / failed per job"),
                       ("collect", "the results Dataset of every finished job")):
        w = wsub.add_parser(verb, help=text)
        w.add_argument("study", help="a study spec, e.g. studies/mini.toml")
        w.add_argument("--runs", type=checks.nonempty, help="run store (default: the study's [study] out)")
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
            w.add_argument("-o", "--out", required=True, help="output netCDF, e.g. results.nc")


PARSERS = dict(train=add_train, tokenize=add_tokenize, sweep=add_sweep)
