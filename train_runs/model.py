"""A LLaMA-style decoder of any size: RMSNorm, SwiGLU, RoPE, optional grouped-query attention, tied embeddings.

Attention is `F.scaled_dot_product_attention` (flash / memory-efficient kernels on CUDA, a fused kernel on CPU).
Training runs causal attention with no mask (the fast path); generation keeps a per-layer KV cache and a
key-padding mask so that a batch of left-padded prompts of different lengths decodes together.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dynsim.errors import UserError


@dataclass
class ModelConfig:
    vocab_size: int = 512
    n_layer: int = 4
    d_model: int = 64
    n_head: int = 4
    n_kv_head: int = 0  # 0 = n_head (plain multi-head attention); fewer = grouped-query attention
    ffn_hidden: int = 0  # 0 = about 8/3 * d_model, rounded up to a multiple of 16 (LLaMA's SwiGLU width)
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self):
        self.n_kv_head = self.n_kv_head or self.n_head
        self.ffn_hidden = self.ffn_hidden or 16 * math.ceil(8 * self.d_model / 3 / 16)
        if self.d_model % self.n_head or self.n_head % self.n_kv_head:
            raise UserError(f"d_model ({self.d_model}) must divide into n_head ({self.n_head}) heads, "
                             f"and n_head into n_kv_head ({self.n_kv_head}) groups")
        if (self.d_model // self.n_head) % 2:
            raise UserError(f"head size {self.d_model // self.n_head} must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def n_params(self) -> int:
        """Exact parameter count (tied embedding counted once), without building the model."""
        d, kv = self.d_model, self.n_kv_head * self.head_dim
        attn = d * d + 2 * d * kv + d * d  # q, k, v, o
        mlp = 3 * d * self.ffn_hidden  # gate, up, down
        return self.vocab_size * d + self.n_layer * (attn + mlp + 2 * d) + d

    def to_dict(self) -> dict:
        return asdict(self)


def config_for_params(target: int, vocab_size: int = 512, head_dim: int = 16, max_seq_len: int = 256,
                      aspect: float = 24.0) -> ModelConfig:
    """A model shape whose exact parameter count (tied embedding included) is within ~1% of `target`.

    Depth and width (a multiple of head_dim) are searched for d_model / n_layer near `aspect` (tiny models
    train best wide and shallow); the SwiGLU width, free in [2, 4] x d_model in steps of 8, then absorbs the
    coarse steps of d_model so that sizes such as 0.1M, 0.3M, 1M come out nearly exact.
    E.g. with vocab 512: 0.1M -> 2 layers x 48, 1M -> 5 layers x 128.
    """
    if target < 10_000:
        raise UserError(f"model size {target} is too small: the miniature needs at least 10K parameters")
    best, best_score = None, math.inf
    for n_layer in range(1, 65):
        for d in range(head_dim, 8193, head_dim):
            shape = dict(vocab_size=vocab_size, n_layer=n_layer, d_model=d, n_head=d // head_dim, max_seq_len=max_seq_len)
            without_mlp = ModelConfig(**shape, ffn_hidden=8).n_params() - n_layer * 3 * d * 8
            hidden = 8 * round((target - without_mlp) / (3 * d * n_layer) / 8)
            if without_mlp > target:
                break
            if not 2 * d <= hidden <= 4 * d:
                continue
            cfg = ModelConfig(**shape, ffn_hidden=hidden)
            score = (abs(math.log(cfg.n_params() / target)) + 0.1 * abs(math.log(d / n_layer / aspect))
                     + 0.02 * abs(math.log(hidden / (8 * d / 3))))
            if score < best_score:
                best, best_score = cfg, score
    if best is None:
        raise UserError(f"no model shape of about {target} parameters with vocab {vocab_size}")
    return best


NAMED_SHAPE_SLACK = 1.3  # a named shape's parameters over the run's size: GPT-3 "125M" is 125M at vocab 50K


def model_config(config, hp: dict) -> ModelConfig:
    """The recipe's named shape for the run's size (recipes/llama.toml), else one searched for its parameter count.
    A named shape must be the size the run's name says, within NAMED_SHAPE_SLACK (a 200M run under a recipe with
    shapes for 125M and 350M would otherwise train the 125M shape and be recorded as 200M)."""
    m, vocab = hp["model"], hp["data"]["vocab_size"]
    if not m["n_layer"]:
        return config_for_params(config.size, vocab, m["head_dim"], m["max_seq_len"], m["aspect"])
    if not (m["d_model"] and m["n_head"]):
        raise UserError("a recipe's named shape needs n_layer, d_model and n_head ([model])")
    cfg = ModelConfig(vocab_size=vocab, n_layer=m["n_layer"], d_model=m["d_model"], n_head=m["n_head"],
                      n_kv_head=m["n_kv_head"], ffn_hidden=m["ffn_hidden"], max_seq_len=m["max_seq_len"])
    if abs(math.log(cfg.n_params() / config.size)) > math.log(NAMED_SHAPE_SLACK):
        raise UserError(f"{config.name}: the recipe's shape for this size ({cfg.n_layer} layers x {cfg.d_model}) has "
                        f"{cfg.n_params() / 1e6:,.0f}M parameters, not {config.size / 1e6:,.0f}M: name a size the "
                        "recipe has a shape for, or set [model] n_layer = 0")
    return cfg


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, (cfg.n_head + 2 * cfg.n_kv_head) * cfg.head_dim, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x, cos, sin, cache=None, layer=0, attn_mask=None):
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split([self.n_head * self.head_dim, self.n_kv_head * self.head_dim,
                                     self.n_kv_head * self.head_dim], dim=-1)
        q = apply_rope(q.view(B, T, self.n_head, self.head_dim).transpose(1, 2), cos, sin)
        k = apply_rope(k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2), cos, sin)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        if self.n_kv_head != self.n_head:  # GQA: each key/value head serves a group of query heads
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        if attn_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(y.transpose(1, 2).reshape(B, T, -1))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.ffn_hidden, bias=False)
        self.down = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, cos, sin, cache=None, layer=0, attn_mask=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, layer, attn_mask)
        return x + self.mlp(self.mlp_norm(x))


def rope_tables(head_dim: int, max_len: int, theta: float):
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """Rotate pairs (first half, second half) of each head by position-dependent angles (x: B, H, T, D)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


