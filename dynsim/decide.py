"""Decisions from the posterior, numpy only: where to spend a compute budget (`dynsim optimize`) and which run to
train next to be surer (`dynsim suggest`).

optimize
    Candidates are whole pipelines (size, pretraining tokens, CPT replay + domain, SFT examples × epochs,
    RL examples × epochs) on log grids around what the calibration saw (`Space`), within a FLOP budget
    (`run_flops`). Every candidate is scored on the *same* stored posterior draws (common random numbers), so
    differences between candidates carry no Monte-Carlo noise of their own. The grid's product is ~10^5 pipelines,
    too many to predict in seconds, so the search is batched coordinate ascent from the best of a random sample:
    each step tries every value of one axis (size and pretraining tokens together, since at a fixed budget they
    trade against each other) for every start at once. Among the best allocations found it reports, per draw,
    which is best (the posterior probability of being best) and how far each falls short of the draw's best (the
    expected regret).

suggest
    A candidate run is scored by how much measuring its numbers would shrink the posterior variance of the target
    at the configurations of interest, per FLOP of its new stages. No refit: the stored draws are an ensemble of
    the target jointly with every number a candidate would measure, and what a run's numbers would teach is the
    Bayes-linear (ensemble Kalman) adjustment of the target by them (`Ensemble`), which, unlike importance
    reweighting of the draws under simulated outcomes, does not collapse onto a few draws when a run is
    informative. k runs are chosen greedily, each conditioned on the ones before it (`greedy`); a study that
    measures them updates the ensemble by the ensemble Kalman filter (`Ensemble.assimilate`, `reveal`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re

import numpy as np

from dynsim import forward
from dynsim.config import AFTER_PT, STAGE, TUNED, ConfigError, RunConfig, format_size, format_tokens, parse_size
from dynsim.errors import UserError, shown
from dynsim.tree import lineage, stage_tokens

# A GPU's sustained training throughput, to turn a budget in GPU-hours into FLOPs: an H100 SXM's dense bf16 peak
# of 989 TFLOP/s at 40% model-FLOPs utilisation, the range large dense pretraining reports (35-45%: Llama 3,
# Dubey et al. 2024, §3.3.2). `--gpu-flops` states another.
GPU_FLOPS = 0.4 * 989e12
# Tokens one SFT example and one RL example cost per epoch when the calibration names no study of its own:
# EvoLM's, as estimated in studies/evolm_1b.toml (read from there when present; these are its values).
TOKENS_PER_EXAMPLE = {"sft": 512, "rl": 1024}
EPOCHS = {"sft": [1, 2, 4, 8], "rl": [1, 2, 4, 8, 16]}  # epochs a grid tries per example stage (EvoLM's ranges)
LEVEL = 0.9  # the reported predictive interval
SEARCH_SAMPLE, SEARCH_STARTS, TOP_SET = 256, 6, 40  # random screen, coordinate-ascent starts, the P(best) set


class DecideError(UserError):
    """An impossible or malformed request to optimize or suggest."""


# -- compute ---------------------------------------------------------------------------------------------
def parse_budget(text: str, gpu_flops: float | None = None) -> float:
    """'1e22FLOPs', '1e22' → FLOPs; '5000GPUh' (GPU-hours at gpu_flops FLOP/s, default GPU_FLOPS) → FLOPs."""
    m = re.fullmatch(r"\s*([0-9.]+(?:e[+-]?\d+)?)\s*(flops?|gpu-?h(?:ours?)?)?\s*", str(text), re.IGNORECASE)
    try:
        value = float(m[1]) if m else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise DecideError(f"bad budget {shown(text)}: expected FLOPs such as 1e22FLOPs or GPU-hours such as 5000GPUh")
    return value * (gpu_flops or GPU_FLOPS) * 3600 if m[2] and m[2].lower().startswith("gpu") else value


def run_flops(cfg: RunConfig, tokens_per_example=TOKENS_PER_EXAMPLE, trained=frozenset()) -> float:
    """Training FLOPs of cfg's stages that are not in `trained` (checkpoints that exist): 6·N·D per stage, with
    SFT and RL tokens = examples × epochs × tokens per example (as `dynsim sweep plan` counts them, dynsim/tree.py).
    RL's rollout generation (2·N per sampled token) and any critic are not counted: a lower bound for RL."""
    return sum(6.0 * c.size * stage_tokens(c, tokens_per_example) for c in lineage(cfg) if c not in trained)


