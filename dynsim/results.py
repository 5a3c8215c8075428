"""The results Dataset: every measured number of a study, one observation per row (long form).

One dimension, `obs`. Along it, the coordinates that identify a number: the RunConfig counts
(`config.CONFIG_COUNTS`: size, pretrain, pretrain_schedule and each stage's, e.g. cpt_replay, sft_epochs; exact
counts; 0 = stage not run; a checkpoint before the end of its schedule is `pretrain < pretrain_schedule`), `task`,
`metric`, `seed`; where a Dataset compares pretraining corpora, `corpus`; and where any run names its SFT data set
(`1B-3TT-mnli:6Kep3`), `sft_data` ("" for a run without SFT or on the default data). Variables along `obs`:
`value` (accuracy in percent, or loss in nats/token — `metric_units` says which) and, where recorded, `n_items` /
`n_correct`. Rows are sorted by their identifying coordinates and unique (a number printed twice is averaged;
attrs say how many). The PyMC examples' `obs_id` form: a study's size is its number of numbers, not the product
of its config axes.

Metadata tables on their own dimensions: `tasks` (with `task_kind` — upstream, upstream_avg, ID, OOD, text —
`task_chance` and `task_n_items`, ';'-separated per component for averaged tasks, and `task_n_benchmarks`, how many
benchmarks one number averages), `metrics` (with `metric_units`), `corpora` (their order: the first is the
reference corpus of the loss offsets) and `sft_datasets`.

Imported from result records (`train_runs` writes one JSON per run and seed), from a long CSV (`dynsim.importcsv`,
the format every bundled testbed ships in) or from the EvoLM tables; stored as netCDF (h5netcdf, the string
coordinates as integer codes into their tables), written atomically, its data hash checked on load. Files of the
earlier dense form (one dimension per config field) still load, and so do files from before `sft_data`: the
optional keys are absent where they would hold one value for every run, so such a Dataset's data hash is the one
it always had. This module imports xarray: it is not on the `dynsim predict` path.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr

from dynsim import __version__, checks
from dynsim.config import CONFIG_COUNTS, LATER_FIELDS, UNIT, ConfigError, RunConfig, parse_config
from dynsim.errors import UserError, shown
from dynsim.files import atomic_write

CONFIG_DIMS = tuple(f for f in CONFIG_COUNTS if f not in LATER_FIELDS)  # the counts every Dataset has
SFT_DATA = "sft_data"  # the RunConfig's one string field: an optional key, present where some run names its data
OBS = "obs"
KEYS = CONFIG_DIMS + ("task", "metric", "seed")  # the coordinates that identify one observation
CORPUS = "corpus"  # an optional further key: the pretraining corpus, where a Dataset compares several
# keys after KEYS, present only where used, so a Dataset without them sorts and hashes as it always did: the corpus,
# the SFT data set, and the counts of a stage added to config.AFTER_PT after EvoLM's (0 where absent)
OPTIONAL_KEYS = (CORPUS, SFT_DATA, *LATER_FIELDS)
VARIABLES = ("value", "n_items", "n_correct")
# string keys and the dimension of the table listing their values (on disk each is an integer code into it)
TABLES = {"task": "tasks", "metric": "metrics", CORPUS: "corpora", SFT_DATA: "sft_datasets"}
UNITS = UNIT | {"pretrain_schedule": "tokens (0 = annealed, schedule = pretrain)"}
METRIC_UNITS = {"loss": "nats/token", "ppl": "perplexity"}  # everything else: accuracy in percent
RECORD_SCHEMA = "dynsim.result/1"
EVOLM_CITATION = ("Qi et al. 2025, 'EvoLM: In Search of Lost Language Model Training Dynamics', "
                  "arXiv 2506.16029 (NeurIPS 2025), Tables 1-4")


class ResultsError(UserError):
    """A results file or record that cannot be read; the message says which and why."""


def metric_unit(metric: str) -> str:
    return METRIC_UNITS.get(metric, "percent")


# -- building ------------------------------------------------------------------------------------
def from_rows(rows: list[dict], tasks: dict[str, dict], attrs: dict) -> xr.Dataset:
    """Rows of {config: RunConfig, task, metric, seed, value[, n_items, n_correct, corpus]} → the Dataset."""
    import pandas as pd

    if not rows:
        raise ResultsError("no results to build a Dataset from")
    cols = {d: [getattr(r["config"], d) for r in rows] for d in CONFIG_COUNTS}  # later stages dropped if unrun
    cols |= {k: [r[k] for r in rows] for k in ("task", "metric", "value")}
    cols["seed"] = [int(r.get("seed", 0)) for r in rows]
    for k in ("n_items", "n_correct"):
        if any(r.get(k) is not None for r in rows):
            cols[k] = [np.nan if r.get(k) is None else r[k] for r in rows]
    if any(r.get(CORPUS) for r in rows):
        cols[CORPUS] = [r[CORPUS] for r in rows]
    cols[SFT_DATA] = [r["config"].sft_data for r in rows]  # dropped by from_frame where no run names one
    return from_frame(pd.DataFrame(cols), tasks, attrs)


def from_frame(df, tasks: dict[str, dict], attrs: dict) -> xr.Dataset:
    """A long table (columns: the keys, value, optional n_items / n_correct / corpus) → the Dataset.

    Repeated rows for the same key (a number printed in two tables) are averaged; attrs say how many.
    attrs["corpus_order"], if given, orders the corpora (the first is the reference corpus). An sft_data column
    that names no data set is dropped: such a Dataset is the same data as one without the column."""
    if df.empty:
        raise ResultsError("no results to build a Dataset from")
    problem = _range_problem(df)
    if problem:  # each reader names the bad row; this is the last word for any of them
        raise ResultsError(problem)
    if SFT_DATA in df and not df[SFT_DATA].astype(str).ne("").any():
        df = df.drop(columns=SFT_DATA)
    df = df.drop(columns=[f for f in LATER_FIELDS if f in df and not df[f].astype(bool).any()])
    keys = list(KEYS) + [k for k in OPTIONAL_KEYS if k in df]
    counts = [v for v in ("n_items", "n_correct") if v in df and df[v].notna().any()]
    grouped = df.groupby(keys, sort=True)
    long = grouped["value"].agg(["mean", "size"]).rename(columns={"mean": "value", "size": "count"})
    for v in counts:
        long[v] = grouped[v].max()
    long = long.reset_index()
    coords = {k: (OBS, long[k].to_numpy(np.int64 if k in CONFIG_COUNTS + ("seed",) else object)) for k in keys}
    data = {"value": (OBS, long["value"].to_numpy(float), {"long_name": "measured value", "units": "see metric_units"}),
            **{v: (OBS, long[v].to_numpy(float), {"long_name": LONG_NAMES[v]}) for v in counts}}
    names = sorted(set(long["task"]))
    meta = [tasks.get(t, {}) for t in names]
    metrics = sorted(set(long["metric"]))
    coords |= {"tasks": ("tasks", np.asarray(names, dtype=object)),
               "task_kind": ("tasks", np.asarray([m.get("kind", "unknown") for m in meta], dtype=object)),
               "task_chance": ("tasks", np.asarray([str(m.get("chance", "")) for m in meta], dtype=object)),
               "task_n_items": ("tasks", np.asarray([str(m.get("n_items", "")) for m in meta], dtype=object)),
               "task_n_benchmarks": ("tasks", np.asarray([int(m.get("n_benchmarks", 1) or 1) for m in meta])),
               "metrics": ("metrics", np.asarray(metrics, dtype=object)),
               "metric_units": ("metrics", np.asarray([metric_unit(m) for m in metrics], dtype=object))}
    if CORPUS in keys:
        order = list(attrs.get("corpus_order") or [])
        present = set(long[CORPUS])
        coords["corpora"] = ("corpora", np.asarray([c for c in order if c in present] +
                                                   sorted(present - set(order)), dtype=object))
    if SFT_DATA in keys:
        coords[TABLES[SFT_DATA]] = (TABLES[SFT_DATA], np.asarray(sorted(set(long[SFT_DATA])), dtype=object))
    ds = xr.Dataset(data, coords=coords)
    for d in CONFIG_COUNTS:
        if d in ds.coords:
            ds[d].attrs["units"] = UNITS[d]
    ds.attrs.update({k: v for k, v in attrs.items() if k != "corpus_order"})
    ds.attrs["duplicates_averaged"] = int((long["count"] > 1).sum())
    ds.attrs["code_version"] = __version__
    ds.attrs["data_hash"] = data_hash(ds)
    ds.attrs["tables_hash"] = tables_hash(ds)
    return ds


LONG_NAMES = {"n_items": "items evaluated", "n_correct": "items answered correctly"}


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


def _no_repeated_keys(pairs):
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:  # json keeps the last silently: {"seed": 0, "seed": 1}
        raise json.JSONDecodeError(f"key {shown(repeated[0])} given twice", "", 0)
    return dict(pairs)


def read_record(path) -> dict:
    """One result record (JSON written by train_runs) → validated dict."""
    try:
        rec = json.loads(_read_bytes(path), object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not a JSON result record ({e.msg})") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not a JSON result record (not UTF-8 text)") from None
    if not isinstance(rec, dict) or rec.get("schema") != RECORD_SCHEMA:
        raise ResultsError(f"{path}: not a {RECORD_SCHEMA} record")
    return rec


def check_record(path) -> dict:
    """A result record checked as `from_records` checks it (schema, config, seed, every metric, the task table),
    without building a Dataset: a record that passes here is one that `sweep collect` can load."""
    rec = read_record(path)
    _record_rows(rec, path)
    _record_tasks(rec, path)
    return rec


def from_records(paths) -> xr.Dataset:
    """Result records (JSON files, or folders searched for result.json) → Dataset."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("result.json"))
        elif p.is_file():
            files.append(p)
        elif p.exists():  # /dev/zero would be read for ever
            raise ResultsError(f"{p}: not a regular file")
        else:
            raise ResultsError(f"{p}: no such file or folder")
    if not files:
        raise ResultsError(f"no result.json records under {', '.join(map(str, paths))}")
    rows, tasks, provenance = [], {}, set()
    for f in files:
        rec = read_record(f)
        rows += _record_rows(rec, f)
        for name, t in _record_tasks(rec, f).items():
            tasks[name] = dict(kind=t.get("kind", "unknown"), chance=t.get("chance", ""), n_items=t.get("n_items", ""))
        provenance.add(json.dumps(rec.get("provenance", {}).get("code_version", "")))
    return from_rows(rows, tasks, {"title": "dynsim training results", "source": f"{len(files)} result records",
                                   "record_code_versions": ";".join(sorted(provenance))})


