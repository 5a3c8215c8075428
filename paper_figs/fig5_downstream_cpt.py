"""Fig. 5: downstream accuracy vs CPT domain tokens, after SFT and after SFT+RL."""

from __future__ import annotations

from . import style
from .common import Context, Series, downstream_grid, finish, series_handles, settings

NAME = "fig5"
TITLE = "Fig. 5: downstream accuracy vs CPT domain tokens, after SFT and after SFT+RL"


def make(ds, posterior, out_dir):
    ctx = Context(ds, posterior)
    ref_dom = ctx.ref.cpt_domain or ctx.ref.pretrain // 4
    replay = ctx.ref.cpt_replay
    grid = ctx.grid("cpt_domain", default=(ref_dom / 40, ref_dom * 2))
    series = []
    for stage in ("sft", "rl"):
        cfgs = [ctx.base(stage, cpt_replay=replay, cpt_domain=int(d)) for d in grid]
        series.append(Series(style.STAGE_LABEL[stage], style.STAGE_COLOURS[stage], cfgs, ("cpt_domain",), cfgs[0]))
    fig, n_obs = downstream_grid(ctx, grid, series, "CPT domain tokens (log scale)")
    cap = ctx.caption("Downstream ID and OOD accuracy against the domain tokens of continued pretraining (replay "
                      "budget held fixed), after SFT and after SFT+RL", n_obs, settings(ctx.ref, skip=("cpt",))
                      + (f"; CPT replay {style.count_label(replay)} tokens" if replay else "; pure-domain CPT"))
    return finish(fig, ctx, NAME, TITLE, cap, out_dir, n_obs, extra_handles=series_handles(series))