def tokens_per_example(calibration: str | None) -> tuple[dict[str, int], str]:
    """Tokens per example of each example stage ({'sft': 512, 'rl': 1024}) for a calibration's cost accounting, and where they come from: the study
    spec of the calibration's runs (its [tokens_per_example]), else EvoLM's."""
    from dynsim import calibrations, posterior
    from dynsim.study import StudyError, load_study

    spec = {"evolm": "studies/evolm_1b.toml"}.get(calibration or "")
    if calibration in calibrations.CALIBRATIONS and calibrations.get(calibration).study:
        spec = calibrations.get(calibration).hold_out.get("study", spec)
    path = posterior.repo_root() / spec if spec else None
    if path is not None and path.exists():
        try:
            s = load_study(path)
            return s.tokens_per_example, f"{spec} [tokens_per_example]"
        except StudyError:
            pass
    return TOKENS_PER_EXAMPLE, "EvoLM's estimate (studies/evolm_1b.toml)"


# -- the target ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Target:
    task: str
    metric: str

    @property
    def name(self) -> str:
        return f"{self.task}:{self.metric}"

    @property
    def sign(self) -> float:
        """+1 where more is better (accuracies), −1 for a loss."""
        return -1.0 if self.metric == "loss" else 1.0

    @property
    def units(self) -> str:
        return "nats/token" if self.metric == "loss" else "points"

    def config(self, cfg: RunConfig, post) -> RunConfig:
        """The model the target is measured on: upstream numbers on the model before SFT (as `predict`)."""
        return cfg if post.table.kind(self.task) in forward.KINDS else cfg.upstream()


def parse_target(text: str | None, post) -> Target:
    """'ID_avg:maj@16', 'ARC-Easy' (its kind's usual metric) or None (the calibration's main target: the ID
    average's majority vote where there are downstream tasks, else the upstream average, else the loss)."""
    table = post.table
    if text is None:
        ids = [t for t in table.downstream if table.kind(t) == "ID"] or table.downstream
        ups = [t for t, k in zip(table.names, table.kinds) if k == "upstream_avg"] or table.upstream
        texts = [t for t, k in zip(table.names, table.kinds) if k == "text"]
        pool = ids or ups or texts
        if not pool:
            raise DecideError("this calibration predicts no task to optimise")
        task = next((t for t in pool if "avg" in t.lower()), pool[0])
        return parse_target(task, post)
    task, colon, metric = str(text).partition(":")
    if colon and not metric:
        raise DecideError(f"target {shown(text)}: give a metric after ':', or no ':' for the task's usual metric")
    if task not in table.names:
        raise DecideError(f"unknown target task {shown(task)}: this calibration predicts {', '.join(table.names)}")
    kind = table.kind(task)
    allowed = post.metrics_of("downstream" if kind in forward.KINDS else "loss" if kind == "text" else "cloze")
    if not metric:
        order = ("maj", "greedy", "pass", "mean")
        ranked = sorted(allowed, key=lambda m: order.index(forward.metric_kind(m)[0])
                        if forward.metric_kind(m)[0] in order else 0)
        if not ranked:
            raise DecideError(f"target {shown(task)}: the calibration measured no metric of it")
        metric = ranked[0]
    if metric not in allowed:
        raise DecideError(f"target {shown(text)}: {task} is predicted as {', '.join(allowed) or 'nothing'}, "
                          f"not {shown(metric)}")
    return Target(task, metric)


# -- the candidate grid ----------------------------------------------------------------------------------
def _geometric(anchor: float, lo: float, hi: float, ratio: float) -> list[float]:
    """anchor · ratio^k for every integer k with the value in [lo, hi]."""
    k0, k1 = math.ceil(math.log(lo / anchor, ratio) - 1e-9), math.floor(math.log(hi / anchor, ratio) + 1e-9)
    return [anchor * ratio ** k for k in range(k0, k1 + 1)]


def _rounded(values) -> list[int]:
    """Counts rounded to 3 significant digits (names stay short: 1.6+48.4BT, not 1.600000001+...)."""
    return sorted({int(float(f"{v:.3g}")) for v in values if v >= 1})


AXES = ("size", "pretrain", *STAGE)  # a candidate's axes: each stage's value is its counts, all 0 = 'none'


def axis_value(cfg: RunConfig, axis: str):
    return getattr(cfg, axis) if axis in ("size", "pretrain") else STAGE[axis].counts(cfg)


def make_config(values: dict) -> RunConfig:
    """The run with these axis values (AXES → value); ConfigError where they are no pipeline (RL without SFT)."""
    counts = {f: v for s in AFTER_PT for f, v in zip(s.fields, values[s.key])}
    return RunConfig(values["size"], values["pretrain"], **counts)


