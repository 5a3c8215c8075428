"""A user's own trainer as a sweep node's job: the study's `[trainer] command` instead of `train_runs.train`.

    node_spec(study, node, seed, out)   what the node is, as the JSON the trainer reads (built by the dispatcher)
    run_command_node(spec, command)     the job: write the node JSON, run the command, accept or refuse its result

The contract (README "Your own trainer"): dynsim writes `{run_dir}/node.json` (atomically), runs the command in the
job (no shell: split like a shell would, placeholders filled per argument), its stdout and stderr appended to
`{run_dir}/train.log`. The node is done only when the command exits 0 and `{run_dir}/result.json` is a valid
`dynsim.result/1` record of this node and seed; otherwise the job fails in one line naming the node, the exit code
and the log, and the sweep's retries apply. A retry or a rerun after a kill runs the same command on the same
run dir: the trainer resumes from whatever it saved there. Light: no torch (the trainer is the user's process).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dynsim.config import EXAMPLE_STAGES, FIELDS, STAGE, parse_config
from dynsim.study import Study, trainer_argv
from dynsim.tree import Node, wsd_stable_tokens
from dynsim.tree import run_dir

NODE_SCHEMA = "dynsim.node/1"
NODE_JSON = "node.json"
LOG = "train.log"
RESULT = "result.json"
REJECTED = "result.rejected.json"  # a result.json the job refused, moved aside so no one takes the node as done


class TrainerFailed(RuntimeError):
    """The command failed or left no valid result; one line naming the node, the exit code and the log."""


def node_spec(study: Study, node: Node, seed: int, out) -> dict:
    """Everything a trainer needs to train `node` for `seed`. Deterministic: a rerun writes the same file."""
    out = Path(out).resolve()  # the trainer may run in another working directory (a Slurm node)
    c, here = node.config, run_dir(out, node.name, seed)
    examples, epochs = STAGE[node.stage].counts(c) if node.stage in EXAMPLE_STAGES else (0, 0)
    wsd = None
    if node.kind == "stable":  # the states its decay branches start from
        wsd = {"save_at_tokens": [wsd_stable_tokens(b, study.decay_frac) for b in node.branches]}
    elif node.kind == "decay":  # starts from the stable node's state saved at this budget's decay start
        wsd = {"start_tokens": wsd_stable_tokens(c.pretrain, study.decay_frac)}
    return {
        "schema": NODE_SCHEMA,
        "study": study.name,
        "config": node.name,
        "fields": {f: getattr(c, f) for f in FIELDS},
        "stage": node.stage,
        "kind": node.kind,
        "seed": seed,
        "budget": {"tokens": node.tokens, "examples": examples, "epochs": epochs},
        "schedule": {"pt": study.pt_schedule, "decay_frac": study.decay_frac},
        "wsd": wsd,
        "recipe": study.recipe,
        "resources": dataclasses.asdict(study.resources_for(node.stage)),
        "parent": node.parent.name if node.parent else None,
        "parent_dir": str(run_dir(out, node.parent.name, seed)) if node.parent else None,
        "run_dir": str(here),
        "result": str(here / RESULT),
    }


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, SIGTERM it when the job process dies (a SIGKILLed or cancelled job
    must not leave its trainer writing into the run dir that the retry trains in)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the job's own cleanup below still stops it on a normal exit


def _accept(spec: dict) -> str | None:
    """None if the run dir holds a valid result of this node and seed, else why not."""
    from dynsim.errors import UserError
    from dynsim.results import check_record

    path = Path(spec["result"])
    if not path.exists():
        return f"no {RESULT}"
    try:
        rec = check_record(path)
        if parse_config(rec.get("config")) != parse_config(spec["config"]) or rec.get("seed", 0) != spec["seed"]:
            return f"{RESULT} is for {rec.get('config')!r} seed {rec.get('seed', 0)}, not this node"
    except UserError as e:
        return str(e).removeprefix(f"{path}: ")
    return None


def run_command_node(spec: dict, command: str) -> dict:
    """The job of one node and seed under a user's trainer (runs inside the submitit job)."""
    from dynsim.files import atomic_write_bytes

    here, name = Path(spec["run_dir"]), f"{spec['config']}/seed{spec['seed']}"
    if spec["parent"] is not None and not (Path(spec["parent_dir"]) / RESULT).exists():
        raise TrainerFailed(f"{name}: parent {spec['parent']} has no {RESULT} in {spec['parent_dir']}: not starting "
                            "from an unfinished or failed parent")
    if _accept(spec) is None:  # a requeue after the trainer finished: done already
        return {"config": spec["config"], "seed": spec["seed"], "wall_s": 0.0}
    here.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(here / NODE_JSON, json.dumps(spec, indent=1).encode())
    r = spec["resources"]
    argv = trainer_argv(command, {"node_json": here / NODE_JSON, "run_dir": here, "parent_dir": spec["parent_dir"] or "",
                                  "gpus": r["gpus"], "cpus": r["cpus"], "seed": spec["seed"], "config": spec["config"],
                                  "stage": spec["stage"]})
    log_path, t0 = here / LOG, time.time()
    with open(log_path, "ab") as log:
        log.write(f"== dynsim {time.strftime('%Y-%m-%d %H:%M:%S')}: {subprocess.list2cmdline(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        except OSError as e:  # no such program: as clear as a failed run
            raise TrainerFailed(f"{name}: trainer command could not start ({e.strerror}: {argv[0]}); "
                                f"log {log_path}") from None
        try:
            rc = proc.wait()
        finally:  # a job interrupted here (cancel, Slurm's requeue signal) takes its trainer with it
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    problem = _accept(spec)
    if rc == 0 and problem is None:
        return {"config": spec["config"], "seed": spec["seed"], "wall_s": round(time.time() - t0, 3)}
    if (here / RESULT).exists():  # refused: the dispatcher and a later sweep must not take the node as done
        os.replace(here / RESULT, here / REJECTED)
    _print_tail(log_path)
    code = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"
    why = "" if rc != 0 else f" but {problem}" + (f" (moved to {REJECTED})" if problem != f"no {RESULT}" else "")
    raise TrainerFailed(f"{name}: trainer command failed ({code}{why}); log {log_path}")


def _print_tail(log_path: Path, lines: int = 8) -> None:
    """The trainer's last lines on the job's stderr, so that the sweep's log tail shows why, above our one line."""
    try:
        tail = log_path.read_text(errors="replace").rstrip().splitlines()[-lines:]
    except OSError:
        return
    print("\n".join(tail), file=sys.stderr, flush=True)
