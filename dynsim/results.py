"""The results Dataset: every measured number of a study in one labelled array.

Dimensions: the RunConfig fields (`size, pretrain, pretrain_schedule, cpt_replay, cpt_domain, sft_examples,
sft_epochs, rl_examples, rl_epochs`, all exact counts; 0 = stage not run), `task`, `metric`, `seed`.
Missing combinations are NaN. Variables: `value` (accuracy in percent, or loss in nats/token — the
`metric_units` coordinate says which) and, for runs that recorded them, `n_items` / `n_correct`.
Task metadata are coordinates on `task`: `task_kind` (upstream, upstream_avg, ID, OOD, text), `task_chance`
and `task_n_items` (';'-separated per component for averaged tasks, percent / items), and `task_n_benchmarks`
(how many benchmarks a single number averages: 46 for Gadre et al.'s average, else 1; absent in older files).

Imported from result records (`train_runs` writes one JSON per run and seed) or from the EvoLM CSV;
stored as netCDF (h5netcdf), written atomically. This module imports xarray: it is not on the
`dynsim predict` path.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr

from dynsim import __version__
from dynsim.config import FIELDS, ConfigError, RunConfig, parse_config

CONFIG_DIMS = ("size", "pretrain", "pretrain_schedule", "cpt_replay", "cpt_domain",
               "sft_examples", "sft_epochs", "rl_examples", "rl_epochs")
assert set(CONFIG_DIMS) == set(FIELDS)
DIMS = CONFIG_DIMS + ("task", "metric", "seed")
CORPUS_DIM = "corpus"  # optional last dimension: the pretraining corpus, where a Dataset compares several
UNITS = {"size": "parameters", "pretrain": "tokens", "pretrain_schedule": "tokens (0 = annealed, schedule = pretrain)",
         "cpt_replay": "tokens", "cpt_domain": "tokens", "sft_examples": "examples", "sft_epochs": "epochs",
         "rl_examples": "examples", "rl_epochs": "epochs"}
METRIC_UNITS = {"loss": "nats/token", "ppl": "perplexity"}  # everything else: accuracy in percent
RECORD_SCHEMA = "dynsim.result/1"
EVOLM_CITATION = ("Qi et al. 2025, 'EvoLM: In Search of Lost Language Model Training Dynamics', "
                  "arXiv 2506.16029 (NeurIPS 2025), Tables 1-4")


class ResultsError(ValueError):
    """A results file or record that cannot be read; the message says which and why."""


def metric_unit(metric: str) -> str:
    return METRIC_UNITS.get(metric, "percent")


# -- building ------------------------------------------------------------------------------------
def from_rows(rows: list[dict], tasks: dict[str, dict], attrs: dict) -> xr.Dataset:
    """Rows of {config: RunConfig, task, metric, seed, value[, n_items, n_correct]} → the dense Dataset.

    Repeated rows for the same cell (a number printed in two tables) are averaged; attrs say how many.
    """
    if not rows:
        raise ResultsError("no results to build a Dataset from")
    coords = {d: sorted({getattr(r["config"], d) for r in rows}) for d in CONFIG_DIMS}
    coords["task"] = sorted({r["task"] for r in rows})
    coords["metric"] = sorted({r["metric"] for r in rows})
    coords["seed"] = sorted({int(r.get("seed", 0)) for r in rows})
    dims = DIMS
    if any(r.get(CORPUS_DIM) for r in rows):
        dims = DIMS + (CORPUS_DIM,)
        coords[CORPUS_DIM] = sorted({r[CORPUS_DIM] for r in rows}, key=attrs.get("corpus_order", []).index
                                    if attrs.get("corpus_order") else None)
    index = {d: {v: i for i, v in enumerate(coords[d])} for d in dims}
    shape = tuple(len(coords[d]) for d in dims)
    total, count = np.zeros(shape), np.zeros(shape)
    has_counts = any(r.get("n_items") for r in rows)
    n_items, n_correct = np.full(shape, np.nan), np.full(shape, np.nan)
    for r in rows:
        cfg = r["config"]
        at = tuple(index[d][getattr(cfg, d)] for d in CONFIG_DIMS) + (
            index["task"][r["task"]], index["metric"][r["metric"]], index["seed"][int(r.get("seed", 0))]) + (
            (index[CORPUS_DIM][r[CORPUS_DIM]],) if CORPUS_DIM in index else ())
        total[at] += float(r["value"])
        count[at] += 1
        if r.get("n_items"):
            n_items[at], n_correct[at] = r["n_items"], r.get("n_correct", np.nan)
    with np.errstate(invalid="ignore"):
        value = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    data = {"value": (dims, value, {"long_name": "measured value", "units": "see metric_units"})}
    if has_counts:
        data["n_items"] = (dims, n_items, {"long_name": "items evaluated"})
        data["n_correct"] = (dims, n_correct, {"long_name": "items answered correctly"})
    ds = xr.Dataset(data, coords={d: np.asarray(coords[d], dtype=np.int64 if d in CONFIG_DIMS + ("seed",) else object)
                                  for d in dims})
    for d in CONFIG_DIMS:
        ds[d].attrs["units"] = UNITS[d]
    meta = [tasks.get(t, {}) for t in coords["task"]]
    ds = ds.assign_coords(
        task_kind=("task", [m.get("kind", "unknown") for m in meta]),
        task_chance=("task", [str(m.get("chance", "")) for m in meta]),
        task_n_items=("task", [str(m.get("n_items", "")) for m in meta]),
        task_n_benchmarks=("task", [int(m.get("n_benchmarks", 1)) for m in meta]),
        metric_units=("metric", [metric_unit(m) for m in coords["metric"]]),
    )
    ds.attrs.update({k: v for k, v in attrs.items() if k != "corpus_order"})
    ds.attrs["duplicates_averaged"] = int((count > 1).sum())
    ds.attrs["code_version"] = __version__
    ds.attrs["data_hash"] = data_hash(ds)
    return ds


def read_tasks_csv(path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {r["task"]: r for r in csv.DictReader(f)}


def from_evolm_csv(path=None, tasks_path=None) -> xr.Dataset:
    """The EvoLM published tables (long CSV, one printed number a row) → Dataset."""
    bundled = resources.files("dynsim") / "data" / "evolm"
    path = Path(path) if path else Path(str(bundled / "evolm_tables.csv"))
    tasks = read_tasks_csv(tasks_path or str(bundled / "tasks.csv"))
    by_source = {m["source_name"]: name for name, m in tasks.items()}
    raw = _read_bytes(path)
    rows = []
    for line, r in enumerate(csv.DictReader(io.StringIO(raw.decode("utf-8"))), start=2):
        try:
            name = _evolm_name(r)
            cfg = parse_config(name)
            if r["checkpoint"] == "intermediate":  # EvoLM Table 3: taken from the 1B run to 160BT, before LR decay
                cfg = cfg.replace(pretrain_schedule=160 * 10**9)
            task = by_source.get(r["task"], r["task"])
            rows.append(dict(config=cfg, task=task, metric=r["metric"], seed=0, value=float(r["value"])))
        except (KeyError, ValueError, ConfigError) as e:
            raise ResultsError(f"{path}: line {line}: {e}") from None
    return from_rows(rows, tasks, {
        "title": "EvoLM published results",
        "source": f"{path.name} (numbers printed in the paper's tables)",
        "citation": EVOLM_CITATION,
        "file_sha256": hashlib.sha256(raw).hexdigest(),
        "note": "Table 1 SFT/RL budgets are the paper's protocol (100Kep1, 100Kep8); accuracy in percent.",
    })


GADRE_CITATION = ("Gadre et al. 2024, 'Language models scale reliably with over-training and on downstream tasks', "
                  "arXiv 2403.08540 (ICLR 2025); evaluations released under the MIT licence in mlfoundations/scaling")
GADRE_CORPORA = ("c4_original", "rpj", "rw_original")  # C4 first: the reference corpus of the loss offsets
GADRE_LOSS_TASK = "c4_val"  # the validation loss the paper predicts; the other seven loss sets are not imported


GADRE_AVG_TASK = "avg46"


def from_gadre_csv(path=None, per_task: bool = False) -> xr.Dataset:
    """The Gadre et al. 2024 testbed (104 pretraining runs on three corpora, long CSV) → Dataset.

    size = non-embedding parameters (Kaplan et al. 2020: the cleaner scaling variable, which matters at the
    testbed's 11M-parameter end where embeddings are most of the model); pretrain = tokens; corpus = the
    pretraining corpus. Tasks: the C4 validation loss (kind `text`, nats/token) and the paper's downstream
    target, the average accuracy over its 46 evaluations (`avg46`, kind `upstream`, chance = the tasks' mean
    chance); with per_task, the 46 evaluations themselves instead (with item counts and chance each).
    """
    path = Path(path) if path else Path(str(resources.files("dynsim") / "data" / "gadre2024" / "gadre2024_runs.csv"))
    raw = _read_bytes(path)
    rows, tasks = [], {GADRE_LOSS_TASK: dict(kind="text", chance="", n_items="")}
    averages: dict[tuple, list] = {}
    for line, r in enumerate(csv.DictReader(io.StringIO(raw.decode("utf-8"))), start=2):
        try:
            cfg = RunConfig(size=int(r["params_no_embed"]), pretrain=int(r["tokens"]))
            if r["kind"] == "loss":
                if r["task"] != GADRE_LOSS_TASK:
                    continue
                rows.append(dict(config=cfg, task=r["task"], metric="loss", value=float(r["value"]), corpus=r["dataset"]))
            elif r["kind"] == "downstream_acc" and not per_task:
                averages.setdefault((cfg, r["dataset"]), []).append((float(r["value"]), float(r["random_baseline"] or 0)))
            elif r["kind"] == "downstream_acc":
                n = int(r["n_items"])
                acc = float(r["value"])
                rows.append(dict(config=cfg, task=r["task"], metric="acc", value=100 * acc, corpus=r["dataset"],
                                 n_items=n, n_correct=round(acc * n)))
                tasks[r["task"]] = dict(kind="upstream", chance=f"{float(r['random_baseline'] or 0):g}", n_items=n)
        except (KeyError, ValueError) as e:
            raise ResultsError(f"{path}: line {line}: {e}") from None
    for (cfg, corpus), accs in averages.items():
        rows.append(dict(config=cfg, task=GADRE_AVG_TASK, metric="acc", value=100 * np.mean([a for a, _ in accs]),
                         corpus=corpus))
    if averages:
        chances = {c for accs in averages.values() for c in [np.mean([b for _, b in accs])]}
        tasks[GADRE_AVG_TASK] = dict(kind="upstream", chance=f"{min(chances):.4g}", n_items="",
                                     n_benchmarks=max(len(accs) for accs in averages.values()))
    return from_rows(rows, tasks, {
        "title": "Gadre et al. 2024 scaling testbed",
        "source": f"{path.name} (104 open_lm runs, C4 validation loss and 46 downstream accuracies)",
        "citation": GADRE_CITATION, "file_sha256": hashlib.sha256(raw).hexdigest(), "corpus_order": list(GADRE_CORPORA),
        "note": "size is non-embedding parameters; acc in percent; loss in nats/token on C4 validation",
    })


def _evolm_name(r: dict) -> str:
    name = f"{r['model_size']}-{r['pretrain_bt']}BT"
    if float(r["cpt_domain_bt"] or 0) > 0:
        name += f"-{r['cpt_replay_bt']}+{r['cpt_domain_bt']}BT"
    for stage in ("sft", "rl"):
        if r[f"{stage}_examples"]:
            name += f"-{int(r[f'{stage}_examples']) // 1000}Kep{r[f'{stage}_epochs']}"
    return name


def read_record(path) -> dict:
    """One result record (JSON written by train_runs) → validated dict."""
    try:
        rec = json.loads(_read_bytes(path))
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not a JSON result record ({e.msg})") from None
    if not isinstance(rec, dict) or rec.get("schema") != RECORD_SCHEMA:
        raise ResultsError(f"{path}: not a {RECORD_SCHEMA} record")
    return rec


def from_records(paths) -> xr.Dataset:
    """Result records (JSON files, or folders searched for result.json) → Dataset."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("result.json"))
        elif p.exists():
            files.append(p)
        else:
            raise ResultsError(f"{p}: no such file or folder")
    if not files:
        raise ResultsError(f"no result.json records under {', '.join(map(str, paths))}")
    rows, tasks, provenance = [], {}, set()
    for f in files:
        rec = read_record(f)
        try:
            cfg = parse_config(rec["config"])
        except ConfigError as e:
            raise ResultsError(f"{f}: {e}") from None
        for m in rec["metrics"]:
            rows.append(dict(config=cfg, task=m["task"], metric=m["metric"], seed=rec.get("seed", 0),
                             value=m["value"], n_items=m.get("n_items"), n_correct=m.get("n_correct")))
        for name, t in rec.get("tasks", {}).items():
            tasks[name] = dict(kind=t.get("kind", "unknown"), chance=t.get("chance", ""), n_items=t.get("n_items", ""))
        provenance.add(json.dumps(rec.get("provenance", {}).get("code_version", "")))
    return from_rows(rows, tasks, {"title": "dynsim training results", "source": f"{len(files)} result records",
                                   "record_code_versions": ";".join(sorted(provenance))})


# -- views -----------------------------------------------------------------------------------------
def to_long(ds: xr.Dataset):
    """The observed cells as a long pandas table (one row per number), config fields as columns."""
    import pandas as pd

    # Only the observed cells are touched: the config hypercube is mostly NaN, and a study's dense frame runs to
    # gigabytes (figures of the 61-run miniature study peaked at 12 GB through to_dataframe).
    dims = list(ds.dims)
    value = ds["value"].transpose(*dims).values
    where = np.nonzero(~np.isnan(value))
    cols = {d: ds[d].values[i] for d, i in zip(dims, where)}
    for v in ("value", "n_items", "n_correct"):
        if v in ds:
            cols[v] = ds[v].transpose(*dims).values[where]
    return pd.DataFrame(cols)


def configs(ds: xr.Dataset) -> list[RunConfig]:
    """The distinct configurations that have at least one number."""
    df = to_long(ds)
    return [RunConfig(**{d: int(r[d]) for d in CONFIG_DIMS}) for r in
            df[list(CONFIG_DIMS)].drop_duplicates().to_dict("records")]


def data_hash(ds: xr.Dataset) -> str:
    """sha256 of the observed cells in a canonical text form: equal data ⇔ equal hash."""
    df = to_long(ds).sort_values([d for d in DIMS + (CORPUS_DIM,) if d in ds.dims])
    return hashlib.sha256(df.to_csv(index=False, float_format="%.10g").encode()).hexdigest()[:16]


# -- disk ------------------------------------------------------------------------------------------
def save(ds: xr.Dataset, path) -> Path:
    """Write netCDF atomically: a temporary file beside the target, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        # The config hypercube is mostly NaN (a study fills few of its cells): gzip makes a 700 MB study 1 MB.
        ds.to_netcdf(tmp, engine="h5netcdf", encoding={v: {"compression": "gzip", "compression_opts": 4}
                                                       for v in ds.data_vars})
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load(path) -> xr.Dataset:
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such results file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as f:
            ds = f.load()
    except Exception as e:  # h5py/xarray raise many types for a non-netCDF file
        raise ResultsError(f"{path}: not a readable results Dataset ({type(e).__name__})") from None
    if "value" not in ds or not set(CONFIG_DIMS) <= set(ds.dims):
        raise ResultsError(f"{path}: not a dynsim results Dataset (needs 'value' over {', '.join(DIMS)})")
    return ds


def _read_bytes(path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except OSError as e:
        raise ResultsError(f"{path}: cannot read ({e.strerror})") from None