@dataclasses.dataclass
class Space:
    """The candidate values of each axis (AXES)."""

    values: dict[str, list]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.values[a]) for a in AXES)

    def config(self, idx) -> RunConfig:
        return make_config({a: self.values[a][i] for a, i in zip(AXES, idx)})

    def describe(self) -> str:
        def many(name, values, fmt):
            return f"{name} {len(values)} ({fmt(values[0])}…{fmt(values[-1])})" if len(values) > 1 else \
                f"{name} {fmt(values[0])}"

        def stage(s):
            return lambda v: "none" if not any(v) else s.write(v)

        return ", ".join([many("size", self.values["size"], format_size),
                          many("pretrain", self.values["pretrain"], format_tokens)] +
                         [many(s.title, self.values[s.key], stage(s)) for s in AFTER_PT])


def space(post, target: Target, budget: float, tpe=TOKENS_PER_EXAMPLE, fix: dict | None = None,
          maximum: dict | None = None, in_range: bool = False) -> Space:
    """Log grids around the calibration's runs: sizes ×2 from a quarter of the smallest to 4× the largest;
    pretraining tokens 4 per decade from a quarter of the smallest to what the budget buys the smallest size;
    a mix stage's (CPT's) totals ×2 around the observed ones at replay shares 0, the observed ones and twice the
    largest; an example stage's (SFT's, RL's) examples ×2 within 4× of the observed, its EPOCHS and the observed.
    Values beyond the calibrated range are kept and flagged (Posterior.outside_range). Stages the calibration never
    saw are left out, and a downstream target always has the first post-training stage (SFT: it is measured after
    it), an upstream one no post-training."""
    obs = [c for c in post.observed if c.annealed] or post.observed
    fix, maximum = fix or {}, maximum or {}
    sizes = [c.size for c in obs]
    size = _rounded(_geometric(min(sizes), min(sizes) / 4, max(sizes) * 4, 2.0))
    size = sorted(set(size) | set(sizes))
    pts = [c.pretrain for c in obs]
    top = max(max(pts), budget / (6.0 * min(size)))
    pretrain = sorted(set(_rounded(_geometric(min(pts), min(pts) / 4, top, 10 ** 0.25))) | set(pts))
    downstream = post.table.kind(target.task) in forward.KINDS
    axes = dict(size=size, pretrain=pretrain)
    for stage in AFTER_PT:
        none = (0,) * len(stage.fields)
        seen = {stage.counts(c) for c in post.observed if stage.ran(c)}
        if stage.tuned and not downstream:
            axes[stage.key] = [none]
        elif stage.budget == "mix":
            axes[stage.key] = [none] + (_mixes(seen) if seen else [])
        elif stage.key == TUNED[0]:  # a downstream number is measured after it
            if not seen:
                raise DecideError(f"target {target.name} is measured after {stage.title}, which this calibration "
                                  f"never saw")
            axes[stage.key] = _examples(seen, EPOCHS.get(stage.key, [1, 2, 4, 8]))
        else:
            axes[stage.key] = [none] + (_examples(seen, EPOCHS.get(stage.key, [1, 2, 4, 8])) if seen else [])
    if in_range:  # the calibrated range is a box, field by field (Posterior.outside_range): cut each axis to it
        hub = max(post.observed, key=lambda c: [c.has(s) for s in reversed(STAGE)])
        for key in AXES:
            axes[key] = [v for v in axes[key] if not _outside(post, hub, key, v)]
    for key, value in fix.items():
        axes[key] = [value]
    for key, value in maximum.items():
        if key in ("size", "pretrain"):  # the bound itself is a natural candidate (--max pretrain=320BT)
            axes[key] = sorted(set(axes[key]) | {value})
        keep = [v for v in axes[key] if _within(v, value)]
        if not keep:
            raise DecideError(f"--max {key}: no candidate value is within it")
        axes[key] = keep
    return Space(axes)


