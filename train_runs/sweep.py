"""Sweeps: a study's stage tree through submitit, on local processes (default) or a Slurm cluster.

    plan(study)                 the tree, jobs, tokens / FLOPs per stage, what is done (no torch, no submitit)
    submit(study, executor)     dispatch every missing (node, seed); wait, retry failures, report
    status(study)               done / running / pending / failed / blocked per job
    collect(study, path)        the results Dataset (dynsim.results) of every finished job

One job = one tree node for one seed: `run_node` trains that node's last stage from its parent's checkpoint
(`train_runs.train.train`, which resumes a killed run from its resume.pt and writes result.json atomically).
It is submitted as `sweep_job.NodeJob`, a submitit Checkpointable: on a Slurm timeout or preemption submitit
requeues it and it resumes from its checkpoint. A study with a `[trainer] command` runs that command instead
(`train_runs.user_trainer`, submitted as `sweep_job.CommandJob`), on the same run dirs and with the same dispatch.

Dispatch. The dispatcher (the `submit` process) keeps a task table:
- a job is submitted once its parent is done; on Slurm also while its parent is queued or running, with
  `--dependency=afterok:<parent job>` and `--kill-on-invalid-dep=yes`: siblings of one parent (one tree level
  under one parent) go out as one job array, the first level as one array;
- a finished job without a result.json failed: its log tail is printed, and it is resubmitted up to
  `max_retries` times (it resumes from its checkpoint), while the others go on; its queued descendants are
  cancelled and requeued behind the retry. After the last retry its descendants are marked blocked: a child
  never starts from a failed parent (and `run_node` refuses to train without its parent's checkpoint);
- finished jobs are never rerun: a second `submit` skips every (node, seed) with a result.json, and on Slurm
  adopts jobs still queued or running from an earlier `submit --detach`.
The table is saved (atomically) to `<out>/_sweep/state.json`, which `status` reads; submitit's files (pickles,
logs) live in `<out>/_sweep/submitit/`.
One dispatcher per run store: `submit` holds an exclusive lock on `<out>/_sweep/dispatcher.lock` from before it
reads the table until it returns, and a second `submit` of the same store is refused, naming the holder's pid.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

from dynsim.errors import UserError
from dynsim.files import atomic_write_text
from dynsim.study import Study, load_study
from dynsim.tree import Node, descendants, format_plan, run_dir, tree_for

LIVE = ("pending", "running")
SLURM_LIVE = {"READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED", "CONFIGURING",
              "RESIZING", "SUSPENDED"}


class SweepError(UserError):
    """A sweep that cannot go on (bad study, missing results); one-line message."""


# -- the job ----------------------------------------------------------------------------------------------
def run_node(config_name: str, out_dir: str, seed: int, recipe: dict, parent_name: str | None = None,
             wsd_branches: tuple = ()) -> dict:
    """Train one tree node (its last stage) for one seed; runs inside the submitit job."""
    from train_runs.train import train

    if parent_name is not None:
        parent_dir = run_dir(out_dir, parent_name, seed)
        if not (parent_dir / "result.json").exists():
            raise RuntimeError(f"parent {parent_name} seed {seed} has no result in {parent_dir}: not starting "
                               f"{config_name} from an unfinished or failed parent")
    t0 = time.time()
    record = train(config_name, out_dir, seed=seed, recipe=recipe, progress=False, wsd_branches=wsd_branches)
    return {"config": record["config"], "seed": seed, "wall_s": round(time.time() - t0, 3)}


# -- paths and the task table -----------------------------------------------------------------------------
def out_dir(study: Study, out=None) -> Path:
    return Path(out) if out is not None else study.out


def result_path(out: Path, node: Node, seed: int) -> Path:
    return run_dir(out, node.name, seed) / "result.json"


def _state_path(out: Path) -> Path:
    return Path(out) / "_sweep" / "state.json"


def _lock_path(out: Path) -> Path:
    return Path(out) / "_sweep" / "dispatcher.lock"


@contextlib.contextmanager
def dispatch_lock(out: Path):
    """Hold an exclusive lock on the run store `out` while dispatching: two `submit`s of one study started together
    would both read the same state and both dispatch every job. Non-blocking: the second is refused at once, naming
    the process that holds the lock (its pid is written in the lock file). The kernel drops the lock when the holder
    exits, however it exits, so a killed dispatcher never leaves the store locked."""
    path = _lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_pid(f)
            raise SweepError(f"another dispatcher (pid {holder}) is running this sweep in {out} (it holds {path}); "
                             "wait for it or stop it first") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)  # still locked: no later reader takes a finished dispatcher's pid for a live one


def _holder_pid(lock_file, wait_s: float = 2.0) -> str:
    """The pid the lock's holder wrote. A holder writes it just after taking the lock, so a reader refused in
    between finds the file empty for a moment: wait briefly for it rather than report "unknown"."""
    deadline = time.monotonic() + wait_s
    while True:
        lock_file.seek(0)
        holder = lock_file.read().strip()
        if holder or time.monotonic() > deadline:
            return holder or "unknown"
        time.sleep(0.02)


def _key(node: Node, seed: int) -> str:
    return f"{node.name}/seed{seed}"


def _read_state(out: Path) -> dict:
    try:
        return json.loads(_state_path(out).read_text())
    except (OSError, ValueError):
        return {}


def _write_state(out: Path, state: dict) -> None:
    atomic_write_text(_state_path(out), json.dumps(state, indent=1))


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def done_counts(study: Study, nodes: list[Node], out: Path) -> dict:
    return {n.config: sum(result_path(out, n, s).exists() for s in study.seeds) for n in nodes}


# -- plan ---------------------------------------------------------------------------------------------------
def plan(study: Study, out=None) -> str:
    if study.executor == "local":
        _check_local_resources(study)
    nodes = tree_for(study)
    return format_plan(study, nodes, done_counts(study, nodes, out_dir(study, out)))


# -- submit -------------------------------------------------------------------------------------------------
def make_executor(kind: str, folder: Path):
    import submitit

    if kind not in ("local", "slurm"):
        raise SweepError(f"unknown executor '{kind}': use local or slurm")
    return submitit.AutoExecutor(folder=folder, cluster=kind)  # never let submitit guess


def _resource_params(study: Study, node: Node, kind: str) -> dict:
    r = study.resources_for(node.stage)
    params = dict(timeout_min=r.time_min, name=f"dynsim-{study.name}-{node.stage}", tasks_per_node=r.tasks)
    if r.gpus:
        params["gpus_per_node"] = r.gpus
    if kind == "slurm":  # srun starts the tasks; each finds its rank in submitit's JobEnvironment
        params.update(nodes=r.nodes, cpus_per_task=r.cpus_per_task, mem_gb=r.mem_gb)
        if r.partition:
            params["slurm_partition"] = r.partition
        if r.account:
            params["slurm_account"] = r.account
    return params


def _slurm_dependency(dep: str) -> dict:
    """A child array waits for its parent's job; if that fails, Slurm drops the child (the dispatcher requeues it)."""
    return {"kill-on-invalid-dep": "yes"} | ({"dependency": f"afterok:{dep}"} if dep else {})


