"""Your own trainer under `dynsim sweep` (README "Your own trainer"): a deterministic stand-in for real training, its
"model" the tokens and examples it has seen, its metrics power laws of them. In a study: [trainer] command =
"python examples/own_trainer.py --config {node_json} --init {parent_dir} --out {run_dir}"."""
import argparse, json, os, sys
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("--config", required=True)  # {node_json}: what to train
p.add_argument("--init", default="")  # {parent_dir}: the parent's run dir ("" = from scratch)
p.add_argument("--out", required=True)  # {run_dir}: checkpoints and result.json go here
p.add_argument("--max-steps", type=int, default=0)  # stop after this many steps, as a kill would (resume demo)
a = p.parse_args()
node, ckpt = json.loads(Path(a.config).read_text()), Path(a.out) / "ckpt.json"

def save(path, obj):  # atomic: a kill never leaves half a file behind
    path.with_suffix(".tmp").write_text(json.dumps(obj, indent=1)); os.replace(path.with_suffix(".tmp"), path)

if ckpt.exists():  # a rerun after a kill: resume from the last checkpoint
    state = json.loads(ckpt.read_text()); print(f"resuming at step {state['step']}")
else:
    state = {**(json.loads((Path(a.init) / "ckpt.json").read_text()) if a.init else {"tokens": 0, "examples": 0}), "step": 0}
    if node["kind"] == "decay":  # a WSD branch starts from the stable run's state saved at its decay start
        state["tokens"] = node["wsd"]["start_tokens"]
STEPS, start = 5, state["step"]
for step in range(start, STEPS):
    if a.max_steps and step - start >= a.max_steps:
        sys.exit(f"stopped at step {step} of {STEPS} (--max-steps)")
    state = {"step": step + 1, "tokens": state["tokens"] + node["budget"]["tokens"] / STEPS,
             "examples": state["examples"] + node["budget"]["examples"] * node["budget"]["epochs"] / STEPS}
    save(ckpt, state)  # a real trainer also saves at node["wsd"]["save_at_tokens"] when it is a stable node
metrics = [{"task": "general_text", "metric": "loss", "value": 2 + 20 * (1 + state["tokens"] / 1e6) ** -0.3}]
if node["stage"] in ("sft", "rl"):
    metrics.append({"task": "arith", "metric": "greedy_pass@1", "value": 90 * state["examples"] / (state["examples"] + 5e3)})
save(Path(node["result"]), {"schema": "dynsim.result/1", "config": node["config"], "seed": node["seed"],
                            "metrics": metrics, "tasks": {"general_text": {"kind": "text"}, "arith": {"kind": "ID", "chance": 0.0}},
                            "provenance": {"trainer": "examples/own_trainer.py", "init": a.init, "state": state}})
