"""Forgetting: mean ratio of change of upstream accuracy after CPT (as in Sun & Dredze 2024, 'Amuro & Char')."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from dynsim.config import format_tokens

from . import style
from .common import Context, finish, settings

NAME = "forgetting"
TITLE = "Forgetting: mean ratio of change of upstream accuracy after CPT"


def ratio_draws(ctx: Context, before, after, tasks, metric):
    """Per posterior draw, the mean over tasks of (after − before) / before, in percent (model means, no
    measurement noise: both sides of the ratio come from the same draw)."""
    n, out = len(after), 0.0
    for t in tasks:
        d = ctx.draws(list(before) + list(after), [t] * 2 * n, [metric] * 2 * n, noise=False)
        b, a = d[:, :n], d[:, n:]
        out = out + 100.0 * (a - b) / np.maximum(b, 1e-9)
    return out / len(tasks)


def observed_ratio(ctx: Context, after_cfgs, tasks, metric):
    """Observed mean ratio of change at configurations where the Dataset has both the CPT model and its parent."""
    xs, ys = [], []
    for c in after_cfgs:
        parent = c.replace(cpt_replay=0, cpt_domain=0)
        r = []
        for t in tasks:
            a = ctx.points(c, (), t, metric)[1]
            b = ctx.points(parent, (), t, metric)[1]
            if len(a) and len(b):
                r.append(100.0 * (a.mean() - b.mean()) / b.mean())
        if r:
            xs.append(c)
            ys.append(float(np.mean(r)))
    return xs, ys


def make(ds, posterior, out_dir):
    ctx = Context(ds, posterior)
    target = ctx.upstream_target()
    metric = target[1] if target else "0shot_acc"
    tasks = ctx.upstream_tasks() or ([target[0]] if target else [])
    pt = ctx.base("pt")
    ref_dom = ctx.ref.cpt_domain or pt.pretrain // 4
    total = ctx.ref.cpt_replay + ref_dom
    dom_grid = ctx.grid("cpt_domain", default=(ref_dom / 40, ref_dom * 2))
    pt_grid = ctx.grid("pretrain", default=(pt.pretrain / 8, pt.pretrain * 2))
    replay = ctx.ref.cpt_replay
    mixes = [("pure domain", lambda d: (0, d))]
    if replay:
        mixes.append((f"{format_tokens(replay)} replay + domain", lambda d: (replay, d)))
    cpt_at = [(f"CPT {format_tokens(0, total)}", (0, total))]
    if replay:
        cpt_at.append((f"CPT {format_tokens(replay, ref_dom)}", (replay, ref_dom)))
    fig, axes = plt.subplots(1, 2, figsize=(9.2, 4.0))
    n_obs = 0
    handles = []
    panels = [(axes[0], dom_grid, "CPT domain tokens (log scale)", "cpt_domain",
               [(lab, [pt.replace(cpt_replay=f(int(d))[0], cpt_domain=f(int(d))[1]) for d in dom_grid])
                for lab, f in mixes]),
              (axes[1], pt_grid, "pretraining tokens of the model before CPT (log scale)", "pretrain",
               [(lab, [pt.replace(pretrain=int(d), cpt_replay=r, cpt_domain=dd) for d in pt_grid])
                for lab, (r, dd) in cpt_at])]
    for p, (ax, grid, xlabel, field, series) in enumerate(panels):
        for k, (label, cfgs) in enumerate(series):
            color = style.CYCLE[k]  # pure domain / with replay: same colours in both panels
            before = [c.replace(cpt_replay=0, cpt_domain=0) for c in cfgs]
            d = ratio_draws(ctx, before, cfgs, tasks, metric)
            lo, med, hi = np.percentile(d, [50 - 50 * style.BAND, 50, 50 + 50 * style.BAND], axis=0)
            style.draw_curve(ax, grid, med, lo, hi, [ctx.inside(c) for c in cfgs], color)
            ocfg = [c for c in ctx.configs if c.has_cpt and not c.has_sft and c.size == pt.size and
                    (c.cpt_replay == cfgs[0].cpt_replay and c.pretrain == pt.pretrain if field == "cpt_domain" else
                     (c.cpt_replay, c.cpt_domain) == (cfgs[0].cpt_replay, cfgs[0].cpt_domain))]
            xs, ys = observed_ratio(ctx, ocfg, tasks, metric)
            style.draw_points(ax, [getattr(c, field) for c in xs], ys, color)
            n_obs += len(ys)
            if p == 0:
                b_label = panels[1][4][k][0] if k < len(panels[1][4]) else ""
                handles.append(Line2D([], [], color=color, linewidth=2, label=f"{label} (b: {b_label})"))
        ax.axhline(0, color="#555555", linewidth=0.8)
        style.log_axis(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean ratio of change (%)")
        ax.set_title(("a. upstream change vs CPT domain tokens (" + format_tokens(pt.pretrain) + " base)") if p == 0
                     else "b. upstream change vs pretraining tokens, fixed CPT mixes")
    cap = ctx.caption(
        f"Forgetting after continued pretraining: the ratio of change (after − before) / before of upstream accuracy, "
        f"averaged over the {len(tasks)} upstream task families (as in Sun & Dredze 2024, 'Amuro and Char'), "
        "(a) against CPT domain tokens for pure-domain CPT and a fixed replay budget, (b) against the pretraining "
        "tokens of the model CPT starts from; bands are credible intervals of the model's mean (no measurement noise), "
        "points the same ratio from observed pairs of a CPT model and its parent", n_obs, settings(pt, skip=("pretrain",)))
    return finish(fig, ctx, NAME, TITLE, cap, out_dir, n_obs, extra_handles=handles)