def _record_rows(rec: dict, path) -> list[dict]:
    """A record's numbers as rows, every field checked: a malformed record is refused, naming its file and field,
    rather than dropped or carried into the Dataset."""
    try:
        cfg = parse_config(rec.get("config"))
    except ConfigError as e:
        raise ResultsError(f"{path}: {e}") from None
    seed = rec.get("seed", 0)
    if not _is_count(seed) or seed >= 2**63:
        raise ResultsError(f"{path}: seed must be a non-negative integer below 2**63, got {shown(seed)}")
    metrics = rec.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise ResultsError(f"{path}: needs 'metrics', a non-empty list of {{task, metric, value}}")
    rows = []
    for i, m in enumerate(metrics):
        if not isinstance(m, dict) or not all(isinstance(m.get(k), str) and m[k].strip() for k in ("task", "metric")):
            raise ResultsError(f"{path}: metrics[{i}] needs a 'task' and a 'metric' name")
        if checks.has_unprintable(m["task"] + m["metric"]):
            raise ResultsError(f"{path}: metrics[{i}]: a control character in the task or metric name "
                               f"{shown(m['task'])} {shown(m['metric'])}")
        value = m.get("value")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ResultsError(f"{path}: metrics[{i}] ({m['task']} {m['metric']}): value must be a finite number, "
                               f"got {shown(value)}")
        if checks.out_of_range([m["metric"]], [value])[0]:
            raise ResultsError(f"{path}: metrics[{i}] ({m['task']} {m['metric']}): "
                               f"{checks.range_problem(m['metric'], value)}")
        for k in ("n_items", "n_correct"):
            if m.get(k) is not None and not _is_count(m[k]):
                raise ResultsError(f"{path}: metrics[{i}] ({m['task']} {m['metric']}): {k} must be a non-negative "
                                   f"integer, got {shown(m[k])}")
        if _is_count(m.get("n_correct")) and _is_count(m.get("n_items")) and m["n_correct"] > m["n_items"]:
            raise ResultsError(f"{path}: metrics[{i}] ({m['task']} {m['metric']}): n_correct {m['n_correct']} is "
                               f"more than n_items {m['n_items']}")
        rows.append(dict(config=cfg, task=m["task"], metric=m["metric"], seed=seed, value=value,
                         n_items=m.get("n_items"), n_correct=m.get("n_correct")))
    return rows


