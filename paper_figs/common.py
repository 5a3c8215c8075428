"""What every figure script shares: the FigureRecord it returns, and a Context over one results Dataset and one
posterior (observed points of a curve, the posterior-predictive band along it, the data's range, the
reference configuration the curves vary around)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from dynsim.config import AFTER_PT, COUNT_FIELDS, DATA_KEY, STAGE, STAGES, RunConfig, format_config
from dynsim.posterior import usual, usual_pair
from dynsim.forward import KINDS, metric_kind
from dynsim.results import config_columns, run_configs, to_long

from . import style

RANGE_FIELDS = COUNT_FIELDS
DOWNSTREAM_METRICS = ("greedy_pass@1", "maj@16", "pass@16")
MAX_DRAWS = 800  # evenly thinned posterior draws per curve: 5%/95% quantiles to ~1 point, a figure in seconds


def thinned(post, max_draws: int):
    """The posterior with at most max_draws draws, evenly spaced over the chains."""
    if post.n_draws <= max_draws:
        return post
    step = -(-post.n_draws // max_draws)
    return type(post)({k: v[::step] for k, v in post.params.items()}, post.meta, post.path)


@dataclasses.dataclass
class FigureRecord:
    name: str  # fig2, ..., forgetting
    title: str  # the figure's suptitle (also the PNG/PDF Title metadata)
    caption: str
    files: list[Path]
    panels: list[dict]  # per panel: title, xlabel, ylabel, xscale (as drawn)
    n_observed: int  # observed points drawn

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["files"] = [str(p) for p in self.files]
        return d


class _CommonNoise:
    """An rng whose normal draws are shared along a curve (one per posterior draw): each point's predictive
    distribution is unchanged, but the median and band edges run smoothly instead of jittering point to point."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def standard_normal(self, shape, dtype=np.float64):
        return self._shared(self.rng.standard_normal(shape[0], dtype=dtype), shape)

    def standard_t(self, nu, size):
        return self._shared(self.rng.standard_t(nu, size=size[0]), size)

    def chisquare(self, df, size):  # a run's Student-t deviation from the loss law (Posterior.predict)
        return self._shared(self.rng.chisquare(df, size=size[0]), size)

    @staticmethod
    def _shared(z, shape):
        return np.broadcast_to(z.reshape((shape[0],) + (1,) * (len(shape) - 1)), shape).copy()

    def spawn(self, n: int) -> list["_CommonNoise"]:
        """Independent streams for blocks of posterior draws (Posterior.predict noises each block apart)."""
        return [_CommonNoise(g) for g in self.rng.spawn(n)]


