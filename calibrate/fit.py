"""Fit the joint model by NUTS, check its diagnostics, and write the posterior artefacts.

Artefacts (written atomically, side by side):
  NAME.npz — every forward-model parameter's draws (chain × draw flattened) plus a JSON `meta` entry
             (task table, calibrated configurations, diagnostics, data hash, provenance, and a checksum of all of
             it that `posterior.load` verifies). `dynsim predict` reads only this, with numpy.
  NAME.nc  — the full ArviZ InferenceData (posterior, sample_stats) for diagnostics and figures.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import warnings
from pathlib import Path

import numpy as np

from calibrate import CACHE
from dynsim import __version__, forward, posterior
from dynsim.files import atomic_write

RHAT_MAX = posterior.RHAT_MAX


def _configure_backends(chains: int):
    # numpyro runs its chains one after another unless XLA exposes one host device per chain
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={chains}")
    import jax

    # XLA's compiled sampler and likelihood are kept on disk: a refit of the same model skips their compilation
    jax.config.update("jax_compilation_cache_dir", str(CACHE / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def sample(obs, draws=1000, tune=1000, chains=4, target_accept=0.95, seed=0, progress=True, nuts_kwargs=None):
    """NUTS by numpyro on the PyMC model (straight to PyMC's numpyro bridge: `pm.sample` would first build the
    model's symbolic gradient to choose step methods, a minute of graph work that the JAX sampler never uses)."""
    _configure_backends(chains)
    from pymc.sampling.jax import sample_jax_nuts

    from calibrate.model import build

    return sample_jax_nuts(draws=draws, tune=tune, chains=chains, target_accept=target_accept, random_seed=seed,
                           model=build(obs), progressbar=progress, chain_method="parallel",
                           compute_convergence_checks=False, nuts_sampler="numpyro", nuts_kwargs=nuts_kwargs)


@contextlib.contextmanager
def _constant_elements_allowed():
    """ArviZ warns on a constant element (a reference corpus's offset, 0), whose R-hat is 0/0: NaN, which the
    diagnostics skip."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        yield


def diagnostics(idata) -> dict:
    import arviz as az

    names = [v for v in idata.posterior.data_vars]
    with _constant_elements_allowed():
        rhat = az.rhat(idata, var_names=names).to_array()
        ess_bulk = az.ess(idata, var_names=names, method="bulk").to_array()
        ess_tail = az.ess(idata, var_names=names, method="tail").to_array()
    return dict(rhat_max=float(rhat.max()), ess_bulk_min=float(ess_bulk.min()), ess_tail_min=float(ess_tail.min()),
                divergences=int(idata.sample_stats.diverging.sum()),
                chains=int(idata.posterior.sizes["chain"]), draws=int(idata.posterior.sizes["draw"]))


def worst_mixing(idata, k: int = 3) -> list[str]:
    """The k parameters with the largest R-hat and their per-chain means: chains that agree among themselves
    but not with another sit in separate modes, which a higher target_accept does not cure (the model needs
    changing: see forget_reach in calibrate/model.py)."""
    import arviz as az

    with _constant_elements_allowed():
        rhat = az.rhat(idata)
    found = []
    for name, r in rhat.data_vars.items():
        values = np.atleast_1d(r.values)
        for flat in np.flatnonzero(np.isfinite(values)):
            found.append((float(values[flat]), name, np.unravel_index(flat, values.shape) if r.ndim else ()))
    lines = []
    for r, name, idx in sorted(found, reverse=True)[:k]:
        draws = idata.posterior[name].values[(slice(None), slice(None)) + tuple(idx)]
        means = ", ".join(f"{m:.3g}" for m in draws.mean(axis=1))
        lines.append(f"{name}{list(map(int, idx)) if idx else ''}: R-hat {r:.3f}, chain means {means}")
    return lines


def passes(diag: dict) -> bool:
    """The gate predict applies to the written posterior (posterior.diagnostic_problems): one rule, so a fit that
    passes is never refused, and one whose R-hat or ESS is NaN (a single chain, a handful of draws) never passes."""
    return not posterior.diagnostic_problems(diag)


def fit(obs, draws=1000, tune=1000, chains=4, seed=0, progress=True, target_accepts=(0.95, 0.99, 0.995), log=print):
    """Sample; retry up to twice: after divergences with the next higher target_accept (smaller steps resolve
    curvature), after R-hat > 1.01 alone with twice the draws and tuning at the same one (chains that mix slowly
    need length; a higher target_accept gives shorter trajectories that explore less). Returns (idata, diag, ok)."""
    steps = iter(target_accepts)
    ta = next(steps)
    for attempt in range(len(target_accepts)):
        idata = sample(obs, draws, tune, chains, ta, seed, progress)
        diag = diagnostics(idata) | {"target_accept": ta, "draws": draws, "tune": tune}
        log(f"target_accept={ta}, {draws} draws: R-hat max {diag['rhat_max']:.4f}, ESS bulk min "
            f"{diag['ess_bulk_min']:.0f}, ESS tail min {diag['ess_tail_min']:.0f}, divergences {diag['divergences']}")
        if passes(diag):
            return idata, diag, True
        if not diag["rhat_max"] <= RHAT_MAX:
            for line in worst_mixing(idata):
                log(f"  {line}")
        if diag["divergences"]:
            ta = next(steps, ta)
        else:
            draws, tune = 2 * draws, 2 * tune
    return idata, diag, False


def draws_of(idata, group: str = "posterior") -> dict[str, np.ndarray]:
    """The forward model's parameters (and discrepancy scales), chain × draw flattened to a leading axis."""
    post = idata[group]
    out = {}
    for name in [p.name for p in forward.PARAMS] + ["discrepancy", "run_shared"]:
        if (name in forward.OPTIONAL_PARAMS or name == "run_shared") and name not in post:
            continue
        a = post[name].values
        out[name] = a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])
    return out