def _record_tasks(rec: dict, path) -> dict:
    tasks = rec.get("tasks", {})
    if not isinstance(tasks, dict) or not all(isinstance(t, dict) for t in tasks.values()):
        raise ResultsError(f"{path}: 'tasks' must be a table of task name -> {{kind, chance, n_items}}, got "
                           f"{shown(tasks)}")
    for name, t in tasks.items():
        if "kind" in t and t["kind"] not in checks.TASK_KINDS:
            raise ResultsError(f"{path}: tasks.{name}: kind {shown(t['kind'])} is not one of "
                               f"{', '.join(checks.TASK_KINDS)}")
        if isinstance(t.get("chance"), bool) or not checks.chance_ok(t.get("chance", "")):
            raise ResultsError(f"{path}: tasks.{name}: chance {shown(t['chance'])} is not a chance accuracy in "
                               "percent (0-100)")
        if t.get("n_items") is not None and not _is_count(t["n_items"]):
            raise ResultsError(f"{path}: tasks.{name}: n_items must be a non-negative integer, "
                               f"got {shown(t['n_items'])}")
    return tasks


def _is_count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


# -- views -----------------------------------------------------------------------------------------
def to_long(ds: xr.Dataset):
    """The observations as a pandas table (one row per number): the keys and the variables as columns."""
    import pandas as pd

    cols = [k for k in KEYS + OPTIONAL_KEYS if k in ds.coords] + [v for v in VARIABLES if v in ds]
    return pd.DataFrame({c: ds[c].values for c in cols})


