"""The four training stages (PT, CPT, SFT, RL) over one resumable optimisation loop.

Each stage is its `Batches` (which items step s trains on, and the summed loss of any subset of them) plus a step
count and an LR schedule; `run_loop` does the rest: the split of each step across ranks and micro-batches, AdamW,
clipping, logging, a resume checkpoint every N steps, and resuming from it.
Every batch (and every RL sample) is a pure function of (seed, step), so a run killed and resumed replays
exactly the steps the uninterrupted run would have taken.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dynsim.files import atomic_write
from train_runs import distributed, tasks
from train_runs.model import GPT, autocast_for


# -- learning-rate schedules ------------------------------------------------------------------------
def cosine_lr(step: int, total: int, peak: float, warmup: int, min_frac: float) -> float:
    """Linear warmup to `peak`, then cosine to min_frac * peak at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def wsd_decay_start(total: int, decay_frac: float) -> int:
    """The step where a warmup-stable-decay run of `total` steps leaves the stable phase."""
    return total - max(1, round(decay_frac * total))


def wsd_lr(step: int, total: int, peak: float, warmup: int, min_frac: float, decay_frac: float) -> float:
    """Warmup-stable-decay: linear warmup, constant peak, linear decay to min_frac * peak over the last steps.

    The stable phase does not depend on `total`, so a run of any budget can branch off the stable trajectory
    of another run at its own `wsd_decay_start` (see `pt_branch_point`), which is what makes budget sweeps cheap.
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    start = wsd_decay_start(total, decay_frac)
    if step < start:
        return peak
    return peak * (1 - (1 - min_frac) * (step - start + 1) / (total - start))


def stage_lr(hp: dict, step: int, total: int) -> float:
    if hp.get("schedule", "cosine") == "wsd":
        return wsd_lr(step, total, hp["lr"], hp["warmup_steps"], hp["min_lr_frac"], hp["decay_frac"])
    return cosine_lr(step, total, hp["lr"], round(hp.get("warmup_frac", 0.0) * total), hp["min_lr_frac"])


# -- the loop -----------------------------------------------------------------------------------------
def make_optimizer(model: GPT, hp: dict) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on norms)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": hp.get("weight_decay", 0.0)}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=hp["lr"], betas=(0.9, 0.95), eps=1e-8)


def atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


@dataclass
class Batches:
    """One stage's data as the loop reads it: step s trains on the global batch `rows(s)` (item indices);
    `loss(rows)` is (the sum of per-target losses over those rows, the number of targets, stats). The loop divides
    by the global batch's target count, so a step is the same step however its rows are split across ranks and
    micro-batches. `whole`: the loss is not a sum over rows (GRPO normalises by the whole batch's tokens and its
    groups), so every rank computes the whole batch instead of a share of it."""
    rows: callable  # step -> np.ndarray
    loss: callable  # rows -> (loss tensor, n_targets, {stat: float})
    whole: bool = False
    step_stats: callable = None  # rows -> {stat: float} of a step's whole batch, logged beside its loss


@dataclass(frozen=True)
class Split:
    """This process's share of each step: rows rank::world of the global batch, in micro-batches of at most `micro`
    rows (0: all at once)."""
    rank: int = 0
    world: int = 1
    micro: int = 0

    def parts(self, rows: np.ndarray, whole: bool) -> list[tuple[np.ndarray, bool]]:
        """(rows, counted) micro-batches: the same number on every rank, as each forward and backward is a
        collective under FSDP2 (and the last backward under DDP). A rank whose share is shorter fills the
        difference with its batch's first row, computed and not counted."""
        if whole:
            return [(rows, True)]
        most = -(-len(rows) // self.world)
        m = self.micro or max(1, most)
        mine = rows[self.rank::self.world]
        chunks = [mine[i * m:(i + 1) * m] for i in range(max(1, -(-most // m)))]
        return [(c, True) if len(c) else (rows[:1], False) for c in chunks]


@dataclass
class Loop:
    """One stage's optimisation: what `run_loop` needs besides the model."""
    name: str  # 'pt', 'cpt', 'sft', 'rl'
    total_steps: int
    batches: Batches
    lr_at: callable  # step -> learning rate
    hp: dict
    resume_path: Path
    checkpoint_every: int = 100
    log_every: int = 10
    # extra checkpoints, e.g. the WSD stable phase: step -> path to also save the state at (before that step)
    save_at: dict = field(default_factory=dict)
    start_state: dict | None = None  # a state to start from instead of step 0 (a WSD branch point)


def run_loop(model: GPT, loop: Loop, progress=None, net=None, split: Split = Split()) -> dict:
    """Train `loop.total_steps` steps, resuming from `loop.resume_path` if a checkpoint is there.

    net: the module the batches' forwards go through (a DDP or FSDP2 wrapper of `model` in a job of several
    processes, see train_runs/distributed.py); `split` says which rows of each step are this process's.
    Returns {'history': [...], 'elapsed_s': seconds of training over all sessions, 'resumed_from': step}.
    """
    net = model if net is None else net
    ranks = distributed.Ranks(split.rank, split.world)
    device = next(model.parameters()).device
    opt = make_optimizer(model, loop.hp)
    start, history, elapsed = 0, [], 0.0
    state = torch.load(loop.resume_path, weights_only=False) if loop.resume_path.exists() else loop.start_state
    if state is not None:
        distributed.load_full_states(model, opt, state["model"], state["optimizer"])
        start, history, elapsed = state["step"], state["history"], state["elapsed_s"]
    resumed_from = start
    task = progress.add_task(loop.name.upper(), total=loop.total_steps, completed=start) if progress else None

    def save(step, path):
        model_state, opt_state = distributed.full_states(model, opt)  # every rank: FSDP2 gathers
        if ranks.main:
            atomic_torch_save({"model": model_state, "optimizer": opt_state, "step": step, "history": history,
                               "elapsed_s": elapsed + time.perf_counter() - t0, "stage": loop.name}, path)
        distributed.barrier(ranks)

    t0 = time.perf_counter()
    model.train()
    for step in range(start, loop.total_steps):
        if step in loop.save_at and step > 0:
            save(step, loop.save_at[step])
        lr = loop.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        rows = loop.batches.rows(step)
        parts = split.parts(rows, loop.batches.whole)
        loss_sum, n_targets, stats = torch.zeros((), device=device), 0, {}
        for i, (part, counted) in enumerate(parts):
            with distributed.no_sync(net, last=i == len(parts) - 1):
                loss, n, stats = loop.batches.loss(part)
                if not counted:
                    loss, n = loss * 0.0, 0
                loss.backward()
            loss_sum, n_targets = loss_sum + loss.detach(), n_targets + n
        loss_sum, n_targets = distributed.all_sum(loss_sum, n_targets, ranks)
        for p in model.parameters():  # DDP and FSDP2 average over ranks: the step's gradient is their sum / targets
            if p.grad is not None:
                p.grad.mul_(split.world / n_targets)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), loop.hp.get("grad_clip", 1.0))
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % loop.log_every == 0 or step == loop.total_steps - 1:
            if loop.batches.step_stats:
                stats = {**stats, **loop.batches.step_stats(rows)}
            history.append({"step": step, "lr": lr, "loss": float(loss_sum) / n_targets, "grad_norm": float(grad_norm),
                            **stats})
        if progress:
            progress.update(task, advance=1)
        if (step + 1) % loop.checkpoint_every == 0 and step + 1 < loop.total_steps:
            save(step + 1, loop.resume_path)
    if loop.total_steps in loop.save_at:
        save(loop.total_steps, loop.save_at[loop.total_steps])
    model.eval()
    return {"history": history, "elapsed_s": elapsed + time.perf_counter() - t0, "resumed_from": resumed_from}


# -- PT and CPT: next-token loss on token windows --------------------------------------------------------
def lm_loss(model, windows: torch.Tensor, autocast: bool, reduction: str = "mean") -> torch.Tensor:
    x, y = windows[:, :-1], windows[:, 1:]
    with autocast_for(x.device, autocast):
        logits = model(x)
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction=reduction)


def n_sequences(tokens: int, block_size: int) -> int:
    """Sequences of block_size that make `tokens` (rounded to the nearest whole sequence, at least one)."""
    return max(1, round(tokens / block_size))


def batch_rows(step: int, batch_size: int, n_items: int) -> np.ndarray:
    """Items [s*B, (s+1)*B) of a stage's sequence of n_items (the last batch may be short)."""
    return np.arange(step * batch_size, min((step + 1) * batch_size, n_items))


def pt_batches(net, stream, n_seqs: int, batch_size: int, device, autocast: bool) -> Batches:
    """Step s reads general-text sequences [s*B, (s+1)*B) of the stream."""
    def loss(rows):
        windows = torch.from_numpy(stream.windows(rows)).to(device)
        return lm_loss(net, windows, autocast, "sum"), len(rows) * (windows.shape[1] - 1), {}
    return Batches(lambda step: batch_rows(step, batch_size, n_seqs), loss)


def cpt_schedule(n_replay: int, n_domain: int, seed: int) -> np.ndarray:
    """Which source each CPT sequence comes from (0 replay, 1 domain): exactly n_replay + n_domain, shuffled."""
    source = np.concatenate([np.zeros(n_replay, np.int8), np.ones(n_domain, np.int8)])
    np.random.default_rng([seed, 7]).shuffle(source)
    return source


def cpt_batches(net, replay_stream, replay_start: int, domain_stream, source: np.ndarray, batch_size: int,
                device, autocast: bool) -> Batches:
    """CPT sequences mix replayed general text (continuing the PT stream) with domain text in exact counts."""
    replay_index = np.cumsum(source == 0) - 1  # the k-th replay sequence reads stream window replay_start + k
    domain_index = np.cumsum(source == 1) - 1

    def loss(rows):
        parts = [replay_stream.windows([replay_start + replay_index[i]]) if source[i] == 0
                 else domain_stream.windows([domain_index[i]]) for i in rows]
        windows = torch.from_numpy(np.concatenate(parts)).to(device)
        return lm_loss(net, windows, autocast, "sum"), len(rows) * (windows.shape[1] - 1), {}
    return Batches(lambda step: batch_rows(step, batch_size, len(source)), loss,
                   step_stats=lambda rows: {"domain_share": float(source[rows].mean())})


# -- SFT: loss on answer tokens only --------------------------------------------------------------------
def encode_example(tok, item: tasks.Item, eos_id: int, max_len: int) -> tuple[list[int], int]:
    """(prompt + completion + EOS ids, number of prompt tokens), cut to max_len + 1 tokens."""
    prompt = tok.encode(item.prompt).ids
    completion = tok.encode(item.completion).ids + [eos_id]
    return (prompt + completion)[: max_len + 1], len(prompt)


def padded_batch(seqs: list[list[int]], loss_from: list[int], pad_id: int, device):
    """Right-pad sequences; mask[i, t] is True where target t (= token t+1) is trained on."""
    T = max(len(s) for s in seqs) - 1
    x = torch.full((len(seqs), T + 1), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.bool)
    for i, (s, start) in enumerate(zip(seqs, loss_from)):
        x[i, : len(s)] = torch.tensor(s)
        mask[i, start - 1: len(s) - 1] = True  # targets from the first completion token to the last token
    return x.to(device), mask.to(device)


def epoch_order(n: int, epochs: int, seed: int, stream: str) -> np.ndarray:
    """Example indices for all epochs, each epoch a fresh permutation: step s takes a slice of it."""
    rng = np.random.default_rng([seed, zlib.crc32(stream.encode())])
    return np.concatenate([rng.permutation(n) for _ in range(epochs)])


def sft_batches(net, encoded: list[tuple[list[int], int]], order: np.ndarray, batch_size: int, eos_id: int,
                device, autocast: bool) -> Batches:
    """Step s trains on examples order[s*B : (s+1)*B]; the loss is the mean over the batch's answer tokens."""
    def loss(rows):
        seqs, loss_from = [encoded[order[i]][0] for i in rows], [encoded[order[i]][1] for i in rows]
        x, mask = padded_batch(seqs, loss_from, eos_id, device)
        with autocast_for(device, autocast):
            logits = net(x[:, :-1])
        nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="none")
        n_targets = sum(max(0, len(s) - start) for s, start in zip(seqs, loss_from))  # mask.sum(), without a GPU sync
        return (nll * mask.reshape(-1)).sum(), n_targets, {}
    return Batches(lambda step: batch_rows(step, batch_size, len(order)), loss)


# -- RL: GRPO with a verifiable 0/1 reward and a KL penalty to the reference ---------------------------------
def token_logprobs(model, x: torch.Tensor, autocast: bool, temperature: float = 1.0) -> torch.Tensor:
    """log p(x[:, t+1] | x[:, :t+1]) for every t, of the distribution softmax(logits / temperature): (B, T-1)."""
    with autocast_for(x.device, autocast):
        logits = model(x[:, :-1])
    return torch.log_softmax(logits.float() / temperature, dim=-1).gather(-1, x[:, 1:, None]).squeeze(-1)


def answer_reward(completion: str, item: tasks.Item) -> float:
    return float(tasks.is_correct(completion, item))


def grpo_batches(model, ref_model, tok, prompts: list[tasks.Item], order: np.ndarray, hp: dict, eos_id: int,
                 seed: int, device, autocast: bool, reward_fn=answer_reward, net=None) -> Batches:
    """Each step: `prompts_per_step` prompts x `group_size` samples; advantage = reward standardised in its group.

    One gradient step per batch of samples (on-policy), so the PPO ratio is 1 and needs no clipping;
    the KL to the reference uses the k3 estimator (Schulman), unbiased and always >= 0. Log-probabilities are
    those of the sampling distribution (logits / temperature), for the policy and the reference alike, so the
    gradient is that of the policy the samples came from.
    """
    P, G = hp["prompts_per_step"], hp["group_size"]
    encoded_prompts = [tok.encode(it.prompt).ids for it in prompts]
    net = model if net is None else net

    def loss_of(step_rows):
        step = int(step_rows[0]) // P
        rows = order[step_rows]
        items = [prompts[i] for i in rows for _ in range(G)]
        prompt_ids = [encoded_prompts[i] for i in rows for _ in range(G)]
        gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
        model.eval()
        completions = model.generate(prompt_ids, hp["max_new_tokens"], eos_id, hp["temperature"], gen, autocast)
        model.train()
        texts = tok.decode_batch(completions)
        rewards = torch.tensor([reward_fn(t, it) for t, it in zip(texts, items)], device=device).view(-1, G)
        adv = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)).view(-1)
        finished = [len(c) < hp["max_new_tokens"] for c in completions]
        seqs = [p + c + ([eos_id] if f else []) for p, c, f in zip(prompt_ids, completions, finished)]
        x, mask = padded_batch(seqs, [len(p) for p in prompt_ids], eos_id, device)
        T = hp["temperature"]
        logp = token_logprobs(net, x, autocast, T)
        with torch.no_grad():
            ref_logp = token_logprobs(ref_model, x, autocast, T)
        log_ratio = ref_logp - logp
        kl = torch.exp(log_ratio) - log_ratio - 1
        per_token = -adv[:, None] * logp + hp["kl_weight"] * kl
        n_tok = mask.sum().clamp(min=1)
        loss = (per_token * mask).sum() / n_tok
        informative = float((rewards.std(1) > 0).float().mean())  # groups with a learning signal
        return loss, 1, {"reward": float(rewards.mean()), "kl": float((kl.detach() * mask).sum() / n_tok),
                         "informative_groups": informative}
    return Batches(lambda step: batch_rows(step, P, len(order)), loss_of, whole=True)
