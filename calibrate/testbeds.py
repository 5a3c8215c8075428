"""How each bundled testbed's CSV (`dynsim/data/NAME/runs.csv.gz`, the documented long format of
`dynsim.runs_csv`) is made from its source files in `../shared/NAME/`. Run once, by hand, when a source changes:

    python -m calibrate.testbeds olmo_ladder [--shared ../shared]

The bundled CSV is then read by the same code as a user's own (`dynsim results import`).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import re
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "dynsim" / "data"

# -- OLMo model ladder (Bhagia et al. 2024) ---------------------------------------------------------------
# Non-embedding parameters per ladder size (the authors' MODEL_PARAMS, in the testbed's README)
LADDER_PARAMS = {"190M": 190_354_176, "370M": 371_262_464, "760M": 758_220_288, "1B": 1_279_395_840,
                 "3B": 3_169_537_280}
# Chance accuracy in percent of each ranked-classification benchmark: one over its number of answer options
LADDER_CHANCE = {"mmlu": 25, "hellaswag": 25, "arc_easy": 25, "arc_challenge": 25, "boolq": 50, "csqa": 20,
                 "openbookqa": 25, "piqa": 50, "socialiqa": 100 / 3, "winogrande": 50}
LADDER_LOSS = "eval/c4_en-validation/CrossEntropyLoss"
_LADDER_TASK = re.compile(r"eval/downstream(?:_bpb)?/(\w+?)_rc_5shot_(bpb|len_norm|acc)")
_LADDER_RUN = re.compile(r"(\w+)-([\d.]+)xC(-rerun)?\.csv")


def olmo_ladder(shared: Path) -> list[dict]:
    """One row per checkpoint × (C4 loss, task bpb, task accuracy) of the 30 ladder runs."""
    rows = []
    for path in sorted((shared / "olmo_ladder" / "ladder-runs").glob("*.csv")):
        size, mult, rerun = _LADDER_RUN.fullmatch(path.name).groups()
        with open(path, newline="") as f:
            checkpoints = list(csv.DictReader(f))
        tokens = [int(float(r.get("throughput/total_tokens") or 0) or int(r["_step"]) * int(r["batch_size_in_tokens"]))
                  for r in checkpoints]
        total = max(tokens)  # the run's scheduled length: its last checkpoint, the only annealed one
        run = dict(size=LADDER_PARAMS[size], pretrain=total, seed=1 if rerun else 0)
        for r, seen in zip(checkpoints, tokens):
            at = run | dict(checkpoint=seen)
            if r.get(LADDER_LOSS):
                rows.append(at | dict(task="c4_en_val", metric="loss", value=float(r[LADDER_LOSS]), task_kind="text"))
            for col, text in r.items():
                m = _LADDER_TASK.fullmatch(col)
                if not m or not text:
                    continue
                task, metric = m[1], "bpb" if m[2] == "bpb" else "acc"
                chance = next(c for k, c in LADDER_CHANCE.items() if task.startswith(k))
                value = float(text) if metric == "bpb" else 100 * float(text)
                rows.append(at | dict(task=task, metric=metric, value=value, task_kind="upstream",
                                      task_chance=f"{chance:.4g}"))
    return rows


# -- Pythia (Biderman et al. 2023) ----------------------------------------------------------------------
# Chance accuracy in percent: one over the answer options (LAMBADA and SciQ's open/4-way formats as scored by the
# harness: LAMBADA predicts a word, chance 0)
PYTHIA_CHANCE = {"arc_challenge": 25, "arc_easy": 25, "lambada_openai": 0, "logiqa": 25, "mmlu_macro57": 25,
                 "piqa": 50, "sciq": 25, "winogrande": 50, "wsc": 50}
PYTHIA_CORPUS = {"0": "pile", "1": "pile_deduped"}
PYTHIA_STEPS, PYTHIA_BATCH = 143_000, 2_097_152  # the one schedule every model ran: 300B tokens, cosine


def pythia(shared: Path) -> list[dict]:
    """One row per checkpoint × task (× shots) of the standard and deduplicated runs; the batch-size variants
    (five-shot only, another schedule) and step 0 (the initialisation) are left out."""
    rows = []
    with open(shared / "pythia" / "pythia_v1_evals.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["variant"] not in ("standard", "deduped", "bf16") or int(r["step"]) == 0:
                continue
            at = dict(size=int(r["params_nonembedding"]), pretrain=PYTHIA_STEPS * PYTHIA_BATCH,
                      checkpoint=int(r["tokens"]), corpus=PYTHIA_CORPUS[r["deduped"]])
            for col, text in r.items():
                if ":" not in col or not text:
                    continue
                task, metric = col.split(":")
                name = f"{task}_{r['num_fewshot']}shot"
                if metric == "acc":
                    rows.append(at | dict(task=name, metric="acc", value=100 * float(text), task_kind="upstream",
                                          task_chance=f"{PYTHIA_CHANCE[task]:g}"))
                elif metric == "ppl":
                    rows.append(at | dict(task=name, metric="ppl", value=float(text), task_kind="upstream",
                                          task_chance=f"{PYTHIA_CHANCE[task]:g}"))
    return rows


TESTBEDS = {"olmo_ladder": olmo_ladder, "pythia": pythia}
COLUMNS = ("size", "pretrain", "checkpoint", "seed", "corpus", "task", "metric", "value", "task_kind", "task_chance")


def write(name: str, shared: Path) -> Path:
    rows = TESTBEDS[name](shared)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[c for c in COLUMNS if any(c in r for r in rows)], lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()})
    out = DATA / name / "runs.csv.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same rows give the same bytes, so the file's checksum names its content
    with open(out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(buf.getvalue().encode())
    print(f"wrote {out}: {len(rows)} rows")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=sorted(TESTBEDS))
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    args = ap.parse_args()
    write(args.name, args.shared)
