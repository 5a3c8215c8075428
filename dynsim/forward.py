"""The forward model: configuration → every metric, written once over an array module `xp`.

`xp` is numpy (prediction over stored posterior draws) or pytensor.tensor (the PyMC likelihood); only
functions both share are used (exp, log, log1p, maximum, take, concatenate, and `.sum`). Parameters
arrive per draw: a global parameter has shape (S, 1) in numpy and () in pytensor; a per-task or per-kind
parameter (S, T) / (T,) and is gathered per observation with `take(..., axis=-1)`.

The chain of the model, stage by stage (priors and their sources live in calibrate/model.py):

  pretraining loss      L_pt  = E + A·(N/N_ref)^−α + B·((D + D_replay)/D_ref)^−β    (Chinchilla form at reference scales;
                                  the smoothmax form takes the k-norm of the two terms instead of their sum)
                                + anneal_gap · lr_left(D / D_schedule)              (un-annealed checkpoint)
  CPT forgetting        L_gen = L_pt + forget_max · (1 − e^(−D_dom/forget_tokens)) · e^(−replay_protect · r)
                                with r = D_replay / (D_replay + D_dom)              (replay mitigates)
  domain ability        g_dom = log(1 + D_dom / domain_tokens)                      (D-CPT-like, diminishing)
  after SFT, as measured L_up  = L_gen + sft_forget · (1 − e^(−SFT ex·ep / sft_scale))   (SFT forgets general text)
  upstream accuracy     acc   = chance + (ceiling − chance) · σ(slope · (mid − L_up))    (OLMo-ladder link)
  downstream ability    μ     = ability0 + loss_slope · (L_ref − L_down) + domain_weight · g_dom
                                with L_down = L_pt + forget_reach · (L_gen − L_pt)  (the share of forgetting it feels)
                                + (1 + D/(20N))^(−ot_sensitivity) · post_gain − OOD · epoch_decline · log(SFT epochs)
                                + size_ability[kind] · log(N/N_ref)                 (size beyond the loss)
                                + quality_ability[kind] · q_base                    (the base checkpoint's quality)
  base checkpoint quality  q_base ~ N(0, 1) per pretraining checkpoint, where several have post-trained descendants:
                        L_pt ← L_pt · e^(−quality_loss · q_base), shared by the checkpoint and its descendants
                        post_gain = sft_gain · (1 − e^(−SFT ex·ep / sft_scale)) + rl_gain · (1 − e^(−RL ex·ep / rl_scale))
                                    (sft_gain → data_gain[task, data set] for a run that names its SFT data)
  per-item success      p_i   = σ(μ + item_spread · z_i),  z_i ~ N(0, 1) over the task's items (logit-normal)
  metrics from p_i      sampled@1 = E[q], pass@k = 1 − E[(1 − q)^k], maj@k = E[P(Binom(k, q) > τ k)],
                        greedy = E[chance + (1 − chance) · σ(greedy_sharpness · logit p_i)],
                        with q = chance + (1 − chance) · p_i (guessing on closed-form answers).

The expectation over items is a quadrature over difficulty strata, so every metric is a smooth function of μ.

The formulas are written in dynsim/arrays.py's operations (`gather` a grouped parameter per observation,
`per_distinct(xp, f, cols)`: f(cols), evaluated once per distinct value of the columns); `fastpath.predict_many`
evaluates `predict` over thousands of draws at once.

Scales (`reference_scales`): N_ref and D_ref are the decades nearest the fitted runs' typical size and tokens
(EvoLM's: 1e9 and 1e11, the scales the priors were written at; a CPU miniature's: 1e5 and 1e7), so A and B are
nats at a scale the data covers; sft_ref and rl_ref, those of the SFT and RL example-epochs, set where the
priors of the saturation scales sit (EvoLM's: 1e5 and 1e6; a miniature's: 1e4 and 1e3). L_ref, the loss that centres abilities and cloze midpoints, is E + EXCESS_REF
where the loss is latent (EvoLM prints accuracies only) and the median observed general-text loss where it is
measured. A posterior stores the scales it was fitted with, and predicts with them.
"""

from __future__ import annotations

import dataclasses
import math
import re
from statistics import NormalDist

import numpy as np

from dynsim.arrays import full, gather, in_order, per_distinct, power, sigmoid, take

EXCESS_REF = 0.6  # nats of loss above E: centres the loss term so ability0 is the ability at a typical loss
N_REF, D_REF = 1e9, 1e11  # default reference size/data: Chinchilla terms are nats there (decorrelates NUTS)
TPP_OPTIMAL = 20.0  # tokens per parameter, Chinchilla-optimal: the overtraining clock starts here
KINDS = ("ID", "OOD")  # downstream task kinds; upstream tasks use the cloze link
UPSTREAM_KINDS = ("upstream", "upstream_avg", "text")
AVERAGE_MIN_TASKS = 10  # upstream tasks from which their average is scored (validate) and added to a table (fit)
MAX_COMPONENTS = 4  # averaged tasks (EvoLM's OOD_avg) mix up to four benchmarks with their own chance

