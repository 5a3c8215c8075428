"""Stored posterior draws → predictions, with numpy only (no pymc, no torch, no xarray on this path).

A posterior is one `.npz` written by `dynsim fit`: `param/<name>` arrays with draws on the leading axis and
a JSON `meta` entry. Predictions are posterior-predictive draws of a new measurement: the forward model at
each draw plus that draw's model discrepancy and the noise floor, so intervals are the ones `validate` checks.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from dynsim import calibrations, checks, fastpath, forward, observation
from dynsim.config import (AFTER_PT, COUNT_FIELDS, STAGE, TUNED, UNIT, RunConfig, config_distance, field_label,
                           format_size, format_tokens, parse_config)
from dynsim.errors import UserError

SCHEMA = "dynsim.posterior/2"  # /2: relative loss noise, pretrained and tuned losses apart (observation.py)
CHECKSUM = "checksum"  # meta entry: content_checksum of the draws and the rest of meta, written by `dynsim fit`
RHAT_MIN = 0.9  # split R-hat lies near 1 from above; far below it, the number was edited
RHAT_MAX = 1.01  # a fit passes with every R-hat at or below this, no divergent transition ...
ESS_MIN = 100  # ... and at least this many effective draws in bulk and tail (Vehtari et al. 2021: fewer, and
#               R-hat itself is unreliable; a 5-draw fit passes no check but this one)
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
        """Why this posterior should not be used (empty when it may): its fit's diagnostics, and draws that are
        not finite numbers (one NaN draw makes every prediction NaN)."""
        bad = [k for k, v in self.params.items() if not _finite(v)]
        return diagnostic_problems(self.meta.get("diagnostics")) + ([f"non-finite draws in {', '.join(bad)}"] if bad else [])

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
                slope = self.loss_slope(x, draws, p)
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
        generators = (rng or np.random.default_rng(0)).spawn(-(-self.n_draws // fastpath.BLOCK)) if noise else None
        p = self.parameters(x, rng)  # after the noise generators: a posterior without base quality predicts as before
        # float32, within ~0.01 points of forward.predict; finished (scaled, noised) block by block in its thread
        return fastpath.predict_many(p, x, finish=finish)

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
                              self.meta.get("scales"), self.meta.get("bases"))

    def parameters(self, x: forward.Design, rng=None) -> dict[str, np.ndarray]:
        """`gathered` for the design x: a base checkpoint the fit never saw draws its quality from its prior,
        one standard normal per draw and checkpoint, shared by the rows that descend from it."""
        p = self.gathered()
        if "base_quality" in p and x["n_new_bases"]:
            rng = rng.spawn(1)[0] if rng is not None else np.random.default_rng(0)
            new = rng.standard_normal((self.n_draws, x["n_new_bases"])).astype(p["base_quality"].dtype)
            p["base_quality"] = np.concatenate([p["base_quality"], new], axis=1)
        return p

    def loss_slope(self, x: forward.Design, draws=slice(None), params=None) -> np.ndarray | None:
        """Points each observation's number falls per unit of relative deviation from the loss law where that
        deviation enters its likelihood (cloze numbers of a calibration with measured losses), else None."""
        if not self.meta.get("cloze_loss_slope"):  # the loss is latent
            return None
        p = {k: v[draws] for k, v in (params or self.parameters(x)).items()}
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

    def usual_post_training(self) -> dict[str, tuple[int, ...]]:
        """The calibration's most common setting of each post-training stage, its counts (EvoLM: SFT 100Kep1 and
        RL 100Kep8; a miniature study: its hub's), or the stage's typical one where the data has none."""
        out = {}
        for key in TUNED:
            seen = [STAGE[key].counts(c) for c in self.observed if c.has(key)]
            out[key] = usual_pair(seen) if seen else STAGE[key].typical
        return out

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
        """What `predict` reports: upstream metrics of cfg's model; downstream after cfg's own post-training, or
        the calibration's usual one where cfg has none (EvoLM's 100Kep1), and after each later post-training stage
        the calibration has runs of, at its usual setting (EvoLM's RL 100Kep8)."""
        rows = self._upstream_rows(cfg.upstream())
        if not self.table.downstream:
            return rows
        usual = self.usual_post_training()
        # cfg's own post-training, then each later stage at its usual setting, one model after each
        seen = [k for k in TUNED if any(c.has(k) for c in self.observed)]
        later = [k for k in seen if not any(cfg.has(s) for s in TUNED[TUNED.index(k):])]
        post = [cfg] if cfg.post_trained else []
        for key in later:
            post.append((post[-1] if post else cfg).with_stage(key, usual[key]))
        for c in post:
            rows += self._downstream_rows(c)
        return rows

    def measured_outputs(self, cfg: RunConfig) -> list[tuple[RunConfig, str, str]]:
        """The numbers a new run's last stage would be evaluated on, as the calibration's runs were: upstream
        numbers after PT or CPT, downstream ones after SFT or RL (EvoLM's evaluation protocol); an upstream
        average is left out where its tasks are all measured (`_upstream_rows`)."""
        return self._downstream_rows(cfg) if cfg.post_trained else self._upstream_rows(cfg, averages=False)

    # -- the calibrated range ------------------------------------------------------------------------
    def outside_range(self, cfg: RunConfig) -> list[str]:
        """Which of cfg's numbers lie outside what the calibration saw (empty when inside)."""
        out = []
        for field in COUNT_FIELDS:
            label, fmt = field_label(field), format_size if field == "size" else \
                format_tokens if UNIT[field] == "tokens" else str
            seen = [getattr(c, field) for c in self.observed]
            seen_nonzero = [v for v in seen if v] or [0]
            v = getattr(cfg, field)
            if v and (v < min(seen_nonzero) or v > max(seen)):
                out.append(f"{label} {fmt(v)} outside the calibrated {fmt(min(seen_nonzero))}–{fmt(max(seen))}")
        return out

    def unseen_stages(self, cfg: RunConfig) -> list[str]:
        """cfg's stages (CPT, SFT, RL) that no calibrated run has: there is nothing to extrapolate them from."""
        return [s.title for s in AFTER_PT if s.ran(cfg) and not any(s.ran(c) for c in self.observed)]

    def nearest_observed(self, cfg: RunConfig) -> RunConfig:
        """The calibrated configuration closest to cfg (config_distance: log-counts, stage presence weighs most)."""
        return min(self.observed, key=lambda c: config_distance(cfg, c))


def load(path) -> Posterior:
    """A posterior .npz, verified before use: readable, of this schema, its checksum (where it has one) matching its
    draws and metadata, every parameter there with finite draws of the shape its metadata implies, the metadata
    typed. Anything else is a PosteriorError naming the file; diagnostics are the caller's to judge (--force)."""
    path = Path(path)
    if not path.exists():
        raise PosteriorError(f"{path}: no such posterior file")
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            params = {k.removeprefix("param/"): f[k] for k in f.files if k.startswith("param/")}
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError) as e:
        # a zero-byte, truncated or byte-flipped file: zipfile's CRC or zlib finds the damage, or it is no zip at all
        raise PosteriorError(f"{path}: not a readable dynsim posterior ({type(e).__name__})") from None
    if not isinstance(meta, dict):
        raise PosteriorError(f"{path}: not a {SCHEMA} file (its meta is not a table)")
    if meta.get("schema") != SCHEMA:
        older = str(meta.get("schema", "")).startswith("dynsim.posterior/")
        raise PosteriorError(f"{path}: " + (f"written by an older dynsim ({meta['schema']}, this one reads {SCHEMA}): "
                                            "refit it with `dynsim fit`" if older else f"not a {SCHEMA} file"))
    # Posteriors written before the checksum existed have none: they are accepted, and checked by the structure
    # below alone.
    if CHECKSUM in meta and meta[CHECKSUM] != content_checksum(params, meta):
        raise PosteriorError(f"{path}: damaged or edited: its draws or metadata no longer match its checksum")
    missing = [p.name for p in forward.PARAMS if p.name not in params and p.name not in forward.OPTIONAL_PARAMS]
    if missing:
        raise PosteriorError(f"{path}: posterior lacks parameters {', '.join(missing)}")
    bad = [k for k, v in params.items() if not _finite(v)]
    if bad:  # one NaN draw would make every prediction NaN: refused even with --force
        raise PosteriorError(f"{path}: non-finite draws in {', '.join(bad)}")
    problem = _meta_problem(meta) or _shape_problem(params, meta)
    if problem:
        raise PosteriorError(f"{path}: damaged or edited: {problem}")
    try:
        return Posterior(params, meta, str(path))
    except (ValueError, KeyError, TypeError, IndexError) as e:  # a value of the right type that does not parse
        raise PosteriorError(f"{path}: damaged or edited metadata ({type(e).__name__}: {e})".replace("\n", " ")) from None


