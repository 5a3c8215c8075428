"""One stage's optimisation loop on synthetic data, under whatever launcher started this process: the check that a
step is the same step on any process count, and the measurement of tokens/s per process count.

    python -m train_runs.loop_check --stage pt --steps 6 --out losses.json                 # one process
    torchrun --nproc_per_node 2 -m train_runs.loop_check --parallel fsdp --out losses.json  # two gloo ranks

Rank 0 writes {"losses": [...], "grad_norms": [...], "tokens_per_s": ..., "processes": N} to --out.
--fail-at S stops the loop with an error at step S (a killed job; with --checkpoint-every it leaves a resume.pt),
--resume PATH names the resume checkpoint, so a run killed on N processes can be finished on M.
Synthetic data keeps it free of the corpus and the tokenizer: random token windows (PT) or random prompt/answer
examples of different lengths (SFT, whose loss is normalised by answer tokens, not rows).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from train_runs import distributed, stages
from train_runs.data import TokenStream
from train_runs.model import GPT, ModelConfig

VOCAB, BLOCK = 97, 32


def batches(stage: str, net, n_items: int, batch_size: int, fail_at: int | None) -> stages.Batches:
    rng = np.random.default_rng(0)
    if stage == "pt":
        stream = TokenStream(rng.integers(0, VOCAB, 50_000).astype(np.int64), BLOCK)
        made = stages.pt_batches(net, stream, n_items, batch_size, torch.device("cpu"), False)
    else:
        examples = [(rng.integers(1, VOCAB, int(n)).tolist(), int(p))
                    for n, p in zip(rng.integers(8, 40, n_items), rng.integers(2, 7, n_items))]
        made = stages.sft_batches(net, examples, np.arange(n_items), batch_size, 0, torch.device("cpu"), False)
    if fail_at is None:
        return made

    def rows(step):
        if step == fail_at:
            raise SystemExit(f"stopped at step {step} (--fail-at)")
        return made.rows(step)
    return stages.Batches(rows, made.loss, made.whole)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=("pt", "sft"), default="pt")
    ap.add_argument("--parallel", choices=("ddp", "fsdp"), default="ddp")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--items", type=int, default=0, help="items in the stage (default: steps x batch, less 3 so the "
                    "last batch is short)")
    ap.add_argument("--micro-batch", type=int, default=0)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--checkpoint-every", type=int, default=10**9)
    ap.add_argument("--resume", type=Path, default=None)
    ap.add_argument("--fail-at", type=int, default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    ranks = distributed.Ranks.from_env()
    torch.set_num_threads(1)
    n_items = args.items or args.steps * args.batch_size - 3
    with distributed.process_group(ranks, torch.device("cpu")):
        torch.manual_seed(0)
        model = GPT(ModelConfig(vocab_size=VOCAB, n_layer=args.n_layer, d_model=args.d_model, n_head=2,
                                max_seq_len=64))
        net = distributed.wrap(model, ranks, args.parallel)
        hp = {"lr": 3e-3, "weight_decay": 0.1, "grad_clip": 1.0}
        resume = args.resume or args.out.with_suffix(".resume.pt")
        loop = stages.Loop(args.stage, args.steps, batches(args.stage, net, n_items, args.batch_size, args.fail_at),
                           lambda s: hp["lr"], hp, resume, checkpoint_every=args.checkpoint_every, log_every=1)
        result = stages.run_loop(model, loop, None, net, stages.Split(ranks.rank, ranks.world, args.micro_batch))
    if ranks.main:
        steps = args.steps - result["resumed_from"]
        tokens = steps * args.batch_size * BLOCK if args.stage == "pt" else None
        out = {"losses": [h["loss"] for h in result["history"]], "grad_norms": [h["grad_norm"] for h in result["history"]],
               "processes": ranks.world, "resumed_from": result["resumed_from"],
               "tokens_per_s": tokens / result["elapsed_s"] if tokens else None}
        args.out.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