# Items of a task as 24 equally likely difficulty strata at the normal quantile midpoints: an exact
# expectation for such a task, and within 0.75 points of the continuous one even for the sharpest
# integrands (greedy, pass@16), where Gauss–Hermite of the same size is off by 2 points.
QUAD_Z = np.array([NormalDist().inv_cdf((i + 0.5) / 24) for i in range(24)])
QUAD_W = np.full(24, 1 / 24)


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of the model: its group, its meaning, and where a least-squares fit (calibrate/baselines.py)
    starts it — a typical value of its prior in calibrate/model.py (tests/test_calibrations.py checks it lies in
    the prior's central 90% on the bundled calibrations) — on which scale: log (positive), logit (a fraction) or
    id (any sign). start None: a parameter of the Bayesian fit alone (a random effect needs its prior)."""

    name: str
    group: str  # "global" | "task" (downstream tasks) | "up_task" (upstream tasks) | "kind" (ID/OOD) | …
    doc: str
    start: float | None = None
    scale: str = "id"


PARAMS = (
    Param("E", "global", "irreducible loss (nats/token)", 1.8, "log"),
    Param("A", "global", "size term at N_REF (nats)", 0.35, "log"),
    Param("alpha", "global", "size exponent", 0.34, "log"),
    Param("B", "global", "data term at D_REF (nats)", 0.25, "log"),
    Param("beta", "global", "data exponent", 0.32, "log"),
    Param("smoothmax_k", "global", "the smoothmax form's norm: 1 adds the size and data terms, larger tends to their "
          "maximum", 2.0, "log"),
    Param("anneal_gap", "global", "extra loss of a checkpoint whose learning rate has not decayed (nats)", 0.05, "log"),
    Param("forget_max", "global", "general-loss rise after long pure-domain CPT (nats)", 0.2, "log"),
    Param("forget_tokens", "global", "domain tokens over which forgetting sets in", 5e9, "log"),
    Param("forget_reach", "kind", "share of CPT's general-text forgetting that downstream ability feels (0-1)", 0.5,
          "logit"),
    Param("replay_protect", "global", "how fast the replay share removes forgetting", 15.0, "log"),
    Param("domain_tokens", "global", "domain tokens at which domain ability has grown by log 2", 5e9, "log"),
    Param("sft_gain", "global", "ability logits added by saturated SFT", 3.0),
    Param("data_gain", "task_data", "ability logits added by saturated SFT on a named data set, per (task, data set): "
          "replaces sft_gain for runs that name their SFT data", 0.0),
    Param("sft_scale", "global", "SFT example-epochs to reach 63% of the gain", 3e4, "log"),
    Param("rl_gain", "global", "ability logits added by saturated RL", 0.5),
    Param("rl_scale", "global", "RL example-epochs to reach 63% of the gain", 2e5, "log"),
    Param("ot_sensitivity", "global", "how fast post-training gains erode with tokens per parameter", 0.1, "log"),
    Param("epoch_decline", "global", "OOD ability lost per log SFT epoch", 0.1, "log"),
    Param("greedy_sharpness", "kind", "greedy decoding sharpens per-item success: logit scale", 1.5, "log"),
    Param("maj_threshold", "kind", "vote share the correct answer needs to win maj@k", 0.3, "logit"),
    Param("ability0", "task", "ability logit at the reference loss L_ref, without CPT or post-training", -1.0),
    Param("loss_slope", "task", "ability logits per nat of general loss", 2.0, "log"),
    Param("size_ability", "kind", "ability logits per e-fold of model size beyond what the general loss carries", 0.3),
    Param("domain_weight", "task", "ability logits per unit of domain ability", 0.5),
    Param("item_spread", "task", "spread of item difficulty (logits)", 2.0, "log"),
    Param("up_slope", "up_task", "cloze accuracy link slope per nat", 3.0, "log"),
    Param("up_mid", "up_task", "loss at which the cloze task is half way between chance and ceiling", 2.4),
    Param("up_ceiling", "up_task", "cloze accuracy ceiling (fraction)", 0.85, "logit"),
    # Only where a Dataset compares pretraining corpora (the Gadre et al. 2024 testbed trains on three):
    Param("corpus_E", "corpus", "irreducible-loss offset of each pretraining corpus (nats; first corpus 0)", 0.0),
    Param("corpus_logB", "corpus", "log multiplier of the data term per pretraining corpus (first corpus 0)", 0.0),
    Param("corpus_link", "corpus", "validation loss a corpus's models carry at equal cloze accuracy (nats; first 0)",
          0.0),
    # Only where a Dataset measures upstream numbers after SFT (EvoLM's tables do not; a miniature study does):
    Param("sft_forget", "sft_readout", "general-loss rise after saturated SFT (nats; upstream readouts only)", 0.5,
          "log"),
    # Only where runs of several base checkpoints were post-trained (EvoLM, Amuro & Char, a miniature study):
    Param("base_quality", "base", "a base checkpoint's quality beyond the law, in standard deviations: shared by "
          "every number of the checkpoint and of its CPT / SFT / RL descendants (a new checkpoint draws its own)"),
    Param("quality_loss", "global", "relative general loss one standard deviation of base quality removes"),
    Param("quality_ability", "kind", "downstream ability logits one standard deviation of base quality adds"),
)
OPTIONAL_PARAMS = ("corpus_E", "corpus_logB", "corpus_link", "sft_forget",  # absent where the data cannot inform them: read as zero
                   "data_gain",  # only where runs name their SFT data set (Amuro & Char): sft_gain serves elsewhere
                   "smoothmax_k",  # the smoothmax form's only
                   "forget_reach",  # absent from posteriors fitted before it existed: read as 1 (all forgetting)
                   *("base_quality", "quality_loss", "quality_ability"))  # only where base checkpoints have descendants
BASE_QUALITY_PARAMS = OPTIONAL_PARAMS[-3:]  # a random effect per checkpoint: the Bayesian fit's alone
PARAM_GROUPS = {p.name: p.group for p in PARAMS}


# -- metric names ------------------------------------------------------------------------------------
def metric_kind(metric: str) -> tuple[str, int]:
    """'maj@16' → ('maj', 16); 'greedy_pass@1' → ('greedy', 1); '0shot_acc' → ('cloze', 0); 'loss' → ('loss', 0)."""
    if metric in ("greedy_pass@1", "greedy"):
        return "greedy", 1
    m = re.fullmatch(r"(pass|maj|mean)@(\d+)", metric)
    if m:
        return m[1], int(m[2])
    if metric in ("0shot_acc", "acc"):
        return "cloze", 0
    if metric == "loss":
        return "loss", 0
    raise ValueError(f"unknown metric '{metric}': expected greedy_pass@1, pass@k, maj@k, mean@k, 0shot_acc or loss")


# -- the design: observations as arrays --------------------------------------------------------------
@dataclasses.dataclass
class TaskTable:
    """The tasks a calibration knows: names, kinds, chance components (fractions)."""

    names: list[str]
    kinds: list[str]
    chance: list[list[float]]  # per task, one chance per component
    n_benchmarks: list[int] | None = None  # per task, how many benchmarks its number averages (default 1 each)
    # the named SFT data sets of the calibration's runs (Amuro & Char's mnli, paws, ...): SFT on each has its own
    # gain on each downstream task (data_gain); empty where every run fine-tunes on one unnamed set (EvoLM)
    sft_datasets: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if self.n_benchmarks is None:
            self.n_benchmarks = [1] * len(self.names)

    def data_index(self, data: str) -> int:
        """A run's SFT data set as an index into sft_datasets; −1 for the unnamed default data."""
        if not data:
            return -1
        if data not in self.sft_datasets:
            known = ", ".join(self.sft_datasets) or "none (its runs fine-tune on one unnamed data set)"
            raise ValueError(f"unknown SFT data set '{data}': this calibration knows {known}")
        return self.sft_datasets.index(data)

    @property
    def downstream(self) -> list[str]:
        return [t for t, k in zip(self.names, self.kinds) if k in KINDS]

    @property
    def upstream(self) -> list[str]:
        return [t for t, k in zip(self.names, self.kinds) if k == "upstream"]

    def kind(self, task: str) -> str:
        return self.kinds[self.names.index(task)]

    @classmethod
    def from_meta(cls, names, kinds, chances, n_benchmarks=None, sft_datasets=()) -> TaskTable:
        def parse(c: str) -> list[float]:
            return [float(x) / 100 for x in str(c).split(";") if x.strip()] or [0.0]

        n = None if n_benchmarks is None else [int(k) for k in n_benchmarks]
        return cls(list(names), list(kinds), [parse(c) for c in chances], n, [str(d) for d in sft_datasets])


FORMS = ("chinchilla", "compute", "smoothmax")
"""How pretraining scale enters: `chinchilla` — size and tokens as separate terms (the two-step recipe,
scale → loss → accuracy); `smoothmax` — the same two terms combined as a k-norm, (a^k + b^k)^(1/k) with k ≥ 1
(k = 1 adds them; larger k tends to their maximum, so a model limited by its size gains little from more data
and one limited by data gains much: the interaction of Kaplan et al. 2020's L(N, D), which is this form with
k = 1/α_D); `compute` — through compute C = 6·N·D alone, L = E + A·(C/C_ref)^−α, C_ref = 6·N_ref·D_ref (the direct
compute → accuracy recipe that Krajewski et al. 2025 found to extrapolate well). `dynsim validate --compare`
weighs them by PSIS-LOO."""
SFT_REF, RL_REF = 1e5, 1e6  # EvoLM's decades of SFT and RL example-epochs (100Kep1, 100Kep8): its priors' units
DEFAULT_SCALES = dict(N_ref=N_REF, D_ref=D_REF, sft_ref=SFT_REF, rl_ref=RL_REF, loss_ref=None)


def reference_scales(configs, general_losses=()) -> dict:
    """The scales a fit is written at (module docstring): the decades nearest the geometric mean of the distinct
    configurations' sizes, pretraining tokens, and SFT and RL example-epochs (EvoLM's where a stage is absent),
    and the median measured general-text loss (None if none)."""
    cs = sorted(set(configs))
    decade = lambda v, default=None: float(10.0 ** np.round(np.mean(np.log10(v)))) if len(v) else default  # noqa: E731
    losses = np.asarray(general_losses, dtype=float)
    return dict(N_ref=decade([c.size for c in cs]), D_ref=decade([c.pretrain for c in cs]),
                sft_ref=decade([c.sft_examples * c.sft_epochs for c in cs if c.sft_examples], SFT_REF),
                rl_ref=decade([c.rl_examples * c.rl_epochs for c in cs if c.rl_examples], RL_REF),
                loss_ref=float(np.median(losses)) if losses.size else None)


def scale_centres(scales: dict | None) -> dict[str, float]:
    """Where the data's reference scales put the model's token and example-epoch scales: the priors' centres
    (calibrate/model.py) and the least-squares starts (calibrate/baselines.py). EvoLM's: 5e9 tokens, 3e4 SFT and
    2e5 RL example-epochs; a CPU miniature's are 10^3-10^4 times smaller."""
    s = DEFAULT_SCALES | (scales or {})
    return dict(forget_tokens=0.05 * s["D_ref"], domain_tokens=0.05 * s["D_ref"],
                sft_scale=0.3 * s["sft_ref"], rl_scale=0.2 * s["rl_ref"])


@dataclasses.dataclass(frozen=True)
class Design:
    """Observations as the arrays the forward model reads, kept in two kinds apart:

    rows   one entry per observation (configuration columns in SI units, task / kind / metric indices, chance
           components): `subset` picks among them;
    fixed  what every observation shares: per-task tables (`up_chance`, one entry per upstream task), the model
           form and the reference scales. A subset keeps them whole, however many rows it has.

    `x["N"]` reads either kind, so the formulas read one namespace."""

    rows: dict
    fixed: dict

    def __post_init__(self):
        lengths = {k: len(v) for k, v in self.rows.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"design rows of unequal length: {lengths}")
        both = set(self.rows) & set(self.fixed)
        if both:
            raise ValueError(f"design entries both per row and fixed: {sorted(both)}")

    def __len__(self) -> int:
        return len(self.rows["N"])

    def __getitem__(self, key: str):
        return self.rows[key] if key in self.rows else self.fixed[key]

    def __contains__(self, key: str) -> bool:
        return key in self.rows or key in self.fixed

    def get(self, key: str, default=None):
        return self[key] if key in self else default

    def subset(self, idx) -> Design:
        """The design of some observations (indices, or a boolean mask over the rows), in that order."""
        idx = np.asarray(idx)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(int)
        return Design({k: v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx] for k, v in self.rows.items()},
                      self.fixed)

    def astype(self, dtype) -> Design:
        """float64 arrays (rows and tables) in `dtype`; indices and labels as they are."""
        cast = lambda d: {k: v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v  # noqa: E731
                          for k, v in d.items()}
        return Design(cast(self.rows), cast(self.fixed))


