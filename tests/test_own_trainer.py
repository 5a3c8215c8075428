"""A user's own trainer per node (issue 20, deliverable 1): the study's [trainer] table refused in one line when
malformed; examples/own_trainer.py driven through a PT -> SFT tree by `dynsim sweep submit` on local processes
(the child starts from the parent's checkpoint; a rerun after removing the child's result re-invokes only the
child, on the same run dir); failing commands reported as failed; a trainer stopped mid-run resumed by the
sweep's retries. The same tree through the local Slurm where one is up (marker `slurm`). About 20 s here: each
local job is a fresh Python running the stand-in, no torch."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from dynsim.cli import main
from dynsim.results import check_record
from dynsim.study import StudyError, load_study
from train_runs import sweep

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "own_trainer.py"
PT, SFT = "1B-20BT", "1B-20BT-100Kep1"
TRAINER = f"{shlex.quote(sys.executable)} {shlex.quote(str(EXAMPLE))} --config {{node_json}} --init {{parent_dir}} --out {{run_dir}}"


def write_study(tmp_path: Path, command: str, max_retries: int = 0, executor: str = "local") -> Path:
    """A 1B model pretrained on 20BT, then fine-tuned: sizes the built-in CPU trainer would refuse, which a user's
    trainer takes (the stand-in trains nothing)."""
    path = tmp_path / "own.toml"
    path.write_text(f"""
