"""Fig. 4: upstream accuracy vs CPT tokens, for replay and pure-domain mixes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from dynsim.config import format_tokens

from . import style
from .common import Context, finish, settings

NAME = "fig4"
TITLE = "Fig. 4: upstream accuracy vs CPT domain tokens, pure-domain and replay mixes"


def mixes(ctx: Context) -> list[tuple[str, int]]:
    """(label, replay tokens): pure domain, and the reference replay budget held fixed as domain tokens grow."""
    out = [("pure domain (no replay)", 0)]
    replay = ctx.ref.cpt_replay or (ctx.ref.cpt_domain // 5 if ctx.ref.cpt_domain else 0)
    if replay:
        out.append((f"{format_tokens(replay)} replay + domain", replay))
    return out


def make(ds, posterior, out_dir):
    ctx = Context(ds, posterior)
    target = ctx.upstream_target()
    ref_dom = ctx.ref.cpt_domain or ctx.ref.pretrain // 4
    grid = ctx.grid("cpt_domain", default=(ref_dom / 40, ref_dom * 2))
    panels = [target] if target else []
    if target and target[1] != "loss" and "loss" in ctx.df["metric"].values:  # measured losses: show the loss
        panels.append((target[0], "loss"))
    elif target:  # else two single tasks beside the average (a latent loss unconstrained by data reads poorly)
        panels += [(t, target[1]) for t in ctx.upstream_tasks() if t != target[0]][:2]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    pt = ctx.base("pt")
    n_obs, handles = 0, []
    for ax, (task, metric) in zip(axes.flat, panels):
        for j, (label, replay) in enumerate(mixes(ctx)):
            color = style.CYCLE[j]
            cfgs = [pt.replace(cpt_replay=replay, cpt_domain=int(d)) for d in grid]
            n = ctx.curve(ax, cfgs, grid, task, metric, color, vary=("cpt_domain",), base=cfgs[0],
                          noise=metric != "loss")
            n_obs += n if metric != "loss" else 0
            if ax is axes.flat[0]:
                handles.append(Line2D([], [], color=color, linewidth=2, label=label))
        med, lo, hi = ctx.predictive([pt], task, metric, noise=metric != "loss")
        ax.axhline(med[0], color="#555555", linestyle=":", linewidth=1)
        ax.axhspan(lo[0], hi[0], color="#999999", alpha=0.10, linewidth=0)
        ref_pts = ctx.points(pt, (), task, metric)[1] if metric != "loss" else np.array([])
        if len(ref_pts):
            ax.scatter([grid[0]] * len(ref_pts), ref_pts, marker="D", s=22, color="#555555", edgecolor="black",
                       linewidth=0.6, zorder=5)
            n_obs += len(ref_pts)
        style.log_axis(ax)
        ax.set_xlabel("CPT domain tokens (log scale)")
        if metric == "loss":
            ax.set_title("general-text loss (model's latent loss)")
            ax.set_ylabel("general-text loss (nats/token)")
        else:
            ax.set_title(task + (" (mean of upstream tasks)" if task == panels[0][0] and len(panels) > 1 else ""))
            ax.set_ylabel(style.accuracy_label("upstream", metric))
    handles.append(Line2D([], [], color="#555555", linestyle=":", label=f"before CPT ({pt.name}), 90% band grey"))
    cap = ctx.caption(
        "Upstream accuracy after continued pretraining on a domain corpus, against domain tokens, for pure-domain CPT "
        "and for a fixed replay budget of general text; the dotted line and grey band are the model before CPT "
        "(diamonds: its observed value, drawn at the left edge)"
        + ("; the loss panel's band is the credible interval of the model's general-text loss"
           if any(m == "loss" for _, m in panels) else ""), n_obs, settings(pt))
    return finish(fig, ctx, NAME, TITLE, cap, out_dir, n_obs, extra_handles=handles)
