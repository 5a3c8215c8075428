"""Stored posterior draws → predictions, with numpy only (no pymc, no torch, no xarray on this path).

A posterior is one `.npz` written by `dynsim fit`: `param/<name>` arrays with draws on the leading axis and
a JSON `meta` entry. Predictions are posterior-predictive draws of a new measurement: the forward model at
each draw plus that draw's model discrepancy and the noise floor, so intervals are the ones `validate` checks.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from dynsim import calibrations, forward, observation
from dynsim.config import RunConfig, config_distance, format_size, format_tokens, parse_config
from dynsim.errors import UserError

SCHEMA = "dynsim.posterior/2"  # /2: relative loss noise, pretrained and tuned losses apart (observation.py)
BUNDLED = tuple(calibrations.CALIBRATIONS)  # their data, forms and files: dynsim/calibrations.py


class PosteriorError(UserError):
    """A posterior file that is missing, unreadable or fails its diagnostics."""


class Posterior:
    def __init__(self, params: dict[str, np.ndarray], meta: dict, path: str = ""):
        self.params, self.meta, self.path = params, meta, path
        self.table = forward.TaskTable.from_meta(meta["tasks"]["names"], meta["tasks"]["kinds"], meta["tasks"]["chance"],
                                                 sft_datasets=meta["tasks"].get("sft_datasets", ()))
        self.n_draws = len(next(iter(params.values())))
        self.observed = [parse_config(c) for c in meta["observed"]["configs"]]
        self.corpora: list[str] = meta.get("corpora") or []  # pretraining corpora, when the data compared several

    def corpus_index(self, corpus: str | None) -> int:
        if not corpus:
            return 0
        if corpus not in self.corpora:
            known = ", ".join(self.corpora) or "none (this calibration has one pretraining corpus)"
            raise PosteriorError(f"unknown pretraining corpus '{corpus}': this calibration knows {known}")
        return self.corpora.index(corpus)

    # -- diagnostics ---------------------------------------------------------------------------------
    def diagnostic_problems(self) -> list[str]:
        d, out = self.meta.get("diagnostics", {}), []
        rhat, divergences = d.get("rhat_max"), d.get("divergences")
        if not isinstance(rhat, (int, float)) or not rhat <= 1.01:  # NaN (one chain, or no draws) fails too
            out.append(f"R-hat {rhat} > 1.01" if isinstance(rhat, (int, float)) else f"R-hat not recorded ({rhat!r})")
        if not isinstance(divergences, int) or divergences != 0:
            out.append(f"{divergences!r} divergent transitions")
        return out

    # -- prediction ----------------------------------------------------------------------------------
    def gathered(self) -> dict[str, np.ndarray]:
        """Parameters shaped for the forward model: global (S, 1), grouped (S, T)."""
        return {k: v[:, None] if v.ndim == 1 else v for k, v in self.params.items()}

    def predict(self, configs: list[RunConfig], tasks: list[str], metrics: list[str], rng=None,
                noise: bool = True, corpus=None, n_items=None) -> np.ndarray:
        """Draws (S, n) of each observation (config_i, task_i, metric_i), in percent (nats for loss).

        corpus: one pretraining corpus name for all, or per-observation indices (calibrations that compare
        corpora); n_items: items per observation (NaN if unknown) — a known count adds its binomial noise.
        Noise is the observation model's (dynsim/observation.py)."""
        x = self.design(configs, tasks, metrics, corpus)
        is_loss = np.array([m == "loss" for m in metrics], dtype=bool)
        scale = np.where(is_loss, 1.0, 100.0).astype(np.float32)
        groups = self.groups(configs, tasks, metrics)
        run_group = observation.loss_group(configs)  # where a run's deviation from the loss law is drawn

        def finish(b: int, draws: slice, values: np.ndarray) -> None:  # in place, per block of draws
            values *= scale
            if noise:
                gen, nu = generators[b], self.meta["loss_nu"]
                sd = self.noise_sd(groups, values, n_items, draws)
                values += np.where(is_loss, 0.0, sd) * gen.standard_normal(values.shape, dtype=np.float32)
                if "run_shared" in self.params and n_blocks:  # a run's deviation shared by a group's numbers
                    tau = self.params["run_shared"][draws][:, shared_group].astype(np.float32)
                    u = gen.standard_normal((len(values), n_blocks), dtype=np.float32)
                    values += np.where(block >= 0, tau * u[:, np.maximum(block, 0)], np.float32(0.0))
                slope = self.loss_slope(x, draws)
                if is_loss.any() or slope is not None:
                    # A run's relative deviation from the loss law: one draw per run (configuration and corpus),
                    # Student-t as in the likelihood, carried by its loss and, by the link's slope, its cloze
                    # numbers (the likelihood sees each number alone; an average over a run's tasks needs them
                    # to move together).
                    disc = self.params["discrepancy"][draws][:, run_group].astype(np.float32)
                    deviation = disc * gen.standard_normal((len(values), n_runs), dtype=np.float32)[:, run]
                    if slope is not None:
                        values -= slope * deviation
                    t = np.sqrt(gen.chisquare(nu, (len(values), n_runs)) / nu)[:, run].astype(np.float32)
                    values *= np.where(is_loss, np.exp(deviation / t), 1.0).astype(np.float32)
            np.clip(values, 0.0, 100.0, out=values, where=~is_loss)

        run_keys = [f"{c.name}/{k}" for c, k in zip(configs, x["corpus_idx"])]
        run = np.unique(run_keys, return_inverse=True)[1].ravel()
        block, n_blocks = observation.run_blocks(run_keys, groups)
        shared_group = np.minimum(groups, len(observation.SHARED_GROUPS) - 1)
        n_runs = int(run.max()) + 1 if len(run) else 0
        generators = (rng or np.random.default_rng(0)).spawn(-(-self.n_draws // forward.BLOCK)) if noise else None
        # float32, within ~0.01 points of forward.predict; finished (scaled, noised) block by block in its thread
        return forward.predict_many(self.gathered(), x, finish=finish)

    def groups(self, configs, tasks, metrics) -> np.ndarray:
        """Each observation's discrepancy group (observation.OBS_GROUPS)."""
        return observation.groups(configs, [self.table.kind(t) for t in tasks], metrics)

    def design(self, configs: list[RunConfig], tasks: list[str], metrics: list[str], corpus=None) -> dict:
        """The forward model's design of observations (config_i, task_i, metric_i) at this posterior's scales."""
        if corpus is None or isinstance(corpus, str):
            corpus = np.full(len(configs), self.corpus_index(corpus))
        for data in {c.sft_data for c in configs if c.sft_data}:
            try:
                self.table.data_index(data)
            except ValueError as e:
                raise PosteriorError(str(e)) from None
        return forward.design(configs, tasks, metrics, self.table, corpus, self.meta.get("form", "chinchilla"),
                              self.meta.get("scales"))

    def loss_slope(self, x: forward.Design, draws=slice(None)) -> np.ndarray | None:
        """Points each observation's number falls per unit of relative deviation from the loss law where that
        deviation enters its likelihood (cloze numbers of a calibration with measured losses), else None."""
        if not self.meta.get("cloze_loss_slope"):  # the loss is latent
            return None
        p = {k: v[draws] for k, v in self.gathered().items()}
        slope = forward.cloze_loss_slope(p, x, np)
        return None if slope is None else 100.0 * slope

    def noise_sd(self, groups, value, n_items=None, draws=slice(None), loss_slope=None, run_groups=None) -> np.ndarray:
        """The observation model's scale of each measurement (draws × observations): for an accuracy the standard
        deviation in points — the draw's discrepancy for its group, the measurement noise (binomial where the
        item count is known, else the noise floor) and, given `loss_slope`, its run's deviation from the loss
        law carried through the cloze link; for a loss the relative (log-scale) Student-t scale.
        groups: observation groups (`groups`); run_groups: the loss group of each observation's run
        (observation.loss_group; needed with loss_slope); draws: the posterior draws `value` holds (its rows)."""
        groups = np.asarray(groups)
        value = np.asarray(value)
        is_loss = (groups == observation.PRETRAINED_LOSS) | (groups == observation.TUNED_LOSS)
        dtype = np.float32 if value.dtype == np.float32 else np.float64  # float32 from predict: half the traffic
        floor = observation.measurement_sd(is_loss, value if n_items is not None else np.zeros(len(groups)),
                                           n_items, self.meta["noise_floor"]).astype(dtype)
        disc = self.params["discrepancy"][draws].astype(dtype)
        variance = disc[:, groups] ** 2 + floor ** 2
        if loss_slope is not None:
            variance = variance + (disc[:, run_groups] * loss_slope.astype(dtype)) ** 2
        return np.sqrt(variance)

    def usual_post_training(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The calibration's most common SFT and RL settings, (examples, epochs) each (EvoLM: 100Kep1 and
        100Kep8; a miniature study: its hub's), or EvoLM's where the data has none."""
        sft = [(c.sft_examples, c.sft_epochs) for c in self.observed if c.has_sft]
        rl = [(c.rl_examples, c.rl_epochs) for c in self.observed if c.has_rl]
        return (usual_pair(sft) if sft else (100_000, 1)), (usual_pair(rl) if rl else (100_000, 8))

    def metrics_of(self, kind: str) -> list[str]:
        """The metrics the calibration measured for a kind of number: 'cloze' (upstream accuracies), 'loss' or
        'downstream' (greedy, maj@k, pass@k, ...)."""
        observed = self.meta["observed"]["metrics"]
        if kind == "cloze":
            return [m for m in observed if forward.metric_kind(m)[0] == "cloze"] or ["0shot_acc"]
        if kind == "loss":
            return ["loss"] if "loss" in observed else []
        return [m for m in observed if forward.metric_kind(m)[0] not in ("cloze", "loss")]

    def _upstream_rows(self, cfg: RunConfig, averages: bool = True) -> list[tuple[RunConfig, str, str]]:
        """cfg's upstream numbers; averages=False leaves out an upstream average whose tasks are all there (the
        same evidence twice, as the fit scores it: calibrate/model.py, _averages_scored_once)."""
        rows = []
        for t in self.table.names:
            kind = self.table.kind(t)
            if kind == "upstream" or (kind == "upstream_avg" and (averages or not self.table.upstream)):
                rows += [(cfg, t, m) for m in self.metrics_of("cloze")]
            elif kind == "text" and t in self.meta["observed"]["tasks"]:
                rows += [(cfg, t, m) for m in self.metrics_of("loss")]
        return rows

    def _downstream_rows(self, cfg: RunConfig) -> list[tuple[RunConfig, str, str]]:
        return [(cfg, t, m) for t in self.table.downstream for m in self.metrics_of("downstream")]

    def default_outputs(self, cfg: RunConfig) -> list[tuple[RunConfig, str, str]]:
        """What `predict` reports: upstream metrics of cfg's model; downstream after SFT and after SFT+RL
        (the calibration's usual post-training when cfg has none of its own: EvoLM's 100Kep1 / 100Kep8)."""
        base = cfg.replace(sft_examples=0, sft_epochs=0, rl_examples=0, rl_epochs=0)
        rows = self._upstream_rows(cfg if not cfg.has_sft else base)
        if not self.table.downstream:
            return rows
        (sft_ex, sft_ep), (rl_ex, rl_ep) = self.usual_post_training()
        if cfg.has_sft:
            post = [cfg] if cfg.has_rl else [cfg, cfg.replace(rl_examples=rl_ex, rl_epochs=rl_ep)]
        else:
            sft = base.replace(sft_examples=sft_ex, sft_epochs=sft_ep)
            post = [sft, sft.replace(rl_examples=rl_ex, rl_epochs=rl_ep)]
        for c in post:
            rows += self._downstream_rows(c)
        return rows

    def measured_outputs(self, cfg: RunConfig) -> list[tuple[RunConfig, str, str]]:
        """The numbers a new run's last stage would be evaluated on, as the calibration's runs were: upstream
        numbers after PT or CPT, downstream ones after SFT or RL (EvoLM's evaluation protocol); an upstream
        average is left out where its tasks are all measured (`_upstream_rows`)."""
        return self._downstream_rows(cfg) if cfg.has_sft else self._upstream_rows(cfg, averages=False)

    def log_likelihood(self, configs: list[RunConfig], tasks: list[str], metrics: list[str], values: np.ndarray,
                       mean: np.ndarray, corpus=None) -> np.ndarray:
        """log p(values | draw) under the observation model (dynsim/observation.py), (..., S): values (..., n)
        are one or more sets of measurements of the observations (config_i, task_i, metric_i), mean (S, n) their
        noise-free draws (`predict(..., noise=False)`). Each run's shared deviation per accuracy group is
        integrated out (block_log_density), a loss deviates relatively with Student-t tails. Item counts are
        taken as unknown (the noise floor), as in `predict`'s predictive."""
        values = np.asarray(values, dtype=float)
        groups = self.groups(configs, tasks, metrics)
        is_loss = np.array([m == "loss" for m in metrics], dtype=bool)
        slope = self.loss_slope(self.design(configs, tasks, metrics, corpus))
        var = self.noise_sd(groups, mean, loss_slope=slope, run_groups=observation.loss_group(configs)) ** 2
        mean = np.asarray(mean, dtype=float)
        out = np.zeros(values.shape[:-1] + (self.n_draws,))
        acc = np.flatnonzero(~is_loss)
        if acc.size:
            shared = (self.params["run_shared"][:, np.minimum(groups[acc], len(observation.SHARED_GROUPS) - 1)]
                      if "run_shared" in self.params else np.zeros((self.n_draws, acc.size)))
            keys = [f"{configs[i].name}/{corpus}" for i in acc]
            block, n_blocks = observation.run_blocks(keys, groups[acc])
            resid = (values[..., None, acc] - mean[:, acc]).reshape(-1, acc.size)  # 2-D: one matrix product
            tile = lambda a: np.broadcast_to(a, out.shape + (acc.size,)).reshape(-1, acc.size)  # noqa: E731
            dens = observation.block_log_density(resid, tile(var[:, acc]), tile(shared), block, n_blocks)
            out += dens.sum(axis=-1).reshape(out.shape)
        if is_loss.any():
            rows = np.flatnonzero(is_loss)
            flat = out.reshape(-1, self.n_draws)  # log_density takes one set of measurements at a time
            for y, o in zip(values[..., rows].reshape(-1, rows.size), flat):
                o += observation.log_density(y, mean[:, rows], np.sqrt(var[:, rows]), np.ones(rows.size, bool),
                                             self.meta["loss_nu"]).sum(axis=-1)
            out = flat.reshape(out.shape)
        return out

    # -- the calibrated range ------------------------------------------------------------------------
    def outside_range(self, cfg: RunConfig) -> list[str]:
        """Which of cfg's numbers lie outside what the calibration saw (empty when inside)."""
        out = []
        show = dict(size=format_size, pretrain=format_tokens, cpt_domain=format_tokens, cpt_replay=format_tokens)
        for field, label in (("size", "size"), ("pretrain", "pretraining tokens"), ("cpt_domain", "CPT domain tokens"),
                             ("cpt_replay", "CPT replay tokens"), ("sft_examples", "SFT examples"),
                             ("sft_epochs", "SFT epochs"), ("rl_examples", "RL examples"), ("rl_epochs", "RL epochs")):
            seen = [getattr(c, field) for c in self.observed]
            seen_nonzero = [v for v in seen if v] or [0]
            v, fmt = getattr(cfg, field), show.get(field, str)
            if v and (v < min(seen_nonzero) or v > max(seen)):
                out.append(f"{label} {fmt(v)} outside the calibrated {fmt(min(seen_nonzero))}–{fmt(max(seen))}")
        return out

    def unseen_stages(self, cfg: RunConfig) -> list[str]:
        """cfg's stages (CPT, SFT, RL) that no calibrated run has: there is nothing to extrapolate them from."""
        stages = {"CPT": lambda c: c.has_cpt, "SFT": lambda c: c.has_sft, "RL": lambda c: c.has_rl}
        return [s for s, has in stages.items() if has(cfg) and not any(has(c) for c in self.observed)]

    def nearest_observed(self, cfg: RunConfig) -> RunConfig:
        """The calibrated configuration closest to cfg (config_distance: log-counts, stage presence weighs most)."""
        return min(self.observed, key=lambda c: config_distance(cfg, c))


def load(path) -> Posterior:
    path = Path(path)
    if not path.exists():
        raise PosteriorError(f"{path}: no such posterior file")
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            params = {k.removeprefix("param/"): f[k] for k in f.files if k.startswith("param/")}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
        raise PosteriorError(f"{path}: not a readable dynsim posterior ({type(e).__name__})") from None
    if meta.get("schema") != SCHEMA:
        older = str(meta.get("schema", "")).startswith("dynsim.posterior/")
        raise PosteriorError(f"{path}: " + (f"written by an older dynsim ({meta['schema']}, this one reads {SCHEMA}): "
                                            "refit it with `dynsim fit`" if older else f"not a {SCHEMA} file"))
    missing = [p.name for p in forward.PARAMS if p.name not in params and p.name not in forward.OPTIONAL_PARAMS]
    if missing:
        raise PosteriorError(f"{path}: posterior lacks parameters {', '.join(missing)}")
    bad = [k for k, v in params.items() if not (np.issubdtype(v.dtype, np.number) and np.isfinite(v).all())]
    if bad:  # one NaN draw would make every prediction NaN
        raise PosteriorError(f"{path}: non-finite draws in {', '.join(bad)}")
    return Posterior(params, meta, str(path))


def bundled_path(name: str) -> Path:
    try:
        return calibrations.get(name).posterior_path
    except calibrations.CalibrationError as e:
        raise PosteriorError(str(e)) from None


def usual(values: list, key=None):
    """The most common value; among equally common ones the middle one in `key` order (a one-axis sweep names
    each setting once, and its middle is its hub)."""
    from collections import Counter

    counts = Counter(values)
    top = max(counts.values())
    tied = sorted((v for v, n in counts.items() if n == top), key=key)
    return tied[(len(tied) - 1) // 2]


def usual_pair(pairs):
    """The usual (examples, epochs) of a post-training stage, each field on its own: a study sweeps epochs at
    its usual example count and examples at its usual epochs, so the pair of modes is the hub they share
    (the mode of the pairs can be a corner of one axis)."""
    return usual([a for a, _ in pairs]), usual([b for _, b in pairs])


def repo_root() -> Path:
    """The project checkout this package runs from (editable install)."""
    return Path(__file__).resolve().parents[1]
