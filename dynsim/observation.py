"""The observation model: how a measured number scatters around the forward model's value (numpy only).

Written once, read by the likelihood (calibrate/model.py), the posterior predictive (dynsim/posterior.py) and
validation (calibrate/validate.py):

  accuracy (percent)   y = 100·f + ε,        ε ~ N(0, measurement² + discrepancy[group]² + (slope · deviation)²)
  loss (nats)          log y = log f + δ,    δ ~ Student-t(LOSS_NU, 0, discrepancy[loss group])

- measurement: the binomial standard error where a number's item count is known, else NOISE_FLOOR (a published
  average's seed-to-seed noise); none for losses.
- discrepancy: the model's own misfit, one learned scale per group of numbers (OBS_GROUPS).
- A loss deviates from the law *relatively* (a fraction of itself, so a loss stays positive and a run's
  scatter scales with its loss), with Student-t tails: a run can sit off the law (a very short run dominated by
  its warmup) and one such run must not set the scale of all.
- Losses of a pretrained model and of a model after CPT, SFT or RL are apart: the pretraining law predicts
  the first to about a percent (Gadre et al.'s runs), while what fine-tuning does to general text varies from
  run to run by tens of percent (a miniature's SFT forgot 0.3 to 3 nats), and one scale for both made every
  pretraining loss's interval as wide as the fine-tuned ones'.
- A run's relative deviation from the loss law is one number per run: it moves the run's loss and, by the cloze
  link's slope, each of its cloze accuracies (`forward.cloze_loss_slope`, points per unit of log loss).
- A run also sits off the model in all of its accuracies of one group at once (EvoLM's 4B-80BT scores below
  1B-80BT on all six cloze tasks; the OLMo ladder's 3.2B runs miss all 13 tasks on one side): a shared deviation
  u ~ N(0, run_shared[group]²) per (run, group), added to each of those numbers. The likelihood integrates it out
  (`block_log_density`: a normal with covariance diag(var) + τ²·11ᵀ per block, by Sherman–Morrison), so it costs
  NUTS no latent parameter; the predictive draws it once per block, so a run's average over tasks carries it whole.
"""

from __future__ import annotations

import numpy as np

OBS_GROUPS = ("upstream", "ID", "OOD", "loss", "tuned_loss")  # each has its own learned discrepancy scale
PRETRAINED_LOSS, TUNED_LOSS = OBS_GROUPS.index("loss"), OBS_GROUPS.index("tuned_loss")
NOISE_FLOOR = 0.3  # percentage points: EvoLM's seed standard errors (paper Table 9) are 0.05-0.5 points
LOSS_NU = 4.0  # Student-t degrees of freedom of a loss's deviation


def loss_group(configs) -> np.ndarray:
    """The discrepancy group of each configuration's loss: pretrained, or changed by CPT / SFT / RL."""
    return np.array([PRETRAINED_LOSS if c.stage() == "pt" else TUNED_LOSS for c in configs], dtype=int)


def groups(configs, kinds, metrics) -> np.ndarray:
    """Each observation's group in OBS_GROUPS: its loss group for a loss, else its task's kind (cloze tasks and
    their average are 'upstream')."""
    by_kind = np.array([OBS_GROUPS.index(k) if k in ("ID", "OOD") else 0 for k in kinds], dtype=int)
    is_loss = np.array([m == "loss" for m in metrics], dtype=bool)
    return np.where(is_loss, loss_group(configs), by_kind) if len(configs) else by_kind


def measurement_sd(is_loss, value, n_items, floor: float = NOISE_FLOOR):
    """Measurement noise of each number (percentage points; 0 for losses): the binomial standard error
    100·sqrt(p(1−p)/n) where the item count n is known (the normal approximation of a likelihood on correct
    counts), else `floor` (a published average's seed-to-seed noise). p is clipped to [1/n, 1−1/n] so a
    task at 0% or 100% keeps some noise."""
    is_loss = np.asarray(is_loss, dtype=bool)
    sd = np.where(is_loss, 0.0, floor) * np.ones(np.shape(value))
    if n_items is None:
        return sd
    n = np.asarray(n_items, dtype=float)
    known = np.isfinite(n) & (n > 0) & ~is_loss
    n_safe = np.where(known, n, 1.0)
    p = np.clip(np.asarray(value) / 100.0, 1.0 / n_safe, 1.0 - 1.0 / n_safe)
    return np.where(known, 100.0 * np.sqrt(p * (1.0 - p) / n_safe), sd)


def log_density(y, mean, sd, is_loss, nu: float = LOSS_NU) -> np.ndarray:
    """log p(y) of each number: Normal(mean, sd) for accuracies; for losses the Student-t of log y around log mean
    with scale sd (relative), with the Jacobian −log y so it is a density of y (comparable across models).
    Broadcasts over leading draw axes of mean and sd."""
    from scipy.stats import t  # validation only: predict stays on numpy

    y, mean, sd = np.asarray(y, float), np.asarray(mean, float), np.asarray(sd, float)
    out = -0.5 * ((y - mean) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
    if np.any(is_loss):
        ly = np.log(y[is_loss])
        out[..., is_loss] = t.logpdf(ly, nu, loc=np.log(mean[..., is_loss]), scale=sd[..., is_loss]) - ly
    return out


SHARED_GROUPS = ("upstream", "ID", "OOD")  # the accuracy groups whose numbers share a run's deviation


def run_blocks(run_keys, groups) -> tuple[np.ndarray, int]:
    """Each number's block, one per (run, accuracy group), as an index; −1 for a loss (its run's deviation is the
    relative one above). run_keys: one hashable per number naming its run (configuration and corpus)."""
    groups = np.asarray(groups)
    keys = [(k, int(g)) if g < len(SHARED_GROUPS) else None for k, g in zip(run_keys, groups)]
    index: dict = {}
    block = np.array([-1 if k is None else index.setdefault(k, len(index)) for k in keys], dtype=int)
    return block, len(index)


def block_log_density(resid, var, shared_sd, block, n_blocks: int, xp=np):
    """log p of the accuracies of each block under N(0, diag(var) + τ²·11ᵀ), τ = shared_sd (per number: its group's
    scale), summed within blocks: (…, n_blocks). By Sherman–Morrison, with a = Σ 1/var, b = Σ resid/var:
    log det = Σ log var + log(1 + τ²a); quadratic form = Σ resid²/var − τ²b²/(1 + τ²a). Numbers with block −1
    are left out. Works over numpy (validation) and pytensor (the likelihood), with leading draw axes in numpy."""
    rows = np.flatnonzero(np.asarray(block) >= 0)
    member = np.zeros((len(rows), n_blocks))
    member[np.arange(len(rows)), np.asarray(block)[rows]] = 1.0
    take = (lambda v: v[..., rows]) if xp is np else (lambda v: v[rows])
    r, v, tau2 = take(resid), take(var), take(shared_sd) ** 2
    # numpy: einsum, not BLAS (a skinny product; BLAS threads on a busy machine made it 3x slower here)
    dot = (lambda m: np.einsum("...i,ij->...j", m, member)) if xp is np else (lambda m: xp.dot(m, member))
    a = dot(1.0 / v)
    b = dot(r / v)
    tau2_block = dot(tau2 / v) / xp.maximum(a, 1e-30)  # every number of a block shares its group's τ²
    one_plus = 1.0 + tau2_block * a
    quad = dot(r ** 2 / v) - tau2_block * b ** 2 / one_plus
    log_det = dot(xp.log(v)) + xp.log(one_plus)
    n = member.sum(axis=0)
    return -0.5 * (quad + log_det + n * np.log(2 * np.pi))