class Context:
    """One results Dataset and one posterior, with the lookups the figures need."""

    def __init__(self, ds, posterior, seed: int = 0, max_draws: int = MAX_DRAWS):
        self.ds, self.seed = ds, seed
        self.post = thinned(posterior, max_draws)
        df = to_long(ds)
        if "corpus" in df.columns and df["corpus"].nunique() > 1:  # a Dataset comparing pretraining corpora
            self.corpus = df["corpus"].iloc[0]
            df = df[df["corpus"] == self.corpus]
        else:
            self.corpus = None
        self.df = df
        self.configs = run_configs(df[config_columns(df)].drop_duplicates())
        self.span = self._span(self.configs)
        self.table = posterior.table
        self.ref = self._reference()
        self.data_title = ds.attrs.get("title", "results")
        self.data_hash = ds.attrs.get("data_hash", "?")

    # -- tasks and metrics -------------------------------------------------------------------------
    def headline(self, kind: str) -> str | None:
        """The task of a kind that a figure shows: an average over benchmarks where there is one."""
        tasks = [t for t, k in zip(self.table.names, self.table.kinds) if k == kind]
        if not tasks:
            return None
        n_comp = {t: len(self.table.chance[self.table.names.index(t)]) for t in tasks}
        avg = [t for t in tasks if n_comp[t] > 1 or t.lower().endswith("_avg")]
        return (avg or tasks)[0]

    def upstream_target(self) -> tuple[str, str] | None:
        """(task, metric) for 'upstream accuracy': the upstream average if the calibration has one."""
        obs_metrics = self.post.meta.get("observed", {}).get("metrics", [])
        cloze = [m for m in obs_metrics if metric_kind(m)[0] == "cloze"] or ["0shot_acc"]
        for kind in ("upstream_avg", "upstream"):
            t = self.headline(kind)
            if t:
                return t, cloze[0]
        t = self.headline("text")
        return (t, "loss") if t else None

    def upstream_tasks(self) -> list[str]:
        return list(self.table.upstream)

    def downstream_metrics(self) -> list[str]:
        obs = self.post.meta.get("observed", {}).get("metrics", [])
        ms = [m for m in DOWNSTREAM_METRICS if m in obs] or [m for m in obs if metric_kind(m)[0] in
                                                             ("greedy", "pass", "maj", "mean")]
        return ms or ["greedy_pass@1"]

    def downstream_tasks(self) -> list[tuple[str, str]]:
        """[(kind, task)] for ID and OOD, where the calibration has them."""
        return [(k, t) for k in KINDS if (t := self.headline(k))]

    # -- the reference configuration -----------------------------------------------------------------
    def _reference(self) -> RunConfig:
        """The configuration the curves vary around: per stage and field, the most frequent setting in the data
        (EvoLM: 1B-160BT-8+42BT-100Kep1-100Kep8); the posterior's configurations where the data lack a stage."""
        pools = [self.configs, self.post.observed]

        def mode(key, keep, rule=usual):
            for pool in pools:
                vals = [key(c) for c in pool if keep(c)]
                if vals:
                    return rule(vals)
            return None

        down = lambda c: c.post_trained  # noqa: E731
        size = mode(lambda c: c.size, down) or mode(lambda c: c.size, lambda c: True)
        pretrain = (mode(lambda c: c.pretrain, lambda c: down(c) and c.size == size and c.annealed)
                    or mode(lambda c: c.pretrain, lambda c: c.annealed))
        counts = {}
        for s in AFTER_PT:  # a post-training stage the data lack as the one it starts from (RL as SFT), or at its
            found = mode(s.counts, s.ran, usual_pair if s.budget == "examples" else usual)  # typical setting
            if not found:
                found = STAGE[s.follows].counts(RunConfig(1, 1, **counts)) if s.follows else \
                    s.typical if s.tuned else (0,) * len(s.fields)
            counts |= dict(zip(s.fields, found))
        data = mode(lambda c: c.sft_data, lambda c: c.has(DATA_KEY)) or ""
        return RunConfig(size=size, pretrain=pretrain, sft_data=data, **counts)

    def base(self, stage: str, **changes) -> RunConfig:
        """The reference configuration cut at a stage (one of STAGES), with changes."""
        return self.ref.without(*STAGES[STAGES.index(stage) + 1:]).replace(**changes)

    def downstream_sizes(self, most: int = 3) -> list[int]:
        sizes = sorted({c.size for c in self.configs if c.post_trained}) or [self.ref.size]
        if self.ref.size in sizes and len(sizes) > most:
            sizes = sorted(sorted(sizes, key=lambda s: abs(np.log(s / self.ref.size)))[:most])
        return sizes[:most]

    # -- ranges and grids ------------------------------------------------------------------------------
    @staticmethod
    def _span(configs) -> dict[str, tuple[int, int]]:
        out = {}
        for f in RANGE_FIELDS:
            vals = [getattr(c, f) for c in configs if getattr(c, f)]
            out[f] = (min(vals), max(vals)) if vals else None
        return out

    def inside(self, cfg: RunConfig) -> bool:
        """Whether every stage setting of cfg lies within the range the Dataset covers (else: extrapolation)."""
        for f in RANGE_FIELDS:
            v = getattr(cfg, f)
            if not v:
                continue
            r = self.span[f]
            if r is None or not (r[0] * (1 - 1e-9) <= v <= r[1] * (1 + 1e-9)):
                return False
        return True

    def grid(self, field: str, default: tuple[float, float], lo_factor=0.5, hi_factor=2.0, n=17,
             integer=False) -> np.ndarray:
        """Log grid over the data's range of a field widened by factors (default span where the data has none),
        with the range's ends and the observed values included so solid segments meet the points."""
        r = self.span.get(field)
        lo, hi = (r[0] * lo_factor, r[1] * hi_factor) if r else default
        lo, hi = min(lo, default[0]), max(hi, default[1])
        g = np.geomspace(lo, hi, n)
        extra = [v for c in self.configs if (v := getattr(c, field))]
        g = np.unique(np.concatenate([g, extra]))
        if integer:
            g = np.unique(np.maximum(1, np.round(g)))
        return g

    # -- data and prediction -------------------------------------------------------------------------------
    def points(self, base: RunConfig, vary: tuple[str, ...], task: str, metric: str):
        """Observed values of (task, metric) at configurations equal to base except in the `vary` fields:
        (configs, values), one per observed seed."""
        df = self.df[(self.df["task"] == task) & (self.df["metric"] == metric)]
        for f in config_columns(df):
            if f not in vary:
                df = df[df[f] == getattr(base, f)]
        cfgs = run_configs(df)
        return cfgs, df["value"].to_numpy(float)

    def predictive(self, configs, task: str, metric: str, noise: bool = True):
        """Median, 5% and 95% of the posterior-predictive draws at each configuration."""
        draws = self.draws(configs, [task] * len(configs), [metric] * len(configs), noise)
        lo, med, hi = np.percentile(draws, [50 - 50 * style.BAND, 50, 50 + 50 * style.BAND], axis=0)
        return med, lo, hi

    def draws(self, configs, tasks, metrics, noise: bool = True):
        rng = _CommonNoise(self.seed)
        kw = {"corpus": self.corpus} if self.corpus else {}
        return self.post.predict(list(configs), list(tasks), list(metrics), rng=rng, noise=noise, **kw)

    def curve(self, ax, configs, x, task, metric, color, label=None, vary=(), base=None, xfun=None, alpha=0.18,
              noise: bool = True):
        """Draw one series: the predictive band along `configs` (positions x) and the observed points on it.
        Returns the number of observed points drawn."""
        med, lo, hi = self.predictive(configs, task, metric, noise=noise)
        inside = [self.inside(c) for c in configs]
        style.draw_curve(ax, x, med, lo, hi, inside, color, label, alpha=alpha)
        n = 0
        if vary:
            cfgs, vals = self.points(base or configs[0], vary, task, metric)
            xo = np.array([xfun(c) if xfun else getattr(c, vary[0]) for c in cfgs], dtype=float)
            keep = xo > 0  # a stage not run (0 tokens, 0 examples) has no place on a log axis
            style.draw_points(ax, xo[keep], vals[keep], color)
            n = int(keep.sum())
        return n

    # -- captions ----------------------------------------------------------------------------------------
    def caption(self, what: str, n_observed: int, settings: str = "") -> str:
        s = what.rstrip(".") + "."
        if settings:
            s += f" {settings.rstrip('.')}."
        s += (f" Lines: posterior-predictive median; bands: {style.BAND:.0%} predictive interval; solid where the "
              f"configuration lies within the range of the Dataset, dashed (lighter band) where the curve extrapolates.")
        if n_observed:
            s += f" Points: {n_observed} observed values from '{self.data_title}' (data {self.data_hash})."
        else:
            s += (f" The Dataset '{self.data_title}' (data {self.data_hash}) has no observations for this figure: "
                  f"it shows the prediction alone.")
        if self.corpus:
            s += f" Pretraining corpus: {self.corpus}."
        return s