def write(idata, obs, ds, diag: dict, path, extra_meta: dict | None = None, thin: int = 1) -> Path:
    """Write NAME.npz (numpy-readable draws + meta) and NAME.nc (ArviZ) atomically. thin: NAME.npz keeps every
    thin-th draw (predict's time grows with draws; the diagnostics and NAME.nc are of them all)."""
    from dynsim.observation import LOSS_NU, NOISE_FLOOR, OBS_GROUPS

    path = Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    configs = sorted({c.name for c in obs.configs})
    meta = dict(
        schema=posterior.SCHEMA, created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        code_version=__version__, data_hash=ds.attrs.get("data_hash", ""), data_title=ds.attrs.get("title", ""),
        citation=ds.attrs.get("citation", ""), diagnostics=diag, noise_floor=NOISE_FLOOR, obs_groups=list(OBS_GROUPS), loss_nu=LOSS_NU,
        tasks=dict(names=obs.table.names, kinds=obs.table.kinds,
                   chance=[";".join(f"{c * 100:g}" for c in cs) for cs in obs.table.chance],
                   sft_datasets=obs.table.sft_datasets),
        observed=dict(configs=configs, tasks=sorted(set(obs.tasks)), metrics=sorted(set(obs.metrics))),
        corpora=list(obs.corpora), form=obs.form, scales=obs.scales,
        cloze_loss_slope=obs.scales.get("loss_ref") is not None,  # calibrate.model.build's likelihood had the term
        sampler=dict(backend="pymc+numpyro NUTS", seed=diag.get("seed")),
    ) | (extra_meta or {})
    draws = draws_of(idata)
    if "base_quality" in draws:
        meta["bases"] = list(obs.bases)  # the order of base_quality's columns (forward.base_key)
    if thin > 1:
        total = len(next(iter(draws.values())))
        draws = {k: v[::thin] for k, v in draws.items()}
        meta["thinned"] = dict(every=thin, draws_kept=len(next(iter(draws.values()))),
                               why=f"predict's time grows with draws; diagnostics are of the full {total}")
    arrays = {f"param/{k}": v for k, v in draws.items()}
    meta = json.loads(json.dumps(meta))  # as load will read it back: the checksum covers exactly that
    meta[posterior.CHECKSUM] = posterior.content_checksum(draws, meta)
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))
    idata.attrs.update(data_hash=meta["data_hash"], code_version=__version__)
    atomic_write(path.with_suffix(".nc"), lambda tmp: idata.to_netcdf(tmp, engine="h5netcdf"))
    return path


def fit_data(ds, form: str, min_tokens_per_param: float | None = None, hold_out: dict | None = None, log=print):
    """The observations a fit of ds samples, and what it left out (the meta entries `excluded`, `held_out`):
    runs with fewer pretraining tokens per parameter than min_tokens_per_param (too short for the loss law), then
    the runs of the hold-out rule (dynsim.calibrations.held_out_configs), kept for `dynsim validate`. The reference
    scales are the fitted runs' own."""
    from calibrate.model import observations
    from dynsim import calibrations
    from dynsim.errors import UserError

    obs = observations(ds).with_form(form)
    extra = {}
    few = np.array([bool(min_tokens_per_param) and c.pretrain < min_tokens_per_param * c.size for c in obs.configs])
    if few.all():
        raise UserError(f"--min-tokens-per-param {min_tokens_per_param:g} leaves no run to fit")
    if few.any():
        extra["excluded"] = dict(rule=f"pretraining tokens per parameter < {min_tokens_per_param:g}",
                                 min_tokens_per_param=min_tokens_per_param,
                                 configs=sorted({c.name for c, f in zip(obs.configs, few) if f}))
        log(f"leaving out {len(extra['excluded']['configs'])} configurations with fewer than "
            f"{min_tokens_per_param:g} pretraining tokens per parameter ({int(few.sum())} numbers)")
        obs = obs.subset(~few)
    held_out = calibrations.held_out_configs(hold_out or {}, obs.configs)
    if held_out:
        held = np.array([c.name in held_out["configs"] for c in obs.configs])
        if held.all() or not held.any():
            raise UserError(f"holding out {held_out['rule']} holds out {'every' if held.all() else 'no'} run")
        held_out["configs"] = sorted({c.name for c, h in zip(obs.configs, held) if h})  # those in the data
        extra["held_out"] = held_out
        log(f"holding out {len(held_out['configs'])} configurations ({held_out['rule']}; {int(held.sum())} "
            f"numbers) for validation")
        obs = obs.subset(~held)
    return obs.rescaled(), extra