def sbatch_scripts(study: Study, out=None) -> list[tuple[str, str]]:
    """(file name, text) of every sbatch script `submit --executor slurm --detach` would queue for the missing jobs,
    parents first: one array per parent and stage, as the dispatcher groups them, each with its resources, its
    `srun` line (one rank per task) and its afterok dependency (named by the parent's script: the job id exists
    only once Slurm has it). Rendered by submitit's own sbatch writer; nothing is submitted, Slurm need not exist."""
    from submitit.slurm import slurm

    out = out_dir(study, out)
    folder = (out / "_sweep" / "submitit").resolve()
    names = slurm.SlurmExecutor._equivalence_dict()
    nodes = tree_for(study)
    groups: dict = defaultdict(list)
    for node in nodes:
        for seed in study.seeds:
            if not result_path(out, node, seed).exists():
                groups[(node.level, node.parent.name if node.parent else "", node.stage)].append((node, seed))
    scripts, script_of = [], {}
    for i, ((level, parent, stage), tasks) in enumerate(sorted(groups.items(), key=lambda kv: kv[0][:1])):
        name = f"{i:03d}-{stage}-{tasks[0][0].name}.sbatch"
        for node, _ in tasks:
            script_of[node.name] = name
        params = {names.get(k, k.removeprefix("slurm_")): v
                  for k, v in _resource_params(study, tasks[0][0], "slurm").items()}
        params["mem"] = slurm._convert_mem(params["mem"])
        dep = f"<job id of {script_of[parent]}>" if parent in script_of else ""
        text = slurm._make_sbatch_string(
            command=f"{sys.executable} -u -m submitit.core._submit {folder}", folder=folder,
            map_count=len(tasks) if len(tasks) > 1 else None, additional_parameters=_slurm_dependency(dep),
            **params)
        jobs = "\n".join(f"#   {node.name} seed {seed}" for node, seed in tasks)
        scripts.append((name, f"{text.rstrip()}\n\n# dynsim sweep {study.name}: "
                              f"{'array of ' if len(tasks) > 1 else ''}{len(tasks)} job(s)\n{jobs}\n"))
    return scripts