def content_checksum(params: dict[str, np.ndarray], meta: dict) -> str:
    """sha256 over each parameter's name, dtype, shape and bytes (by name) and the metadata JSON without its
    checksum entry (keys sorted). The zip's CRC already catches a flipped byte; this catches a file rewritten
    with other numbers or metadata (an edited draw, diagnostics, task table), which a CRC recomputes."""
    h = hashlib.sha256()
    for name in sorted(params):
        a = np.ascontiguousarray(params[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    h.update(json.dumps({k: v for k, v in meta.items() if k != CHECKSUM}, sort_keys=True).encode())
    return "sha256:" + h.hexdigest()


def diagnostic_problems(diag) -> list[str]:
    """Why a fit's diagnostics (meta["diagnostics"]) fail, empty when they pass: R-hat above RHAT_MAX, divergent
    transitions, too few effective draws, and any of them NaN or not recorded (a one-chain or few-draw fit's
    R-hat and ESS are NaN: unknown is not a pass). `dynsim fit` retries on these, and `predict` refuses them."""
    if not isinstance(diag, dict):
        return [f"diagnostics not recorded ({diag!r})"]
    out = []
    rhat, divergences = diag.get("rhat_max"), diag.get("divergences")
    if not _is_number(rhat) or not rhat <= RHAT_MAX:  # NaN fails: it compares false
        out.append(f"R-hat {rhat} > {RHAT_MAX}" if _is_number(rhat) else f"R-hat not recorded ({rhat!r})")
    elif rhat < RHAT_MIN:
        out.append(f"R-hat {rhat} < {RHAT_MIN}, which no sampler gives")
    if not isinstance(divergences, int) or isinstance(divergences, bool) or divergences != 0:
        out.append(f"{divergences!r} divergent transitions")
    for key, label in (("ess_bulk_min", "bulk"), ("ess_tail_min", "tail")):
        ess = diag.get(key)
        if not _is_number(ess) or not ESS_MIN <= ess < math.inf:
            out.append(f"ESS {label} {ess:.0f} < {ESS_MIN}" if _is_number(ess) and ess < ESS_MIN
                       else f"ESS {label} {ess} is not a finite number" if _is_number(ess) and ess > 0
                       else f"ESS {label} not recorded ({ess!r})")
    return out


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _positive(x) -> bool:
    """A positive finite number, as a float too (JSON reads 1e400 as an int that no float holds)."""
    try:
        return _is_number(x) and 0 < float(x) < math.inf
    except OverflowError:
        return False


def _finite(a: np.ndarray) -> bool:
    """Draws that are real numbers, all finite (a string array, a boolean one or a NaN are not draws)."""
    return a.dtype.kind in "fiu" and a.ndim >= 1 and bool(np.isfinite(a).all())


def _meta_problem(meta: dict) -> str | None:
    """What in a posterior's metadata has the wrong type or is missing (None when it is whole): checked on load,
    so that an edited file is refused in one line, not met by a KeyError deep in a prediction."""
    def names(v) -> bool:
        return isinstance(v, list) and all(isinstance(s, str) for s in v)

    tasks, observed = meta.get("tasks"), meta.get("observed")
    if not isinstance(tasks, dict):
        return "'tasks' must be a table of names, kinds and chance"
    for key in ("names", "kinds", "chance"):
        if not names(tasks.get(key)) or not tasks[key]:
            return f"'tasks.{key}' must be a non-empty list of strings"
    if not len(tasks["names"]) == len(tasks["kinds"]) == len(tasks["chance"]):
        return "'tasks.names', 'tasks.kinds' and 'tasks.chance' must be of one length"
    if len(set(tasks["names"])) != len(tasks["names"]):
        return "'tasks.names' names a task twice"
    bad_chance = [c for c in tasks["chance"] if not checks.chance_ok(c)]
    if bad_chance:
        return f"'tasks.chance' {bad_chance[0]!r} is not a chance accuracy in percent (0-100)"
    unknown = sorted(set(tasks["kinds"]) - set(forward.KINDS) - set(forward.UPSTREAM_KINDS))
    if unknown:
        return f"unknown task kind(s) {', '.join(map(repr, unknown))} in 'tasks.kinds'"
    if not names(tasks.get("sft_datasets", [])):
        return "'tasks.sft_datasets' must be a list of strings"
    if not isinstance(observed, dict) or not all(names(observed.get(k)) for k in ("configs", "tasks", "metrics")) \
            or not observed["configs"]:
        return "'observed' must hold lists of 'configs' (at least one), 'tasks' and 'metrics'"
    try:
        for metric in set(observed["metrics"]):
            forward.metric_kind(metric)
    except ValueError as e:
        return f"'observed.metrics': {e}"
    for key in ("noise_floor", "loss_nu"):
        if not _positive(meta.get(key)):
            return f"'{key}' must be a positive number, got {meta.get(key)!r}"
    if meta.get("form", "chinchilla") not in forward.FORMS:
        return f"unknown form {meta.get('form')!r} (one of {', '.join(forward.FORMS)})"
    scales = meta.get("scales")
    if scales is not None and not (isinstance(scales, dict) and all(v is None or (_is_number(v) and 0 < v < math.inf)
                                                                     for v in scales.values())):
        return "'scales' must be a table of positive numbers"
    for key in ("corpora", "bases"):
        if meta.get(key) is not None and not (names(meta[key]) and len(set(meta[key])) == len(meta[key])):
            return f"'{key}' must be a list of distinct strings"
    for key in ("held_out", "excluded"):  # validate reads their configs
        if key in meta and not (isinstance(meta[key], dict) and names(meta[key].get("configs"))
                                and isinstance(meta[key].get("rule"), str)):
            return f"'{key}' must be a table with a 'rule' and a list of 'configs'"
        for name in meta.get(key, {}).get("configs", []):
            try:
                parse_config(name)
            except UserError as e:
                return f"'{key}.configs': {e}"
    return None


def _shape_problem(params: dict[str, np.ndarray], meta: dict) -> str | None:
    """A parameter whose shape does not match the others' draws or the groups its metadata names (a per-task
    parameter needs one column per task): numpy would broadcast a wrong one silently."""
    draws = {v.shape[0] for v in params.values()}
    if len(draws) != 1 or min(draws) < 2:  # one draw is a point, not a posterior: no interval, no variance
        return (f"parameters hold different or no numbers of draws, or a single one "
                f"({', '.join(map(str, sorted(draws)))})")
    kinds, tasks = meta["tasks"]["kinds"], meta["tasks"]
    n_down = max(1, sum(k in forward.KINDS for k in kinds))  # one placeholder column where there are none
    columns = {"global": None, "sft_readout": None, "kind": len(forward.KINDS), "task": n_down,
               "up_task": max(1, kinds.count("upstream")),
               "task_data": n_down * max(1, len(tasks.get("sft_datasets", []))),
               "corpus": len(meta.get("corpora") or []) or None, "base": len(meta.get("bases") or []) or None}
    columns = {name: columns.get(group, ...) for name, group in forward.PARAM_GROUPS.items()}
    columns |= {"discrepancy": len(observation.OBS_GROUPS), "run_shared": len(observation.SHARED_GROUPS)}
    for name, v in params.items():
        want = columns.get(name, ...)  # ...: a group this check does not know; its draws only
        shape = (v.shape[0],) if want is None else (v.shape[0], want)
        if want is not ... and v.shape != shape:
            return f"parameter {name} has shape {v.shape}, its metadata implies {shape}"
    return None


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
