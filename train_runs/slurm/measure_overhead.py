"""Per-job submit->result overhead of a trivial job on the local Slurm cluster (local_slurm.sh up).

    .venv/bin/python train_runs/slurm/measure_overhead.py [-n 10]

Three figures, each the median over n sequential jobs:
  tight    submitit submit -> result, polling the result file every 50 ms (Slurm's own latency)
  result   submitit submit -> job.result() as a user calls it (submitit polls once a second)
  sbatch   `sbatch --wait --wrap true` (no Python, no submitit)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time

import submitit


def _trivial(x: int) -> int:
    return x + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        ex.update_parameters(timeout_min=5, cpus_per_task=1, mem_gb=0.5, name="overhead")
        tight, plain, raw = [], [], []
        for i in range(args.n):
            t0 = time.perf_counter()
            job = ex.submit(_trivial, i)
            while not job.paths.result_pickle.exists():
                time.sleep(0.05)
            assert job.result() == i + 1
            tight.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            assert ex.submit(_trivial, i).result() == i + 1
            plain.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            subprocess.run(["sbatch", "-Q", "--wait", "-o", "/dev/null", "--wrap", "true"], check=True, timeout=120)
            raw.append(time.perf_counter() - t0)
    for name, xs in (("tight", tight), ("result", plain), ("sbatch", raw)):
        print(f"{name:7s} median {statistics.median(xs):.2f} s  min {min(xs):.2f}  max {max(xs):.2f}  (n={len(xs)})")


if __name__ == "__main__":
    main()
