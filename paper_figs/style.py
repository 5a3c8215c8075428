"""One style for every paper figure: Agg backend, Okabe–Ito colours, labelled axes with units, log token axes,
the posterior-predictive curve (median + 90% band, dashed where it extrapolates) and atomic PNG/PDF output."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: figures are files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from dynsim.config import STAGE_LABEL  # noqa: E402,F401 (the figures read it as style.STAGE_LABEL)
from dynsim.files import atomic_write  # noqa: E402

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
CYCLE = [OKABE_ITO[c] for c in ("blue", "vermillion", "green", "purple", "orange", "sky", "black")]
# pairs (after SFT, after SFT+RL) for one model size: light then dark of one hue family
STAGE_PAIRS = [(OKABE_ITO["sky"], OKABE_ITO["blue"]), (OKABE_ITO["orange"], OKABE_ITO["vermillion"]),
               (OKABE_ITO["purple"], OKABE_ITO["green"])]
STAGE_COLOURS = {"sft": OKABE_ITO["sky"], "rl": OKABE_ITO["blue"]}
BAND = 0.90  # the credible level of every band
DPI = 150  # PNG resolution

plt.rcParams.update({
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.25, "grid.linewidth": 0.5, "figure.dpi": 100, "savefig.dpi": 150,
})

METRIC_LABEL = {"greedy_pass@1": "greedy pass@1", "maj@16": "maj@16", "pass@16": "pass@16", "0shot_acc": "0-shot",
                "acc": "accuracy", "loss": "loss"}


def count_label(v: float) -> str:
    """1.6e11 → '160B', 1e5 → '100K', 4 → '4' (tick labels; the axis label names the unit)."""
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= div:
            x = v / div
            return f"{x:.3g}{unit}"
    return f"{v:.3g}"


def log_axis(ax, base: int = 10, counts: bool = True):
    """Log-scaled x axis with compact count labels (20B, 100K; epochs as plain numbers on base 2)."""
    ax.set_xscale("log", base=base)
    if base == 2:
        ax.xaxis.set_major_locator(LogLocator(base=2))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: count_label(v) if counts else f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())


def accuracy_label(what: str, metric: str) -> str:
    if metric == "loss":
        return f"{what} loss (nats/token)"
    return f"{what} accuracy, {METRIC_LABEL.get(metric, metric)} (%)"


def draw_curve(ax, x, med, lo, hi, inside, color, label=None, alpha=0.18):
    """Median line and 90% band; solid (and a stronger band) where inside the data's range, dashed outside."""
    x, med, lo, hi, inside = map(np.asarray, (x, med, lo, hi, inside))
    ax.fill_between(x, lo, hi, color=color, alpha=alpha * 0.55, linewidth=0)
    ax.plot(x, med, color=color, linestyle=(0, (4, 2.5)), linewidth=1.3, label=None if inside.any() else label)
    if inside.sum() == 1:  # data at one setting only: its band as an error bar, so it stays visible
        i = int(np.flatnonzero(inside)[0])
        ax.errorbar([x[i]], [med[i]], yerr=[[med[i] - lo[i]], [hi[i] - med[i]]], color=color, linewidth=1.8,
                    capsize=3, label=label)
    elif inside.any():
        m = np.where(inside, med, np.nan)
        ax.fill_between(x, np.where(inside, lo, np.nan), np.where(inside, hi, np.nan), color=color,
                        alpha=alpha, linewidth=0)
        ax.plot(x, m, color=color, linewidth=1.8, label=label)


def draw_points(ax, x, y, color, label=None):
    if len(x):
        ax.scatter(x, y, s=26, color=color, edgecolor="black", linewidth=0.6, zorder=5, label=label)


def legend_handles(observed: bool = True):
    """Proxy entries that explain the encoding once per figure."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    grey = "#555555"
    return [Line2D([], [], color=grey, linewidth=1.8, label="median (within data range)"),
            Line2D([], [], color=grey, linewidth=1.3, linestyle=(0, (4, 2.5)), label="median (extrapolated)"),
            Patch(facecolor=grey, alpha=0.25, label=f"{BAND:.0%} predictive band")] + (
           [Line2D([], [], marker="o", linestyle="", markerfacecolor=grey, markeredgecolor="black",
                   label="observed")] if observed else [])


def panel_info(fig) -> list[dict]:
    """Titles and axis labels of a figure's panels, as drawn (what the tests compare with the brief)."""
    return [dict(title=ax.get_title(), xlabel=ax.get_xlabel(), ylabel=ax.get_ylabel(), xscale=ax.get_xscale())
            for ax in fig.axes if ax.get_visible() and ax.axison]


def save(fig, out_dir, name: str, title: str) -> list[Path]:
    """PNG and PDF, each written atomically (dynsim.files)."""
    paths = []
    for ext in ("png", "pdf"):
        # no bbox_inches="tight": the layout already fits (finish() uses tight_layout), and tight saving
        # draws every figure twice
        paths.append(atomic_write(Path(out_dir) / f"{name}.{ext}", lambda tmp: fig.savefig(
            tmp, format=ext, dpi=DPI, metadata={"Title": title, "Creator": "dynsim figs"})))
    plt.close(fig)
    return paths
