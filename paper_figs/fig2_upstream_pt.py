"""Fig. 2: upstream accuracy vs pretraining tokens, one line per model size."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from dynsim.config import format_size

from . import style
from .common import Context, finish

NAME = "fig2"
TITLE = "Fig. 2: upstream accuracy vs pretraining tokens"


def sizes(ctx: Context) -> list[int]:
    """Sizes with pretraining data, plus EvoLM's 0.5B-style half step below the smallest (extrapolated)."""
    s = sorted({c.size for c in ctx.configs if not c.has_cpt and not c.has_sft}) or [ctx.ref.size]
    return [s[0] // 2] + s if len(s) < 4 else s


def make(ds, posterior, out_dir):
    ctx = Context(ds, posterior)
    target = ctx.upstream_target()
    tasks = ([target] if target else []) + [(t, target[1]) for t in ctx.upstream_tasks() if target and t != target[0]]
    tasks = tasks[:7]
    grid = ctx.grid("pretrain", default=(ctx.ref.pretrain / 16, ctx.ref.pretrain * 2))
    ncol = 4 if len(tasks) > 4 else len(tasks)
    nrow = (len(tasks) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(max(3.1 * ncol, 7.0), 2.8 * nrow + 0.6), squeeze=False)
    n_obs, handles = 0, []
    ss = sizes(ctx)
    for i, (task, metric) in enumerate(tasks):
        ax = axes.flat[i]
        for j, size in enumerate(ss):
            color = style.CYCLE[j % len(style.CYCLE)]
            cfgs = [ctx.base("pt", size=size, pretrain=int(d)) for d in grid]
            n_obs += ctx.curve(ax, cfgs, grid, task, metric, color, vary=("pretrain",), base=cfgs[0])
            if i == 0:
                handles.append(Line2D([], [], color=color, linewidth=2, label=f"{format_size(size)} parameters"))
        style.log_axis(ax)
        ax.set_title(task + (" (mean of upstream tasks)" if i == 0 and len(tasks) > 1 else ""))
        ax.set_xlabel("pretraining tokens (log scale)")
        ax.set_ylabel(style.accuracy_label("upstream", metric) if metric != "loss" else "loss (nats/token)")
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    cap = ctx.caption(
        "Upstream (0-shot cloze) accuracy of base models against pretraining tokens, one line per model size",
        n_obs, "Models pretrained to the end of their learning-rate schedule, no CPT or post-training")
    return finish(fig, ctx, NAME, TITLE, cap, out_dir, n_obs, extra_handles=handles)
