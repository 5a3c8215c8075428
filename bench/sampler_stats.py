"""What a NUTS fit of a bundled calibration spends its time on: wall time, diagnostics, leapfrog steps per draw
and the adapted step size, for one sampler setting. The fit-time levers of session 7 were compared with it.

Usage: python bench/sampler_stats.py [--calibration evolm|gadre2024|gadre2024_compute|mini] [--target-accept 0.95]
                                     [--chains 4] [--draws 1000] [--tune 1000] [--dense-mass] [--seed 0]
                                     [--sampler numpyro|nutpie] [--save IDATA.nc]
The data and held-out runs are those of `dynsim fit --calibration NAME`. `--sampler nutpie` runs nutpie's NUTS on
the model compiled by PyTensor's numba backend (its compile timed apart; `pip install -e ".[bench]"`), the
alternative to `dynsim fit`'s numpyro measured in session 10.
"""

import argparse
import os
import time

from calibrate import fit
from dynsim import calibrations

ap = argparse.ArgumentParser()
ap.add_argument("--calibration", default="evolm", choices=sorted(calibrations.CALIBRATIONS))
ap.add_argument("--target-accept", type=float, default=0.95)
ap.add_argument("--chains", type=int, default=4)
ap.add_argument("--draws", type=int, default=1000)
ap.add_argument("--tune", type=int, default=1000)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--save", help="write the InferenceData here (netCDF)")
ap.add_argument("--dense-mass", action="store_true", help="numpyro's dense mass matrix adaptation")
ap.add_argument("--sampler", default="numpyro", choices=("numpyro", "nutpie"))
args = ap.parse_args()

calibration = calibrations.get(args.calibration)  # the data, form and held-out runs of `dynsim fit --calibration NAME`
obs, _ = fit.fit_data(calibration.dataset(), calibration.form, hold_out=calibration.hold_out)

t = time.perf_counter()
if args.sampler == "numpyro":
    idata = fit.sample(obs, args.draws, args.tune, args.chains, args.target_accept, seed=args.seed, progress=False,
                       nuts_kwargs={"dense_mass": args.dense_mass})
else:
    try:
        import nutpie
    except ImportError:
        raise SystemExit('error: --sampler nutpie needs nutpie: pip install -e ".[bench]"') from None
    from calibrate.model import build

    compiled = nutpie.compile_pymc_model(build(obs), backend="numba")
    print(f"nutpie: model compiled by numba in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    idata = nutpie.sample(compiled, draws=args.draws, tune=args.tune, chains=args.chains, cores=min(args.chains, os.cpu_count() or 1),
                          target_accept=args.target_accept, seed=args.seed, progress_bar=False)
wall = time.perf_counter() - t
d, stats = fit.diagnostics(idata), idata.sample_stats
depth = "tree_depth" if "tree_depth" in stats else "depth"  # numpyro's name, nutpie's
print(f"{args.calibration}: {wall:.1f} s wall; R-hat max {d['rhat_max']:.4f}, ESS bulk min {d['ess_bulk_min']:.0f}, "
      f"tail min {d['ess_tail_min']:.0f}, divergences {d['divergences']}; leapfrog steps per draw "
      f"{float(stats.n_steps.mean()):.1f} (tree depth {float(stats[depth].mean()):.2f}), "
      f"step size {float(stats.step_size.mean()):.4f}")
if args.save:
    idata.to_netcdf(args.save)
