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


# -- Amuro & Char (Sun & Dredze 2024): OLMo-1B's checkpoints before and after fine-tuning ----------------------
# OLMo-1B's non-embedding parameters, from its architecture (Groeneveld et al. 2024, Table 1: d_model 2048, 16
# layers, SwiGLU MLP of 8192 per branch, no biases, non-parametric layer norm): 16 × (4·2048² + 3·2048·8192) = 2^30
AC_SIZE = 1_073_741_824
AC_STEP_TOKENS = 4_194_304  # OLMo-1B's batch: 2048 sequences of 2048 tokens (the source's "~4.19M per step")
AC_FINAL_STEP = 738_000  # the last checkpoint the paper fine-tunes, taken as annealed (OLMo-1B saw about 3T tokens)
# SFT examples per data set: the paper subsamples 6,000 training instances of each supervised set (Sec. 3.3; its
# GPU hours, Table 4, fit 6K × 3 epochs, not the full sets); Tulu v2's SFT mixture is used whole (Ivison et al.
# 2023: 326,154 examples; 360 GPU hours for 5 epochs on 7 checkpoints fit it, not a 6K subsample)
AC_SFT_EXAMPLES = {"mnli": 6_000, "paws": 6_000, "socialiqa": 6_000, "xsum": 6_000, "tulu": 326_154}
# The accuracy (classification) sets, by the number of labels answers are chosen from; each also evaluated in
# the `_instruct` and `_inputoutput` prompt formats (Table 5), same labels
AC_CHANCE = {"mnli_matched": 100 / 3, "mnli_mismatched": 100 / 3, "gpt3nli": 100 / 3, "rte": 50, "paws": 50}
AC_FORMATS = ("", "_instruct", "_inputoutput")
_AC_BASE = re.compile(r"olmo1b_checkpoint-(\d+)_original_hf_4shots")
_AC_TUNED = re.compile(r"olmo1b_hf_ckpt(\d+)_([a-z]+)_(\d+)epoch_[\d.e-]+_4shots")


def amuro_char(shared: Path) -> list[dict]:
    """One row per run × accuracy set of `all_perf_table.csv`, 4-shot: OLMo-1B's base checkpoints (pretraining
    runs) and those checkpoints fine-tuned on one data set each (runs with `sft_data`).

    Runs: size = OLMo-1B's non-embedding parameters; pretrain = step × 4,194,304 tokens; every checkpoint before
    738k is un-annealed, `pretrain_schedule` = the 738k checkpoint's tokens (OLMo-1B was trained on about 3T).
    SFT: 6K examples × 3 epochs of mnli, paws, socialiqa or xsum; 326,154 × 5 of tulu (learning rate 2e-6;
    xsum's 2e-7 is not part of a run's identity).

    Kept: the classification sets (accuracy, the label with the highest first-subtoken logit: metric
    `greedy_pass@1`, kind `ID`, percent) in 4-shot evaluation, the paper's setting and the bulk of the table.
    Left out: the ROUGE-L generation sets (xsum, xlsum, cnn; socialiqa, sciq and tweetqa, which the paper uses
    for question generation), which are no accuracy; qqp and stsb (every base checkpoint, the 1k-step one too,
    scores 82-100%, above the models fine-tuned on paraphrase: the lenient label matching counts nearly any
    answer); LLMBar (not in the paper; 2-way choices scored 11-100%, the 1k-step model at 100%); 2- and 7-shot
    and unlabelled-shot rows; the released final model (`olmo1b_original_hf`), whose step count the sources do not
    give and which has seen about as many tokens as 738k; a duplicate of the 1k base row.
    dynsim/data/amuro_char/README.md says more of each choice.
    """
    rows = []
    with open(shared / "amuro_char" / "all_perf_table.csv", newline="") as f:
        for r in csv.DictReader(f):
            task = r["eval dataset"]
            family = next((k for k in AC_CHANCE for fmt in AC_FORMATS if task == k + fmt), None)
            base, tuned = _AC_BASE.fullmatch(r["model_id"]), _AC_TUNED.fullmatch(r["model_id"])
            if family is None or not (base or tuned):
                continue
            step = int((base or tuned)[1])
            run = dict(size=AC_SIZE, pretrain=step * AC_STEP_TOKENS,
                       pretrain_schedule=AC_FINAL_STEP * AC_STEP_TOKENS if step < AC_FINAL_STEP else "")
            if tuned:
                run |= dict(sft_data=tuned[2], sft_examples=AC_SFT_EXAMPLES[tuned[2]], sft_epochs=int(tuned[3]))
            rows.append(run | dict(task=task, metric="greedy_pass@1", value=100 * float(r["Performance"]),
                                   task_kind="ID", task_chance=f"{AC_CHANCE[family]:.4g}"))
    return sorted(rows, key=lambda r: (r["pretrain"], r.get("sft_data", ""), r["task"]))


TESTBEDS = {"olmo_ladder": olmo_ladder, "pythia": pythia, "amuro_char": amuro_char}
COLUMNS = ("size", "pretrain", "pretrain_schedule", "sft_data", "sft_examples", "sft_epochs", "checkpoint", "seed",
           "corpus", "task", "metric", "value", "task_kind", "task_chance")


def csv_text(rows: list[dict]) -> str:
    """A testbed's rows as the long CSV's text: the columns some row has, numbers to 10 significant digits."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[c for c in COLUMNS if any(c in r for r in rows)], lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def write(name: str, shared: Path) -> Path:
    rows = TESTBEDS[name](shared)
    out = DATA / name / "runs.csv.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same rows give the same bytes, so the file's checksum names its content
    with open(out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(csv_text(rows).encode())
    print(f"wrote {out}: {len(rows)} rows")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=sorted(TESTBEDS))
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    args = ap.parse_args()
    write(args.name, args.shared)