def select(ds: xr.Dataset, keep, note: str) -> xr.Dataset:
    """The observations where keep (a boolean per obs) holds, as a Dataset of their own (tables and hash anew)."""
    df = to_long(ds)[np.asarray(keep, bool)]
    tasks = {str(t): dict(kind=k, chance=c, n_items=n, n_benchmarks=b) for t, k, c, n, b in zip(
        ds.tasks.values, ds.task_kind.values, ds.task_chance.values, ds.task_n_items.values, ds.task_n_benchmarks.values)}
    order = {"corpus_order": [str(c) for c in ds.corpora.values]} if "corpora" in ds.coords else {}
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("data_hash", "duplicates_averaged", "code_version")}
    return from_frame(df, tasks, attrs | order | {"selection": note})


def configs(ds: xr.Dataset) -> list[RunConfig]:
    """The distinct configurations that have at least one number."""
    df = to_long(ds)
    return run_configs(df[config_columns(df)].drop_duplicates())


def config_columns(df) -> list[str]:
    """The columns of a long table (to_long's) that make up a RunConfig: the counts, and sft_data where present."""
    return list(CONFIG_DIMS) + [f for f in LATER_FIELDS if f in df] + ([SFT_DATA] if SFT_DATA in df else [])


def run_configs(df) -> list[RunConfig]:
    """The RunConfig of each row of a long table: the one way back from Dataset coordinates to runs."""
    cols = config_columns(df)
    return [RunConfig(**{c: (str(v) if c == SFT_DATA else int(v)) for c, v in zip(cols, row)})
            for row in df[cols].itertuples(index=False)]


def data_hash(ds: xr.Dataset) -> str:
    """sha256 of the observations, sorted by their keys, in a canonical binary form: equal data ⇔ equal hash.
    Values count to 10 significant digits, so a CSV round trip (runs_csv.write) keeps the hash."""
    df = to_long(ds)
    df = df.sort_values([k for k in KEYS + OPTIONAL_KEYS if k in df], kind="stable")
    h = hashlib.sha256()
    for name in df.columns:
        v = df[name].to_numpy()
        h.update(name.encode() + b"\0")
        if v.dtype.kind in "iu":
            h.update(v.astype("<i8").tobytes())
        elif v.dtype.kind == "f":
            h.update(_ten_digits(v).tobytes())
        else:
            h.update("\0".join(map(str, v)).encode())
    return h.hexdigest()[:16]


