"""Evaluation of a checkpoint: upstream (held-out loss, likelihood-scored cloze) and downstream (generation).

Upstream, every stage:
    general_text / domain_text   loss (mean nats per token over held-out windows) and ppl = exp(loss)
    hellaswag_like               0shot_acc: the true ending of a held-out WordNet gloss among 3 endings of
                                 other glosses, scored by log-likelihood per character (lm-eval's acc_norm); chance 25%
Downstream, SFT and RL checkpoints, on every task of tasks.py (eval split):
    greedy_pass@1                one greedy answer
    maj@k                        the most frequent extracted answer of k samples at temperature 1 is right
    pass@k                       any of the k samples is right
All accuracies in percent; each metric carries its item count and number correct.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

from dynsim.errors import UserError
from train_runs import tasks
from train_runs.model import GPT, autocast_for


@torch.no_grad()
def text_loss(model: GPT, tokens: np.ndarray, block_size: int, max_tokens: int, autocast: bool,
              batch_size: int = 64) -> tuple[float, int]:
    """Mean next-token loss (nats) over consecutive held-out windows; returns (loss, tokens scored)."""
    device = model.embed.weight.device
    n_windows = max(1, min(len(tokens) - 1, max_tokens) // block_size)
    if len(tokens) < block_size + 1:
        raise UserError(f"held-out text of {len(tokens)} tokens is shorter than one block ({block_size + 1})")
    total, count = 0.0, 0
    for start in range(0, n_windows, batch_size):
        rows = [tokens[i * block_size: i * block_size + block_size + 1] for i in range(start, min(n_windows, start + batch_size))]
        x = torch.from_numpy(np.stack(rows).astype(np.int64)).to(device)
        with autocast_for(device, autocast):
            logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="sum")
        total += float(loss)
        count += x[:, 1:].numel()
    return total / count, count


# -- likelihood-scored multiple choice ----------------------------------------------------------------
def cloze_items(docs: list[str], n: int, seed: int = 0) -> list[dict]:
    """HellaSwag-like items from held-out documents: context = first half of a gloss, 4 endings, 1 true.

    Distractor endings are the second halves of other held-out glosses, so every option is fluent English and
    only a model that follows the context's meaning prefers the true one.
    """
    rng = random.Random(f"cloze/{seed}")
    splits = []
    for d in docs:
        words = d.split()
        if 8 <= len(words) <= 60:
            cut = len(words) // 2
            splits.append((" ".join(words[:cut]), " " + " ".join(words[cut:])))
    if len(splits) < 4:
        raise UserError(f"need at least 4 held-out documents of 8-60 words for cloze items, have {len(splits)}")
    rng.shuffle(splits)
    items = []
    for i, (context, ending) in enumerate(splits[:n]):
        others = rng.sample([s[1] for j, s in enumerate(splits) if j != i][:200], 3)
        options = [ending] + others
        rng.shuffle(options)
        items.append({"context": context, "options": options, "label": options.index(ending)})
    return items


@torch.no_grad()
def cloze_accuracy(model: GPT, tok, items: list[dict], autocast: bool, batch_size: int = 128) -> tuple[int, int]:
    """(n_correct, n_items): the option with the highest log-likelihood per character wins."""
    device = model.embed.weight.device
    eos = tok.token_to_id("<|endoftext|>")
    rows = []  # (item, option, ids, n_context_tokens)
    for i, it in enumerate(items):
        ctx = [eos] + tok.encode(it["context"]).ids  # EOS first: the model saw documents start after an EOS
        for j, opt in enumerate(it["options"]):
            ids = (ctx + tok.encode(opt).ids)[-model.cfg.max_seq_len:]
            rows.append((i, j, ids, len(ids) - len(tok.encode(opt).ids)))
    scores = np.full((len(items), 4), -np.inf)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        T = max(len(r[2]) for r in chunk)
        x = torch.full((len(chunk), T), eos, dtype=torch.long)
        for k, r in enumerate(chunk):
            x[k, : len(r[2])] = torch.tensor(r[2])
        x = x.to(device)
        with autocast_for(device, autocast):
            logits = model(x[:, :-1])
        logp = torch.log_softmax(logits.float(), -1).gather(-1, x[:, 1:, None]).squeeze(-1).cpu()
        for k, (i, j, ids, n_ctx) in enumerate(chunk):
            scores[i, j] = float(logp[k, n_ctx - 1: len(ids) - 1].sum()) / len(items[i]["options"][j])
    correct = sum(int(np.argmax(scores[i]) == it["label"]) for i, it in enumerate(items))
    return correct, len(items)


# -- generation tasks -----------------------------------------------------------------------------------
def generate_all(model: GPT, prompts: list[list[int]], max_new_tokens: int, eos_id: int, temperature: float,
                 batch_size: int, generator, autocast: bool) -> list[list[int]]:
    """Generate for many prompts in batches of similar length (less padding), returning results in order."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        for i, c in zip(rows, model.generate([prompts[i] for i in rows], max_new_tokens, eos_id, temperature,
                                             generator, autocast)):
            out[i] = c
    return out