def name(cfg: RunConfig) -> str:
    return format_config(cfg)


def finish(fig, ctx: Context, fig_name: str, title: str, caption: str, out_dir, n_observed: int,
           legend_axes=None, extra_handles=()) -> FigureRecord:
    """Suptitle, one legend explaining the encoding, save PNG + PDF, and the record."""
    fig.suptitle(title, fontsize=11, fontweight="bold")
    if not n_observed:  # said in the caption too; here so that the image alone cannot be misread
        fig.text(0.5, 1 - 0.36 / fig.get_figheight(), f"no observations in '{ctx.data_title}' for this figure: "
                 "prediction only", ha="center", va="top", fontsize=8.5, style="italic", color="#444444")
    handles = list(extra_handles) + style.legend_handles(observed=bool(n_observed))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    rows = (len(handles) + 3) // 4
    top = (0.32 if n_observed else 0.5) / fig.get_figheight()
    fig.tight_layout(rect=(0, (0.25 + 0.2 * rows) / fig.get_figheight(), 1, 1 - top))
    panels = style.panel_info(fig)
    files = style.save(fig, out_dir, fig_name, title)
    return FigureRecord(fig_name, title, caption, files, panels, n_observed)


@dataclasses.dataclass
class Series:
    label: str
    color: str
    configs: list  # one RunConfig per x
    vary: tuple  # the fields that move along the curve (observed points must match base in the others)
    base: RunConfig | None = None
    xfun: object = None  # config → x position of an observed point (default: the first vary field)


def downstream_grid(ctx: Context, x, series: list[Series], xlabel: str, log_base: int = 10, counts=True,
                    metrics=None, reference=None):
    """Rows ID and OOD task, columns the downstream metrics; every series in every panel.
    Returns (fig, observed points drawn)."""
    tasks = ctx.downstream_tasks()
    metrics = metrics or ctx.downstream_metrics()
    fig, axes = plt.subplots(len(tasks), len(metrics), figsize=(max(3.2 * len(metrics), 7.0), 2.7 * len(tasks) + 0.8),
                             squeeze=False)
    n_obs = 0
    for i, (kind, task) in enumerate(tasks):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            for s in series:
                n_obs += ctx.curve(ax, s.configs, x, task, metric, s.color, vary=s.vary, base=s.base, xfun=s.xfun,
                                   alpha=0.18 if len(series) <= 2 else 0.11)
            if reference is not None:
                ax.axvline(reference, color="#777777", linewidth=0.8, linestyle=":")
            style.log_axis(ax, base=log_base, counts=counts)
            ax.set_title(f"{kind}: {task}, {style.METRIC_LABEL.get(metric, metric)}")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(style.accuracy_label(kind, metric))
    return fig, n_obs


def series_handles(series: list[Series]):
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=s.color, linewidth=2, label=s.label) for s in series]


def settings(cfg: RunConfig, skip=()) -> str:
    """'1B, 160BT, CPT 8+42BT, SFT 100Kep1, RL 100Kep8' (the fixed stage settings of a figure)."""
    from dynsim.config import format_size, format_tokens

    parts = []
    if "size" not in skip:
        parts.append(f"{format_size(cfg.size)} parameters")
    if "pretrain" not in skip:
        parts.append(f"pretrained on {format_tokens(cfg.pretrain)}")
    for s in AFTER_PT:
        if s.ran(cfg) and s.key not in skip:
            parts.append(f"{s.title} {s.write(s.counts(cfg))}" + (" (replay+domain)" if s.budget == "mix" else ""))
    return "Fixed: " + ", ".join(parts) if parts else ""
