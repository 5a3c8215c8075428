"""Tokens/s of one PT loop on 1 process against 2 gloo ranks (DDP and FSDP2), on CPU (prints figures; not a test).

Each run is `train_runs/loop_check.py` (the real `stages.run_loop` on synthetic tokens) at the same global batch:
one plain process, then `torchrun --nproc_per_node 2` with DDP and with FSDP2. Every process uses one thread, so on
a machine with at least 2 cores the 2-rank runs have twice the cores of the 1-process run; what they lose is the
gradient all-reduce (DDP) or the parameter all-gathers and reduce-scatters (FSDP2) through gloo.

    .venv/bin/python bench/bench_distributed.py                       # d_model 128 x 4 layers, 40 steps, 3 repeats
    .venv/bin/python bench/bench_distributed.py --d-model 256 --n-layer 6 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(processes: int, parallel: str, args, out: Path) -> float:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                 "--master_addr", "127.0.0.1", "--master_port", str(free_port())] if processes > 1 else [sys.executable])
    cmd = launcher + ["-m", "train_runs.loop_check", "--parallel", parallel, "--steps", str(args.steps),
                      "--batch-size", str(args.batch_size), "--d-model", str(args.d_model), "--n-layer",
                      str(args.n_layer), "--out", str(out)]
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, cwd=REPO, text=True, capture_output=True, timeout=1800)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return json.loads(out.read_text())["tokens_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32, help="global batch in sequences of 32 tokens")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"PT loop, d_model {args.d_model} x {args.n_layer} layers, global batch {args.batch_size} x 32 tokens, "
          f"{args.steps} steps, 1 thread a process, {cores} cores here; median of {args.repeats}")
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for processes, parallel in ((1, "ddp"), (2, "ddp"), (2, "fsdp")):
            rates = [run(processes, parallel, args, Path(tmp) / f"r{processes}{parallel}{i}.json")
                     for i in range(args.repeats)]
            label = "1 process" if processes == 1 else f"2 ranks {parallel.upper()}"
            figures[label] = statistics.median(rates)
            print(f"  {label:<14}{figures[label]:>10,.0f} tokens/s  (runs: {', '.join(f'{r:,.0f}' for r in rates)})")
    base = figures["1 process"]
    for label in ("2 ranks DDP", "2 ranks FSDP"):
        print(f"  {label} / 1 process: {figures[label] / base:.2f}x")


if __name__ == "__main__":
    main()