def base_key(config, corpus_idx: int = 0) -> str:
    """The base checkpoint a run descends from (its pretraining run, schedule and corpus): what `base_quality`
    is shared over."""
    return f"{config.size}/{config.pretrain}/{config.pretrain_schedule}/{int(corpus_idx)}"


def design(configs, tasks: list[str], metrics: list[str], table: TaskTable, corpus_idx=None,
           form: str = "chinchilla", scales: dict | None = None, bases: list[str] | None = None) -> Design:
    """Observations (config_i, task_i, metric_i[, pretraining corpus index]) → the Design the forward model
    reads (SI units). scales: N_ref, D_ref, loss_ref (DEFAULT_SCALES if not given). bases: the base checkpoints
    (`base_key`) whose quality the parameters hold, in order; a row of another base gets index len(bases) + j for
    the j-th such base (`n_new_bases` of them: a prediction draws their quality)."""
    if form not in FORMS:
        raise ValueError(f"unknown model form '{form}': choose one of {', '.join(FORMS)}")
    n = len(configs)
    f = lambda attr: np.array([float(getattr(c, attr)) for c in configs])  # noqa: E731
    x = dict(N=f("size"), D=f("pretrain"), D_sched=f("pretrain_schedule"), D_rep=f("cpt_replay"),
             D_dom=f("cpt_domain"), sft_ex=f("sft_examples"), sft_ep=f("sft_epochs"),
             rl_ex=f("rl_examples"), rl_ep=f("rl_epochs"))
    kinds = [table.kind(t) for t in tasks]
    down, up = table.downstream, table.upstream
    x["kind"] = np.array(kinds, dtype=object)
    x["task_idx"] = np.array([down.index(t) if k in KINDS else 0 for t, k in zip(tasks, kinds)], dtype=int)
    x["up_idx"] = np.array([up.index(t) if k == "upstream" else 0 for t, k in zip(tasks, kinds)], dtype=int)
    x["kind_idx"] = np.array([KINDS.index(k) if k in KINDS else 0 for k in kinds], dtype=int)
    x["is_ood"] = np.array([k == "OOD" for k in kinds], dtype=float)
    chance = np.zeros((n, MAX_COMPONENTS))
    weight = np.zeros((n, MAX_COMPONENTS))
    for i, t in enumerate(tasks):  # components with the same chance are one (EvoLM's ID_avg: two at 0%)
        cs = table.chance[table.names.index(t)]
        distinct = list(dict.fromkeys(cs))
        chance[i, : len(distinct)] = distinct
        weight[i, : len(distinct)] = [cs.count(c) / len(cs) for c in distinct]
    x["chance"], x["comp_weight"] = chance, weight
    x["metric"] = [metric_kind(m) for m in metrics]
    x["corpus_idx"] = np.zeros(n, dtype=int) if corpus_idx is None else np.asarray(corpus_idx, dtype=int)
    # (task, SFT data set) pairs, row-major over the downstream tasks, for data_gain; −1 for unnamed data
    data_idx = np.array([table.data_index(c.sft_data) for c in configs], dtype=int)
    x["data_named"] = (data_idx >= 0).astype(float)
    x["pair_idx"] = np.where(data_idx >= 0, x["task_idx"] * max(len(table.sft_datasets), 1) + data_idx, 0)
    scales = DEFAULT_SCALES | (scales or {})
    x["log_size"] = np.log(x["N"] / scales["N_ref"])
    known = {b: i for i, b in enumerate(bases or [])}
    new: dict[str, int] = {}
    x["base_idx"] = np.array([known[k] if k in known else len(known) + new.setdefault(k, len(new))
                              for k in map(base_key, configs, x["corpus_idx"])], dtype=int)
    fixed = dict(form=form, n_up_tasks=len(up), up_chance=np.array([table.chance[table.names.index(t)][0] for t in up]),
                 n_new_bases=len(new))
    return Design(x, fixed | scales)


