"""WSD decay branches vs independent warmup-cosine runs: final held-out loss per PT budget (the miniature check).

    .venv/bin/python bench/bench_wsd.py [--size 0.1M] [--budgets 1MT,2MT] [--decay-frac 0.2] [--alone]

One WSD stable run (the longest budget's warmup + stable phase, saving every budget's decay-start state), one
decay branch per budget, and one independent warmup-cosine run per budget, on the WordNet corpus (one pass over
fresh text; `--corpus sample` is the committed 143K-token sample, which 1-2MT would repeat 7-14 times), one thread.
Prints general_text held-out loss (nats/token) for both and their relative difference (goal: within 2%).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynsim.config import RunConfig, format_size, format_tokens, parse_pretrain, parse_size  # noqa: E402
from dynsim.tree import wsd_stable_tokens  # noqa: E402


def heldout_loss(record: dict) -> float:
    return next(m["value"] for m in record["metrics"] if m["task"] == "general_text" and m["metric"] == "loss")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="0.1M")
    ap.add_argument("--budgets", default="1MT,2MT")
    ap.add_argument("--decay-frac", type=float, default=0.2)
    ap.add_argument("--warmup-steps", type=int, default=12, help="WSD warmup (cosine: the same share of its budget)")
    ap.add_argument("--corpus", default="wordnet",
                    help="general corpus: wordnet (5.9M training tokens: one pass; needs install_corpus.sh) or "
                         "sample (143K tokens: 1-2MT would repeat it 7-14 times)")
    ap.add_argument("--cosine-lr", type=float, help="peak LR of the cosine runs (default: the recipe's, 3e-3)")
    ap.add_argument("--wsd-lr", type=float, help="peak LR of the WSD runs (default: the recipe's, 3e-3)")
    ap.add_argument("--alone", action="store_true",
                    help="also train the shortest budget's WSD run alone (no branching): must equal its branch")
    ap.add_argument("--runs", help="run store (default: a temporary folder)")
    args = ap.parse_args()
    from train_runs.train import train

    size = parse_size(args.size)
    budgets = sorted(parse_pretrain(b)[0] for b in args.budgets.split(","))
    base = {"data": {"general_corpus": args.corpus}, "run": {"threads": 1, "checkpoint_every": 1000},
            "eval": {"n_items": 4, "k": 2, "cloze_items": 10, "text_tokens": 16384}}
    wsd = {**base, "pt": {"schedule": "wsd", "decay_frac": args.decay_frac, "warmup_steps": args.warmup_steps}}
    if args.wsd_lr:
        wsd["pt"]["lr"] = args.wsd_lr
    out = Path(args.runs or tempfile.mkdtemp(prefix="bench_wsd_"))
    store = out / f"wsd-lr{args.wsd_lr or 'recipe'}"
    t0 = time.perf_counter()
    stable = RunConfig(size, wsd_stable_tokens(budgets[-1], args.decay_frac), pretrain_schedule=budgets[-1])
    train(stable, store, recipe=wsd, progress=False, wsd_branches=budgets)
    t_stable = time.perf_counter() - t0
    rows = []
    for b in budgets:
        cfg = RunConfig(size, b)
        t = time.perf_counter()
        w = heldout_loss(train(cfg, store, recipe=wsd, progress=False))
        t_w = time.perf_counter() - t
        # cosine with the same absolute warmup as the WSD runs (a share of this budget's steps)
        steps = b / (128 * 32)
        cos = {**base, "pt": {"schedule": "cosine", "warmup_frac": args.warmup_steps / steps}}
        if args.cosine_lr:
            cos["pt"]["lr"] = args.cosine_lr
        t = time.perf_counter()
        c = heldout_loss(train(cfg, out / f"cosine-{b}-lr{args.cosine_lr or 'recipe'}", recipe=cos, progress=False))
        rows.append((cfg.name, w, c, t_w, time.perf_counter() - t))
    print(f"{format_size(size)} model, corpus {args.corpus}, WSD decay {args.decay_frac:.0%}, warmup {args.warmup_steps} steps, "
          f"peak LR WSD {args.wsd_lr or 3e-3:g}, cosine {args.cosine_lr or 3e-3:g}, "
          f"stable run {stable.name} {t_stable:.0f} s ({os.cpu_count()} cores, torch threads 1)")
    print(f"{'budget':<14}{'WSD branch':>11}{'cosine':>9}{'diff':>8}   (held-out general_text loss, nats/token)")
    worst = 0.0
    for name, w, c, tw, tc in rows:
        diff = (w - c) / c
        worst = max(worst, abs(diff))
        print(f"{name:<14}{w:11.4f}{c:9.4f}{diff:+8.2%}   branch {tw:.0f} s, cosine {tc:.0f} s")
    if args.alone:
        cfg = RunConfig(size, budgets[0])
        alone = heldout_loss(train(cfg, store.with_name(store.name + "-alone"), recipe=wsd, progress=False))
        branch = next(w for name, w, *_ in rows if name == cfg.name)
        print(f"{cfg.name} WSD trained alone {alone:.6f} vs as a branch {branch:.6f} (branching must not change it)")
    tokens_wsd = stable.pretrain + sum(b - wsd_stable_tokens(b, args.decay_frac) for b in budgets)
    print(f"PT tokens: WSD {format_tokens(tokens_wsd)} vs cosine {format_tokens(sum(budgets))}; "
          f"worst |diff| {worst:.2%} ({'within' if worst <= 0.02 else 'NOT within'} 2%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
