"""A testbed's scaling figure: loss and per-task accuracy against pretraining tokens, one line per model size.

Every size the Dataset holds is drawn, the sizes the fit held out too (their points hollow: the check, not the
evidence), and one size beyond the largest. Where a size's checkpoints lie along one learning-rate schedule
(Pythia's 300BT cosine run), its curve follows that schedule, un-annealed until its end; elsewhere (the OLMo
ladder's and Gadre et al.'s separate runs) it joins annealed runs of every length. Solid where the fit saw
configurations like it, dashed beyond.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from dynsim.config import RunConfig

from . import style
from .common import Context, finish

NAME = "scaling"
TITLE = "Scaling: loss and per-task accuracy vs pretraining tokens, per model size"
MAX_PANELS = 12
GRID_POINTS = 15


def _size_label(n: int) -> str:
    """190M, 1.28B: three significant digits (a testbed's sizes are exact parameter counts)."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _schedule(ctx: Context, size: int) -> int:
    """The one schedule total a size's checkpoints share (0: annealed runs of several lengths)."""
    totals = {c.pretrain_schedule for c in ctx.configs if c.size == size and not c.annealed}
    return totals.pop() if len(totals) == 1 else 0


def _panels(ctx: Context) -> list[tuple[str, str]]:
    """(task, metric): the losses first, then the accuracies, in the Dataset's task order."""
    seen = ctx.df[["task", "metric"]].drop_duplicates()
    pairs = [tuple(p) for p in seen.itertuples(index=False)]
    order = {t: i for i, t in enumerate(ctx.table.names)}
    metrics = ctx.post.meta["observed"]["metrics"]  # a testbed's other metrics (the ladder's bpb) are not modelled
    pairs = [p for p in pairs if p[0] in order and p[1] in metrics]
    return sorted(pairs, key=lambda p: (p[1] != "loss", order[p[0]]))[:MAX_PANELS]


def make(ds, posterior, out_dir):
    ctx = Context(ds, posterior)
    ctx.span = ctx._span(ctx.post.observed)  # solid = within the fit's range, so held-out sizes read as tests
    fitted = {c.name for c in ctx.post.observed}
    sizes = sorted({c.size for c in ctx.configs if not c.has_cpt and not c.has_sft})
    sizes.append(int(sizes[-1] * 4))  # one step beyond the largest: the extrapolation a user asks for
    lo = min(c.pretrain for c in ctx.configs)
    hi = max(max(c.pretrain for c in ctx.configs) * 2, 1)
    panels = _panels(ctx)
    ncol = min(4, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(max(3.1 * ncol, 7.0), 2.8 * nrow + 0.9), squeeze=False)
    n_obs = 0
    for p, (task, metric) in enumerate(panels):
        ax = axes.flat[p]
        for j, size in enumerate(sizes):
            color = style.CYCLE[j % len(style.CYCLE)]
            total = _schedule(ctx, size)
            grid = np.geomspace(lo, total or hi, GRID_POINTS)
            cfgs = [RunConfig(size=size, pretrain=int(d), pretrain_schedule=total if total and d < total * 0.999
                              else 0) for d in grid]
            ctx.curve(ax, cfgs, grid, task, metric, color)
            got, vals = ctx.points(cfgs[0], ("pretrain", "pretrain_schedule"), task, metric)
            x = np.array([c.pretrain for c in got], float)
            held = np.array([c.name not in fitted for c in got], bool)
            style.draw_points(ax, x[~held], vals[~held], color)
            if held.any():
                ax.scatter(x[held], vals[held], s=26, facecolor="white", edgecolor=color, linewidth=1.2, zorder=5)
            n_obs += len(x)
        style.log_axis(ax)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("pretraining tokens seen (log scale)")
        ax.set_ylabel("loss (nats/token)" if metric == "loss" else f"{metric} (%)")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    handles = [Line2D([], [], color=style.CYCLE[j % len(style.CYCLE)], linewidth=2,
                      label=f"{_size_label(s)} parameters" + (" (beyond the data)" if j == len(sizes) - 1 else ""))
               for j, s in enumerate(sizes)]
    handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="#555555",
                          label="held out of the fit"))
    held_rule = ctx.post.meta.get("held_out", {}).get("rule")
    cap = ctx.caption(
        "Loss and per-task accuracy of base models against pretraining tokens seen, one line per model size"
        + (f"; the fit held out {held_rule}: hollow points, predicted not fitted" if held_rule else ""), n_obs,
        "Curves along a size's one learning-rate schedule where its checkpoints share one, else annealed runs")
    return finish(fig, ctx, NAME, TITLE, cap, out_dir, n_obs, extra_handles=handles)
