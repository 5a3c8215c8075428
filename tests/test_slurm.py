"""Tests against a real Slurm cluster: the single-node one of train_runs/slurm/local_slurm.sh.

    bash train_runs/slurm/local_slurm.sh install && bash train_runs/slurm/local_slurm.sh up
    DYNSIM_REQUIRE_SLURM=1 pytest -m slurm tests/test_slurm.py
    bash train_runs/slurm/local_slurm.sh down

Without a cluster every test here is skipped with the reason; with DYNSIM_REQUIRE_SLURM=1 they
fail instead (CI sets it after `up`, so a broken cluster cannot pass as "skipped").

Every wait is bounded (jobs are cancelled on timeout), so the file cannot hang; it takes well
under a minute on the 2-core dev machine. submitit is always given `cluster="slurm"` explicitly:
once the Slurm client is installed AutoExecutor would pick Slurm anyway, but we do not rely on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit
from submitit.core.utils import UncompletedJobError

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SLURM_DIR = Path(os.environ.get("DYNSIM_SLURM_DIR") or REPO / ".cache" / "slurm")
REQUIRE = os.environ.get("DYNSIM_REQUIRE_SLURM") == "1"
UP_HINT = "bash train_runs/slurm/local_slurm.sh install && bash train_runs/slurm/local_slurm.sh up"

JOB_TIMEOUT_S = 60  # a trivial job takes ~1 s here; 60 s means something is broken
FAIL_DETECT_S = 60  # a self-SIGKILLed job shows FAILED within ~1-3 s (needs slurmdbd's sacct)


def _run(cmd: list[str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _local_cluster_down() -> bool:
    """True when the configured cluster is local_slurm.sh's and its slurmctld is not running.

    Saves the ~10 s that `sinfo` spends retrying a controller that is not there.
    """
    conf = Path(os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf")
    if conf.resolve() != (SLURM_DIR / "etc" / "slurm.conf").resolve():
        return False  # some other cluster: ask it
    try:
        pid = int((SLURM_DIR / "run" / "slurmctld.pid").read_text().strip())
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return True
    comm, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
    return comm != "slurmctld" or state == "Z"


def _cluster_problem() -> str | None:
    """None when a Slurm cluster answers with a usable node and accounting, else why not."""
    if shutil.which("sinfo") is None:
        return f"Slurm client not installed (no `sinfo` on PATH); run: {UP_HINT}"
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        return f"SLURM_CONF={conf} does not exist; run: {UP_HINT}"
    etc_conf = Path("/etc/slurm/slurm.conf")
    if not conf and etc_conf.is_symlink() and not etc_conf.exists():
        # left by local_slurm.sh for a state dir since deleted (sinfo would hang ~20 s on it)
        return f"{etc_conf} links to a missing {os.readlink(etc_conf)}; run: {UP_HINT}"
    if _local_cluster_down():
        return f"the local Slurm cluster ({SLURM_DIR}) is not up; run: {UP_HINT}"
    try:
        info = _run(["sinfo", "-h", "-o", "%T"])
    except subprocess.TimeoutExpired:
        return f"`sinfo` did not answer within 20 s: slurmctld is not up; run: {UP_HINT}"
    if info.returncode != 0:
        return f"Slurm cluster is not up (`sinfo`: {info.stderr.strip()[:200]}); run: {UP_HINT}"
    states = set(info.stdout.split())
    if not states & {"idle", "mixed", "allocated", "completing"}:
        return f"no usable Slurm node (states: {sorted(states) or 'none'}); run: {UP_HINT}"
    try:
        acct = _run(["sacct", "-n", "-X", "-S", "now"])
    except subprocess.TimeoutExpired:
        return "`sacct` did not answer within 20 s: slurmdbd is not up"
    if acct.returncode != 0:
        # Without accounting submitit cannot see a job that died before writing its result
        # and would wait forever, so we do not run these tests against such a cluster.
        return f"Slurm accounting (sacct/slurmdbd) not working: {acct.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    with pytest.MonkeyPatch.context() as mp:
        conf = SLURM_DIR / "etc" / "slurm.conf"
        if "SLURM_CONF" not in os.environ and conf.is_file():
            # local_slurm.sh links /etc/slurm/slurm.conf to it, but do not depend on that.
            mp.setenv("SLURM_CONF", str(conf))
        problem = _cluster_problem()
        if problem is not None:
            if REQUIRE:
                pytest.fail(f"DYNSIM_REQUIRE_SLURM=1 but {problem}", pytrace=False)
            pytest.skip(problem)
        # The job bodies below live in this test module, which the job's Python cannot import
        # (pytest put tests/ on sys.path only here): ship them by value, not by reference.
        module = sys.modules[__name__]
        cloudpickle.register_pickle_by_value(module)
        try:
            yield
        finally:
            cloudpickle.unregister_pickle_by_value(module)


@pytest.fixture
def executor(tmp_path: Path) -> submitit.AutoExecutor:
    ex = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    ex.update_parameters(timeout_min=5, cpus_per_task=1, mem_gb=0.5, name="dynsim-test")
    return ex


def _wait_done(job: submitit.Job, timeout_s: float) -> float:
    """Waits (bounded) until `job` is finished; returns seconds waited. Cancels it on timeout.

    `job.done(force_check=True)` asks sacct every time: submitit's own polling backs off to
    minutes, which is right for a real cluster but too slow for a test.
    """
    t0 = time.monotonic()
    while not job.done(force_check=True):
        if time.monotonic() - t0 > timeout_s:
            job.cancel(check=False)
            pytest.fail(f"job {job.job_id} not finished after {timeout_s} s (state {job.state})")
        time.sleep(0.2)
    return time.monotonic() - t0


def _final_state(job: submitit.Job, timeout_s: float = 30) -> str:
    """Slurm's state of a finished job, once Slurm has finished it too (bounded wait).

    The result file appears before the job leaves RUNNING/COMPLETING, and `job.state` is
    cached, so ask sacct afresh.
    """
    t0 = time.monotonic()
    while True:
        state = job.watcher.get_state(job.job_id, mode="force")
        if job.watcher.is_done(job.job_id, mode="cache") or time.monotonic() - t0 > timeout_s:
            return state
        time.sleep(0.2)


def _cancel_all(jobs: list[submitit.Job]) -> None:
    """On a failing test only: never cancel a finished job (it would turn CANCELLED)."""
    for j in jobs:
        try:
            j.cancel(check=False)
        except Exception:  # best effort cleanup
            pass


# ---------------------------------------------------------------- job bodies (run in the job)


def _where_am_i(x: int) -> dict:
    import socket

    return {
        "square": x * x,
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "token": os.environ.get("DYNSIM_SLURM_TEST_TOKEN"),
        "host": socket.gethostname(),
    }


def _parent(marker: str, sleep_s: float) -> str:
    time.sleep(sleep_s)
    Path(marker).write_text("parent done")
    return "parent"


def _child(marker: str, i: int) -> tuple[int, str | None, str | None]:
    m = Path(marker)
    return i, (m.read_text() if m.exists() else None), os.environ.get("SLURM_ARRAY_TASK_ID")


def _dies_first_time(marker: str) -> str:
    m = Path(marker)
    if not m.exists():
        m.write_text("attempt 1")
        os.kill(os.getpid(), 9)  # SIGKILL: no Python cleanup, no result file
    return "ok after resubmission"


# ---------------------------------------------------------------- tests


def test_submit_function_and_get_result(executor, monkeypatch):
    monkeypatch.setenv("DYNSIM_SLURM_TEST_TOKEN", "inherited-42")  # jobs inherit the env
    t0 = time.monotonic()
    job = executor.submit(_where_am_i, 7)
    assert isinstance(job, submitit.SlurmJob)
    try:
        _wait_done(job, JOB_TIMEOUT_S)
        out = job.result()
    except BaseException:
        _cancel_all([job])
        raise
    print(f"submit->result {time.monotonic() - t0:.2f} s")
    assert out["square"] == 49
    assert out["job_id"] == job.job_id
    assert out["token"] == "inherited-42"
    assert _final_state(job) == "COMPLETED"


def test_array_with_afterok_dependency_runs_after_parent(executor, tmp_path):
    marker = tmp_path / "parent.marker"
    parent = executor.submit(_parent, str(marker), 3.0)
    executor.update_parameters(
        slurm_additional_parameters={"dependency": f"afterok:{parent.job_id}"},
        slurm_array_parallelism=3,
    )
    children = executor.map_array(_child, [str(marker)] * 3, [0, 1, 2])
    jobs = [parent, *children]
    try:
        assert len(children) == 3
        array_id = children[0].job_id.split("_")[0]
        assert all(c.job_id.startswith(array_id + "_") for c in children)
        # While the parent runs (it sleeps 3 s), the array is held back by the dependency.
        q = _run(["squeue", "-h", "-r", "-j", array_id, "-o", "%T|%E"])
        assert q.returncode == 0, q.stderr
        rows = [line.split("|") for line in q.stdout.splitlines()]
        assert len(rows) == 3, rows
        for state, dependency in rows:
            assert state == "PENDING", rows
            assert dependency.startswith(f"afterok:{parent.job_id}"), rows

        _wait_done(parent, JOB_TIMEOUT_S)
        assert parent.result() == "parent"
        for c in children:
            _wait_done(c, JOB_TIMEOUT_S)
        results = sorted(c.result() for c in children)
        states = [_final_state(j) for j in jobs]
    except BaseException:
        _cancel_all(jobs)
        raise
    assert states == ["COMPLETED"] * 4, states
    # Each task saw the file the parent wrote as its last act: it started after the parent.
    assert results == [(i, "parent done", str(i)) for i in range(3)]
    # And Slurm's accounting agrees: no child started before the parent ended.
    acct = _run(["sacct", "-n", "-X", "-P", "-o", "JobID,Start,End", "-j", f"{parent.job_id},{array_id}"])
    assert acct.returncode == 0, acct.stderr
    rows = {r.split("|")[0]: r.split("|")[1:] for r in acct.stdout.split()}
    parent_end = rows[parent.job_id][1]
    for c in children:
        assert rows[c.job_id][0] >= parent_end, (c.job_id, rows)  # ISO timestamps compare as text


def test_sigkilled_job_reported_failed_and_resubmission_succeeds(executor, tmp_path):
    marker = tmp_path / "attempt.marker"
    job = executor.submit(_dies_first_time, str(marker))
    try:
        waited = _wait_done(job, FAIL_DETECT_S)
    except BaseException:
        _cancel_all([job])
        raise
    print(f"SIGKILLed job seen finished after {waited:.2f} s, state {job.state}")
    assert marker.read_text() == "attempt 1"  # it really ran, then died
    assert _final_state(job) == "FAILED"
    job._results_timeout_s = 1  # submitit waits 15 s for a late result file (slow NFS); not here
    with pytest.raises(UncompletedJobError, match="has not produced any output"):
        job.result()

    retry = executor.submit(_dies_first_time, str(marker))
    try:
        _wait_done(retry, JOB_TIMEOUT_S)
        assert retry.result() == "ok after resubmission"
    except BaseException:
        _cancel_all([retry])
        raise
    assert _final_state(retry) == "COMPLETED"


# ---------------------------------------------------------------- sweeps through Slurm (train_runs/sweep.py)

SWEEP_STUDY = """
[study]
name = "{name}"
seeds = [0]
executor = "slurm"
out = "{out}"
max_retries = 2
[schedule]
pt = "wsd"
decay_frac = 0.2
[[grid]]
size = ["0.1M"]
pretrain = {pretrain}
cpt = ["0+20KT"]
[resources.default]
cpus = 1
mem_gb = 1
time_min = 10
[recipe.data]
general_corpus = "sample"
[recipe.run]
threads = 1
checkpoint_every = 5
[recipe.eval]
cloze_items = 10
text_tokens = 1024
"""
SWEEP_TIMEOUT_S = 600


def _study(tmp_path: Path, name: str, pretrain: list[str]):
    from dynsim.study import load_study

    path = tmp_path / f"{name}.toml"
    path.write_text(SWEEP_STUDY.format(name=name, out=tmp_path / "runs", pretrain=str(pretrain).replace("'", '"')))
    return load_study(path)


def _submit_bounded(study, **kw) -> tuple[dict, str]:
    """sweep.submit with a hard time limit: on timeout, cancel the sweep's jobs and fail."""
    import signal

    from train_runs import sweep

    logs: list[str] = []

    def timeout(*_):
        raise TimeoutError(f"sweep not finished after {SWEEP_TIMEOUT_S} s:\n" + "\n".join(logs))

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(SWEEP_TIMEOUT_S)
    try:
        summary = sweep.submit(study, "slurm", poll_s=0.5, log=logs.append, **kw)
    except BaseException:
        _run(["scancel", "--name", f"dynsim-{study.name}-pt", "--name", f"dynsim-{study.name}-cpt"])
        raise
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return summary, "\n".join(logs)


