"""The joint Bayesian model in PyMC: priors (with their reasons) around the forward model of dynsim.forward.

One model for every results Dataset: the tasks, kinds and stages a Dataset lacks simply contribute no
likelihood terms, and their parameters keep their priors (so a prediction there is honestly wide).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from dynsim import forward
from dynsim.config import RunConfig
from dynsim.forward import KINDS, TaskTable
from dynsim import observation
from dynsim.observation import LOSS_NU, NOISE_FLOOR, OBS_GROUPS, SHARED_GROUPS, block_log_density


@dataclasses.dataclass
class Observations:
    """The observed numbers of a results Dataset, flattened, with the design the forward model reads."""

    configs: list[RunConfig]
    tasks: list[str]
    metrics: list[str]
    values: np.ndarray  # percent for accuracies, nats for loss
    table: TaskTable
    n_items: np.ndarray | None = None
    n_correct: np.ndarray | None = None
    corpus: np.ndarray | None = None  # index into `corpora` per observation (Datasets comparing corpora)
    corpora: list[str] = dataclasses.field(default_factory=list)
    form: str = "chinchilla"  # how pretraining scale enters the model (forward.FORMS)
    scales: dict | None = None  # forward.reference_scales of these observations unless given (subsets keep theirs)

    def __post_init__(self):
        if self.corpus is None:
            self.corpus = np.zeros(len(self.values), dtype=int)
        if self.scales is None:
            is_loss = np.array([m == "loss" for m in self.metrics], dtype=bool)
            self.scales = forward.reference_scales(self.configs, self.values[is_loss])
        self.bases = sorted(set(map(forward.base_key, self.configs, self.corpus)))  # base checkpoints, in order
        self.x = forward.design(self.configs, self.tasks, self.metrics, self.table, self.corpus, self.form,
                                self.scales, self.bases)
        self.group = observation.groups(self.configs, [self.table.kind(t) for t in self.tasks], self.metrics)
        self.run_group = observation.loss_group(self.configs)  # the group of each number's run's loss
        self.run_keys = np.array([f"{c.name}/{k}" for c, k in zip(self.configs, self.corpus)])  # a number's run
        self.scale = np.array([1.0 if m == "loss" else 100.0 for m in self.metrics])

    def __len__(self):
        return len(self.values)

    def subset(self, keep: np.ndarray) -> Observations:
        keep = np.flatnonzero(keep) if keep.dtype == bool else keep
        pick = lambda a: None if a is None else a[keep]  # noqa: E731
        return Observations([self.configs[i] for i in keep], [self.tasks[i] for i in keep],
                            [self.metrics[i] for i in keep], self.values[keep], self.table,
                            pick(self.n_items), pick(self.n_correct), self.corpus[keep], self.corpora, self.form,
                            self.scales)

    def rescaled(self) -> Observations:
        """The same observations at their own reference scales (a training subset must not borrow the scales,
        least of all the median loss, of the runs held out from it)."""
        return dataclasses.replace(self, scales=None)

    def with_form(self, form: str) -> Observations:
        return dataclasses.replace(self, form=form)

    def models_base_quality(self) -> bool:
        """Whether at least two base checkpoints have post-trained (SFT or RL) descendants among these numbers:
        then a checkpoint's quality beyond the law, seen in its own numbers, can be told apart from what
        post-training adds, and is modelled (forward.pretrain_loss, forward.ability_shift)."""
        tuned = {forward.base_key(c, k) for c, k in zip(self.configs, self.corpus) if c.post_trained}
        return len(tuned) >= 2

    def measurement_sd(self) -> np.ndarray:
        """Each number's measurement noise (binomial where item counts are known, else the noise floor)."""
        return observation.measurement_sd(self.scale == 1.0, self.values, self.n_items, NOISE_FLOOR)


# The model's loss is the general (pretraining-distribution) text loss; the CPT domain's own loss is not
# modelled (domain ability is latent), so a training run's `domain_text` loss is left out of fits.
UNMODELLED_TASKS = ("domain_text",)


def _modelled_metric(metric: str) -> bool:
    """Metrics the forward model predicts (perplexity is exp(loss): the loss alone carries it)."""
    try:
        forward.metric_kind(metric)
        return True
    except ValueError:
        return False


