"""Per-job overhead of `dynsim sweep` dispatch + collect, on local processes and on the local Slurm.

    .venv/bin/python bench/bench_sweep.py [--executors local,slurm] [--budgets 4] [--mixes 2]

Trivial jobs (each writes a one-number result record and returns: no torch, no training), dispatched by
train_runs.sweep.submit and collected into a Dataset:
- single: a one-job study, --repeats times: submit -> job seen done by the dispatcher (median, min, max);
- tree: a two-level tree (PT budgets x CPT mixes, cosine so there is no stable node): sweep wall / jobs, and
  collect / jobs.
The Slurm row needs `bash train_runs/slurm/local_slurm.sh up`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def trivial_node(config_name, out_dir, seed, recipe, parent_name=None, wsd_branches=()):
    here = Path(out_dir) / config_name / f"seed{seed}"
    here.mkdir(parents=True, exist_ok=True)
    rec = {"schema": "dynsim.result/1", "config": config_name, "seed": seed,
           "metrics": [{"task": "general_text", "metric": "loss", "value": 1.0}]}
    tmp = here / f"result.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(rec))
    os.replace(tmp, here / "result.json")
    return config_name


STUDY = """
[study]
name = "bench-{kind}"
out = "{out}"
max_parallel = 2
[schedule]
pt = "cosine"
[[grid]]
size = ["0.1M"]
pretrain = {pretrain}
cpt = {cpt}
[resources.default]
cpus = 1
mem_gb = 0.5
time_min = 5
"""


def single(kind: str, repeats: int, root: Path) -> list[float]:
    from dynsim.study import load_study
    from train_runs import sweep

    out = []
    for i in range(repeats):
        path = root / f"{kind}-single{i}.toml"
        path.write_text(STUDY.format(kind=kind, out=root / f"{kind}-single{i}", pretrain='["100KT"]', cpt='["none"]'))
        summary = sweep.submit(load_study(path), kind, fn=trivial_node, poll_s=0.1, log=lambda m: None)
        ev = {e["event"]: e["t"] for e in summary["events"]}
        out.append(ev["done"] - ev["submitted"])
    return out


def bench(kind: str, n_budgets: int, n_mixes: int, root: Path) -> dict:
    from dynsim.study import load_study
    from train_runs import sweep

    pretrain = json.dumps([f"{100 * (i + 1)}KT" for i in range(n_budgets)])
    cpt = json.dumps([f"0+{10 * (i + 1)}KT" for i in range(n_mixes)])
    path = root / f"{kind}.toml"
    path.write_text(STUDY.format(kind=kind, out=root / kind, pretrain=pretrain, cpt=cpt))
    study = load_study(path)
    t0 = time.perf_counter()
    summary = sweep.submit(study, kind, fn=trivial_node, poll_s=0.1, log=lambda m: None)
    wall = time.perf_counter() - t0
    assert summary["done"] == summary["jobs"] and not summary["failed"], summary
    submitted = {e["task"]: e["t"] for e in summary["events"] if e["event"] == "submitted"}
    latency = [e["t"] - submitted[e["task"]] for e in summary["events"] if e["event"] == "done"]
    t0 = time.perf_counter()
    sweep.collect(study, root / f"{kind}.nc")
    collect = time.perf_counter() - t0
    return {"jobs": summary["jobs"], "median": statistics.median(latency), "min": min(latency),
            "max": max(latency), "wall_per_job": wall / summary["jobs"], "wall": wall,
            "collect_per_job": collect / summary["jobs"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executors", default="local,slurm")
    ap.add_argument("--budgets", type=int, default=4)
    ap.add_argument("--mixes", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    import dynsim.results  # noqa: F401  (import xarray before timing collect)

    print(f"single: one-job sweeps x {args.repeats}; tree: {args.budgets} PT + {args.budgets * args.mixes} CPT jobs; "
          f"dispatcher poll 0.1 s; {os.cpu_count()} cores; local: 2 jobs at a time")
    print(f"{'executor':<9}{'single submit->done: median':>28}{'min':>7}{'max':>7}{'tree jobs':>10}{'wall/job':>10}"
          f"{'collect/job':>13}")
    for kind in args.executors.split(","):
        lat = single(kind, args.repeats, root)
        r = bench(kind, args.budgets, args.mixes, root)
        print(f"{kind:<9}{statistics.median(lat):>26.2f} s{min(lat):>7.2f}{max(lat):>7.2f}{r['jobs']:>10}"
              f"{r['wall_per_job']:>9.2f}s{r['collect_per_job'] * 1000:>10.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
