"""A tiny study end to end through submitit's LocalExecutor: WSD branches, a SIGKILLed job retried, a job that
always dies reported with its descendants blocked, a second submit that finishes only what is missing, a third
that does nothing, status, and collect into a results Dataset. About 2-4 minutes on the 2-core dev machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

from dynsim import results
from dynsim.cli import main
from dynsim.study import load_study
from train_runs import sweep

STUDY = """
[study]
name = "tiny"
seeds = [0]
executor = "local"
max_retries = 1
max_parallel = 2
[schedule]
pt = "wsd"
decay_frac = 0.2
[tokens_per_example]
sft = 40
rl = 100
[[grid]]
size = ["0.1M"]
pretrain = ["50KT", "100KT"]
cpt = ["0+20KT"]
sft = ["40ep1"]
[resources.default]
time_min = 10
[recipe.data]
general_corpus = "sample"
[recipe.run]
threads = 1
checkpoint_every = 5
[recipe.eval]
n_items = 4
k = 2
cloze_items = 10
text_tokens = 1024
"""
FLAKY = "0.1M-100KT-0+20KT"  # SIGKILLed on its first attempt, then fine
DOOMED = "0.1M-50KT-0+20KT"  # SIGKILLed on every attempt: its SFT child must never start


def flaky_node(config_name, out_dir, seed, recipe, parent_name=None, wsd_branches=()):
    marker = Path(out_dir) / f"attempted-{config_name}"
    first = not marker.exists()
    marker.write_text("x")
    if config_name == DOOMED or (config_name == FLAKY and first):
        os.kill(os.getpid(), 9)
    from train_runs.sweep import run_node
    return run_node(config_name, out_dir, seed, recipe, parent_name, wsd_branches)


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(STUDY)
    text = path.read_text().replace('executor = "local"', f'executor = "local"\nout = "{tmp_path / "runs"}"')
    path.write_text(text)
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)  # the job's Python cannot import this test module
    yield load_study(path)
    cloudpickle.unregister_pickle_by_value(module)


@pytest.mark.slow  # ~2 minutes on the shared 2-core dev machine
def test_local_sweep_end_to_end(study, tmp_path, capsys):
    logs = []
    s1 = sweep.submit(study, fn=flaky_node, poll_s=0.2, log=logs.append)
    text = "\n".join(logs)
    # 7 nodes: stable 0.1M-80of100KT, decays 50KT / 100KT, two CPT, two SFT
    assert s1["jobs"] == 7
    assert s1["failed"] == 1 and s1["blocked"] == 1 and s1["done"] == 5, text
    assert f"FAILED  {FLAKY}/seed0" in text and f"retrying {FLAKY}/seed0" in text
    assert f"giving up on {DOOMED}/seed0; 1 descendant job(s) blocked" in text
    assert "log tail" in text
    assert not (study.out / f"{DOOMED}-40ep1").exists()  # the child of a failed parent never started
    # WSD: the 50KT branch started from the stable run's state at its own decay start
    log50 = json.loads((study.out / "0.1M-50KT" / "seed0" / "train_log.json").read_text())
    assert log50["resumed_from"] == log50["steps"] - round(0.2 * log50["steps"])

    st = sweep.status(study)
    assert st["counts"] == {"done": 5, "failed": 1, "blocked": 1}

    logs.clear()
    s2 = sweep.submit(study, poll_s=0.2, log=logs.append)  # the real job function: finishes the rest
    assert s2["done"] == 7 and s2["failed"] == 0, "\n".join(logs)
    assert sum("submitted" in line for line in logs) == 2  # only DOOMED and its child
    logs.clear()
    s3 = sweep.submit(study, poll_s=0.2, log=logs.append)
    assert s3["done"] == 7 and not any("submitted" in line for line in logs)  # idempotent

    out = tmp_path / "results.nc"
    assert main(["sweep", "collect", str(study.path), "-o", str(out)]) == 0
    ds = results.load(out)
    names = {c.name for c in results.configs(ds)}
    assert names == {"0.1M-80of100KT", "0.1M-50KT", "0.1M-100KT", "0.1M-50KT-0+20KT", "0.1M-100KT-0+20KT",
                     "0.1M-50KT-0+20KT-40ep1", "0.1M-100KT-0+20KT-40ep1"}
    assert ds.attrs["study"] == "tiny"
    assert main(["sweep", "status", str(study.path)]) == 0
    assert "done 7" in capsys.readouterr().out


# -- one dispatcher per run store --------------------------------------------------------------------------
LIGHT_STUDY = """
[study]
name = "light"
seeds = [0]
executor = "local"
max_parallel = 2
[schedule]
pt = "cosine"
[[grid]]
size = ["0.1M"]
pretrain = ["50KT", "100KT"]
"""
# a dispatcher with a job that trains nothing: it waits for the go file (so that two start together), sleeps a
# second, notes that it ran and writes the result record a finished job leaves
DISPATCHER = """
import sys, time
from pathlib import Path
from train_runs import sweep