# -- the model ---------------------------------------------------------------------------------------
def general_loss(p, x, xp):
    """Loss on general text after PT (and CPT): Chinchilla form + un-annealed gap + CPT forgetting."""
    return pretrain_loss(p, x, xp) + cpt_forgetting(p, x, xp)


def pretrain_loss(p, x, xp):
    """Loss on general text after pretraining: the law (`law_loss`) times the base checkpoint's own quality
    factor, where the parameters hold one: a checkpoint sits off the law by a fraction of its loss, and its
    descendants inherit that (EvoLM's 4B-80BT scores under 1B-80BT on all six cloze tasks)."""
    loss = law_loss(p, x, xp)
    if "base_quality" not in p:
        return loss
    return loss * xp.exp(-p["quality_loss"] * gather(xp, p["base_quality"], x["base_idx"]))


def law_loss(p, x, xp):
    """The pretraining law: Chinchilla form + un-annealed gap (replay tokens count as pretraining tokens: they
    are the same distribution)."""
    E, B = p["E"], p["B"]
    if "corpus_E" in p:  # the pretraining corpus shifts the irreducible loss and scales the data term
        E = E + gather(xp, p["corpus_E"], x["corpus_idx"])
        B = B * xp.exp(gather(xp, p["corpus_logB"], x["corpus_idx"]))
    # cosine learning rate still to decay at an intermediate checkpoint (0 for annealed runs)
    frac = np.where(x["D_sched"] > 0, x["D"] / np.maximum(x["D_sched"], 1.0), 1.0)
    loss = E + per_distinct(xp, lambda f: p["anneal_gap"] * 0.5 * (1.0 + np.cos(np.pi * f)), frac)
    tokens = x["D"] + x["D_rep"]
    if x.get("form") == "compute":
        return loss + p["A"] * per_distinct(xp, lambda c: power(xp, c / (x["N_ref"] * x["D_ref"]), -p["alpha"]), x["N"] * tokens)
    size = per_distinct(xp, lambda n: p["A"] * power(xp, n / x["N_ref"], -p["alpha"]), x["N"])
    data = B * per_distinct(xp, lambda d: power(xp, d / x["D_ref"], -p["beta"]), tokens)
    if x.get("form") == "smoothmax":  # (a^k + b^k)^(1/k), as max · (1 + (min/max)^k)^(1/k): no overflow
        k, big = p["smoothmax_k"], xp.maximum(size, data)
        return loss + big * xp.exp(xp.log1p(xp.exp(k * xp.log(xp.minimum(size, data) / big))) / k)
    return loss + size + data