[study]
name = "own"
seeds = [0]
executor = "{executor}"
out = "{tmp_path / 'runs'}"
max_retries = {max_retries}
[schedule]
pt = "cosine"
[tokens_per_example]
sft = 100
rl = 100
[[grid]]
size = ["1B"]
pretrain = ["20BT"]
sft = ["100Kep1"]
[resources.default]
cpus = 1
mem_gb = 1
time_min = 10
[recipe]
lr = 3e-4
[trainer]
command = {json.dumps(command)}
""")
    return path


def run_dir(tmp_path: Path, name: str) -> Path:
    return tmp_path / "runs" / name / "seed0"


# -- the [trainer] table -----------------------------------------------------------------------------------
@pytest.mark.parametrize("table, message", [
    ('command = "python t.py {node_json}"\nshell = true', "unknown key 'shell' in [trainer]"),
    ('command = "python t.py --config {nodejson}"', "unknown placeholder {nodejson}"),
    ('command = "python t.py --config {node_json!r}"', "placeholder {node_json} takes no format"),
    ('command = "python t.py --gpus {} {run_dir}"', "unknown placeholder {}"),
    ('command = "python t.py --init {parent_dir}"', "must name {node_json} or {run_dir}"),
    ('command = "python \'t.py {run_dir}"', "not a valid command line"),
    ('command = "python t.py {run_dir"', "literal braces"),
    ('command = ""', "[trainer] needs a command"),
    ("command = 3", "[trainer] command must be a string"),
])
def test_a_bad_trainer_table_is_refused_in_one_line(tmp_path, table, message):
    path = write_study(tmp_path, "x")
    path.write_text(path.read_text().split("[trainer]")[0] + "[trainer]\n" + table + "\n")
    with pytest.raises(StudyError) as e:
        load_study(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_trainer_command_plans_sizes_the_builtin_trainer_would_not(tmp_path, capsys):
    path = write_study(tmp_path, TRAINER)
    study = sweep.load(path)  # [recipe] is the trainer's own: not checked against the miniature recipe
    assert study.trainer_command == TRAINER and study.recipe == {"lr": 3e-4}
    assert main(["sweep", "plan", str(path)]) == 0
    assert "2 tree nodes" in capsys.readouterr().out


# -- through the local executor ----------------------------------------------------------------------------
def test_own_trainer_through_a_two_level_tree(tmp_path, capsys):
    path = write_study(tmp_path, TRAINER)
    assert main(["sweep", "submit", str(path)]) == 0, capsys.readouterr()
    pt, sft = run_dir(tmp_path, PT), run_dir(tmp_path, SFT)
    parent, child = check_record(pt / "result.json"), check_record(sft / "result.json")
    assert (parent["config"], child["config"]) == (PT, SFT)
    # the node JSON: the child is told its parent's run dir, and the trainer started from the checkpoint there
    spec = json.loads((sft / "node.json").read_text())
    assert spec["parent"] == PT and spec["parent_dir"] == str(pt) and spec["stage"] == "sft"
    assert spec["budget"] == {"tokens": 100_000 * 100, "examples": 100_000, "epochs": 1}
    assert spec["recipe"] == {"lr": 3e-4} and spec["resources"]["cpus"] == 1
    assert json.loads((pt / "node.json").read_text())["parent_dir"] is None
    assert child["provenance"]["init"] == str(pt) and parent["provenance"]["init"] == ""
    assert child["provenance"]["state"]["tokens"] == pytest.approx(20e9 + 1e7)  # continued from the parent's state
    assert {m["task"] for m in child["metrics"]} == {"general_text", "arith"}

    # a rerun after the child's result is gone: only the child's command runs again, on its own run dir
    (sft / "result.json").unlink()
    logs = []
    summary = sweep.submit(load_study(path), poll_s=0.2, log=logs.append)
    assert summary["done"] == 2 and sum("submitted" in line for line in logs) == 1, logs
    assert f"submitted 1 job(s)" in "\n".join(logs) and f"{SFT}/seed0" in "\n".join(logs)
    assert (pt / "train.log").read_text().count("== dynsim") == 1
    log = (sft / "train.log").read_text()
    assert log.count("== dynsim") == 2 and "resuming at step 5" in log  # the trainer found its checkpoint
    assert main(["sweep", "collect", str(path), "-o", str(tmp_path / "own.nc")]) == 0


@pytest.mark.parametrize("script, why", [
    ("import sys; sys.exit(1)", "(exit 1)"),
    ("pass", "(exit 0 but no result.json)"),
    ("import sys, pathlib; pathlib.Path(sys.argv[1], 'result.json').write_text('{{}}')",  # {{ }}: literal braces
     "(exit 0 but not a dynsim.result/1 record (moved to result.rejected.json))"),
])
def test_a_failing_command_fails_its_node_and_blocks_the_child(tmp_path, script, why):
    path = write_study(tmp_path, f"{shlex.quote(sys.executable)} -c {shlex.quote(script)} {{run_dir}}")
    logs = []
    summary = sweep.submit(load_study(path), poll_s=0.2, log=logs.append)
    text = "\n".join(logs)
    assert (summary["done"], summary["failed"], summary["blocked"]) == (0, 1, 1), text
    log = run_dir(tmp_path, PT) / "train.log"
    assert f"{PT}/seed0: trainer command failed {why}; log {log}" in text  # the one line, in the job's log tail
    assert not (run_dir(tmp_path, PT) / "result.json").exists()  # a refused result never counts as done
    assert not run_dir(tmp_path, SFT).exists()  # the child never started
    assert sweep.status(load_study(path))["counts"] == {"failed": 1, "blocked": 1}


def test_a_trainer_stopped_midway_resumes_through_the_retries(tmp_path):
    """--max-steps 2 stops the example after two of its five steps, as a kill would: each retry runs the same
    command on the same run dir and the trainer goes on from its checkpoint (steps 0-1, 2-3, 4)."""
    path = write_study(tmp_path, TRAINER + " --max-steps 2", max_retries=2)
    logs = []
    summary = sweep.submit(load_study(path), poll_s=0.2, log=logs.append)
    assert (summary["done"], summary["failed"], summary["retries"]) == (2, 0, 4), "\n".join(logs)
    for name in (PT, SFT):
        log = (run_dir(tmp_path, name) / "train.log").read_text()
        assert "resuming at step 2" in log and "resuming at step 4" in log and log.count("== dynsim") == 3
    assert check_record(run_dir(tmp_path, SFT) / "result.json")["provenance"]["state"]["step"] == 5