study, out, go = sweep.load(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

def job(config_name, out_dir, seed, recipe, parent_name=None, wsd_branches=()):
    import json, os, time
    from pathlib import Path
    # hold the store until the other dispatcher has tried it (30 s at most: if it never is refused, it dispatched
    # too, and ran.txt shows it), so a loaded machine that starts the second one late cannot make them sequential
    deadline = time.monotonic() + 30
    while not (Path(out_dir).parent / "refused").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(Path(out_dir) / "ran.txt", "a") as f:
        f.write(f"{config_name}/seed{seed} {os.getpid()}\\n")
    here = Path(out_dir) / config_name / f"seed{seed}"
    here.mkdir(parents=True, exist_ok=True)
    (here / "result.json").write_text(json.dumps({"config": config_name, "seed": seed}))
    return {"config": config_name, "seed": seed}

(out.parent / f"ready-{Path(sys.argv[0]).name}-{__import__('os').getpid()}").touch()
while not go.exists():
    time.sleep(0.02)
try:
    summary = sweep.submit(study, out=out, fn=job, poll_s=0.1, log=lambda m: None)
except sweep.SweepError as e:
    print(e, file=sys.stderr)
    (out.parent / "refused").touch()
    sys.exit(2)
sys.exit(0 if summary["done"] == summary["jobs"] else 1)
"""


def test_two_simultaneous_submits_run_each_job_once(tmp_path):
    """Two `submit`s of one study started together: one dispatches every job once, the other is refused at once,
    naming the first one's pid (issue 19: both used to dispatch all 15 jobs)."""
    spec, script, go, out = tmp_path / "light.toml", tmp_path / "dispatch.py", tmp_path / "go", tmp_path / "runs"
    spec.write_text(LIGHT_STUDY)
    script.write_text(DISPATCHER)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, str(script), str(spec), str(out), str(go)], env=env, text=True,
                              stderr=subprocess.PIPE) for _ in range(2)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    codes = [p.wait(timeout=120) for p in procs]
    errors = [p.stderr.read() for p in procs]
    assert sorted(codes) == [0, 2], errors
    refusal = errors[codes.index(2)]
    assert len(refusal.splitlines()) == 1 and f"pid {procs[codes.index(0)].pid}" in refusal, refusal
    ran = (out / "ran.txt").read_text().splitlines()
    assert sorted(line.split()[0] for line in ran) == ["0.1M-100KT/seed0", "0.1M-50KT/seed0"], ran