def cpt_forgetting(p, x, xp):
    """The general-text loss CPT adds: rising with domain tokens, removed by the replay share."""
    def forgetting(dom, rep):
        onset = 1.0 - xp.exp(-dom / p["forget_tokens"])
        return p["forget_max"] * onset * xp.exp(-p["replay_protect"] * rep / np.maximum(rep + dom, 1.0))
    return per_distinct(xp, forgetting, x["D_dom"], x["D_rep"])


def ability(p, x, xp):
    """Downstream ability logit μ per observation (before item spread)."""
    return full(xp, gather(xp, p["ability0"], x["task_idx"]) + ability_shift(p, x, xp), len(x["task_idx"]))


def ability_shift(p, x, xp):
    """μ − ability0: what the configuration adds to a task's ability (general loss, CPT, post-training)."""
    g = lambda name: gather(xp, p[name], x["task_idx"])  # noqa: E731
    # a downstream task feels only part of the general text CPT forgets (a miniature forgot 3.5 nats of
    # WordNet glosses on math CPT and kept its maths): the share is learned per kind, ID and OOD
    forgetting = cpt_forgetting(p, x, xp)
    if "forget_reach" in p:
        forgetting = gather(xp, p["forget_reach"], x["kind_idx"]) * forgetting
    loss = pretrain_loss(p, x, xp) + forgetting
    domain = per_distinct(xp, lambda d: xp.log1p(d / p["domain_tokens"]), x["D_dom"])

    def post_training(tpp, sft_ex_ep, rl_ex_ep, named):
        sft = (1.0 - xp.exp(-sft_ex_ep / p["sft_scale"])) * (1.0 - named) * p["sft_gain"]
        rl = p["rl_gain"] * (1.0 - xp.exp(-rl_ex_ep / p["rl_scale"]))
        overtrained = power(xp, 1.0 + tpp / TPP_OPTIMAL, -p["ot_sensitivity"])
        return overtrained * (sft + rl)
    post = per_distinct(xp, post_training, x["D"] / x["N"], x["sft_ex"] * x["sft_ep"], x["rl_ex"] * x["rl_ep"],
                     x["data_named"])
    if "data_gain" in p and x["data_named"].any():  # SFT on a named data set: its own gain on this task
        def named_sft(tpp, sft_ex_ep, named):
            saturation = named * (1.0 - xp.exp(-sft_ex_ep / p["sft_scale"]))
            return power(xp, 1.0 + tpp / TPP_OPTIMAL, -p["ot_sensitivity"]) * saturation
        post = post + per_distinct(xp, named_sft, x["D"] / x["N"], x["sft_ex"] * x["sft_ep"], x["data_named"]) * \
            gather(xp, p["data_gain"], x["pair_idx"])
    decline = per_distinct(xp, lambda ood, ep: p["epoch_decline"] * ood * np.log(np.maximum(ep, 1.0)), x["is_ood"], x["sft_ep"])
    shift = g("loss_slope") * (loss_ref(p, x) - loss) + g("domain_weight") * domain + post - decline
    if "size_ability" in p:  # a larger model gains more from post-training than its loss alone says
        shift = shift + gather(xp, p["size_ability"], x["kind_idx"]) * x["log_size"]
    if "base_quality" in p:  # a better checkpoint than the law says is better downstream beyond its loss, too
        shift = shift + gather(xp, p["quality_ability"], x["kind_idx"]) * gather(xp, p["base_quality"], x["base_idx"])
    return shift


