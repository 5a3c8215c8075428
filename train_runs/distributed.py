"""One training job over several processes: who this process is, the process group, and the model wrapper.

A job of N processes is started by torchrun (`torchrun --nproc_per_node N -m dynsim train ...`) or by Slurm through
submitit (`tasks_per_node`); either way every process runs the same `train()`, and `Ranks.from_env` reads its place
from the launcher's environment. Each optimizer step's global batch (the recipe's `batch_size`) is split across the
ranks and, within a rank, into micro-batches of `[run] micro_batch` rows (gradient accumulation), so the step is the
same step a single process takes, whatever the process count (tests/test_distributed.py checks the losses).

Wrappers: DDP (`[run] parallel = "ddp"`, every rank holds the whole model) or FSDP2 (`"fsdp"`, `fully_shard` on
each block and the root: parameters, gradients and optimizer state sharded across ranks). Rank 0 alone writes
records and checkpoints; checkpoints hold full (unsharded) states, so a run resumes on another process count.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Ranks":
        """torchrun's RANK / WORLD_SIZE / LOCAL_RANK; inside a submitit job of several tasks, submitit's view of
        the Slurm (or local) tasks, exported as the same variables; else one process."""
        if "RANK" not in os.environ and _submitit_tasks() > 1:
            from submitit.helpers import TorchDistributedEnvironment
            TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        if "RANK" not in os.environ:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))


def _submitit_tasks() -> int:
    if "SUBMITIT_EXECUTOR" not in os.environ:  # not inside a submitit job: no need to import it
        return 1
    import submitit
    return submitit.JobEnvironment().num_tasks


def device_for(ranks: Ranks, device: torch.device) -> torch.device:
    """A CUDA job's rank uses the GPU of its local rank."""
    if device.type == "cuda" and ranks.world > 1:
        torch.cuda.set_device(ranks.local_rank)
        return torch.device("cuda", ranks.local_rank)
    return device


@contextlib.contextmanager
def process_group(ranks: Ranks, device: torch.device):
    """The job's process group for the length of a `train()` call (none for one process): NCCL on GPUs, gloo on
    CPUs."""
    if ranks.world == 1 or dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ranks.rank, world_size=ranks.world,
                            timeout=datetime.timedelta(minutes=30))
    try:
        yield
    finally:
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, ranks: Ranks, parallel: str) -> torch.nn.Module:
    """The module the training forwards go through: the model itself for one process, else DDP or FSDP2."""
    if ranks.world == 1:
        return model
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard
        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel
    device_ids = [model.embed.weight.device.index] if model.embed.weight.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)  # RoPE tables: constant


def no_sync(net: torch.nn.Module, last: bool):
    """Skip the gradient all-reduce on every micro-batch of a step but the last (DDP and FSDP2 alike)."""
    if last:
        return contextlib.nullcontext()
    if hasattr(net, "no_sync"):
        return net.no_sync()
    if hasattr(net, "set_requires_gradient_sync"):
        return _fsdp_no_sync(net)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _fsdp_no_sync(net):
    net.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        net.set_requires_gradient_sync(True)


def all_sum(loss_sum: torch.Tensor, n_targets: int, ranks: Ranks) -> tuple[torch.Tensor, int]:
    """A step's summed loss and target count over the ranks (as they are for one process: no device sync)."""
    if ranks.world == 1:
        return loss_sum, n_targets
    t = torch.stack([loss_sum.double(), torch.tensor(float(n_targets), dtype=torch.float64, device=loss_sum.device)])
    dist.all_reduce(t)
    return t[0], round(float(t[1]))


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()


def full_states(model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """The model's and optimizer's full, unsharded state dicts on the CPU (the optimizer's keyed by parameter name):
    what a resume checkpoint holds, loadable by any process count. Every rank calls it: FSDP2 gathers the shards
    (to rank 0; the others get empty dicts and write nothing)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
    return get_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_states(model: torch.nn.Module, opt: torch.optim.Optimizer, model_state: dict, opt_state: dict) -> None:
    """Load full states (a checkpoint of any process count, read by every rank) into this rank's model and
    optimizer, or their shards of them."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict
    set_state_dict(model, opt, model_state_dict=model_state, optim_state_dict=opt_state,
                   options=StateDictOptions(full_state_dict=True))


def model_state(model: torch.nn.Module) -> dict:
    """The full model state dict on the CPU (rank 0's is complete under FSDP2); every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
