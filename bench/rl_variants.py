"""RL recipe variants on one SFT model: training reward per epoch, KL, and held-out greedy and maj@k accuracy.

    .venv/bin/python bench/rl_variants.py STORE [--seed 0] [--rl 256ep8] [--out DIR]
        [--sft CONFIG --recipe JSON]
        [--variant NAME='{"lr": 3e-5, "mix": {"arith": 0.4, "multistep": 0.6}}' ...]

By default the SFT model is the miniature study's hub: STORE is the run store of `studies/mini_evolm.toml` (its hub
`0.1M-8MT-0.4+1.6MT-5Kep3` must be trained; seed 1 is in the `mini_evolm_seed1` store) and the recipe the study's.
With --sft and --recipe (a JSON dict of recipe overrides), any SFT run, trained into STORE first if it is missing:
the slow tests' model is `--sft 0.3M-0.6MT-0.2+1MT-4Kep2 --recipe '{"data": {"general_corpus": "sample"},
"run": {"threads": 1}, "eval": {"n_items": 100, "k": 4, "cloze_items": 100, "text_tokens": 8192}}' --rl 640ep1`.
Each variant is a dict of `[rl]` recipe overrides on top of that recipe;
its RL run goes to OUT/NAME, next to links to the hub's PT, CPT and SFT checkpoints, and logs every step. With
several epochs every prompt comes back once per epoch, so the mean reward of each epoch is measured on the same
prompts: a rise from the first epoch to the last is learning, not a change of prompts. Held-out numbers are greedy
accuracy on the study's 200 evaluation items per task (one standard error ~3.5 points at 50%, ~2 for the ID mean),
and maj@k, the majority vote of k samples, which reads the policy's distribution rather than its near-ties.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynsim.config import parse_config  # noqa: E402
from dynsim.study import load_study  # noqa: E402

HUB = "0.1M-8MT-0.4+1.6MT-5Kep3"
ID_TASKS = ("arith", "multistep", "check")


def scores(record: dict, kind: str) -> dict[str, float]:
    """{task: value} of one metric kind ('greedy' or 'maj') of the downstream tasks."""
    return {m["task"]: m["value"] for m in record["metrics"] if m["metric"].startswith(kind)}


def main() -> int:
    from dynsim.tree import lineage, run_dir
    from train_runs.train import train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rl", default="256ep8", help="RL examples x epochs of every variant")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON")
    ap.add_argument("--sft", default=HUB, help="the SFT run RL starts from (default: the mini study's hub)")
    ap.add_argument("--recipe", help="JSON dict of recipe overrides (default: the mini study's recipe)")
    args = ap.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant) or {"recipe": "{}"}
    out = args.out or Path(tempfile.mkdtemp(prefix="rl_variants_"))
    base_recipe = (json.loads(args.recipe) if args.recipe else
                   load_study(Path(__file__).resolve().parents[1] / "studies" / "mini_evolm.toml").train_recipe())
    sft = train(args.sft, args.store, seed=args.seed, recipe=base_recipe, progress=False)  # read, or trained
    before, before_maj = scores(sft, "greedy"), scores(sft, "maj")
    print(f"SFT model {args.sft} seed {args.seed}: greedy " + ", ".join(f"{t} {v:.1f}" for t, v in before.items())
          + f"; ID mean greedy {np.mean([before[t] for t in ID_TASKS]):.1f}, "
          + f"maj@k {np.mean([before_maj[t] for t in ID_TASKS]):.1f}")
    for name, spec in variants.items():
        over = json.loads(spec)
        store = out / name
        for c in lineage(parse_config(args.sft)):  # the SFT model's checkpoints, shared, not retrained
            link = run_dir(store, c, args.seed)
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(run_dir(args.store, c, args.seed).resolve())
        recipe = json.loads(json.dumps(base_recipe))
        recipe["rl"] = {**recipe.get("rl", {}), **over}
        recipe.setdefault("run", {})["log_every"] = 1
        t = time.perf_counter()
        config = parse_config(f"{args.sft}-{args.rl}")
        record = train(config, store, seed=args.seed, recipe=recipe, progress=False)
        after, after_maj = scores(record, "greedy"), scores(record, "maj")
        log = json.loads((run_dir(store, config, args.seed) / "train_log.json").read_text())
        rewards = np.array([h["reward"] for h in log["history"]])
        per_epoch = [float(r.mean()) for r in np.array_split(rewards, config.rl_epochs)]
        print(f"{name} {json.dumps(over)}: reward per epoch " + " ".join(f"{r:.3f}" for r in per_epoch)
              + f"; KL/token at end {np.mean([h['kl'] for h in log['history'][-5:]]):.4f}; held-out "
              + ", ".join(f"{t} {after[t] - before[t]:+.1f}" for t in before)
              + f"; ID mean greedy {np.mean([after[t] - before[t] for t in ID_TASKS]):+.1f}, maj@k "
              + f"{np.mean([after_maj[t] - before_maj[t] for t in ID_TASKS]):+.1f} ({time.perf_counter() - t:.0f} s)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