def write_sbatch_scripts(study: Study, out=None) -> Path:
    """`sweep submit --dry-run`: the scripts of sbatch_scripts under <out>/_sweep/dry_run/ (old ones removed)."""
    folder = out_dir(study, out) / "_sweep" / "dry_run"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, text in sbatch_scripts(study, out):
        atomic_write_text(folder / name, text)
    return folder


def _tail(job, lines: int = 12) -> str:
    text = []
    for getter in (job.stdout, job.stderr):
        try:
            t = getter()
        except Exception:  # noqa: BLE001 - a log that is not there yet
            t = None
        if t:
            text += t.rstrip().splitlines()
    # stderr last: the traceback, srun's "Killed"
    text = [t for t in text if t.strip()]
    from train_runs.user_trainer import TrainerFailed

    failed = f"{TrainerFailed.__module__}.{TrainerFailed.__qualname__}: "
    if text and text[-1].startswith(failed) and "Traceback (most recent call last):" in text:
        # a user's trainer failed: its own last lines (printed by the job) and the job's one line say why; the
        # traceback through submitit would push the trainer's lines out of the tail
        cut = len(text) - 1 - text[::-1].index("Traceback (most recent call last):")
        text = [t for t in text[:cut] if not t.startswith("submitit ")] + [text[-1].removeprefix(failed)]
    return "\n".join("    | " + t for t in text[-lines:]) or "    | (no log output)"