def loss_ref(p, x):
    """The loss that centres abilities and cloze midpoints: E + EXCESS_REF if the loss is latent, else measured."""
    return p["E"] + EXCESS_REF if x.get("loss_ref") is None else x["loss_ref"]


def _binom_tail(xp, q, k, thresh):
    """P(X > thresh·k) for X ~ Binomial(k, q), with a smooth step so thresh stays differentiable; k an int or an
    array broadcasting with q (observations asking for maj@k at different k).

    The sum Σ_i step(i)·C(k, i)·q^i·(1−q)^(k−i) is a Bernstein polynomial in q with non-negative coefficients.
    numpy evaluates it by the homogeneous Horner rule S_i = c_i·(1−q)^(k−i) + q·S_(i+1): every quantity stays
    within [0, 2^k], so float32 serves at any k and nothing underflows (the pmf (1−q)^k does, at k = 64), four
    multiply-adds per term and no exp. A compiled likelihood gets the closed-form pmf, every term at once along a
    last axis: a few fused kernels, where the Horner loop's gradient compiles to a few per term."""
    k_arr = np.asarray(k)
    n_terms = int(k_arr.max()) + 1
    if xp is not np:
        i = np.arange(n_terms, dtype=float)
        kk = k_arr.astype(float)[..., None]
        gammaln = np.vectorize(math.lgamma)  # on a few constants
        log_choose = gammaln(kk + 1) - gammaln(i + 1) - gammaln(np.maximum(kk - i, 0) + 1) + np.where(i > kk, -np.inf, 0.0)
        q = xp.minimum(xp.maximum(q, 1e-9), 1 - 1e-9)
        log_pmf = log_choose + i * xp.log(q)[..., None] + (kk - i) * xp.log1p(-q)[..., None]
        return (xp.exp(log_pmf) * sigmoid(xp, (i - thresh[..., None] * kk - 0.5) / 0.3)).sum(axis=-1)
    # weight of X = i: a strict majority (the argument clipped where float32's exp would overflow to a 0 weight)
    step = lambda i: sigmoid(xp, np.clip((i - thresh * k - 0.5) / 0.3, -60, 60))  # noqa: E731
    one_minus_q = 1.0 - q
    total = np.zeros(np.broadcast_shapes(q.shape, np.shape(thresh)), dtype=q.dtype)
    power = np.ones_like(total)
    for i in range(n_terms - 1, -1, -1):  # in place: the tables of predict_many run this loop per block of draws
        choose = (np.array([math.comb(int(kk), i) if kk >= i else 0 for kk in k_arr.ravel()], dtype=q.dtype)
                  .reshape(k_arr.shape))
        if i < n_terms - 1:  # one more factor (1 − q), on the rows whose k exceeds i (the others have not started)
            power *= one_minus_q if k_arr.ndim == 0 else 1.0 - q * (i < k_arr).astype(q.dtype)
            total *= q
        total += power * (step(i) * choose).astype(q.dtype)
    return total


