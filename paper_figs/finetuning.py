"""Fine-tuning along pretraining: each task's accuracy against the pretraining tokens of the checkpoint that was
fine-tuned, one line per SFT data set and one for the base model (Amuro & Char's design: every checkpoint of one
model fine-tuned on each of several data sets). A data set is drawn on a task only where some run measured that
pair, so each panel shows what the data can check; the fine-tuned runs the fit held out are hollow points.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from . import style
from .common import Context, finish

NAME = "finetuning"
TITLE = "Fine-tuning along pretraining: accuracy per task vs the checkpoint's pretraining tokens, per SFT data set"
MAX_PANELS = 12
GRID_POINTS = 15


def _tasks(ctx: Context) -> list[tuple[str, str]]:
    """(task, metric) of the downstream numbers, in the Dataset's task order."""
    seen = ctx.df[ctx.df.task.isin(ctx.table.downstream)][["task", "metric"]].drop_duplicates()
    order = {t: i for i, t in enumerate(ctx.table.names)}
    return sorted((tuple(p) for p in seen.itertuples(index=False)), key=lambda p: order[p[0]])[:MAX_PANELS]


def make(ds, posterior, out_dir):
    ctx = Context(ds, posterior)
    ctx.span = ctx._span(ctx.post.observed)  # solid = within the fit's range, so held-out runs read as tests
    fitted = {c.name for c in ctx.post.observed}
    base = min((c for c in ctx.configs if not c.has_sft), key=lambda c: c.pretrain)
    sizes = {c.size for c in ctx.configs}
    total = base.pretrain_schedule or max(c.pretrain for c in ctx.configs)
    tuned = {c.sft_data: c for c in ctx.configs if c.has_sft}  # one fine-tuning recipe per data set
    series = [("base model", None)] + [(data, tuned[data]) for data in sorted(tuned)]
    colors = {label: style.CYCLE[j % len(style.CYCLE)] for j, (label, _) in enumerate(series)}
    panels = _tasks(ctx)
    ncol = min(4, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(max(3.1 * ncol, 7.0), 2.8 * nrow + 0.9), squeeze=False)
    grid = np.geomspace(min(c.pretrain for c in ctx.configs), total, GRID_POINTS)
    n_obs = 0
    for p, (task, metric) in enumerate(panels):
        ax = axes.flat[p]
        for label, recipe in series:
            like = base if recipe is None else recipe
            measured = ctx.points(like, ("pretrain", "pretrain_schedule"), task, metric)[0]
            if recipe is not None and not measured:
                continue
            cfgs = [like.replace(pretrain=int(d), pretrain_schedule=total if d < total * 0.999 else 0)
                    for d in grid]
            ctx.curve(ax, cfgs, grid, task, metric, colors[label])
            got, vals = ctx.points(cfgs[0], ("pretrain", "pretrain_schedule"), task, metric)
            x = np.array([c.pretrain for c in got], float)
            held = np.array([c.name not in fitted for c in got], bool)
            style.draw_points(ax, x[~held], vals[~held], colors[label])
            if held.any():
                ax.scatter(x[held], vals[held], s=26, facecolor="white", edgecolor=colors[label], linewidth=1.2,
                           zorder=5)
            n_obs += len(x)
        style.log_axis(ax)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("checkpoint's pretraining tokens (log)")
        ax.set_ylabel(f"{metric} (%)")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    handles = [Line2D([], [], color=colors[label], linewidth=2,
                      label=label if recipe is None else f"fine-tuned on {label}") for label, recipe in series]
    handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="#555555",
                          label="held out of the fit"))
    held_rule = ctx.post.meta.get("held_out", {}).get("rule")
    cap = ctx.caption(
        f"Accuracy of {len(sizes)} model size(s) before and after fine-tuning, against the pretraining tokens of the "
        "fine-tuned checkpoint, one line per SFT data set where a run measured it on the task"
        + (f"; the fit held out {held_rule}: hollow points, predicted not fitted" if held_rule else ""), n_obs,
        "Checkpoints along the run's one learning-rate schedule")
    return finish(fig, ctx, NAME, TITLE, cap, out_dir, n_obs, extra_handles=handles)
