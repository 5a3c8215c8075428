"""The numbers of the miniature study's findings report (issue 6): each seed finding measured on the study's
Dataset, beside what its posterior says. Prints markdown that REPORT.md quotes.

    python studies/mini_evolm/findings.py [--data studies/mini_evolm/results.nc]
                                          [--posterior studies/mini_evolm/posterior.npz]

Observed numbers are means over the seeds a configuration has (n = seeds), in percent (loss in nats/token);
± is the binomial standard error of that mean over all its items. "ID" and "OOD" are the unweighted means of the
study's in-domain and out-of-domain tasks (greedy accuracy). Posterior columns are the posterior mean of the
model's expected value and its 90% interval (no measurement noise), so they answer "what does the fitted model
say the effect is", including for the blind-validation runs it never saw.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dynsim import forward
from dynsim import posterior as posteriors
from dynsim import results
from dynsim.config import parse_config

HERE = Path(__file__).resolve().parent
HUB_PT, HUB_CPT, HUB_SFT = "0.1M-8MT", "0.4+1.6MT", "5Kep3"
PT_AXIS = ["1MT", "2MT", "4MT", "8MT", "16MT", "32MT"]


class Study:
    """The study's observations (seed means) and posterior, looked up by run name."""

    def __init__(self, data, post):
        self.ds = results.load(data)
        df = results.to_long(self.ds)
        self.kind = dict(zip(self.ds.tasks.values, self.ds.task_kind.values))
        df["config"] = [results_name(r) for r in df.itertuples()]
        self.df = df
        self.post = posteriors.load(post) if post and Path(post).exists() else None
        self.tasks = {k: sorted(t for t, kk in self.kind.items() if kk == k) for k in ("ID", "OOD")}

    def obs(self, name: str, task: str, metric: str):
        """(mean over seeds, standard error, seeds) or None."""
        name = parse_config(name).name
        sel = self.df[(self.df.config == name) & (self.df.task == task) & (self.df.metric == metric)]
        if sel.empty:
            return None
        v = sel.value.to_numpy(float)
        n_items = sel.n_items.to_numpy(float)
        if metric == "loss" or not np.isfinite(n_items).all():
            se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
        else:
            p = v.mean() / 100
            se = 100 * float(np.sqrt(p * (1 - p) / n_items.sum()))
        return float(v.mean()), se, len(v)

    def obs_kind(self, name: str, kind: str):
        """Mean greedy accuracy over the tasks of one kind (ID / OOD), or None."""
        got = [self.obs(name, t, "greedy_pass@1") for t in self.tasks[kind]]
        if not got or any(g is None for g in got):
            return None
        m = np.mean([g[0] for g in got])
        se = float(np.sqrt(np.sum([g[1] ** 2 for g in got])) / len(got))
        return float(m), se, got[0][2]

    def pred(self, name: str, tasks: list[str], metric: str):
        """Posterior mean and 90% interval of the mean over `tasks` (no measurement noise), or None."""
        if self.post is None:
            return None
        cfg = parse_config(name)
        draws = self.post.predict([cfg] * len(tasks), tasks, [metric] * len(tasks), noise=False)
        avg = draws.mean(axis=1)
        lo, hi = np.quantile(avg, [0.05, 0.95])
        return float(avg.mean()), float(lo), float(hi)


def results_name(r) -> str:
    """A long-table row's run name."""
    from dynsim.config import RunConfig

    return RunConfig(**{d: int(getattr(r, d)) for d in results.CONFIG_DIMS}).name


def fmt_obs(o, digits=1) -> str:
    if o is None:
        return "—"
    m, se, n = o
    tail = f" ± {se:.{digits}f}" if np.isfinite(se) else ""
    return f"{m:.{digits}f}{tail}" + (f" (n={n})" if n > 1 else "")


def fmt_pred(p, digits=1) -> str:
    return "—" if p is None else f"{p[0]:.{digits}f} [{p[1]:.{digits}f}, {p[2]:.{digits}f}]"


def table(s: Study, rows: list[tuple[str, str]], cols: list[tuple[str, str, str]]) -> str:
    """rows: (label, run name); cols: (header, task-or-kind, metric). Observed and posterior per column."""
    head = "| run | " + " | ".join(f"{h} observed | {h} posterior" for h, _, _ in cols) + " |"
    out = [head, "|" + "---|" * (1 + 2 * len(cols))]
    for label, name in rows:
        cells = []
        for _, what, metric in cols:
            digits = 3 if metric == "loss" else 1
            if what in ("ID", "OOD"):
                o, p = s.obs_kind(name, what), s.pred(name, s.tasks[what], "greedy_pass@1")
            else:
                o, p = s.obs(name, what, metric), s.pred(name, [what], metric)
            cells += [fmt_obs(o, digits), fmt_pred(p, digits)]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