DOWNSTREAM_METRICS = ("greedy", "mean", "pass", "maj")


def downstream_metric(p, x, xp, mu=None):
    """Each observation's downstream metric (x["metric"], one per row); fraction in [0, 1]. mu: the rows'
    abilities, if already computed (they are computed once for all rows: in a compiled likelihood each repeated
    computation is kernels of its own, and their count, not the arithmetic, sets the cost of a gradient)."""
    names = np.array([m[0] for m in x["metric"]])
    unknown = set(names) - set(DOWNSTREAM_METRICS)
    if unknown:
        raise ValueError(f"metric {sorted(unknown)[0]} is not a downstream metric")
    mu = ability(p, x, xp) if mu is None else mu
    # one evaluation per (metric kind, number of chance components): a single-benchmark row is not padded to
    # an averaged task's four components
    n_comp = (x["comp_weight"] > 0).sum(axis=1)
    present = sorted({(str(name), int(c)) for name, c in zip(names, n_comp)}, key=lambda g: DOWNSTREAM_METRICS.index(g[0]))
    if len(present) == 1:
        return _metric_of_kind(p, x, xp, mu, present[0][0])
    rows = [np.flatnonzero((names == name) & (n_comp == c)) for name, c in present]
    return in_order(xp, [_metric_of_kind(p, x.subset(r), xp, take(xp, mu, r), name)
                          for r, (name, _) in zip(rows, present)], rows)


def _metric_of_kind(p, x, xp, mu, name: str):
    """downstream_metric for rows that all ask for one kind of metric (their k may differ)."""
    k = np.array([m[1] for m in x["metric"]], dtype=float)[:, None, None]
    k = int(k[0, 0, 0]) if (k == k[0]).all() else k
    n_comp = int((x["comp_weight"] > 0).sum(axis=1).max())  # only the components these tasks have
    spread = gather(xp, p["item_spread"], x["task_idx"])[..., None, None]
    chance = x["chance"][:, :n_comp, None]
    z, w = (QUAD_Z.astype(mu.dtype), QUAD_W.astype(mu.dtype)) if xp is np else (QUAD_Z, QUAD_W)  # float32 stays so
    logit_p = mu[..., None, None] + spread * z  # (..., n, component, node)
    if name == "greedy":
        sharp = gather(xp, p["greedy_sharpness"], x["kind_idx"])[..., None, None]
        per_item = chance + (1 - chance) * sigmoid(xp, sharp * logit_p)
    else:
        q = chance + (1 - chance) * sigmoid(xp, logit_p)
        if name == "mean":
            per_item = q
        elif name == "pass":
            per_item = 1.0 - (1.0 - q) ** k
        else:
            tau = gather(xp, p["maj_threshold"], x["kind_idx"])[..., None, None]
            per_item = _binom_tail(xp, q, k, xp.maximum(tau, chance))
    per_component = (per_item * w).sum(axis=-1)
    return (per_component * x["comp_weight"][:, :n_comp]).sum(axis=-1)


