"""A step is the same step on any process count (issue 20): two gloo ranks, DDP or FSDP2, with or without
gradient accumulation, give one process's losses at the same global batch; a checkpoint written by two ranks
resumes on one. Runs train_runs/loop_check.py (a stage loop on synthetic data) under torchrun on the CPU."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(tmp: Path, name: str, processes: int, *args, module="train_runs.loop_check", check=True) -> dict | None:
    out = tmp / f"{name}.json"
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                 "--master_addr", "127.0.0.1", "--master_port", str(_free_port())] if processes > 1
                else [sys.executable])
    done = subprocess.run(launcher + ["-m", module, "--out", str(out), *args], env=ENV, cwd=tmp, text=True,
                          capture_output=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()) if out.exists() else None


@pytest.mark.parametrize("parallel,stage", [("ddp", "pt"), ("fsdp", "pt"), ("ddp", "sft")])
def test_two_ranks_take_the_steps_one_process_takes(tmp_path, parallel, stage):
    """Same losses and gradient norms step by step, to float tolerance. The stage's items (steps x batch - 3) leave
    the last batch short, so in the last step one rank has fewer rows; SFT's loss is a mean over answer tokens of
    unequal counts, which a per-rank mean would get wrong."""
    one = run(tmp_path, "one", 1, "--stage", stage)
    two = run(tmp_path, "two", 2, "--stage", stage, "--parallel", parallel, "--micro-batch", "2")
    assert two["processes"] == 2 and len(two["losses"]) == len(one["losses"]) == 6
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    np.testing.assert_allclose(two["grad_norms"], one["grad_norms"], rtol=1e-4)
    assert stage != "pt" or one["losses"][-1] < one["losses"][0]  # PT learns its random stream's unigrams


def test_gradient_accumulation_leaves_the_step_unchanged(tmp_path):
    whole = run(tmp_path, "whole", 1, "--stage", "sft")
    micro = run(tmp_path, "micro", 1, "--stage", "sft", "--micro-batch", "3")
    np.testing.assert_allclose(micro["losses"], whole["losses"], rtol=1e-5)


def test_a_checkpoint_of_two_fsdp_ranks_resumes_on_one_process(tmp_path):
    """Killed at step 4 with a checkpoint at step 3 (sharded weights and AdamW state gathered into full states),
    finished by one process: steps 3-5 are those of a run never interrupted."""
    straight = run(tmp_path, "straight", 1)
    killed = run(tmp_path, "killed", 2, "--parallel", "fsdp", "--checkpoint-every", "3", "--fail-at", "4",
                 check=False)
    assert killed is None and (tmp_path / "killed.resume.pt").exists()
    resumed = run(tmp_path, "killed", 1, "--checkpoint-every", "3")
    assert resumed["resumed_from"] == 3
    np.testing.assert_allclose(resumed["losses"], straight["losses"], rtol=1e-5)


@pytest.mark.slow
def test_dynsim_train_under_torchrun_writes_one_record(tmp_path):
    """`torchrun --nproc_per_node 2 -m dynsim train` of a PT + SFT run: rank 0 writes each stage's model, log and
    record once, the log says two processes, and PT's losses are a one-process run's (to the float tolerance that
    another summation order allows after 25 AdamW steps)."""
    name, recipe = "0.1M-0.1MT-2Kep1", str(REPO / "train_runs" / "recipes" / "quick.toml")
    args = [name, "--recipe", recipe, "--quiet"]
    for processes, store in ((2, "two"), (1, "one")):
        launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                     "127.0.0.1", "--master_port", str(_free_port())] if processes > 1 else [sys.executable])
        done = subprocess.run(launcher + ["-m", "dynsim", "train", *args, "--runs", str(tmp_path / store)], env=ENV,
                              cwd=tmp_path, text=True, capture_output=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("result in") == 1, done.stdout  # one rank reports
    logs = {s: json.loads((tmp_path / s / "0.1M-100KT" / "seed0" / "train_log.json").read_text()) for s in ("one", "two")}
    assert logs["two"]["processes"] == 2 and logs["one"]["processes"] == 1
    np.testing.assert_allclose([h["loss"] for h in logs["two"]["history"]], [h["loss"] for h in logs["one"]["history"]],
                               rtol=1e-3)
    assert (tmp_path / "two" / "0.1M-100KT-2Kep1" / "seed0" / "result.json").exists()
    assert not list((tmp_path / "two").rglob("*.tmp"))