class KVCache:
    """Pre-allocated keys/values for every layer, plus which slots hold a real (non-padding) token."""

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, device, dtype):
        shape = (cfg.n_layer, batch, cfg.n_kv_head, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.valid = torch.zeros(batch, max_len, dtype=torch.bool, device=device)
        self.length = 0  # slots filled so far
        self.max_len = max_len

    def update(self, layer, k, v):
        start, T = self.length, k.shape[2]
        self.k[layer, :, :, start:start + T] = k
        self.v[layer, :, :, start:start + T] = v
        return self.k[layer, :, :, :start + T], self.v[layer, :, :, :start + T]


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith(("attn.out.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx, positions=None, cache: KVCache | None = None, key_valid=None):
        """Logits (B, T, vocab). Without a cache: plain causal attention from position 0.

        With a cache: `idx` continues the cached sequence; `positions` (B, T) are each row's RoPE positions and
        `key_valid` (B, T) marks which of the new tokens are real (left padding is not).
        """
        B, T = idx.shape
        x = self.embed(idx)
        attn_mask = None
        if positions is None:
            if T > self.cfg.max_seq_len:
                raise ValueError(f"sequence of {T} tokens exceeds max_seq_len {self.cfg.max_seq_len}")
            cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        else:
            cos, sin = self.rope_cos[positions].unsqueeze(1), self.rope_sin[positions].unsqueeze(1)
        if cache is not None:
            start = cache.length
            if start + T > cache.max_len:
                raise ValueError(f"KV cache of {cache.max_len} slots is full")
            cache.valid[:, start:start + T] = True if key_valid is None else key_valid
            slot = torch.arange(start + T, device=idx.device)
            causal = slot[None, :] <= (start + torch.arange(T, device=idx.device))[:, None]  # (T, S)
            # a query may look at earlier real tokens; padding queries look at themselves only (never at nothing,
            # which would make softmax NaN and poison the cache)
            self_slot = slot[None, :] == (start + torch.arange(T, device=idx.device))[:, None]
            attn_mask = ((causal[None] & cache.valid[:, None, :start + T]) | self_slot[None]).unsqueeze(1)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, cache, i, attn_mask)
        if cache is not None:
            cache.length += T
        x = self.norm(x)
        return F.linear(x, self.embed.weight)  # tied input/output embedding

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], max_new_tokens: int, eos_id: int, temperature: float = 0.0,
                 generator: torch.Generator | None = None, autocast: bool = True) -> list[list[int]]:
        """Continue each prompt until EOS or max_new_tokens; greedy when temperature == 0, else sampling.

        Prompts are left-padded into one batch. Returns the new tokens of each row, without the EOS.
        """
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("generate needs at least one non-empty prompt")
        device = self.embed.weight.device
        B, P = len(prompts), max(len(p) for p in prompts)
        if P + max_new_tokens > self.cfg.max_seq_len:
            raise ValueError(f"prompt ({P}) + new tokens ({max_new_tokens}) exceed max_seq_len {self.cfg.max_seq_len}")
        idx = torch.full((B, P), eos_id, dtype=torch.long, device=device)
        valid = torch.zeros(B, P, dtype=torch.bool, device=device)
        for i, p in enumerate(prompts):
            idx[i, P - len(p):] = torch.tensor(p, dtype=torch.long)
            valid[i, P - len(p):] = True
        positions = (valid.long().cumsum(1) - 1).clamp(min=0)
        # keys/values are stored in the dtype attention computes in, so SDPA never sees mixed dtypes
        cache = KVCache(self.cfg, B, P + max_new_tokens, device, torch.bfloat16 if autocast else self.embed.weight.dtype)
        with autocast_for(device, autocast):
            logits = self(idx, positions, cache, valid)[:, -1].float()
        pos = positions[:, -1:]
        out = torch.empty(B, max_new_tokens, dtype=torch.long, device=device)
        done = torch.zeros(B, dtype=torch.bool, device=device)
        n = 0
        for n in range(1, max_new_tokens + 1):
            if temperature > 0:
                probs = torch.softmax(logits / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            else:
                nxt = logits.argmax(-1)
            out[:, n - 1] = nxt
            done |= nxt == eos_id
            if n == max_new_tokens or bool(done.all()):
                break
            pos = pos + 1
            with autocast_for(device, autocast):
                logits = self(nxt[:, None], pos, cache)[:, -1].float()
        result = []
        for row in out[:, :n].tolist():
            result.append(row[:row.index(eos_id)] if eos_id in row else row)
        return result


def autocast_for(device, enabled: bool = True) -> torch.autocast:
    """bf16 autocast (CUDA: always worth it; CPU: the recipe decides, see recipes/miniature.toml)."""
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)
