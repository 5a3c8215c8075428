"""RL recipe variants on the miniature study's hub SFT model: training reward per epoch and held-out accuracy.

    .venv/bin/python bench/rl_variants.py STORE [--seed 0] [--rl 256ep8] [--out DIR]
        [--variant NAME='{"lr": 3e-5, "mix": {"arith": 0.4, "multistep": 0.6}}' ...]

STORE is the run store of `studies/mini_evolm.toml` (its hub `0.1M-8MT-0.4+1.6MT-5Kep3` must be trained; seed 1 is
in the `mini_evolm_seed1` store). Each variant is a dict of `[rl]` recipe overrides on top of the study's recipe;
its RL run goes to OUT/NAME, next to links to the hub's PT, CPT and SFT checkpoints, and logs every step. With
several epochs every prompt comes back once per epoch, so the mean reward of each epoch is measured on the same
prompts: a rise from the first epoch to the last is learning, not a change of prompts. Held-out numbers are greedy
accuracy on the study's 200 evaluation items per task (one standard error ~3.5 points at 50%, ~2 for the ID mean).
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


def greedy(record: dict) -> dict[str, float]:
    return {m["task"]: m["value"] for m in record["metrics"] if m["metric"] == "greedy_pass@1"}


def main() -> int:
    from train_runs.train import lineage, run_dir, train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rl", default="256ep8", help="RL examples x epochs of every variant")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON")
    args = ap.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant) or {"recipe": "{}"}
    out = args.out or Path(tempfile.mkdtemp(prefix="rl_variants_"))
    study_recipe = load_study(Path(__file__).resolve().parents[1] / "studies" / "mini_evolm.toml").train_recipe()
    sft = json.loads((run_dir(args.store, parse_config(HUB), args.seed) / "result.json").read_text())
    before = greedy(sft)
    print(f"SFT model {HUB} seed {args.seed}: " + ", ".join(f"{t} {v:.1f}" for t, v in before.items())
          + f"; ID mean {np.mean([before[t] for t in ID_TASKS]):.1f}")
    for name, spec in variants.items():
        over = json.loads(spec)
        store = out / name
        for c in lineage(parse_config(HUB)):  # the hub's checkpoints, shared, not retrained
            link = run_dir(store, c, args.seed)
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(run_dir(args.store, c, args.seed).resolve())
        recipe = json.loads(json.dumps(study_recipe))
        recipe["rl"] = {**recipe.get("rl", {}), **over}
        recipe.setdefault("run", {})["log_every"] = 1
        t = time.perf_counter()
        config = parse_config(f"{HUB}-{args.rl}")
        after = greedy(train(config, store, seed=args.seed, recipe=recipe, progress=False))
        log = json.loads((run_dir(store, config, args.seed) / "train_log.json").read_text())
        rewards = np.array([h["reward"] for h in log["history"]])
        per_epoch = [float(r.mean()) for r in np.array_split(rewards, config.rl_epochs)]
        print(f"{name} {json.dumps(over)}: reward per epoch " + " ".join(f"{r:.3f}" for r in per_epoch)
              + f"; KL/token at end {np.mean([h['kl'] for h in log['history'][-5:]]):.4f}; held-out "
              + ", ".join(f"{t} {after[t] - before[t]:+.1f}" for t in before)
              + f"; ID mean {np.mean([after[t] for t in ID_TASKS]):.1f} ({time.perf_counter() - t:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
