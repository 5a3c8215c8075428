"""Benchmarks of the miniature trainer (prints figures; not a test).

1. Pretraining throughput (tokens/s) of `stages.run_loop` against a minimal hand-written loop on the same
   model, data and optimizer settings; the goal is a ratio >= 0.95 (the trainer's bookkeeping is nearly free).
2. Wall time of one full miniature pipeline PT -> CPT -> SFT -> RL with evaluation of every stage, from scratch.

    .venv/bin/python bench/bench_train.py                      # both, medians of 3 / 1 repeats
    .venv/bin/python bench/bench_train.py --size 0.8M --steps 60 --repeats 5 --pipeline-repeats 0
Uses WordNet when installed (bash train_runs/install_corpus.sh), else the committed sample.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dynsim.config import parse_size
from train_runs import data, stages
from train_runs.model import GPT, autocast_for, config_for_params
from train_runs.train import load_recipe, make_context, train


def reference_loop(model, stream, steps, batch_size, lr, autocast, device):
    """The least a PT loop can do: batch, forward, loss, backward, clip, AdamW step."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    model.train()
    for step in range(steps):
        x = torch.from_numpy(stream.windows(range(step * batch_size, (step + 1) * batch_size))).to(device)
        with autocast_for(device, autocast):
            logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)


def trainer_loop(model, stream, steps, batch_size, hp, autocast, device, tmp):
    batches = stages.pt_batches(model, stream, steps * batch_size, batch_size, device, autocast)
    loop = stages.Loop("pt", steps, batches, lambda s: stages.stage_lr(hp, s, steps), hp,
                       resume_path=Path(tmp) / "resume.pt", checkpoint_every=10**9, log_every=10)
    stages.run_loop(model, loop)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_throughput(size, steps, repeats, corpus):
    hp = load_recipe({"data": {"general_corpus": corpus}}, size)
    ctx = make_context(hp, 0)
    T, B = hp["data"]["block_size"], hp["pt"]["batch_size"]
    stream = data.TokenStream(ctx.general_train, T)
    m = hp["model"]
    cfg = config_for_params(size, hp["data"]["vocab_size"], m["head_dim"], m["max_seq_len"], m["aspect"])
    rates = {"reference": [], "trainer": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats + 1):  # the first round warms up allocators and kernels; not counted
            for name in ("reference", "trainer"):  # alternate, so machine noise hits both alike
                torch.manual_seed(0)
                model = GPT(cfg).to(ctx.device)
                sync(ctx.device)
                t0 = time.perf_counter()
                if name == "reference":
                    reference_loop(model, stream, steps, B, hp["pt"]["lr"], ctx.autocast, ctx.device)
                else:
                    trainer_loop(model, stream, steps, B, hp["pt"], ctx.autocast, ctx.device, tmp)
                sync(ctx.device)
                if r:
                    rates[name].append(steps * B * T / (time.perf_counter() - t0))
    ref, mine = statistics.median(rates["reference"]), statistics.median(rates["trainer"])
    print(f"throughput  size={size} ({cfg.n_params()} params, {cfg.n_layer}x{cfg.d_model}) device={ctx.device} "
          f"autocast={ctx.autocast} threads={torch.get_num_threads()} batch={B}x{T} steps={steps} repeats={repeats}")
    print(f"  reference loop  median {ref:,.0f} tokens/s   (all: {', '.join(f'{x:,.0f}' for x in rates['reference'])})")
    print(f"  trainer         median {mine:,.0f} tokens/s   (all: {', '.join(f'{x:,.0f}' for x in rates['trainer'])})")
    print(f"  ratio trainer/reference = {mine / ref:.3f}  (goal >= 0.95)")


def bench_pipeline(name, repeats, corpus, n_items, k):
    recipe = {"data": {"general_corpus": corpus}, "eval": {"n_items": n_items, "k": k}}
    walls, timings = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            rec = train(name, out, recipe=recipe, progress=False)
            walls.append(time.perf_counter() - t0)
            timings.append(rec["timings"])
    print(f"pipeline  {name}  corpus={corpus} eval: {n_items} items/task, k={k}  repeats={repeats}")
    print(f"  wall time median {statistics.median(walls):.1f} s   (all: {', '.join(f'{w:.1f}' for w in walls)})")
    for key in timings[0]:  # stage training times; eval_s is the evaluation of the last stage only
        print(f"  {key:7s} median {statistics.median(t[key] for t in timings):.1f} s")
    acc = {m["task"]: m["value"] for m in rec["metrics"] if m["metric"] == "greedy_pass@1"}
    print("  final greedy accuracy: " + ", ".join(f"{t} {v:.1f}%" for t, v in acc.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="0.3M")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pipeline", default="0.1M-0.5MT-0.1+0.2MT-1Kep1-256ep1")
    ap.add_argument("--pipeline-repeats", type=int, default=1)
    ap.add_argument("--n-items", type=int, default=100)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--corpus", default="wordnet" if (data.WORDNET_DIR / "data.noun").exists() else "sample")
    args = ap.parse_args()
    if args.repeats > 0:
        bench_throughput(parse_size(args.size), args.steps, args.repeats, args.corpus)
    if args.pipeline_repeats > 0:
        bench_pipeline(args.pipeline, args.pipeline_repeats, args.corpus, args.n_items, args.k)


if __name__ == "__main__":
    main()