def _sacct_times(job_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    acct = _run(["sacct", "-n", "-X", "-P", "-o", "JobID,Start,End,State", "-j", ",".join(job_ids)])
    assert acct.returncode == 0, acct.stderr
    return {r.split("|")[0]: tuple(r.split("|")[1:]) for r in acct.stdout.split()}


def test_sweep_of_a_tiny_study_on_slurm_collects_a_dataset(tmp_path):
    """The stage tree through submitit's Slurm executor: level arrays with afterok dependencies, then collect."""
    from dynsim import results
    from train_runs import sweep

    study = _study(tmp_path, "slurm-e2e", ["50KT", "100KT"])  # stable + 2 decay branches + 2 CPT
    summary, log = _submit_bounded(study)
    print(log)
    assert summary["done"] == 5 and summary["failed"] == 0, log
    assert "afterok:" in log and "array" in log, log  # children were queued behind their parents
    state = json.loads((study.out / "_sweep" / "state.json").read_text())
    assert state["executor"] == "slurm" and all(e["status"] == "done" for e in state["jobs"].values())
    path, n, missing = sweep.collect(study, tmp_path / "results.nc")
    assert (n, missing) == (5, 0)
    ds = results.load(path)
    assert {c.name for c in results.configs(ds)} == {"0.1M-80of100KT", "0.1M-50KT", "0.1M-100KT",
                                                    "0.1M-50KT-0+20KT", "0.1M-100KT-0+20KT"}
    # no job started before its parent ended (Slurm's own accounting)
    from dynsim.tree import tree_for

    job_of = {e["task"].split("/")[0]: e["job_id"] for e in summary["events"] if e["event"] == "done"}
    times = _sacct_times(list(job_of.values()))
    for node in tree_for(study):
        if node.parent is not None:  # ISO timestamps compare as text
            assert times[job_of[node.name]][0] >= times[job_of[node.parent.name]][1], (node.name, times)
    assert sweep.submit(study, "slurm", log=lambda m: None)["done"] == 5  # idempotent: nothing resubmitted


def sweep_node_killed_once(config_name, out_dir, seed, recipe, parent_name=None, wsd_branches=()):
    marker = Path(out_dir) / f"killed-{config_name}"
    if config_name.endswith("-50KT") and not marker.exists():
        marker.write_text("attempt 1")
        os.kill(os.getpid(), 9)  # SIGKILL: no result, no Python cleanup
    from train_runs.sweep import run_node

    return run_node(config_name, out_dir, seed, recipe, parent_name, wsd_branches)


def test_sweep_reports_and_retries_a_sigkilled_job_on_slurm(tmp_path):
    study = _study(tmp_path, "slurm-kill", ["50KT"])  # one PT run and its CPT child, queued behind it
    summary, log = _submit_bounded(study, fn=sweep_node_killed_once)
    print(log)
    assert summary["done"] == 2 and summary["failed"] == 0 and summary["retries"] == 1, log
    assert "FAILED  0.1M-50KT/seed0" in log and "FAILED" in log.split("FAILED  0.1M-50KT/seed0")[1].split("\n")[0]
    assert "retrying 0.1M-50KT/seed0" in log and "log tail" in log
    assert (study.out / "killed-0.1M-50KT").read_text() == "attempt 1"
    # the CPT child was submitted (afterok) behind the first attempt, and again behind the retry
    assert log.count("0.1M-50KT-0+20KT/seed0") >= 2 and "afterok:" in log
    assert (study.out / "0.1M-50KT-0+20KT" / "seed0" / "result.json").exists()


def test_own_trainer_through_a_two_level_tree_on_slurm(tmp_path):
    """Issue 20: a study's [trainer] command as each node's Slurm job (examples/own_trainer.py, PT -> SFT): the
    child is queued afterok behind its parent's job and starts from its checkpoint."""
    from test_own_trainer import PT, SFT, TRAINER, run_dir, write_study

    from dynsim.results import check_record
    from dynsim.study import load_study

    study = load_study(write_study(tmp_path, TRAINER, executor="slurm"))
    summary, log = _submit_bounded(study)
    print(log)
    assert summary["done"] == 2 and summary["failed"] == 0, log
    assert "afterok:" in log and f"{SFT}/seed0" in log, log
    assert check_record(run_dir(tmp_path, SFT) / "result.json")["provenance"]["init"] == str(run_dir(tmp_path, PT))
    assert (run_dir(tmp_path, PT) / "train.log").read_text().count("== dynsim") == 1


def test_a_two_task_slurm_job_trains_a_node_and_resumes_after_one_rank_is_killed(tmp_path):
    """Issue 20: `--ntasks-per-node 2` through the local Slurm; srun starts both ranks, rank 1 is SIGKILLed after the
    first checkpoint, the job fails, and the dispatcher's retry resumes the node on two ranks."""
    import test_sweep

    from dynsim.study import load_study

    cloudpickle.register_pickle_by_value(test_sweep)
    try:
        study = load_study(test_sweep.two_task_study(tmp_path, "slurm-two", executor="slurm"))
        summary, log = _submit_bounded(study, fn=test_sweep.rank1_killed_once)
    finally:
        cloudpickle.unregister_pickle_by_value(test_sweep)
    print(log)
    test_sweep.check_two_rank_run_resumed(tmp_path / "runs", summary, log)
