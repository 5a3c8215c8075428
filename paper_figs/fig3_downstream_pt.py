"""Fig. 3: downstream ID and OOD accuracy vs pretraining tokens, after SFT and after SFT+RL."""

from __future__ import annotations

from dynsim.config import format_size

from . import style
from .common import Context, Series, downstream_grid, finish, series_handles, settings

NAME = "fig3"
TITLE = "Fig. 3: downstream accuracy vs pretraining tokens, after SFT and after SFT+RL"


def make(ds, posterior, out_dir):
    ctx = Context(ds, posterior)
    grid = ctx.grid("pretrain", default=(ctx.ref.pretrain / 8, ctx.ref.pretrain * 2))
    series = []
    for i, size in enumerate(ctx.downstream_sizes()):
        light, dark = style.STAGE_PAIRS[i % len(style.STAGE_PAIRS)]
        for stage, color in (("sft", light), ("rl", dark)):
            cfgs = [ctx.base(stage, size=size, pretrain=int(d)) for d in grid]
            series.append(Series(f"{format_size(size)}, {style.STAGE_LABEL[stage]}", color, cfgs, ("pretrain",), cfgs[0]))
    fig, n_obs = downstream_grid(ctx, grid, series, "pretraining tokens (log scale)")
    cap = ctx.caption("Downstream in-domain (ID) and out-of-domain (OOD) accuracy against pretraining tokens, "
                      "after SFT and after SFT+RL, per model size", n_obs, settings(ctx.ref, skip=("size", "pretrain")))
    return finish(fig, ctx, NAME, TITLE, cap, out_dir, n_obs, extra_handles=series_handles(series))
