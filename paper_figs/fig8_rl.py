"""Fig. 8: downstream accuracy vs RL epochs and vs RL examples (after SFT+RL), one line per metric."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from . import style
from .common import Context, finish, settings

NAME = "fig8"
TITLE = "Fig. 8: downstream accuracy vs RL epochs and RL examples"


def make(ds, posterior, out_dir):
    ctx = Context(ds, posterior)
    rl = ctx.base("rl")
    axes_spec = [
        ("rl_epochs", ctx.grid("rl_epochs", default=(1, 32), lo_factor=1, hi_factor=4, integer=True),
         "RL epochs (log₂ scale)", 2),
        ("rl_examples", ctx.grid("rl_examples", default=(rl.rl_examples / 4, rl.rl_examples * 8), integer=True),
         "RL examples (log scale)", 10),
    ]
    tasks, metrics = ctx.downstream_tasks(), ctx.downstream_metrics()
    fig, axes = plt.subplots(len(tasks), 2, figsize=(8.4, 2.9 * len(tasks) + 0.8), squeeze=False)
    n_obs = 0
    for i, (kind, task) in enumerate(tasks):
        for j, (field, grid, xlabel, base) in enumerate(axes_spec):
            ax = axes[i, j]
            cfgs = [rl.replace(**{field: int(v)}) for v in grid]
            for k, metric in enumerate(metrics):
                n_obs += ctx.curve(ax, cfgs, grid, task, metric, style.CYCLE[k], vary=(field,), base=rl)
            style.log_axis(ax, base=base)
            ax.set_title(f"{kind}: {task}")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{kind} accuracy after SFT+RL (%)")
    handles = [Line2D([], [], color=style.CYCLE[k], linewidth=2, label=style.METRIC_LABEL.get(m, m))
               for k, m in enumerate(metrics)]
    cap = ctx.caption("Downstream ID and OOD accuracy after SFT+RL against RL epochs (left, RL examples fixed) and "
                      "against RL examples (right, RL epochs fixed), one line per metric", n_obs,
                      settings(rl, skip=("rl",)) + f"; RL {style.count_label(rl.rl_examples)} examples × "
                      f"{rl.rl_epochs} epochs where not varied")
    return finish(fig, ctx, NAME, TITLE, cap, out_dir, n_obs, extra_handles=handles)