TABLE_COORDS = ("tasks", "task_kind", "task_chance", "task_n_items", "task_n_benchmarks", "metrics", "metric_units",
                "corpora", "sft_datasets")


def tables_hash(ds: xr.Dataset) -> str:
    """sha256 of the metadata tables (each task's kind, chance and item count, each metric's units, the corpora's
    order), which data_hash leaves out: an edited task kind changes what a fit does with the task's numbers."""
    h = hashlib.sha256()
    for name in TABLE_COORDS:
        if name in ds.coords:
            h.update(name.encode() + b"\0" + "\0".join(map(str, ds[name].values)).encode() + b"\1")
    return h.hexdigest()[:16]


def _ten_digits(x: np.ndarray) -> np.ndarray:
    """Floats → (mantissa, exponent) pairs of their 10-significant-digit decimal form; NaN and 0 kept apart."""
    x = np.asarray(x, float)
    finite = np.isfinite(x) & (x != 0)
    exp = np.where(finite, np.floor(np.log10(np.abs(np.where(finite, x, 1.0)))), 0).astype(np.int64) - 9
    half = np.power(10.0, -exp / 2)  # scaled in two halves: 10**-exp alone overflows for subnormal x
    mant = np.where(finite, np.round(np.where(finite, x, 0) * half * half), 0)
    carry = np.abs(mant) >= 1e10  # 9.9999999999 rounds up a decade
    mant, exp = np.where(carry, np.round(mant / 10), mant), np.where(carry, exp + 1, exp)
    mant = np.where(np.isnan(x), np.iinfo(np.int64).min, mant).astype(np.int64)
    return np.stack([mant, exp], axis=1)


def _text_hash(df) -> str:
    """The data hash of the earlier dense files (sha256 of the sorted observations as CSV text): checked on them."""
    df = df.sort_values([k for k in KEYS + OPTIONAL_KEYS if k in df])
    return hashlib.sha256(df.to_csv(index=False, float_format="%.10g").encode()).hexdigest()[:16]


# -- disk ------------------------------------------------------------------------------------------
def save(ds: xr.Dataset, path) -> Path:
    """Write netCDF atomically (a temporary file beside the target, then rename); string keys as codes."""
    coded = ds.copy()
    for key, table in TABLES.items():
        if key in coded.coords:
            index = {v: i for i, v in enumerate(coded[table].values)}
            coded[key] = (OBS, np.fromiter((index[v] for v in coded[key].values), np.int32, coded.sizes[OBS]),
                          {"codes_into": table})
    # gzip: the numbers compress well, and the integer codes of the string keys most of all
    encoding = {v: {"compression": "gzip", "compression_opts": 4}
                for v in list(coded.data_vars) + [k for k in KEYS + OPTIONAL_KEYS if k in coded.coords]}
    return atomic_write(path, lambda tmp: coded.to_netcdf(tmp, engine="h5netcdf", encoding=encoding))


def load(path) -> xr.Dataset:
    """A results file (long form, or the earlier dense form, converted) → the Dataset, its data hash checked."""
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such results file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as f:
            ds = f.load()
    except Exception as e:  # h5py/xarray raise many types for a non-netCDF file
        raise ResultsError(f"{path}: not a readable results Dataset ({type(e).__name__})") from None
    if "value" in ds and set(CONFIG_DIMS) <= set(ds.dims):
        ds = _from_dense(ds, path)
    elif "value" not in ds or OBS not in ds.dims or not set(KEYS) <= set(ds.coords):
        raise ResultsError(f"{path}: not a dynsim results Dataset (needs 'value' along '{OBS}' with coordinates "
                           f"{', '.join(KEYS)})")
    for key, table in TABLES.items():
        if key in ds.coords and ds[key].attrs.get("codes_into") == table:
            codes = ds[key].values
            if table not in ds.coords or codes.min(initial=0) < 0 or codes.max(initial=0) >= ds.sizes[table]:
                raise ResultsError(f"{path}: damaged: '{key}' codes point outside its table '{table}'")
            ds[key] = (OBS, ds[table].values[codes].astype(object))
    stored = ds.attrs.get("data_hash")
    if not stored:  # every Dataset dynsim writes carries one: without it an edit could not be told
        raise ResultsError(f"{path}: damaged or edited: it has no data hash")
    if data_hash(ds) != stored:
        raise ResultsError(f"{path}: damaged or edited: its numbers no longer match their data hash {stored}")
    problem = _range_problem(to_long(ds))
    if problem:  # an edit that recomputed the hash: still no accuracy of 250% or loss of -1
        raise ResultsError(f"{path}: damaged or edited: {problem}")
    if "task_kind" not in ds.coords or ds.task_kind.dims != ("tasks",):
        raise ResultsError(f"{path}: damaged or edited: no 'task_kind' table for its tasks")
    problem = _table_problem(ds)
    if problem:
        raise ResultsError(f"{path}: damaged or edited: {problem}")
    return ds


