"""Overtraining: post-training accuracy vs pretraining tokens per parameter (Springer et al. 2025)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from dynsim.config import format_size
from dynsim.forward import TPP_OPTIMAL

from . import style
from .common import Context, finish, settings

NAME = "overtraining"
TITLE = "Overtraining: post-training accuracy vs pretraining tokens per parameter"


def make(ds, posterior, out_dir):
    ctx = Context(ds, posterior)
    tpps = [c.pretrain / c.size for c in ctx.configs if c.has_sft]
    lo, hi = (min(tpps) / 4, max(tpps) * 4) if tpps else (TPP_OPTIMAL / 4, TPP_OPTIMAL * 32)
    grid = np.unique(np.concatenate([np.geomspace(min(lo, 5.0), max(hi, 640.0), 17), tpps]))
    tasks = ctx.downstream_tasks()
    metric = ctx.downstream_metrics()[0]
    stages = ("sft", "rl")
    fig, axes = plt.subplots(len(stages), len(tasks), figsize=(4.2 * len(tasks), 2.9 * len(stages) + 0.8),
                             squeeze=False)
    sizes = ctx.downstream_sizes()
    n_obs = 0
    for i, stage in enumerate(stages):
        for j, (kind, task) in enumerate(tasks):
            ax = axes[i, j]
            for k, size in enumerate(sizes):
                cfgs = [ctx.base(stage, size=size, pretrain=int(round(t * size))) for t in grid]
                n_obs += ctx.curve(ax, cfgs, grid, task, metric, style.CYCLE[k], vary=("pretrain",), base=cfgs[0],
                                   xfun=lambda c: c.pretrain / c.size)
            ax.axvline(TPP_OPTIMAL, color="#777777", linestyle=":", linewidth=0.9)
            style.log_axis(ax, counts=False)
            ax.set_title(f"{kind}: {task}, {style.STAGE_LABEL[stage]}")
            ax.set_xlabel("pretraining tokens per parameter (log scale)")
            ax.set_ylabel(style.accuracy_label(kind, metric))
    handles = [Line2D([], [], color=style.CYCLE[k], linewidth=2, label=f"{format_size(s)} parameters")
               for k, s in enumerate(sizes)]
    handles.append(Line2D([], [], color="#777777", linestyle=":", label=f"{TPP_OPTIMAL:g} tokens/parameter"))
    cap = ctx.caption(
        "Downstream accuracy after SFT and after SFT+RL against pretraining tokens per parameter, one line per "
        f"model size; the dotted line marks {TPP_OPTIMAL:g} tokens per parameter (Chinchilla-optimal), where the "
        "model's overtraining erosion of post-training gains starts (Springer et al. 2025)", n_obs,
        settings(ctx.ref, skip=("size", "pretrain")))
    return finish(fig, ctx, NAME, TITLE, cap, out_dir, n_obs, extra_handles=handles)
