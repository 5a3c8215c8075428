"""Training throughput and model FLOPs utilisation (MFU) of a named shape on one GPU (prints figures; not a test).

The step is the built-in trainer's: the LLaMA-style model of train_runs/model.py at a recipe's named shape
(recipes/llama.toml: 125M, 350M, 1B), bf16 autocast, SDPA attention (flash kernels on CUDA), fused AdamW, gradient
clipping, random tokens. MFU counts the model's FLOPs as PaLM does (Chowdhery et al. 2022, appendix B):
6·N per token for the weights plus 12·layers·d_model·seq for attention, over the chip's dense bf16 peak.

    python bench/gpu_throughput.py --size 125M                  # H100/H200 peak looked up by name
    python bench/gpu_throughput.py --size 350M --micro-batch 8 --no-compile --peak-tflops 312

Needs only torch and the source tree (no tokenizer, no corpus): it runs on a GPU machine's own PyTorch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynsim.config import parse_config, parse_size  # noqa: E402
from train_runs.model import GPT, autocast_for, model_config  # noqa: E402
from train_runs.recipe import load_recipe  # noqa: E402

# dense bf16 peak per chip, TFLOP/s (vendor data sheets, without sparsity)
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}


def peak_for(name: str) -> float | None:
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def flops_per_token(cfg, seq: int) -> float:
    return 6 * cfg.n_params() + 12 * cfg.n_layer * cfg.d_model * seq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="125M")
    ap.add_argument("--recipe", default="llama")
    ap.add_argument("--micro-batch", type=int, default=16, help="sequences per step")
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--warmup", type=int, default=8, help="untimed steps first (compilation, allocator)")
    ap.add_argument("--no-compile", action="store_true", help="eager mode instead of torch.compile")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the chip's dense bf16 peak (default: by name)")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run of the script itself")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_throughput: no CUDA device here")
    size = parse_size(args.size)
    hp = load_recipe(args.recipe, size)
    cfg = model_config(parse_config(f"{args.size}-1BT"), hp)  # the budget does not enter the shape
    seq = hp["data"]["block_size"]
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    model = GPT(cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, fused=dev.type == "cuda")
    step_fn = model if args.no_compile else torch.compile(model)
    tokens = torch.randint(0, cfg.vocab_size, (args.micro_batch, seq + 1), device=dev)

    def step():
        with autocast_for(dev):
            logits = step_fn(tokens[:, :-1])
            loss = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    dt = time.perf_counter() - t0
    tok_s = args.steps * args.micro_batch * seq / dt
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    peak = args.peak_tflops or peak_for(name)
    achieved = tok_s * flops_per_token(cfg, seq) / 1e12
    print(f"{name}, torch {torch.__version__}, {'eager' if args.no_compile else 'torch.compile'}, bf16 autocast")
    print(f"{args.size} shape: {cfg.n_layer} layers x {cfg.d_model}, {cfg.n_head} heads ({cfg.n_kv_head} kv), "
          f"{cfg.n_params() / 1e6:.1f}M parameters, seq {seq}, micro-batch {args.micro_batch}")
    print(f"throughput {tok_s:,.0f} tokens/s ({dt / args.steps * 1e3:.1f} ms a step), {achieved:.1f} TFLOP/s, "
          f"loss {loss.item():.3f}; peak memory "
          f"{torch.cuda.max_memory_allocated() / 2**30 if dev.type == 'cuda' else float('nan'):.1f} GiB")
    if peak:
        print(f"MFU {achieved / peak:.1%} of {peak:g} TFLOP/s (goal >= 40%)")
    else:
        print(f"MFU: unknown chip {name!r}; give --peak-tflops")


if __name__ == "__main__":
    main()
