"""Fig. 7: downstream accuracy vs SFT examples, after SFT and after SFT+RL."""

from __future__ import annotations

from . import style
from .common import Context, Series, downstream_grid, finish, series_handles, settings

NAME = "fig7"
TITLE = "Fig. 7: downstream accuracy vs SFT examples"


def make(ds, posterior, out_dir):
    ctx = Context(ds, posterior)
    ref = ctx.ref.sft_examples
    grid = ctx.grid("sft_examples", default=(ref / 4, ref * 8), integer=True)
    series = []
    for stage in ("sft", "rl"):
        cfgs = [ctx.base(stage, sft_examples=int(n)) for n in grid]
        series.append(Series(style.STAGE_LABEL[stage], style.STAGE_COLOURS[stage], cfgs, ("sft_examples",), cfgs[0]))
    fig, n_obs = downstream_grid(ctx, grid, series, "SFT examples (log scale)")
    cap = ctx.caption("Downstream ID and OOD accuracy against the number of SFT examples (epochs held fixed), after "
                      "SFT and after SFT+RL", n_obs, settings(ctx.ref, skip=("sft",))
                      + f"; SFT epochs {ctx.ref.sft_epochs}")
    return finish(fig, ctx, NAME, TITLE, cap, out_dir, n_obs, extra_handles=series_handles(series))