def test_a_submit_while_another_holds_the_store_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    """The CLI's side: exit 2, one line naming the holder's pid, and no state read or written."""
    spec, out = tmp_path / "light.toml", tmp_path / "runs"
    spec.write_text(LIGHT_STUDY)
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from train_runs import sweep\n"
                               f"with sweep.dispatch_lock({str(out)!r}):\n    print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert holder.stdout.readline().strip() == "held"

        def started(*args, **kwargs):
            raise AssertionError("a second dispatcher started")
        monkeypatch.setattr(sweep._Dispatcher, "run", started)
        assert main(["sweep", "submit", str(spec), "--runs", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and f"another dispatcher (pid {holder.pid})" in err, err
        assert not (out / "_sweep" / "state.json").exists()
    finally:
        holder.communicate("", timeout=30)
    assert main(["sweep", "status", str(spec), "--runs", str(out)]) == 0  # the lock is gone with its holder


# -- jobs of several processes (issue 20) --------------------------------------------------------------------
TWO_TASK_STUDY = """
[study]
name = "{name}"
seeds = [0]
executor = "{executor}"
out = "{out}"
max_retries = 1
[schedule]
pt = "cosine"
[[grid]]
size = ["0.1M"]
pretrain = ["100KT"]
[resources.pt]
nodes = {nodes}
tasks = 2
cpus = 2
gpus = {gpus}
mem_gb = 1
time_min = 10
[recipe.data]
general_corpus = "sample"
[recipe.run]
threads = 1
checkpoint_every = 5
[recipe.eval]
n_items = 4
k = 2
cloze_items = 10
text_tokens = 1024
"""


def two_task_study(tmp_path, name="two", executor="local", nodes=1, gpus=0):
    path = tmp_path / f"{name}.toml"
    path.write_text(TWO_TASK_STUDY.format(name=name, executor=executor, out=tmp_path / "runs", nodes=nodes, gpus=gpus))
    return path


def rank1_killed_once(config_name, out_dir, seed, recipe, parent_name=None, wsd_branches=()):
    """Rank 1 SIGKILLs itself once the run's first resume checkpoint is on disk; rank 0 is left alone."""
    import threading

    import submitit

    marker, run = Path(out_dir) / "killed-rank1", Path(out_dir) / config_name / f"seed{seed}"
    if submitit.JobEnvironment().global_rank == 1 and not marker.exists():
        def kill_when_checkpointed():
            while not (run / "resume.pt").exists():
                time.sleep(0.02)
            marker.write_text("rank 1, attempt 1")
            os.kill(os.getpid(), 9)
        threading.Thread(target=kill_when_checkpointed, daemon=True).start()
    from train_runs.sweep import run_node
    return run_node(config_name, out_dir, seed, recipe, parent_name, wsd_branches)


def check_two_rank_run_resumed(out: Path, summary: dict, log: str) -> None:
    assert summary["done"] == 1 and summary["failed"] == 0 and summary["retries"] == 1, log
    assert (out / "killed-rank1").read_text() == "rank 1, attempt 1"
    train_log = json.loads((out / "0.1M-100KT" / "seed0" / "train_log.json").read_text())
    assert train_log["processes"] == 2 and train_log["resumed_from"] >= 5, train_log  # not started over
    assert (out / "0.1M-100KT" / "seed0" / "result.json").exists() and not list(out.rglob("resume.pt"))


def test_a_two_task_local_job_trains_a_node_and_resumes_after_one_rank_is_killed(tmp_path):
    """submitit's local executor starts the node's job as 2 tasks (tasks_per_node), which train it as 2 gloo ranks;
    rank 1 is SIGKILLed after the first checkpoint, rank 0 fails with it, and the retry resumes on 2 ranks."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        logs: list[str] = []
        summary = sweep.submit(load_study(two_task_study(tmp_path)), fn=rank1_killed_once, poll_s=0.2,
                               log=logs.append)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    check_two_rank_run_resumed(tmp_path / "runs", summary, "\n".join(logs))


def test_dry_run_writes_the_sbatch_scripts_of_a_multi_node_study(tmp_path, capsys):
    """`sweep submit --dry-run`: one script per array the dispatcher would queue, with the stage's nodes, tasks,
    CPUs per task and GPUs, srun launching the ranks, children behind their parent's script; nothing submitted."""
    path = two_task_study(tmp_path, executor="slurm", nodes=2, gpus=2)
    path.write_text(path.read_text().replace('pretrain = ["100KT"]', 'pretrain = ["50KT", "100KT"]\ncpt = ["0+20KT"]'))
    assert main(["sweep", "submit", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    scripts = {p.name: p.read_text() for p in (tmp_path / "runs" / "_sweep" / "dry_run").iterdir()}
    assert len(scripts) == 3 and "first PT script" in out  # both PT runs in one array and "first CPT script" in out, out
    jobs = {line.split()[1]: name for name, text in scripts.items() for line in text.splitlines()
            if line.startswith("#   ")}
    assert sorted(jobs) == ["0.1M-100KT", "0.1M-100KT-0+20KT", "0.1M-50KT", "0.1M-50KT-0+20KT"]
    for name, text in scripts.items():
        stage = name.split("-")[1]
        shape = ["--nodes=2", "--ntasks-per-node=2", "--cpus-per-task=1", "--gpus-per-node=2"] if stage == "pt" else \
                ["--nodes=1", "--ntasks-per-node=1", "--cpus-per-task=1"]
        assert all(f"#SBATCH {s}\n" in text for s in shape), (name, text)
        assert "\nsrun " in text and "submitit.core._submit" in text
        config = next(c for c, n in jobs.items() if n == name)
        if stage == "cpt":
            assert f"afterok:<job id of {jobs[config.rsplit('-', 1)[0]]}>" in text, text
        else:
            assert "--dependency" not in text
    assert not (tmp_path / "runs" / "_sweep" / "state.json").exists()


def test_evolm_1b_plans_multi_gpu_jobs_of_the_named_1b_shape(tmp_path, capsys):
    from dynsim.config import parse_config
    from train_runs.recipe import load_recipe
    from train_runs.model import model_config

    study = Path(__file__).resolve().parents[1] / "studies" / "evolm_1b.toml"
    assert main(["sweep", "plan", str(study)]) == 0
    assert "pt      4 nodes x (8 tasks, 8 GPUs, 64 CPUs, 480 GB)" in capsys.readouterr().out
    assert main(["sweep", "submit", str(study), "--dry-run", "--runs", str(tmp_path)]) == 0
    pt = [t for n, t in ((p.name, p.read_text()) for p in (tmp_path / "_sweep" / "dry_run").iterdir()) if "-pt-" in n]
    assert pt and all("--nodes=4" in t and "--ntasks-per-node=8" in t and "--gpus-per-node=8" in t for t in pt)
    hp = load_recipe(load_study(study).recipe, parse_config("1B-20BT").size)
    shape = model_config(parse_config("1B-20BT"), hp)
    assert (shape.n_layer, shape.d_model, shape.n_kv_head) == (22, 2048, 4) and 1.0e9 < shape.n_params() < 1.1e9