class _Dispatcher:
    def __init__(self, study: Study, kind: str, out: Path, fn, max_retries: int, poll_s: float, log):
        self.study, self.kind, self.out, self.fn, self.poll_s, self.log = study, kind, Path(out), fn, poll_s, log
        self.max_retries = study.max_retries if max_retries is None else max_retries
        self.nodes = tree_for(study)
        self.by_config = {n.config: n for n in self.nodes}
        self.recipe = study.train_recipe()
        self.folder = self.out / "_sweep" / "submitit"
        self.executor = make_executor(kind, self.folder)
        self.live: dict[tuple, object] = {}  # (config, seed) -> submitit job
        self.attempts: dict[tuple, int] = defaultdict(int)
        self.failed: set[tuple] = set()
        self.blocked: set[tuple] = set()
        self.tasks = [(n.config, s) for n in self.nodes for s in study.seeds]
        self.t0 = time.monotonic()
        self.events: list[dict] = []

    # state
    def is_done(self, task) -> bool:
        return result_path(self.out, self.by_config[task[0]], task[1]).exists()

    def parent_task(self, task):
        parent = self.by_config[task[0]].parent
        return None if parent is None else (parent, task[1])

    def save(self, finished: bool = False) -> None:
        jobs = {}
        for task in self.tasks:
            node, seed = self.by_config[task[0]], task[1]
            entry = {"attempts": self.attempts[task]}
            if self.is_done(task):
                entry["status"] = "done"
            elif task in self.failed:
                entry["status"] = "failed"
            elif task in self.blocked:
                entry["status"] = "blocked"
            elif task in self.live:
                job = self.live[task]
                entry["job_id"] = job.job_id
                entry["status"] = self._live_status(job)
            else:
                entry["status"] = "waiting"
            jobs[_key(node, seed)] = entry
        _write_state(self.out, {"study": self.study.name, "executor": self.kind, "folder": str(self.folder),
                                "dispatcher_pid": None if finished else os.getpid(), "updated": time.time(),
                                "jobs": jobs})

    def _live_status(self, job) -> str:
        if self.kind == "slurm":
            state = job.watcher.get_state(job.job_id, mode="cache").upper()
            return "running" if state.startswith(("RUNNING", "COMPLETING")) else "pending"
        return "running"

    # adopting jobs of an earlier detached submit
    def adopt(self) -> None:
        prev = _read_state(self.out)  # under the dispatch lock: no other dispatcher is running
        if self.kind != "slurm" or prev.get("executor") != "slurm":
            return
        import submitit

        keys = {_key(self.by_config[c], s): (c, s) for c, s in self.tasks}
        adopted = []
        for key, entry in prev.get("jobs", {}).items():
            task = keys.get(key)
            if task and entry.get("job_id") and entry.get("status") in LIVE and not self.is_done(task):
                adopted.append((task, submitit.SlurmJob(folder=self.folder, job_id=entry["job_id"])))
        if adopted:
            adopted[0][1].watcher.update()
            for task, job in adopted:
                if job.watcher.get_state(job.job_id, mode="cache").upper() in SLURM_LIVE:
                    self.live[task] = job
                self.attempts[task] = prev["jobs"][_key(self.by_config[task[0]], task[1])].get("attempts", 0)
            self.log(f"adopted {len(self.live)} queued/running job(s) of an earlier submit")

    # submission
    def ready(self, task) -> str | None:
        """None if the task cannot be submitted now, else the parent's job id to depend on ('' for none)."""
        if task in self.live or task in self.failed or task in self.blocked or self.is_done(task):
            return None
        parent = self.parent_task(task)
        # a parent whose job is still live is not done yet even with a result.json: a user's trainer writes its
        # own, and its job may still refuse it (exit code, a bad record)
        if parent is None or (self.is_done(parent) and parent not in self.live):
            return ""
        if self.kind == "slurm" and parent in self.live:
            return self.live[parent].job_id
        return None

    def submit_ready(self) -> None:
        for level in sorted({n.level for n in self.nodes}):  # parents first, so children can depend on them
            groups = defaultdict(list)
            for task in self.tasks:
                node = self.by_config[task[0]]
                if node.level != level:
                    continue
                dep = self.ready(task)
                if dep is None:
                    continue
                if self.kind == "local" and len(self.live) + sum(map(len, groups.values())) >= self.study.max_parallel:
                    break
                groups[(dep, node.stage)].append(task)
            for (dep, stage), tasks in groups.items():
                self.submit_group(tasks, dep)

    def submit_group(self, tasks: list, dep: str) -> None:
        params = _resource_params(self.study, self.by_config[tasks[0][0]], self.kind)
        if self.kind == "slurm":
            params["slurm_additional_parameters"] = _slurm_dependency(dep)
        self.executor.update_parameters(**params)
        with self.executor.batch():
            jobs = [self.executor.submit(self.fn, *self.args(task)) for task in tasks]
        for task, job in zip(tasks, jobs):
            self.live[task] = job
            self.events.append({"task": f"{task[0].name}/seed{task[1]}", "event": "submitted", "t": self.elapsed(),
                                "job_id": job.job_id})
        ids = jobs[0].job_id.split("_")[0] if self.kind == "slurm" and len(jobs) > 1 else ",".join(j.job_id for j in jobs)
        names = ", ".join(f"{c.name}/seed{s}" for c, s in tasks)
        self.log(f"[{self.elapsed():6.1f}s] submitted {len(jobs)} job(s) ({'array ' if len(jobs) > 1 and self.kind == 'slurm' else ''}"
                 f"{ids}{', afterok:' + dep if dep else ''}): {names}")

    def args(self, task) -> tuple:
        node, seed = self.by_config[task[0]], task[1]
        if self.study.trainer_command:
            from train_runs.user_trainer import node_spec

            return (node_spec(self.study, node, seed, self.out), self.study.trainer_command)
        return (node.name, str(self.out), seed, self.recipe, node.parent.name if node.parent else None, node.branches)

    # polling
    def finished_jobs(self) -> list:
        if not self.live:
            return []
        if self.kind == "slurm":
            next(iter(self.live.values())).watcher.update()  # one sacct call for every job
            return [t for t, j in self.live.items() if j.watcher.is_done(j.job_id, mode="cache")]
        return [t for t, j in self.live.items() if j.done()]

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def handle_finished(self, task) -> None:
        job = self.live.pop(task)
        name = f"{task[0].name}/seed{task[1]}"
        if self.is_done(task):
            self.log(f"[{self.elapsed():6.1f}s] done    {name} (job {job.job_id})")
            self.events.append({"task": name, "event": "done", "t": self.elapsed(), "job_id": job.job_id})
            return
        parent = self.parent_task(task)
        if parent is not None and not self.is_done(parent):
            return  # cancelled behind a failed parent: requeued once the parent's retry is submitted
        self.attempts[task] += 1
        state = job.state if self.kind == "local" else job.watcher.get_state(job.job_id, mode="cache")
        n, limit = self.attempts[task], self.max_retries + 1
        self.events.append({"task": name, "event": "failed", "t": self.elapsed(), "attempt": n, "state": state,
                            "job_id": job.job_id})
        self.log(f"[{self.elapsed():6.1f}s] FAILED  {name} (job {job.job_id}, {state}), attempt {n}/{limit}; log tail:\n"
                 f"{_tail(job)}")
        for d in descendants(self.nodes, task[0]):  # queued behind it: cancel, requeue behind the retry
            dt = (d.config, task[1])
            if dt in self.live:
                self.live.pop(dt).cancel(check=False)
        if n >= limit:
            self.failed.add(task)
            blocked = [(d.config, task[1]) for d in descendants(self.nodes, task[0])]
            self.blocked.update(blocked)
            self.log(f"            giving up on {name}; {len(blocked)} descendant job(s) blocked")
        else:
            self.log(f"            retrying {name} (it resumes from its last checkpoint)")

    def run(self, wait: bool = True) -> dict:
        self.adopt()
        todo = [t for t in self.tasks if not self.is_done(t)]
        self.log(f"sweep {self.study.name}: {len(self.tasks)} jobs, {len(self.tasks) - len(todo)} already done, "
                 f"executor {self.kind}, out {self.out}")
        try:
            while True:
                self.submit_ready()
                self.save()
                if not wait:
                    break
                if not self.live:
                    break
                time.sleep(self.poll_s)
                for task in self.finished_jobs():
                    if task in self.live:
                        self.handle_finished(task)
        except KeyboardInterrupt:
            if self.kind == "local":
                for job in self.live.values():
                    job.cancel(check=False)
            self.save(finished=True)
            raise
        summary = self.summary()
        self.save(finished=wait)
        if wait:
            self.log(f"sweep {self.study.name}: {summary['done']} done, {summary['failed']} failed, "
                     f"{summary['blocked']} blocked, {summary['retries']} retried job(s) in {self.elapsed():.1f} s")
        return summary

    def summary(self) -> dict:
        return {"done": sum(self.is_done(t) for t in self.tasks), "failed": len(self.failed),
                "blocked": len(self.blocked), "live": len(self.live), "jobs": len(self.tasks),
                "retries": sum(1 for e in self.events if e["event"] == "failed"), "events": self.events,
                "wall_s": self.elapsed()}