def _mixes(seen: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """(replay, domain) mixes: totals ×2 from 1/8 to 2× the largest seen, at the seen replay shares, 0 and twice
    the largest, and the seen mixes themselves."""
    totals = [r + d for r, d in seen]
    shares = sorted({round(r / (r + d), 3) for r, d in seen} | {0.0, round(2 * max(r / (r + d) for r, d in seen), 3)})
    out = set(seen)
    for total in _geometric(max(totals), max(totals) / 8, max(totals) * 2, 2.0):
        out |= {(int(round(s * total)), int(round((1 - s) * total))) for s in shares if s < 1}
    return sorted(out)


def _examples(seen: set[tuple[int, int]], epochs: list[int]) -> list[tuple[int, int]]:
    """(examples, epochs) pairs: examples ×2 within 4× of the seen, the given and the seen epochs, and the seen."""
    ex = [e for e, _ in seen]
    examples = _rounded(_geometric(min(ex), min(ex) / 4, max(ex) * 4, 2.0))
    return sorted(set(itertools.product(examples, sorted(set(epochs) | {p for _, p in seen}))) | seen)


def _outside(post, cfg: RunConfig, axis: str, value) -> bool:
    """Whether one axis value lies outside the calibrated range (cfg supplies the other fields)."""
    fields = STAGE[axis].fields if axis in STAGE else (axis,)
    try:
        probe = dataclasses.replace(cfg, **dict(zip(fields, value if isinstance(value, tuple) else (value,))))
    except ConfigError:  # 'none' for SFT under an RL stage: an absent stage is never out of range
        return False
    return bool(post.outside_range(probe))


def _within(value, bound) -> bool:
    """A grid value within a --max: a count at most the bound; a mix at most the bound's total tokens; an
    (examples, epochs) pair at most the bound's in both."""
    if isinstance(value, tuple) and isinstance(bound, tuple):
        return all(v <= b for v, b in zip(value, bound))
    if isinstance(value, tuple):
        return sum(value) <= bound
    return value <= bound


def parse_constraints(pairs: list[str] | None, flag: str) -> dict:
    """['size=1B', 'pretrain=320BT', 'cpt=8+42BT', 'sft=100Kep1', 'rl=none'] → grid values. For --max, a mix stage
    (cpt) is a total of tokens ('50BT')."""
    from dynsim.config import parse_pretrain

    out = {}
    for text in pairs or []:
        key, eq, value = str(text).partition("=")
        key, value = {"pt": "pretrain"}.get(key.strip(), key.strip()), value.strip()
        if not eq or key not in AXES:
            raise DecideError(f"{flag} {shown(text)}: expected KEY=VALUE with KEY one of {', '.join(AXES)}")
        if key in out:  # the last would win silently: --fix size=1B --fix size=4B
            raise DecideError(f"{flag} {key} given twice ({shown(text)}); give each axis once")
        stage = STAGE.get(key)
        try:
            if value == "none" and stage:
                if flag == "--max":
                    raise DecideError(f"{flag} {shown(text)}: 'none' is a --fix value")
                out[key] = (0,) * len(stage.fields)
            elif key == "size":
                out[key] = parse_size(value)
            elif key == "pretrain" or (stage.budget == "mix" and flag == "--max"):
                tokens, schedule = parse_pretrain(value)
                if schedule:
                    raise DecideError(f"{flag} {shown(text)}: give a token count such as 320BT")
                out[key] = tokens
            else:
                out[key] = stage.parse_counts(value)
        except ConfigError as e:
            raise DecideError(f"{flag} {key}: {e}") from None
    return out


# -- scoring ---------------------------------------------------------------------------------------------
def target_draws(post, target: Target, configs: list[RunConfig], noise: bool = False, seed: int = 0) -> np.ndarray:
    """The target at each configuration, (S, n): the model's value per draw (noise=False), or a new
    measurement's predictive draws (noise=True, one seeded stream: common random numbers across configs)."""
    if not configs:
        return np.zeros((post.n_draws, 0))
    cs = [target.config(c, post) for c in configs]
    return post.predict(cs, [target.task] * len(cs), [target.metric] * len(cs), noise=noise,
                        rng=np.random.default_rng(seed)).astype(float)


def objective(utility: np.ndarray, risk: float | None) -> np.ndarray:
    """What the search maximises per candidate (columns of utility = sign · target draws): the posterior mean,
    or with risk = q the q-quantile over draws (a cautious user's: the value the allocation beats with
    probability 1 − q)."""
    return utility.mean(axis=0) if risk is None else np.quantile(utility, risk, axis=0)


@dataclasses.dataclass
class Allocation:
    config: RunConfig
    flops: float
    objective: float
    mean: float
    lo: float
    hi: float
    p_best: float
    regret: float
    outside: list[str]

    def as_dict(self, target: Target) -> dict:
        return dict(config=self.config.name, flops=float(f"{self.flops:.4g}"), target=target.name,
                    units=target.units, mean=round(self.mean, 3), lo=round(self.lo, 3), hi=round(self.hi, 3),
                    p_best=round(self.p_best, 4), expected_regret=round(self.regret, 3),
                    outside_calibrated_range=self.outside)


@dataclasses.dataclass
class Optimum:
    target: Target
    budget: float
    risk: float | None
    space: Space
    evaluated: int
    allocations: list[Allocation]


def optimize(post, target: Target, budget: float, space_: Space, tpe=TOKENS_PER_EXAMPLE, risk: float | None = None,
             top: int = 5, seed: int = 0, progress=None) -> Optimum:
    """The allocations of `budget` FLOPs over `space_` with the best objective (module docstring)."""
    rng = np.random.default_rng(seed)
    shape = space_.shape
    cache: dict[tuple, np.ndarray] = {}  # grid index → utility draws (S,)
    feasible: dict[tuple, bool] = {}

    def ok(idx) -> bool:
        if idx not in feasible:
            try:
                cfg = space_.config(idx)
            except ConfigError:  # e.g. an SFT-less RL: not a pipeline
                feasible[idx] = False
                return False
            feasible[idx] = run_flops(cfg, tpe) <= budget
        return feasible[idx]

    def evaluate(indices) -> None:
        new = [i for i in dict.fromkeys(indices) if i not in cache]
        if new:
            u = target.sign * target_draws(post, target, [space_.config(i) for i in new])
            cache.update(zip(new, u.T))

    def score(idx) -> float:
        return float(objective(cache[idx][:, None], risk)[0])

    # screen a random sample of feasible pipelines (and the cheapest of each axis, so a tight budget has one)
    sample = {tuple(int(rng.integers(n)) for n in shape) for _ in range(SEARCH_SAMPLE * 8)}
    sample = [i for i in sample if ok(i)][:SEARCH_SAMPLE]
    cheapest = (0,) * len(shape)
    if ok(cheapest):
        sample.append(cheapest)
    if not sample:
        smallest = run_flops(space_.config(cheapest), tpe)  # each axis's first value is its cheapest
        raise DecideError(f"budget {budget:.3g} FLOPs is below the smallest candidate pipeline "
                          f"{space_.config(cheapest).name} ({smallest:.3g} FLOPs)")
    evaluate(sample)
    starts = sorted(sample, key=score, reverse=True)[:SEARCH_STARTS]
    blocks = [(0, 1)] + [(a,) for a in range(2, len(shape))]  # size and pretraining tokens move together
    for sweep in range(20):
        moved = False
        for block in blocks:
            moves = {}
            for s in starts:
                ranges = [range(shape[a]) if a in block else [s[a]] for a in range(len(shape))]
                moves[s] = [i for i in itertools.product(*ranges) if ok(i)]
            evaluate([i for m in moves.values() for i in m])
            new_starts = [max(moves[s], key=score) for s in starts]
            moved |= new_starts != starts
            starts = list(dict.fromkeys(new_starts))
        if progress:
            progress(f"sweep {sweep + 1}: {len(cache)} pipelines evaluated, best {max(map(score, starts)):.3f}")
        if not moved:
            break
    # the best distinct allocations found; probability of being best and regret among them, per draw
    ranked = sorted(cache, key=score, reverse=True)[:TOP_SET]
    u = np.stack([cache[i] for i in ranked], axis=1)  # (S, candidates)
    best = u.argmax(axis=1)
    p_best = np.bincount(best, minlength=len(ranked)) / len(best)
    regret = (u.max(axis=1, keepdims=True) - u).mean(axis=0)
    shown_ = ranked[:top]
    configs = [space_.config(i) for i in shown_]
    pred = target_draws(post, target, configs, noise=True, seed=seed)
    lo, hi = np.percentile(pred, [50 - 50 * LEVEL, 50 + 50 * LEVEL], axis=0)
    allocations = [Allocation(c, run_flops(c, tpe), score(i), float(pred[:, k].mean()), float(lo[k]), float(hi[k]),
                              float(p_best[k]), float(regret[k]), post.outside_range(c))
                   for k, (i, c) in enumerate(zip(shown_, configs))]
    return Optimum(target, budget, risk, space_, len(cache), allocations)


# -- suggest ---------------------------------------------------------------------------------------------
def trained_prefixes(post) -> frozenset:
    """Every stage prefix of the calibrated runs: their checkpoints exist, so a new run starting there pays only
    for its new stages."""
    return frozenset(c for run in post.observed for c in lineage(run))


def candidate_runs(post, space_: Space, budget_per_run: float, tpe=TOKENS_PER_EXAMPLE, extra=()) -> list[RunConfig]:
    """Runs one grid step from a calibrated run or from a configuration of interest (`extra`) on one axis (a
    one-axis sweep, as EvoLM's own design), their stage prefixes, and `extra` themselves, that are not yet
    trained and whose new stages cost at most budget_per_run."""
    trained = trained_prefixes(post)
    seeds = list(post.observed) + list(extra)
    out = set(extra) | {c for e in extra for c in lineage(e)}
    for cfg in seeds:
        here = {axis: axis_value(cfg, axis) for axis in AXES}
        for axis in AXES:
            values = space_.values[axis]
            if here[axis] in values:
                k = values.index(here[axis])
                steps = values[max(0, k - 1): k + 2]
            else:  # off the grid: the grid values nearest below and above
                steps = [v for v in values if _within(v, here[axis])][-1:] + \
                        [v for v in values if not _within(v, here[axis])][:1]
            for v in steps:
                try:
                    run = make_config({**here, axis: v})
                except ConfigError:
                    continue
                out.update(lineage(run))
    return sorted(c for c in out if c not in trained and not post.unseen_stages(c)
                  and 0 < run_flops(c, tpe, trained) <= budget_per_run)


def train_command(cfg: RunConfig) -> str:
    return f"dynsim train {cfg.name}"


def study_snippet(configs: list[RunConfig]) -> str:
    """A [[grid]] block per run for a `dynsim sweep` study spec (studies/README.md)."""
    blocks = []
    for c in configs:
        fields = [f'size = ["{format_size(c.size)}"]', f'pretrain = ["{format_tokens(c.pretrain)}"]']
        fields += [f'{s.key} = ["{s.write(s.counts(c)) if s.ran(c) else "none"}"]' for s in AFTER_PT]  # no data set
        blocks.append("[[grid]]\n" + "\n".join(fields))
    return "\n\n".join(blocks)


def measurements(post, run: RunConfig, trained=frozenset()) -> list[tuple[RunConfig, str, str]]:
    """The numbers training `run` would produce: each new stage evaluated as the calibration's runs were."""
    return [row for c in lineage(run) if c not in trained for row in post.measured_outputs(c)]


def predict_rows(post, rows, noise: bool, seed: int = 0) -> np.ndarray:
    cs, ts, ms = map(list, zip(*rows))
    return post.predict(cs, ts, ms, noise=noise, rng=np.random.default_rng(seed)).astype(float)


def subset(post, draws: np.ndarray):
    """The posterior restricted to some draws (indices, repeats allowed: a resample)."""
    from dynsim.posterior import Posterior

    return Posterior({k: v[draws] for k, v in post.params.items()}, post.meta, post.path)


@dataclasses.dataclass
class Pool:
    """Candidate runs and every number training them would measure, each number once (two candidates that share
    an untrained stage share its numbers: measured once, whichever trains it first), predicted once per draw:
    noise-free `mean` (S, N) and one predictive draw's `noise` (S, N; the observation model's scatter, as
    `Posterior.predict` draws it: measurement, discrepancy, a run's shared deviation, clipping at 0 and 100)."""

    runs: list[RunConfig]
    rows: list[tuple[RunConfig, str, str]]
    of: dict  # run → indices into rows of the numbers it measures
    stage: np.ndarray  # (N,) which configuration each number is of: noise is shared within one, never across
    mean: np.ndarray
    noise: np.ndarray
    tpe: dict  # tokens per example, per example stage
    trained: frozenset

    @classmethod
    def build(cls, post, runs, tpe=TOKENS_PER_EXAMPLE, trained=None, rows: dict | None = None, seed: int = 0) -> Pool:
        """rows: run → the numbers it measures (default `measurements`; a backtest gives the ones really measured)."""
        trained = trained_prefixes(post) if trained is None else frozenset(trained)
        rows = {run: measurements(post, run, trained) for run in runs} if rows is None else rows
        rows = {run: rs for run, rs in rows.items() if rs}
        every = list(dict.fromkeys(r for rs in rows.values() for r in rs))
        if not every:
            raise DecideError("no candidate run measures anything new")
        index = {r: n for n, r in enumerate(every)}
        configs = list(dict.fromkeys(c for c, _, _ in every))
        mean = predict_rows(post, every, noise=False)
        # one predict call for every number: a configuration's numbers get their shared deviation together
        noise = predict_rows(post, every, noise=True, seed=seed) - mean
        return cls(list(rows), every, {run: np.array([index[r] for r in rs]) for run, rs in rows.items()},
                   np.array([configs.index(c) for c, _, _ in every]), mean, noise, dict(tpe), trained)

    def flops(self, run: RunConfig, done=frozenset()) -> float:
        """FLOPs of run's stages that neither the calibration's runs nor runs already picked (`done`) trained."""
        return run_flops(run, self.tpe, self.trained | frozenset(done))

    def new_stages(self, run: RunConfig, done=frozenset()) -> list[RunConfig]:
        return [c for c in lineage(run) if c not in self.trained and c not in done]


class Ensemble:
    """The posterior draws as an ensemble: the target at the configurations of interest T (S, m) jointly with the
    pool's numbers Y (S, N), noise-free, and their predictive noise E (S, N).

    What measuring some numbers would teach is the Bayes-linear adjustment: after y = Y + ε, ε ~ (0, R), the
    target's variance is Var(T) − C_TY (C_YY + R)⁻¹ C_YT, whatever y turns out to be (exact for a Gaussian joint,
    the best linear update otherwise). Unlike reweighting the draws by an outcome's likelihood it does not collapse
    onto a handful of draws when the outcome is informative (a run of ~15 numbers left ~10 of 4,000 draws with
    weight). Revealing measured numbers moves every member by the ensemble Kalman update with perturbed
    observations, X_s ← X_s + K (y − Y_s − ε_s), X = [T | Y]: the target and every other number shift and narrow
    together, so the next choice sees what this one taught."""

    def __init__(self, T: np.ndarray, Y: np.ndarray, E: np.ndarray, stage: np.ndarray):
        self.T, self.Y = np.array(T, dtype=float), np.array(Y, dtype=float)
        self.E, self.stage = np.asarray(E, dtype=float), np.asarray(stage)
        self.observed = np.zeros(self.Y.shape[1], dtype=bool)  # numbers measured: measuring again adds nothing
        self._noise: dict = {}  # numbers → R: the noise draws never change, so neither does R (shared by copies)
        self._anomalies = None  # (Y − mean, C_TY) for every number: one product per update, not per candidate

    @classmethod
    def of(cls, interest: np.ndarray, pool: Pool, members=slice(None)) -> Ensemble:
        """members: the draws that make up the ensemble (a simulated study leaves its truth out)."""
        return cls(interest[members], pool.mean[members], pool.noise[members], pool.stage)

    def copy(self) -> Ensemble:
        other = Ensemble(self.T, self.Y, self.E, self.stage)
        other.observed, other._noise = self.observed.copy(), self._noise
        return other

    def variance(self) -> float:
        """The target's variance, summed over the configurations of interest."""
        return float(self.T.var(axis=0, ddof=1).sum())

    def interval(self, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
        return tuple(np.quantile(self.T, [0.5 - level / 2, 0.5 + level / 2], axis=0))

    def unmeasured(self, idx) -> np.ndarray:
        """Those of numbers idx not measured yet."""
        idx = np.asarray(idx, dtype=int)
        return idx[~self.observed[idx]]

    def _covariances(self, idx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For numbers idx: their anomalies (S, n), C_TY (m, n) and C_YY + R (n, n). R is the noise's covariance
        from its draws, kept within a configuration (its numbers share a run's deviation) and zero across
        configurations (independent by the observation model: sampling error there would only add spurious
        coupling)."""
        if self._anomalies is None:
            ya = self.Y - self.Y.mean(axis=0)
            self._anomalies = ya, (self.T - self.T.mean(axis=0)).T @ ya / (len(ya) - 1)
        ya_all, c_ty = self._anomalies
        key = idx.tobytes()
        if key not in self._noise:
            e = self.E[:, idx] - self.E[:, idx].mean(axis=0)
            same = self.stage[idx][:, None] == self.stage[idx][None, :]
            self._noise[key] = np.where(same, np.einsum("si,sj->ij", e, e), 0.0) / (len(e) - 1)
        ya = ya_all[:, idx]
        # einsum, not BLAS: a skinny product per candidate, which BLAS threads on a busy machine made ~100x slower
        return ya, c_ty[:, idx], np.einsum("si,sj->ij", ya, ya) / (len(ya) - 1) + self._noise[key]

    def expected_variance(self, idx) -> float:
        """The target's variance (summed over configurations) expected after measuring numbers idx of the pool."""
        idx = self.unmeasured(idx)
        if not idx.size:
            return self.variance()
        _, c_ty, c_dd = self._covariances(idx)
        return self.variance() - float(np.sum(c_ty * np.linalg.solve(c_dd, c_ty.T).T))

    def assimilate(self, idx, y: np.ndarray | None = None) -> None:
        """Update every member by the measured values y of numbers idx (the ensemble Kalman update with
        perturbed observations). y=None conditions on the numbers without knowing them (y at the members'
        mean, which moves no mean): the spread left is what any outcome would leave, for choosing the next run
        before this one is trained."""
        idx = np.asarray(idx, dtype=int)
        keep = ~self.observed[idx]
        idx = idx[keep]
        if not idx.size:
            return
        d = self.Y[:, idx] + self.E[:, idx]  # each member's own perturbed prediction of the measurement
        y = d.mean(axis=0) if y is None else np.asarray(y, dtype=float)[keep]
        ya, _, c_dd = self._covariances(idx)
        x = np.concatenate([self.T, self.Y], axis=1)
        c_xy = (x - x.mean(axis=0)).T @ ya / (len(ya) - 1)  # (m + N, n)
        x += np.linalg.solve(c_dd, (y - d).T).T @ c_xy.T
        m = self.T.shape[1]
        self.T, self.Y = x[:, :m], x[:, m:]
        self.observed[idx] = True
        self._anomalies = None


@dataclasses.dataclass
class Suggestion:
    config: RunConfig
    flops: float  # of its stages not trained before it (by the calibration's runs or earlier picks)
    new_stages: list[RunConfig]
    reduction: float  # expected reduction of the target's variance (summed over configurations of interest) ...
    left: float  # ... given the picks before it, and the variance expected to be left after it and them

    def as_dict(self, target: Target, var0: float) -> dict:
        return dict(config=self.config.name, flops=float(f"{self.flops:.4g}"),
                    new_stages=[c.name for c in self.new_stages], variance_reduction=round(self.reduction, 4),
                    share_of_variance=round(self.reduction / var0, 4) if var0 > 0 else 0.0,
                    variance_left=round(self.left, 4),
                    per_1e21_flops=float(f"{self.reduction / self.flops * 1e21:.4g}"),
                    command=train_command(self.config), units=f"{target.units}^2")


def best_next(ens: Ensemble, pool: Pool, remaining, done=frozenset()) -> Suggestion | None:
    """Of the `remaining` runs, the one whose numbers would most reduce the target's variance per FLOP of its new
    stages, given what the ensemble already knows; None when none measures anything new."""
    var0, best = ens.variance(), None
    for run in remaining:
        flops = pool.flops(run, done)
        if flops <= 0 or not ens.unmeasured(pool.of[run]).size:
            continue
        left = ens.expected_variance(pool.of[run])
        if best is None or (var0 - left) / flops > best.reduction / best.flops:
            best = Suggestion(run, flops, pool.new_stages(run, done), var0 - left, left)
    return best


def greedy(ens: Ensemble, pool: Pool, k: int) -> list[Suggestion]:
    """k runs chosen together: each the best next run given that the ones before it will be measured (the
    ensemble conditioned on their numbers, outcome unknown), so a second run that would teach what the first
    already does is passed over."""
    ens, picks, done = ens.copy(), [], set()
    remaining = list(pool.runs)
    for _ in range(k):
        pick = best_next(ens, pool, remaining, done)
        if pick is None:
            break
        picks.append(pick)
        remaining.remove(pick.config)
        done.update(lineage(pick.config))
        ens.assimilate(pool.of[pick.config])
    return picks


def reveal(ens: Ensemble, pool: Pool, values: np.ndarray, choose, steps: int):
    """A sequential study: up to `steps` times, choose(ens, remaining, done) names a run of the pool, its measured
    numbers (values: (N,), every pool number's) update the ensemble. A run whose numbers were all measured by
    an earlier one (a parent stage under its child) leaves the remaining runs: it has nothing to reveal. Yields
    (run, its new FLOPs, ensemble) after each; the ensemble is updated in place (copy it first to keep the start)."""
    remaining, done = list(pool.runs), set()
    for _ in range(steps):
        remaining = [r for r in remaining if ens.unmeasured(pool.of[r]).size]
        if not remaining:
            return
        run = choose(ens, remaining, done)
        flops = pool.flops(run, done)
        remaining.remove(run)
        done.update(lineage(run))
        ens.assimilate(pool.of[run], values[pool.of[run]])
        yield run, flops, ens


def equal_cost(pool: Pool, remaining, done, flops: float, order) -> RunConfig:
    """The baseline suggest is measured against: the first run in `order` (random, a grid's) among the remaining
    ones whose new-stage cost is nearest `flops` on a log scale, within a factor of 2 counting as equal, so it
    spends what suggest spent at the same step."""
    gap = {r: abs(math.log(c / flops)) for r in remaining if (c := pool.flops(r, done)) > 0}
    near = max(min(gap.values()), math.log(2))
    return next(r for r in order if gap.get(r, math.inf) <= near)


def suggest(post, interest: np.ndarray, runs: list[RunConfig], tpe=TOKENS_PER_EXAMPLE, k: int = 3,
            seed: int = 0) -> tuple[list[Suggestion], float]:
    """The k runs to train next (`greedy`) for the target draws `interest` (S, m), and the variance now."""
    pool = Pool.build(post, runs, tpe, seed=seed)
    ens = Ensemble.of(interest, pool)
    return greedy(ens, pool, k), ens.variance()
