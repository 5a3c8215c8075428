"""Cold wall time of `dynsim predict --pretrain 320BT --cpt 8+42BT` (a fresh process each run).

Goal (issue 2): median ≤ 0.5 s on a 2-core machine. Prints each run and the median.
Usage: python bench/bench_predict.py [runs]
"""

import shutil
import statistics
import subprocess
import sys
import time

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
exe = shutil.which("dynsim") or f"{sys.executable} -m dynsim.cli"
cmd = exe.split() + ["predict", "--pretrain", "320BT", "--cpt", "8+42BT"]
subprocess.run(cmd, capture_output=True, check=True)  # warm the OS file cache once
times = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True)
    times.append(time.perf_counter() - t)
baseline = []
for _ in range(5):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numpy"], check=True)
    baseline.append(time.perf_counter() - t)
print(f"dynsim predict cold wall time over {runs} runs: median {statistics.median(times):.3f} s "
      f"(min {min(times):.3f}, max {max(times):.3f}); python+numpy alone: {statistics.median(baseline):.3f} s")