def _check_local_resources(study: Study) -> None:
    """Local jobs run on this machine (the local executor cannot wait for more): a study asking for more GPUs,
    CPUs or memory a job than it has would silently train on the CPU, oversubscribe it, or be killed for memory
    mid-run. Checked at `sweep plan` and `submit` of a local study."""
    res = study.resources.values()
    if max(r.nodes for r in res) > 1:
        raise SweepError("[resources] asks for jobs of several nodes, and local jobs run on this machine: set nodes "
                         "= 1, or use --executor slurm")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    want = max(r.cpus for r in res)
    if want > cpus:
        raise SweepError(f"[resources] asks for {want} CPU(s) a job, and this machine has {cpus}: lower cpus, or "
                         "use --executor slurm")
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    want = max(r.mem_gb for r in res)
    if want > mem_gb:
        raise SweepError(f"[resources] asks for {want:g} GB of memory a job, and this machine has {mem_gb:.0f} GB: "
                         "lower mem_gb, or use --executor slurm")
    want = max(r.gpus for r in res)
    if not want:
        return
    import torch

    have = torch.cuda.device_count()
    if want > have:
        raise SweepError(f"[resources] asks for {want} GPU(s) a job, and this machine has {have}: lower gpus, or "
                         "use --executor slurm")


def submit(study: Study, executor: str | None = None, out=None, *, fn=None, max_retries: int | None = None,
           wait: bool = True, poll_s: float = 0.5, log=print) -> dict:
    """Dispatch every missing job of `study`; with wait, until all are done or failed. Returns a summary."""
    kind = executor or study.executor
    if kind == "local" and not wait:
        raise SweepError("--detach needs the slurm executor: local jobs are children of the dispatcher")
    if kind == "slurm" and shutil.which("sbatch") is None:
        raise SweepError("the slurm executor needs Slurm's sbatch on PATH, and there is none here; "
                         "use --executor local")
    if kind == "local":
        _check_local_resources(study)
    if fn is None:
        from train_runs.sweep_job import CommandJob, NodeJob

        fn = CommandJob() if study.trainer_command else NodeJob()
    with dispatch_lock(out_dir(study, out)):  # before the dispatcher reads any state
        d = _Dispatcher(study, kind, out_dir(study, out), fn, max_retries, poll_s, log)
        return d.run(wait=wait)