UP = [("general loss", "general_text", "loss"), ("cloze acc", "hellaswag_like", "0shot_acc")]
DOWN = [("ID", "ID", "greedy_pass@1"), ("OOD", "OOD", "greedy_pass@1")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE / "results.nc"))
    ap.add_argument("--posterior", default=str(HERE / "posterior.npz"))
    args = ap.parse_args(argv)
    s = Study(args.data, args.posterior)
    print(f"data {s.ds.attrs.get('data_hash')}; posterior "
          f"{(s.post.meta.get('data_hash'), s.post.meta['diagnostics'].get('rhat_max')) if s.post else 'none'}\n")
    print("ID tasks: " + ", ".join(s.tasks["ID"]) + "; OOD tasks: " + ", ".join(s.tasks["OOD"]) + "\n")

    print("### 1. Pretraining: diminishing returns in tokens per parameter (0.1M; 10-320 tokens/parameter)\n")
    print(table(s, [(f"{pt} ({int(float(pt[:-2]) * 10)} tok/param)", f"0.1M-{pt}") for pt in PT_AXIS], UP))
    print()
    print(table(s, [(f"{pt} + CPT + SFT", f"0.1M-{pt}-{HUB_CPT}-{HUB_SFT}") for pt in PT_AXIS]
                + [(f"{pt} + SFT (no CPT)", f"0.1M-{pt}-{HUB_SFT}") for pt in PT_AXIS], DOWN))

    print("\n### 2. CPT replay: forgetting of general text, and the downstream trade-off (0.1M-8MT, 2MT CPT)\n")
    mixes = ["none", "0+1MT", "0+2MT", "0.2+1.8MT", "0.4+1.6MT", "0.8+1.2MT"]
    name = lambda m, tail="": HUB_PT + ("" if m == "none" else f"-{m}") + tail  # noqa: E731
    print(table(s, [(m, name(m)) for m in mixes], UP))
    print()
    print(table(s, [(f"{m} + SFT", name(m, f"-{HUB_SFT}")) for m in mixes], DOWN))

    print("\n### 3. CPT on the domain before SFT (CPT 0.4+1.6MT vs none, SFT 5Kep3)\n")
    pts = [("0.1M", pt) for pt in PT_AXIS] + [("0.6M", "2MT"), ("0.6M", "4MT")]
    print(table(s, [(f"{sz}-{pt} {lab}", f"{sz}-{pt}{mid}-{HUB_SFT}") for sz, pt in pts
                    for lab, mid in (("no CPT", ""), ("CPT", f"-{HUB_CPT}"))], DOWN))

    print("\n### 4. SFT epochs and examples (hub 0.1M-8MT-0.4+1.6MT)\n")
    sfts = ["5Kep1", "5Kep3", "5Kep6", "1.25Kep3", "2.5Kep3", "10Kep3"]
    print(table(s, [(x, f"{HUB_PT}-{HUB_CPT}-{x}") for x in sfts], DOWN + UP))

    print("\n### 5. RL epochs and examples (from the hub SFT model)\n")
    rls = ["none", "256ep1", "256ep2", "256ep4", "128ep1", "512ep1"]
    print(table(s, [(x, f"{HUB_PT}-{HUB_CPT}-{HUB_SFT}" + ("" if x == "none" else f"-{x}")) for x in rls], DOWN))

    print("\n### 6. Overtraining: the post-training gain vs tokens per parameter (0.1M, no CPT)\n")
    print("gain = ID/OOD accuracy after SFT minus the base model's (its row in table 1 has no downstream numbers "
          "where the base model was not evaluated downstream)\n")
    print(table(s, [(f"{pt} base", f"0.1M-{pt}") for pt in PT_AXIS] +
                [(f"{pt} + SFT", f"0.1M-{pt}-{HUB_SFT}") for pt in PT_AXIS], DOWN))

    print("\n### 7. Forgetting across task families (MRC, Amuro & Char) after math fine-tuning\n")
    print(mrc(s))
    if s.post is not None:
        print("\n### The posterior's parameters the findings quote (median and 90% interval)\n")
        print(parameters(s.post))
    return 0


QUOTED = ("alpha", "beta", "forget_max", "forget_tokens", "replay_protect", "forget_reach", "domain_tokens",
          "sft_gain", "sft_scale", "epoch_decline", "rl_gain", "rl_scale", "ot_sensitivity", "sft_forget")


def parameters(post) -> str:
    """Median and central 90% interval of the global and per-kind parameters the verdicts quote."""
    rows = ["| parameter | median [90%] | what it is |", "|---|---|---|"]
    for param in forward.PARAMS:
        if param.name not in QUOTED or param.name not in post.params:
            continue
        draws = post.params[param.name].reshape(post.n_draws, -1)
        labels = [""] if draws.shape[1] == 1 else [f"[{k}]" for k in forward.KINDS]
        for label, d in zip(labels, draws.T):
            lo, mid, hi = np.quantile(d, [0.05, 0.5, 0.95])
            rows.append(f"| {param.name}{label} | {mid:.3g} [{lo:.3g}, {hi:.3g}] | {param.doc} |")
    return "\n".join(rows)


def mrc(s: Study) -> str:
    """Mean ratio of change of the general-ability measures from each model before SFT to after it:
    cloze accuracy (relative change) and general-text loss (relative change, sign flipped: a loss rise is a loss
    of ability). One row per pretrained/CPT parent with an SFT child."""
    rows = ["| parent → after SFT 5Kep3 | cloze acc before → after | general loss before → after | MRC |",
            "|---|---|---|---|"]
    parents = [f"0.1M-{pt}" for pt in PT_AXIS] + [f"0.1M-{pt}-{HUB_CPT}" for pt in PT_AXIS] + \
              [f"{HUB_PT}-{m}" for m in ("0+2MT", "0.2+1.8MT", "0.8+1.2MT")]
    ratios = []
    for parent in parents:
        child = f"{parent}-{HUB_SFT}"
        a0, a1 = s.obs(parent, "hellaswag_like", "0shot_acc"), s.obs(child, "hellaswag_like", "0shot_acc")
        l0, l1 = s.obs(parent, "general_text", "loss"), s.obs(child, "general_text", "loss")
        if None in (a0, a1, l0, l1):
            continue
        r = np.mean([(a1[0] - a0[0]) / a0[0], -(l1[0] - l0[0]) / l0[0]])
        ratios.append(r)
        rows.append(f"| {parent} | {a0[0]:.1f} → {a1[0]:.1f} | {l0[0]:.3f} → {l1[0]:.3f} | {100 * r:+.1f}% |")
    if ratios:
        rows.append(f"| **mean** | | | **{100 * np.mean(ratios):+.1f}%** |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