BELOW_CHANCE_SE = 3.0


def _free_form_where_below_chance(table: TaskTable, df) -> TaskTable:
    """A downstream task measured below its chance floor by more than BELOW_CHANCE_SE standard errors is not
    answered by guessing within its label set (a miniature fine-tuned on math emits numbers for a yes/no
    question): its answers are free-form, so the model's floor for it is 0. Judged only where a number's item
    count is known: a published table's numbers come without counts, and a classifier scored within its label
    set falls below the uniform-guess rate by its label bias alone (Amuro & Char's PAWS: a model that always
    answers one label scores that label's share, 44% or 56%), so their floors stay."""
    chance = list(table.chance)
    for i, (task, kind) in enumerate(zip(table.names, table.kinds)):
        rows = df[(df.task == task) & (df.metric != "loss")]
        c = min(chance[i])
        if kind not in KINDS or rows.empty or c == 0:
            continue
        n = rows.n_items.to_numpy(float) if "n_items" in rows else np.full(len(rows), np.nan)
        counted = np.isfinite(n) & (n > 0)
        # the standard error of a guesser's score at the chance rate
        sd = 100 * np.sqrt(c * (1 - c) / np.where(counted, n, 1))
        if (counted & ((rows.value.to_numpy(float) - 100 * c) / sd < -BELOW_CHANCE_SE)).any():
            chance[i] = [0.0] * len(chance[i])
    return dataclasses.replace(table, chance=chance)


def _with_average_task(table: TaskTable) -> TaskTable:
    """The table with an average over its upstream tasks (kind upstream_avg, named avg<N>) where it has many and
    no average: Gadre et al.'s target is the mean of their 46 evaluations, which the Dataset holds task by task
    (so the likelihood counts each number once) and `predict` reports as the mean of the tasks' links."""
    n_up = len(table.upstream)
    if n_up < forward.AVERAGE_MIN_TASKS or "upstream_avg" in table.kinds:
        return table
    return TaskTable(table.names + [f"avg{n_up}"], table.kinds + ["upstream_avg"], table.chance + [[0.0]],
                     table.n_benchmarks + [1])  # derived from its tasks' links: no ceiling of its own


def _averages_scored_once(df, table: TaskTable):
    """df without the published averages whose every component is scored beside them (same run, metric, seed,
    corpus): the model predicts an average as the mean of its tasks' links, so scoring it too would count the
    same evidence twice (EvoLM prints Upstream_avg beside its six tasks). An average printed alone (EvoLM's
    intermediate checkpoints) is kept."""
    up = set(table.upstream)
    if not up:
        return df
    keys = [c for c in df.columns if c not in ("task", "value", "n_items", "n_correct")]
    scored = df[df.task.isin(up)].groupby(keys, dropna=False).task.nunique()
    is_avg = df.task.map(table.kind).eq("upstream_avg").to_numpy()
    complete = df[keys].apply(tuple, axis=1).map(scored.to_dict()).fillna(0).to_numpy() == len(up)
    return df[~(is_avg & complete)]


def observations(ds) -> Observations:
    """A results Dataset → Observations (the long table of its non-NaN cells)."""
    from dynsim import results

    df = results.to_long(ds)
    table = TaskTable.from_meta(ds.tasks.values, ds.task_kind.values, ds.task_chance.values,
                                ds.task_n_benchmarks.values,
                                sorted(str(d) for d in ds.sft_datasets.values if str(d)) if "sft_datasets" in ds.coords
                                else ())
    known = set(table.names) - set(UNMODELLED_TASKS)
    df = df[df.task.isin(known) & df.task.map(lambda t: table.kind(t) in KINDS + ("upstream", "upstream_avg", "text"))
            & df.metric.map(_modelled_metric)]
    table = _free_form_where_below_chance(table, df)
    table = _with_average_task(table)
    df = _averages_scored_once(df, table)
    cfgs = results.run_configs(df)
    corpora = [str(c) for c in ds.corpora.values] if "corpora" in ds.coords else []
    corpus = df.corpus.map(corpora.index).to_numpy(int) if corpora else None
    n_items = df.n_items.to_numpy(float) if "n_items" in df else None
    n_correct = df.n_correct.to_numpy(float) if "n_correct" in df else None
    return Observations(cfgs, list(df.task), list(df.metric), df.value.to_numpy(float), table, n_items, n_correct,
                        corpus, corpora)


