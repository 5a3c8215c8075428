"""Where NUTS struggles: the posterior's local curvature in the units a diagonal mass matrix sees.

At a few posterior draws, the Hessian of the log density over the unconstrained parameters is scaled by the
posterior standard deviations. Its largest eigenvalue λ bounds the leapfrog step (~2/√λ) while the posterior
spans ~1 in those units, so √λ is roughly the steps per unit NUTS needs; the eigenvector names the parameters
on the ridge. (Session 5: EvoLM had λ 1,000–3,000 through ability0 with the SFT and CPT terms; sampling each
task's mean ability instead brought it to 340–560.)

Usage: python bench/fit_geometry.py [POSTERIOR.nc] [RESULTS.nc]   (default: the bundled EvoLM calibration)
"""

import sys

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from pymc.sampling.jax import get_jaxified_logp

from calibrate.model import build, observations
from dynsim import posterior, results

jax.config.update("jax_enable_x64", True)
nc = sys.argv[1] if len(sys.argv) > 1 else str(posterior.bundled_path("evolm").with_suffix(".nc"))
ds = xr.load_dataset(sys.argv[2]) if len(sys.argv) > 2 else results.from_evolm_csv()
model = build(observations(ds))
post = az.from_netcdf(nc).posterior
n = post.sizes["chain"] * post.sizes["draw"]

values, names = [], []
for rv in model.free_RVs:  # the draws mapped to the sampler's unconstrained space
    a = post[rv.name].values.reshape(n, -1)
    transform = model.rvs_to_transforms.get(rv)
    if transform is not None:
        a = transform.forward(a, *rv.owner.inputs).eval()
    values.append(a)
    names += [f"{model.rvs_to_values[rv].name}[{j}]" for j in range(a.shape[1])]
flat = np.concatenate(values, axis=1)
shapes = [tuple(model.initial_point()[v.name].shape) for v in model.value_vars]
sizes = [int(np.prod(s)) for s in shapes]
logp = get_jaxified_logp(model)


def flat_logp(v):
    parts, i = [], 0
    for shape, size in zip(shapes, sizes):
        parts.append(v[i : i + size].reshape(shape))
        i += size
    return logp(parts)


hessian = jax.jit(jax.hessian(flat_logp))
sd = flat.std(axis=0)
corr = np.corrcoef(flat.T)
w = np.linalg.eigvalsh(corr)
print(f"{len(names)} unconstrained parameters; correlation condition number {w[-1] / w[0]:.0f}")
for d in np.linspace(0, n - 1, 4).astype(int):
    h = -np.asarray(hessian(jnp.asarray(flat[d]))) * np.outer(sd, sd)
    lam, vec = np.linalg.eigh(h)
    top = np.argsort(-np.abs(vec[:, -1]))[:6]
    print(f"draw {d}: largest curvature {lam[-1]:.0f} (step ≲ {2 / np.sqrt(max(lam[-1], 1e-9)):.3f}); along "
          + ", ".join(f"{names[i]} {vec[i, -1]:+.2f}" for i in top))
