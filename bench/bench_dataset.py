"""Results Dataset benchmarks: load + conversion to the long table the fit reads, time and memory.

For the miniature study (`studies/mini_evolm/results.nc`, 557 numbers) and the OLMo ladder testbed (30 runs,
every checkpoint: ~146,000 numbers, imported once from its bundled CSV, then loaded from netCDF).
Goal (issue 23): each under 1 s and 100 MB. Beside it, the cells a dense cube over the config fields would need
(the Dataset's earlier form: 29.5 million for the miniature).

Usage: python bench/bench_dataset.py [--repeats 5]
"""

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from dynsim import results, runs_csv

ROOT = Path(__file__).resolve().parents[1]
ap = argparse.ArgumentParser()
ap.add_argument("--repeats", type=int, default=5)
args = ap.parse_args()


def measure(fn):
    """Median wall time over the repeats, and the peak of Python-tracked memory (numpy included) of one call."""
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), peak / 2**20


def load_and_convert(path):
    return lambda: results.to_long(results.load(path))


with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    ladder = runs_csv.read(ROOT / "dynsim" / "data" / "olmo_ladder" / "runs.csv.gz")
    csv_s = time.perf_counter() - t0
    ladder_nc = results.save(ladder, Path(tmp) / "olmo_ladder.nc")
    cases = {"mini (studies/mini_evolm/results.nc)": ROOT / "studies" / "mini_evolm" / "results.nc",
             "olmo_ladder (netCDF of its CSV)": ladder_nc}
    print(f"{'Dataset':<40}{'numbers':>9}{'dense cells':>14}{'file MB':>9}{'load+long s':>13}{'peak MB':>9}")
    for label, path in cases.items():
        ds = results.load(path)
        dense = int(np.prod([len(np.unique(ds[k].values)) for k in results.KEYS]))
        seconds, peak = measure(load_and_convert(path))
        print(f"{label:<40}{ds.sizes[results.OBS]:>9}{dense:>14.3g}{path.stat().st_size / 2**20:>9.2f}"
              f"{seconds:>13.3f}{peak:>9.1f}")
    print(f"\nolmo_ladder CSV import (runs.csv.gz, {ladder.sizes[results.OBS]} rows, every row checked): {csv_s:.2f} s")