def downstream(model: GPT, tok, task: str, n_items: int, k: int, hp: dict, seed: int, autocast: bool) -> list[dict]:
    """greedy_pass@1, maj@k and pass@k of one task on its first n_items evaluation items."""
    eos = tok.token_to_id("<|endoftext|>")
    device = model.embed.weight.device
    items = tasks.make_items(task, "eval", n_items)
    prompts = [tok.encode(it.prompt).ids for it in items]
    greedy = tok.decode_batch(generate_all(model, prompts, hp["max_new_tokens"], eos, 0.0, hp["batch_size"], None, autocast))
    n_greedy = sum(tasks.is_correct(c, it) for c, it in zip(greedy, items))
    metrics = [dict(task=task, metric="greedy_pass@1", value=100 * n_greedy / len(items), n_items=len(items),
                    n_correct=n_greedy)]
    if k > 0:
        gen = torch.Generator(device=device).manual_seed(seed * 7919 + sum(map(ord, task)))
        samples = generate_all(model, [p for p in prompts for _ in range(k)], hp["max_new_tokens"], eos,
                               hp["sample_temperature"], hp["batch_size"], gen, autocast)
        answers = [tasks.extract_answer(t) for t in tok.decode_batch(samples)]
        n_maj = n_pass = 0
        for i, it in enumerate(items):
            mine = answers[i * k:(i + 1) * k]
            votes = Counter(a for a in mine if a is not None)
            n_maj += bool(votes) and votes.most_common(1)[0][0] == it.answer  # ties: the first answer reached
            n_pass += it.answer in mine
        metrics += [dict(task=task, metric=f"maj@{k}", value=100 * n_maj / len(items), n_items=len(items), n_correct=n_maj),
                    dict(task=task, metric=f"pass@{k}", value=100 * n_pass / len(items), n_items=len(items), n_correct=n_pass)]
    return metrics


def upstream(model: GPT, tok, general_heldout: np.ndarray, domain_heldout: np.ndarray, cloze: list[dict],
             hp: dict, block_size: int, autocast: bool) -> list[dict]:
    metrics = []
    for name, arr in (("general_text", general_heldout), ("domain_text", domain_heldout)):
        loss, n = text_loss(model, arr, block_size, hp["text_tokens"], autocast)
        metrics += [dict(task=name, metric="loss", value=loss, n_items=n),
                    dict(task=name, metric="ppl", value=math.exp(loss), n_items=n)]
    correct, n = cloze_accuracy(model, tok, cloze, autocast)
    metrics.append(dict(task="hellaswag_like", metric="0shot_acc", value=100 * correct / n, n_items=n, n_correct=correct))
    return metrics


def task_table(n_items: dict[str, int]) -> dict[str, dict]:
    """The record's `tasks` block: kind and chance (percent) of every task, with item counts."""
    table = {"general_text": {"kind": "text"}, "domain_text": {"kind": "text"},
             "hellaswag_like": {"kind": "upstream", "chance": 25.0}}
    for t in tasks.GENERATORS:
        table[t] = {"kind": tasks.KIND[t], "chance": round(tasks.CHANCE[t], 1)}
    for t, n in n_items.items():
        table[t]["n_items"] = n
    return table