def _table_problem(ds: xr.Dataset) -> str | None:
    """What in a loaded Dataset cannot be right beyond its numbers' ranges: no observation, a negative seed, a task
    of an unknown kind or with a chance outside 0-100, or tables that no longer match their hash (files written
    since the hash was added carry it; earlier ones are checked by the rest)."""
    if ds.sizes[OBS] == 0:
        return "it holds no observations"
    if (ds["seed"].values < 0).any():
        return f"a negative seed {int(ds['seed'].values.min())}"
    stored = ds.attrs.get("tables_hash")
    if stored is not None and stored != tables_hash(ds):
        return f"its task or metric tables (task_kind, task_chance, ...) no longer match their hash {stored}"
    for name, kind, chance in zip(ds.tasks.values, ds.task_kind.values, ds.task_chance.values):
        if kind not in checks.TASK_KINDS + ("unknown",):
            return f"task {shown(name)} has an unknown kind {shown(kind)}"
        if not checks.chance_ok(chance):
            return f"task {shown(name)} has chance {shown(chance)}, not a chance accuracy in percent (0-100)"
    if "task_n_benchmarks" in ds.coords and (ds.task_n_benchmarks.values < 1).any():
        return "a task averages fewer than 1 benchmark (task_n_benchmarks)"
    return None


def _range_problem(df) -> str | None:
    """The first of a long table's values outside its metric's range (checks.out_of_range), and how many."""
    bad = checks.out_of_range(df["metric"].to_numpy(object), df["value"].to_numpy(float))
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    first = df.iloc[i]
    return (f"{int(bad.sum())} value(s) outside their metric's range, first {first['task']} {first['metric']} "
            f"{checks.range_problem(first['metric'], float(first['value']))}")


def _from_dense(ds: xr.Dataset, where_from) -> xr.Dataset:
    """The earlier form (one dimension per config field, task, metric, seed[, corpus]; mostly NaN) → long form."""
    import pandas as pd

    dims = [d for d in KEYS + OPTIONAL_KEYS if d in ds.dims]
    value = ds["value"].transpose(*dims).values
    where = np.nonzero(~np.isnan(value))
    cols = {d: ds[d].values[i] for d, i in zip(dims, where)}
    for v in VARIABLES:
        if v in ds:
            cols[v] = ds[v].transpose(*dims).values[where]
    tasks = {str(t): dict(kind=k, chance=c, n_items=n, n_benchmarks=b) for t, k, c, n, b in zip(
        ds.task.values, ds.task_kind.values, ds.task_chance.values, ds.task_n_items.values,
        ds.task_n_benchmarks.values if "task_n_benchmarks" in ds.coords else [1] * ds.sizes["task"])}
    attrs = dict(ds.attrs) | ({"corpus_order": [str(c) for c in ds[CORPUS].values]} if CORPUS in ds.dims else {})
    stored = attrs.pop("data_hash", None)
    if stored and _text_hash(pd.DataFrame(cols)) != stored:
        raise ResultsError(f"{where_from}: damaged or edited: its numbers no longer match their data hash {stored}")
    long = from_frame(pd.DataFrame(cols), tasks, attrs | ({"earlier_data_hash": stored} if stored else {}))
    long.attrs["duplicates_averaged"] = ds.attrs.get("duplicates_averaged", 0)
    return long


def _read_bytes(path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except OSError as e:
        raise ResultsError(f"{path}: cannot read ({e.strerror})") from None
