"""Fig. 6: downstream accuracy vs SFT epochs, after SFT and after SFT+RL."""

from __future__ import annotations

from . import style
from .common import Context, Series, downstream_grid, finish, series_handles, settings

NAME = "fig6"
TITLE = "Fig. 6: downstream accuracy vs SFT epochs"


def make(ds, posterior, out_dir):
    ctx = Context(ds, posterior)
    grid = ctx.grid("sft_epochs", default=(1, 32), lo_factor=1, hi_factor=4, integer=True)
    series = []
    for stage in ("sft", "rl"):
        cfgs = [ctx.base(stage, sft_epochs=int(e)) for e in grid]
        series.append(Series(style.STAGE_LABEL[stage], style.STAGE_COLOURS[stage], cfgs, ("sft_epochs",), cfgs[0]))
    fig, n_obs = downstream_grid(ctx, grid, series, "SFT epochs (log₂ scale)", log_base=2)
    cap = ctx.caption("Downstream ID and OOD accuracy against SFT epochs over a fixed set of SFT examples, after SFT "
                      "and after SFT+RL", n_obs, settings(ctx.ref, skip=("sft",))
                      + f"; SFT examples {style.count_label(ctx.ref.sft_examples)}")
    return finish(fig, ctx, NAME, TITLE, cap, out_dir, n_obs, extra_handles=series_handles(series))