def _pooled(name, centre, spread, dims, by=None, log=False, shift=0.0, centred=False):
    """A per-task parameter partially pooled around a centre:
    value = link(shift + centre[group] + spread · z), centre ~ N(*centre), spread ~ HalfNormal, z ~ N(0, 1).
    `by` maps tasks to kinds (one centre per kind); `log` makes the parameter positive (centre on the log scale).
    Non-centred (z sampled) by default: right where the data say little about each member. `centred` samples
    the member itself, N(centre, spread): right where each member is pinned by its own data, where z would be
    pinned to (member − centre)/spread, a curved ridge in (z, spread) that forces NUTS into tiny steps."""
    tag = "log" if log else ""
    if len(pm.modelcontext(None).coords[dims]) == 1 and by is None:
        # one member: a spread around a centre is not identified (a funnel for NUTS); the prior is then the
        # centre's widened by the spread's typical size
        z = pm.Normal(f"{name}_z", 0, 1, dims=dims)
        value = shift + centre[0] + float(np.hypot(centre[1], spread)) * z
        return pm.Deterministic(name, pt.exp(value) if log else value, dims=dims)
    mu = pm.Normal(f"{name}_{tag}mu", mu=centre[0], sigma=centre[1], dims="kind" if by is not None else None)
    sd = pm.HalfNormal(f"{name}_{tag}sd", sigma=spread)
    loc = mu[by] if by is not None else mu
    if centred:
        value = shift + pm.Normal(f"{name}_c", mu=loc, sigma=sd, dims=dims)
    else:
        value = shift + loc + sd * pm.Normal(f"{name}_z", 0, 1, dims=dims)
    return pm.Deterministic(name, pt.exp(value) if log else value, dims=dims)


PINNED_MIN_NUMBERS, PINNED_ABOVE_CHANCE = 3, 3.0  # numbers, points


def _pinned_by_own_numbers(obs: Observations, down: list[str]) -> np.ndarray:
    """Per downstream task: at least PINNED_MIN_NUMBERS of its numbers lie PINNED_ABOVE_CHANCE points or more above
    its chance floor, so its own data locate its ability (which a centred parametrisation wants); a number at
    chance says only that the ability is low, not where."""
    floor = np.array([100 * min(obs.table.chance[obs.table.names.index(t)]) for t in obs.tasks])
    above = obs.values - floor >= PINNED_ABOVE_CHANCE
    return np.array([np.sum(above & (np.array(obs.tasks) == t)) >= PINNED_MIN_NUMBERS for t in down])


def _group_means(values, group: np.ndarray, n_groups: int):
    """Mean of per-observation values within each group (0 for a group without observations)."""
    weights = np.zeros((n_groups, len(group)))
    weights[group, np.arange(len(group))] = 1.0
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
    return pt.dot(weights, values)


# Priors of the smoothmax form's dimensionless quantities where the loss is latent (EvoLM, Pythia: accuracies
# only, so the loss law's shape is barely identified), transferred from the bundled testbeds that measure the
# loss and fit this form: (mean, sd) of log(k − 1), α and β. Posterior means: gadre2024 (Gadre et al.'s open_lm
# runs below 1B) log(k − 1) 0.41, α 0.215, β 0.230; olmo_ladder (the OLMo ladder's 190M-1.3B runs) 1.40, 0.178,
# 0.142. The centre is their mean; the spread the between-testbed sd (two testbeds: |a − b|/√2) with the
# within-testbed sd added in quadrature, for the exponents never below 0.05: two testbeds say little about the
# spread over model families. tests/test_calibrations.py checks these against the bundled posteriors. The sum
# form's exponents keep Hoffmann et al.'s priors (fitted in that form).
TRANSFERRED_SMOOTHMAX = dict(log_k_excess=(0.91, 0.72), alpha=(0.20, 0.05), beta=(0.19, 0.065))
TRANSFER_SOURCES = ("gadre2024", "olmo_ladder")