def measures_sft_forgetting(x) -> bool:
    """Whether a design has upstream numbers (loss or cloze) of fine-tuned models, which `sft_forget` needs."""
    up = np.array([k in UPSTREAM_KINDS for k in x["kind"]], dtype=bool)
    return bool((up & (x["sft_ex"] > 0)).any())


def upstream_loss(p, x, xp):
    """The general-text loss as measured, which upstream readouts see: fine-tuning on the domain also forgets
    general text (Amuro & Char; a miniature's SFT on math took it from 2.85 to 8.0 nats), saturating on SFT's
    example-epoch clock. Downstream ability reads the loss before SFT (and only its share of CPT forgetting):
    SFT's own effect on downstream tasks is its gain."""
    loss = full(xp, general_loss(p, x, xp), len(x["N"]))
    if "sft_forget" not in p:
        return loss
    return loss + p["sft_forget"] * (1.0 - xp.exp(-(x["sft_ex"] * x["sft_ep"]) / p["sft_scale"]))


def upstream_metric(p, x, xp, loss=None, loss_slope=False):
    """Cloze accuracy of each row's upstream task, the mean over upstream tasks for an average, or the loss
    itself for a loss row; loss: the rows' upstream_loss, if already computed. loss_slope: instead, how far each
    row's number falls per unit of log loss (−∂acc/∂log L, a fraction; 0 for a loss row).

    Cloze accuracy is a sigmoid in loss (OLMo ladder): chance + (ceiling − chance)·σ(slope·(mid − loss)), with
    each row's task's link (parameters gathered per row: a Dataset with 46 tasks costs no more per row than one
    with 1), and for an average row the mean of every task's link."""
    loss = upstream_loss(p, x, xp) if loss is None else loss
    kinds = np.asarray(x["kind"])
    is_loss = np.array([m[0] == "loss" for m in x["metric"]], dtype=bool)
    if is_loss.all() or x["n_up_tasks"] == 0:
        return 0.0 * loss if loss_slope else loss
    # a validation set is closer to some pretraining corpora than to others (C4 to C4): their models reach a
    # lower loss on it at the same ability, so the link reads the loss less that corpus's offset
    link_loss = loss - gather(xp, p["corpus_link"], x["corpus_idx"]) if "corpus_link" in p else loss

    def link(at_loss, slope, mid, ceiling, chance):
        s = sigmoid(xp, slope * (mid - at_loss))
        return (ceiling - chance) * slope * s * (1.0 - s) if loss_slope else chance + (ceiling - chance) * s
    idx = x["up_idx"]
    cloze = link(link_loss, *(gather(xp, p[name], idx) for name in ("up_slope", "up_mid", "up_ceiling")),
                 x["up_chance"][idx])
    is_avg = kinds == "upstream_avg"
    if is_avg.any():
        g = lambda name: p[name][..., None, :]  # noqa: E731  (…, 1, task)
        mean = link(link_loss[..., None], g("up_slope"), g("up_mid"), g("up_ceiling"), x["up_chance"]).mean(axis=-1)
        cloze = mean if is_avg.all() else xp.where(is_avg, mean, cloze)
    if loss_slope:  # per nat, times L: per unit of log L (a run deviates from the loss law relatively)
        cloze = cloze * loss
    return cloze if not is_loss.any() else xp.where(is_loss, 0.0 if loss_slope else loss, cloze)


def cloze_loss_slope(p, x, xp):
    """−∂(number)/∂(log general loss) of every observation (a fraction) where that is the cloze link's slope:
    how far a run that sits off the loss law by a fraction of its loss moves its cloze accuracies; 0 for losses
    and downstream numbers (a run's deviation reaches those only through their own discrepancy)."""
    is_down = np.isin(np.asarray(x["kind"]), KINDS)
    if is_down.all():
        return None
    up = upstream_metric(p, x.subset(np.flatnonzero(~is_down)), xp, loss_slope=True)
    if not is_down.any():
        return up
    rows = [np.flatnonzero(~is_down), np.flatnonzero(is_down)]
    return in_order(xp, [up, 0.0 * take(xp, up, np.zeros(len(rows[1]), dtype=int))], rows)


def predict(p, x, xp=np):
    """Every observation's predicted value (fraction for accuracies, nats for loss), in observation order."""
    is_down = np.isin(np.asarray(x["kind"]), KINDS)
    if is_down.all() or not is_down.any():
        return (downstream_metric if is_down.all() else upstream_metric)(p, x, xp)
    rows = [np.flatnonzero(is_down), np.flatnonzero(~is_down)]
    return in_order(xp, [downstream_metric(p, x.subset(rows[0]), xp), upstream_metric(p, x.subset(rows[1]), xp)], rows)