# -- status -------------------------------------------------------------------------------------------------
def status(study: Study, out=None) -> dict:
    """{'counts': {status: n}, 'jobs': [(name, seed, status, attempts)], 'dispatcher': alive?}."""
    out = out_dir(study, out)
    nodes = tree_for(study)
    state = _read_state(out)
    entries = state.get("jobs", {})
    alive = _pid_alive(state.get("dispatcher_pid"))
    slurm_states = {}
    if state.get("executor") == "slurm":
        ids = [e["job_id"] for e in entries.values() if e.get("status") in LIVE and e.get("job_id")]
        if ids:
            import subprocess
            try:
                r = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(ids)],
                                   capture_output=True, text=True, timeout=30)
                slurm_states = dict(line.split("|")[:2] for line in r.stdout.split() if "|" in line)
            except (OSError, subprocess.SubprocessError):
                pass
    rows, counts = [], defaultdict(int)
    for n in nodes:
        for s in study.seeds:
            e = entries.get(_key(n, s), {})
            st = "done" if result_path(out, n, s).exists() else e.get("status", "not submitted")
            if st in LIVE and e.get("job_id") in slurm_states:
                sl = slurm_states[e["job_id"]].split()[0].upper()
                st = ("running" if sl in ("RUNNING", "COMPLETING") else "pending" if sl in SLURM_LIVE
                      else "cancelled" if sl.startswith("CANCELLED") else "failed")
            elif st in LIVE + ("waiting",) and state.get("executor") == "local" and not alive:
                st = "interrupted"
            counts[st] += 1
            rows.append((n.name, s, st, e.get("attempts", 0)))
    return {"counts": dict(counts), "jobs": rows, "dispatcher_alive": alive, "executor": state.get("executor")}


def format_status(study: Study, st: dict) -> str:
    order = ("done", "running", "pending", "waiting", "failed", "cancelled", "blocked", "interrupted", "not submitted")
    counts = "  ".join(f"{k} {st['counts'][k]}" for k in order if st["counts"].get(k))
    lines = [f"study {study.name}: {len(st['jobs'])} jobs: {counts}"
             + (f"  (executor {st['executor']}, dispatcher {'running' if st['dispatcher_alive'] else 'not running'})"
                if st["executor"] else "")]
    for name, seed, s, attempts in st["jobs"]:
        lines.append(f"  {s:<14}{name}/seed{seed}" + (f"  ({attempts} failed attempt(s))" if attempts else ""))
    return "\n".join(lines)


# -- collect ------------------------------------------------------------------------------------------------
def collect(study: Study, path, out=None):
    """Every finished job's record → one results Dataset saved (atomically) at `path`. Returns (path, n, missing)."""
    from dynsim import results

    out = out_dir(study, out)
    nodes = tree_for(study)
    files = [result_path(out, n, s) for n in nodes for s in study.seeds]
    have = [f for f in files if f.exists()]
    if not have:
        raise SweepError(f"no results yet under {out} for study {study.name}: run `dynsim sweep submit {study.path}`")
    ds = results.from_records(have)
    ds.attrs["study"] = study.name
    return results.save(ds, path), len(have), len(files) - len(have)


def load(path) -> Study:
    """A study spec, its [recipe] resolved for every model size of its grid: a bad recipe value is refused at
    `plan` and `submit`, not found by each job at run time. Under a user's [trainer] command the [recipe] is that
    trainer's to read, passed on in each node's JSON unchecked."""
    from train_runs.recipe import RecipeError, load_recipe

    study = load_study(path)
    if study.trainer_command:
        return study
    recipe = study.train_recipe()
    for size in sorted({c.size for c in study.runs}):
        try:
            load_recipe(recipe, size)
        except RecipeError as e:
            raise SweepError(f"{path}: [recipe]: {str(e).removeprefix('recipe overrides: ')}") from None
    return study