def build(obs: Observations) -> pm.Model:
    """The PyMC model: priors → forward model (pytensor) → likelihood of the observed numbers."""
    table = obs.table
    down, up = table.downstream, table.upstream
    coords = {"task": down or ["none"], "up_task": up or ["none"], "kind": list(KINDS),
              "obs_group": list(OBS_GROUPS), "shared_group": list(SHARED_GROUPS),
              "obs_acc": np.flatnonzero(obs.scale != 1.0), "obs_loss": np.flatnonzero(obs.scale == 1.0)}
    if len(obs.corpora) > 1:
        coords |= {"corpus": obs.corpora, "corpus_rest": obs.corpora[1:]}
    if obs.models_base_quality():
        coords["base"] = obs.bases
    if table.sft_datasets:  # row-major (task, data set), as forward.design's pair_idx
        coords["task_data"] = [f"{t}|{d}" for t in coords["task"] for d in table.sft_datasets]
    kind_of_task = np.array([KINDS.index(table.kind(t)) for t in down] or [0])
    with pm.Model(coords=coords) as model:
        p = {}
        scale_centre, measured = forward.scale_centres(obs.scales), obs.scales["loss_ref"] is not None
        if not measured:
            # Pretraining loss, Chinchilla form. Centred between Hoffmann et al. 2022 (E 1.69, A 406, α 0.34,
            # B 411, β 0.28) and Epoch's refit (Besiroglu et al. 2024: E 1.82, A 482, α 0.35, B 2085, β 0.37);
            # widths cover both. The loss is latent here (EvoLM prints accuracies), so its scale leans on these.
            p["E"] = pm.LogNormal("E", mu=np.log(1.8), sigma=0.1)
            # At N_ref = 1e9, D_ref = 1e11 both fits give A ≈ 0.34-0.35 nats; B ≈ 0.34 (Hoffmann) or 0.17 (Epoch).
            p["A"] = pm.LogNormal("A", mu=np.log(0.35), sigma=0.3)
            p["B"] = pm.LogNormal("B", mu=np.log(0.25), sigma=0.5)
            if obs.form == "smoothmax":
                # The smoothmax form's exponents are not the sum's: transferred from the bundled testbeds that
                # measure the loss and fit this form (TRANSFERRED_SMOOTHMAX says how).
                (a_mu, a_sd), (b_mu, b_sd) = TRANSFERRED_SMOOTHMAX["alpha"], TRANSFERRED_SMOOTHMAX["beta"]
            else:
                (a_mu, a_sd), (b_mu, b_sd) = (0.34, 0.04), (0.32, 0.05)
            p["alpha"] = pm.TruncatedNormal("alpha", mu=a_mu, sigma=a_sd, lower=0.05, upper=0.8)
            p["beta"] = pm.TruncatedNormal("beta", mu=b_mu, sigma=b_sd, lower=0.05, upper=0.8)
        else:
            # The loss is measured: the same centres, widened to weakly informative. E and the nats of A and B
            # depend on the tokenizer and the validation text (a CPU miniature's 4K-token BPE on WordNet glosses
            # is not MassiveText), and exponents fitted to other model families range 0.2-0.5 (Kaplan et al.
            # 2020 to Besiroglu et al. 2024; Gadre et al.'s open_lm runs give ~0.25).
            p["E"] = pm.LogNormal("E", mu=np.log(1.8), sigma=0.5)
            p["A"] = pm.LogNormal("A", mu=np.log(0.35), sigma=1.5)
            p["alpha"] = pm.TruncatedNormal("alpha", mu=0.34, sigma=0.1, lower=0.05, upper=0.8)
            p["B"] = pm.LogNormal("B", mu=np.log(0.25), sigma=1.5)
            p["beta"] = pm.TruncatedNormal("beta", mu=0.32, sigma=0.1, lower=0.05, upper=0.8)
        if obs.form == "smoothmax":
            # How the size and data terms combine, (a^k + b^k)^(1/k): Hoffmann et al. 2022 add them (k = 1);
            # Kaplan et al. 2020's L(N, D) is this form with k = 1/α_D ≈ 10, near their maximum, where a model
            # limited by its size gains little from more tokens. Where the loss is measured, weakly informative:
            # log(k − 1) ~ N(0, 1.5), median 2, 90% 1.1-13. Where it is latent (EvoLM and Pythia print accuracies
            # only; EvoLM's one size ladder, 1B and 4B, says little about k: 2.0-41 under the wide prior), k is
            # transferred from the testbeds that measure it (TRANSFERRED_SMOOTHMAX): k 90% within 1.8-9.1.
            centre, spread = (0.0, 1.5) if measured else TRANSFERRED_SMOOTHMAX["log_k_excess"]
            excess = pm.LogNormal("smoothmax_excess", mu=centre, sigma=spread)
            p["smoothmax_k"] = pm.Deterministic("smoothmax_k", 1.0 + excess)
        # Learning-rate decay lowers loss by a few hundredths of a nat to ~0.1 at these scales (Hägele et al.
        # 2024, WSD cooldowns): a checkpoint taken before the decay carries that gap.
        p["anneal_gap"] = pm.HalfNormal("anneal_gap", sigma=0.1)
        # CPT forgetting: pure-domain CPT raises general loss by tenths of a nat (Ibrahim et al. 2024); a few
        # percent of replay removes most of it (their 5% replay result) → e^(−κ·0.05) ≈ 0.5 at κ ≈ 15.
        # Where the loss is measured the data set the size: a CPU miniature forgets far more (a prototype here went
        # 1.67 → 5.18 nats after 1M pure-domain tokens), so the prior widens tenfold.
        p["forget_max"] = pm.HalfNormal("forget_max", sigma=3.0 if measured else 0.3)
        # Token scales relative to the data's reference (EvoLM: D_ref 1e11 → 5e9 tokens; a miniature's 1e7 → 5e5).
        p["forget_tokens"] = pm.LogNormal("forget_tokens", mu=np.log(scale_centre["forget_tokens"]), sigma=1.0)
        p["replay_protect"] = pm.LogNormal("replay_protect", mu=np.log(15.0), sigma=0.7)
        # How much of that forgetting a downstream task feels, per kind: general-text loss is not the ability a
        # task uses (CPT on maths lowers general-text scores yet raises in-domain ones; EvoLM Figs. 4-5), and
        # a miniature forgets 3.5 nats of general text on maths CPT while its maths scores hold up. With all of
        # it felt, one loss_slope had to tie ability to loss across pretraining budgets and ignore 3.5 nats of
        # forgetting at once, and the mini posterior split into two modes. Beta(2, 2): any share, not the edges.
        p["forget_reach"] = pm.Beta("forget_reach", alpha=2.0, beta=2.0, dims="kind")
        # Domain ability grows with domain tokens with diminishing returns (D-CPT law, Que et al. 2024).
        p["domain_tokens"] = pm.LogNormal("domain_tokens", mu=np.log(scale_centre["domain_tokens"]), sigma=1.0)
        # Post-training: SFT turns a base model that cannot follow the answer format into one that can
        # (logits of gain, clearly positive); saturation scales span 1e3-1e6 example-epochs (EvoLM Figs 6-8).
        # Positive by construction: EvoLM's tables hold downstream numbers only after 100Kep1 SFT, so the data
        # fix ability0 + gain, not the gain; a sign-free prior let the ridge push it below 0 (more SFT examples
        # lowering accuracy, against EvoLM Fig. 7). LogNormal: 90% within 1.3-6.8 logits.
        p["sft_gain"] = pm.LogNormal("sft_gain", mu=np.log(3.0), sigma=0.5)
        if table.sft_datasets:
            # Where runs name their SFT data (Amuro & Char), each (task, data set) pair has its own gain: SFT on MNLI
            # lifts MNLI from chance to 80% and leaves PAWS at chance or below (their Fig. 5: fine-tuning teaches its
            # task and forgets others). Pooled around one centre, sign free: N(0, 2) logits for the centre and a
            # spread of HalfNormal(2), so a pair no run measured is predicted from the pool, honestly wide.
            centre = pm.Normal("data_gain_mu", mu=0.0, sigma=2.0)
            spread = pm.HalfNormal("data_gain_sd", sigma=2.0)
            z = pm.Normal("data_gain_z", 0.0, 1.0, dims="task_data")
            p["data_gain"] = pm.Deterministic("data_gain", centre + spread * z, dims="task_data")
        # Saturation scales relative to the data's typical post-training budget (EvoLM: sft_ref 1e5 → 3e4,
        # rl_ref 1e6 → 2e5 example-epochs; a miniature's 1e4 and 1e3 → 3e3 and 200, so its RL budgets of
        # 128-2048 prompt-epochs can move ability at all).
        p["sft_scale"] = pm.LogNormal("sft_scale", mu=np.log(scale_centre["sft_scale"]), sigma=1.0)
        p["rl_gain"] = pm.Normal("rl_gain", mu=0.5, sigma=1.0)
        p["rl_scale"] = pm.LogNormal("rl_scale", mu=np.log(scale_centre["rl_scale"]), sigma=1.0)
        # Overtraining erodes fine-tuning gains (Springer et al. 2025); sign fixed, size left to the data.
        p["ot_sensitivity"] = pm.HalfNormal("ot_sensitivity", sigma=0.3)
        p["epoch_decline"] = pm.HalfNormal("epoch_decline", sigma=0.3)
        # Greedy decoding turns an item solved with p > 1/2 into a sure success: a sharper logit.
        p["greedy_sharpness"] = pm.LogNormal("greedy_sharpness", mu=np.log(1.5), sigma=0.4, dims="kind")
        # maj@k: wrong answers split their votes, so the right one wins with a minority share (~0.3).
        p["maj_threshold"] = pm.Beta("maj_threshold", alpha=3.0, beta=7.0, dims="kind")
        if forward.measures_sft_forgetting(obs.x):
            # SFT on a narrow domain raises general-text loss (Amuro & Char 2024; Luo et al. 2023): tenths of a
            # nat at scale, several nats for a CPU miniature (2.85 → 8.0 measured here): weakly informative.
            p["sft_forget"] = pm.HalfNormal("sft_forget", sigma=3.0)
        if len(obs.corpora) > 1:
            # Pretraining corpora differ in irreducible loss on a given validation set by about a tenth of a nat
            # and in data efficiency (Gadre et al. 2024, Fig. 2: C4, RedPajama, RefinedWeb evaluated on C4).
            # The first corpus is the reference (offsets 0), so E and B keep their meaning and NUTS no ridge.
            zero = pt.zeros(1)
            e_rest = pm.Normal("corpus_E_rest", 0.0, 0.2, dims="corpus_rest")
            b_rest = pm.Normal("corpus_logB_rest", 0.0, 0.5, dims="corpus_rest")
            p["corpus_E"] = pm.Deterministic("corpus_E", pt.concatenate([zero, e_rest]), dims="corpus")
            p["corpus_logB"] = pm.Deterministic("corpus_logB", pt.concatenate([zero, b_rest]), dims="corpus")
            # The loss is measured on one validation set (Gadre et al.: C4), in-distribution for one corpus only:
            # at the same 1.3B/28BT budget their C4-trained model has 0.11 nats less C4 loss than the RedPajama one
            # and 1.6 points less average accuracy. The cloze link reads the loss less a per-corpus offset (±0.2).
            link_rest = pm.Normal("corpus_link_rest", 0.0, 0.2, dims="corpus_rest")
            p["corpus_link"] = pm.Deterministic("corpus_link", pt.concatenate([zero, link_rest]), dims="corpus")
        if "base" in coords:
            # A base checkpoint's quality beyond the law: one standard-normal number per checkpoint, shared by all
            # of its numbers and inherited by its CPT / SFT / RL descendants. EvoLM's 4B-80BT scores under 1B-80BT
            # on all six cloze tasks and its fine-tuned runs under 1B-80BT's, while 4B-160BT's cloze numbers jump
            # 5 points: deviations that neither the law nor independent residuals describe, and that a descendant
            # of a new checkpoint must carry as uncertainty. It lowers the checkpoint's general loss by a fraction
            # (quality_loss: 1-3% of the loss, the scale of held-out loss errors of good laws, Gadre et al. 2024:
            # 1.2%) and adds downstream logits per kind (quality_ability: a checkpoint one sd better post-trains
            # up to about half a logit better; same sign as the loss term, so the factor has one orientation).
            p["base_quality"] = pm.Normal("base_quality", 0.0, 1.0, dims="base")
            p["quality_loss"] = pm.HalfNormal("quality_loss", sigma=0.02)
            p["quality_ability"] = pm.HalfNormal("quality_ability", sigma=0.5, dims="kind")
        # Downstream tasks, partially pooled (within their kind where a centre has dims="kind").
        p["loss_slope"] = _pooled("loss_slope", (np.log(2.0), 0.7), 0.3, "task", log=True)
        # Size beyond loss: at equal general-text loss a larger model gains more from fine-tuning (Zhang et al.
        # 2024, "When Scaling Meets LLM Finetuning": model size helps fine-tuning more than pretraining data does).
        # Per e-fold of size, per kind; centred a little above 0 by that finding, wide enough that a 4x larger
        # model's gain spans -0.7 to +1.6 logits (90%).
        p["size_ability"] = pm.Normal("size_ability", mu=0.3, sigma=0.5, dims="kind")
        p["domain_weight"] = _pooled("domain_weight", (0.5, 0.5), 0.3, "task", by=kind_of_task)
        p["item_spread"] = _pooled("item_spread", (np.log(2.0), 0.4), 0.3, "task", log=True)
        # The ability the data pin down is a task's mean over its own observations, not ability0 (the ability
        # at L_ref before CPT and post-training, a configuration the data may never show): sampling ability0
        # left it on curved ridges with sft_gain, sft_scale, domain_weight and domain_tokens, and NUTS at tree
        # depth 8. So the mean is sampled, and ability0 = mean − the mean shift of the task's configurations.
        # And it is sampled as what the scores pin down, the logit of the mean per-item success: an item spread s
        # flattens E[σ(μ + s·z)] to about σ(μ / √(1 + πs²/8)) (the probit approximation), so a mean ability μ
        # sampled directly slid along a curved ridge with s (μ −8, s 3.8 ↔ μ −2.4, s 0.7 on EvoLM's maths) and
        # left 14 divergences at target_accept 0.95; sampled as μ / √(1 + πs²/8), none.
        # Prior: logits of a trained model's typical score, weakly informative (±2 spans ~10-90% above chance).
        down_rows = np.flatnonzero(np.isin(obs.x["kind"], KINDS))
        x_down = obs.x.subset(down_rows)
        # Centred where every task's own numbers pin its mean success (several clearly above chance), else
        # non-centred: Amuro & Char's tasks sit at chance in every base run, and centring them left a funnel at a
        # small pooled spread (11 divergences at target_accept 0.995; 8 with only the pinned ones centred).
        pinned = len(down) > 1 and bool(_pinned_by_own_numbers(obs, down).all())
        mean_success = _pooled("success_mean", (0.0, 2.0), 1.5, "task", by=kind_of_task, centred=pinned)
        mean_ability = mean_success * pt.sqrt(1.0 + np.pi / 8 * p["item_spread"] ** 2)
        mean_shift = _group_means(forward.ability_shift(p, x_down, pt), x_down["task_idx"], len(coords["task"]))
        p["ability0"] = pm.Deterministic("ability0", mean_ability - mean_shift, dims="task")
        # Upstream cloze tasks: accuracy is a sigmoid in loss (OLMo ladder, Bhagia et al. 2024), pooled.
        p["up_slope"] = _pooled("up_slope", (np.log(3.0), 0.7), 0.5, "up_task", log=True)
        # Midpoints: offsets (±0.5 nats, pooled) from the mean loss of the observed cloze runs. Relative to that
        # mean for the reason abilities are: an absolute midpoint lay on a ridge with B and the link slope.
        up_rows = np.flatnonzero(np.isin(obs.x["kind"], ("upstream", "upstream_avg"))
                                 & np.array([m[0] == "cloze" for m in obs.x["metric"]], dtype=bool))
        typical_loss = (pt.mean(forward.upstream_loss(p, obs.x.subset(up_rows), pt)) if up_rows.size
                        else forward.loss_ref(p, obs.scales))
        p["up_mid"] = _pooled("up_mid", (0.0, 1.0), 0.5, "up_task", shift=typical_loss, centred=len(up) > 1)
        # Ceilings: well-built benchmarks top out near human agreement, 85-100%: Beta(10, 1.5), mean 0.87. A number
        # that averages n benchmarks tops out at the mean of their ceilings, whose spread shrinks as 1/√n (ceilings
        # drawn independently): Beta(10n, 1.5n). With the single-benchmark prior, one link fitted to Gadre et al.'s
        # average of 46 lowered its ceiling to 0.63 to stand for the benchmarks still at chance, which rise later,
        # and under-predicted every larger held-out run given its true loss (+0.7 to +2.3 points).
        n_bench = np.array([table.n_benchmarks[table.names.index(t)] for t in up] or [1], dtype=float)
        p["up_ceiling"] = pm.Beta("up_ceiling", alpha=10.0 * n_bench, beta=1.5 * n_bench, dims="up_task")

        pred = forward.predict(p, obs.x, pt)
        # The observation model of dynsim/observation.py. Discrepancy scales: accuracies in points (a few points of
        # misfit per task group); losses relative: the pretraining law predicts held-out larger runs to about a
        # percent (Gadre et al. 2024's own fits: 1.15% mean error on their split), while what CPT and SFT do to general-text
        # loss varies by tens of percent between runs (EvoLM Fig. 4; a miniature's SFT forgot 0.3-3 nats).
        disc = pm.HalfNormal("discrepancy", sigma=np.array([2.0, 2.0, 2.0, 0.03, 0.3]), dims="obs_group")
        is_loss = obs.scale == 1.0
        acc, loss = np.flatnonzero(~is_loss), np.flatnonzero(is_loss)
        if acc.size:
            floor = obs.measurement_sd()[acc]  # binomial where item counts are known, else the noise floor
            variance = floor ** 2 + disc[obs.group[acc]] ** 2
            slope = forward.cloze_loss_slope(p, obs.x, pt) if measured else None
            if slope is not None:
                # A run sits off the loss law by a fraction of its loss (its loss group's scale), and its cloze
                # accuracies move with it by the link's slope per unit of log loss: extra variance that grows where
                # the link steepens (larger models, lower loss) and that a constant discrepancy would leave out.
                variance = variance + (disc[obs.run_group[acc]] * slope[acc] * 100.0) ** 2
            block, n_blocks = observation.run_blocks(obs.run_keys[acc], obs.group[acc])
            if n_blocks < len(acc):  # some run has several numbers of one group: they share its deviation
                # A run's shared deviation per accuracy group (observation.py), in points: of the order of the
                # discrepancy (EvoLM's 4B-80BT sits 1.7 points under 1B-80BT on all six cloze tasks), integrated
                # out of the likelihood.
                shared = pm.HalfNormal("run_shared", sigma=2.0, dims="shared_group")
                resid = obs.values[acc] - pred[acc] * 100.0
                tau = shared[np.minimum(obs.group[acc], len(SHARED_GROUPS) - 1)]
                pm.Potential("y", block_log_density(resid, variance, tau, block, n_blocks, pt).sum())
            else:
                pm.Normal("y", mu=pred[acc] * 100.0, sigma=pt.sqrt(variance), observed=obs.values[acc],
                          dims="obs_acc")
        if loss.size:
            # Relative deviations with Student-t tails: a run can sit off the law (a very short run dominated by its
            # warmup, e.g. Gadre et al.'s 0.25x runs at +0.5 nats), and one such run must not set the scale of all.
            pm.StudentT("log_loss", nu=LOSS_NU, mu=pt.log(pred[loss]), sigma=disc[obs.group[loss]],
                        observed=np.log(obs.values[loss]), dims="obs_loss")
    return model


FORWARD_VARS = tuple(p.name for p in forward.PARAMS) + ("discrepancy", "run_shared")  # optional ones only where modelled
