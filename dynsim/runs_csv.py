"""A user's own runs as a long CSV: one row per measured number → the results Dataset (and back).

The format (every bundled testbed ships in it and is read by this same code):

| column | required | meaning |
|---|---|---|
| `run` | one of the two run forms | the run's name in the run-config language, e.g. `1B-160BT-8+42BT-100Kep1`, `1B-20of160BT`, `1B-3TT-mnli:6Kep3` |
| `size`, `pretrain` | the other form | parameters and pretraining tokens (plain numbers, `1.3e9` or `1.3B` / `26BT` alike) |
| `pretrain_schedule` and each stage's counts (`config.STAGE_FIELDS`: `cpt_replay`, `cpt_domain`, `sft_examples`, `sft_epochs`, `rl_examples`, `rl_epochs`) | no | the rest of the run, in the same units (0 or empty = stage not run) |
| `sft_data` | no | the SFT data set where runs fine-tuned on different data are compared (`mnli`: lowercase letters, digits, `_`); empty = the default data. With `run`, inside the name instead (`...-mnli:6Kep3`) |
| `checkpoint` | no | tokens seen at this checkpoint of a pretraining run; below the run's `pretrain` it is an un-annealed checkpoint (`1B-20of160BT`) |
| `seed` | no | an integer, default 0 |
| `corpus` | no | the pretraining corpus, where runs on several corpora are compared (the first one seen is the reference) |
| `task`, `metric`, `value` | yes | e.g. `arc_easy`, `acc` (percent, 0–100) or `c4_val`, `loss` (nats/token) |
| `n_items`, `n_correct` | no | items evaluated and answered correctly, where known (the likelihood is then binomial) |
| `task_kind`, `task_chance`, `task_n_benchmarks` | no | per task, the same on every row of it: `upstream`, `upstream_avg`, `ID`, `OOD` or `text` (default `text` for a loss, else `upstream`); chance accuracy in percent (`;` between the components of an average); how many benchmarks one number averages |

Every bad row is reported on its own line naming the row and the column, and nothing is written.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import re
from pathlib import Path

from dynsim import checks
from dynsim.config import CONFIG_COUNTS, DATA_KEY, STAGE, ConfigError, RunConfig, check_data_name, parse_config
from dynsim.errors import UserError
from dynsim.files import atomic_write

RUN_FIELDS = CONFIG_COUNTS
SFT_DATA = "sft_data"  # the run's one text field
COLUMNS = ("run",) + RUN_FIELDS + (SFT_DATA, "checkpoint", "seed", "corpus", "task", "metric", "value", "n_items",
                                   "n_correct", "task_kind", "task_chance", "task_n_benchmarks")
TASK_KINDS = checks.TASK_KINDS
MAX_REPORTED = 20  # bad rows listed one per line; the rest counted
_COUNT = re.compile(r"(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([KMBT]?)T?")
_UNIT = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


class CSVError(UserError):
    """A CSV that cannot be imported; the message lists each bad row and column."""


def _count(text: str) -> int:
    """'26BT', '1.3B', '1.3e9', '190354176' → an exact integer count; ValueError if not one."""
    m = _COUNT.fullmatch(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a count (e.g. 1279395840, 1.3e9, 1.3B or 26BT)")
    value = float(m[1]) * _UNIT[m[2]]
    if not math.isfinite(value) or abs(value - round(value)) > 1e-6 * max(1.0, value):
        raise ValueError(f"'{text}' is not a whole count")
    return int(round(value))


def read(path, title: str | None = None, citation: str = "") -> "xr.Dataset":
    """A long CSV in the documented format → the results Dataset (results.from_frame)."""
    import pandas as pd

    from dynsim import results

    path = Path(path)
    raw = results._read_bytes(path)
    try:
        plain = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw  # runs.csv.gz reads as runs.csv
    except (OSError, EOFError) as e:
        raise CSVError(f"{path}: a damaged gzip file ({e})") from None
    try:
        text = plain.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CSVError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise CSVError(f"{path}: not a CSV table ({str(e).strip().splitlines()[-1]})") from None
    df.columns = [c.strip() for c in df.columns]
    unknown = [c for c in df.columns if c not in COLUMNS]
    if unknown:
        raise CSVError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; the format's columns: "
                       f"{', '.join(COLUMNS)}")
    missing = [c for c in ("task", "metric", "value") if c not in df.columns]
    if missing or ("run" not in df.columns and not {"size", "pretrain"} <= set(df.columns)):
        need = missing or ["run (or size and pretrain)"]
        raise CSVError(f"{path}: missing column(s) {', '.join(need)}")
    if df.empty:
        raise CSVError(f"{path}: no rows")
    problems: list = []
    parsed = _rows(df, problems)
    if problems:
        listed = [f"{path}: line {line}, column '{col}': {msg}" for line, col, msg in problems[:MAX_REPORTED]]
        more = len(problems) - MAX_REPORTED
        if len(problems) == 1:  # one bad row: one line, as every other refusal
            raise CSVError(f"{listed[0]}; 1 bad row(s); nothing imported")
        error = CSVError("\n".join(listed + ([f"... and {more} more"] if more > 0 else []) +
                                    [f"{path}: {len(problems)} bad row(s); nothing imported"]))
        error.lines = True  # several bad rows: one line each (README), printed as they are
        raise error
    frame, tasks, corpora = parsed
    return results.from_frame(frame, tasks, {
        "title": title or f"runs imported from {path.name}", "source": f"{path.name} (dynsim long CSV)",
        "citation": citation, "file_sha256": hashlib.sha256(raw).hexdigest(), "corpus_order": corpora})


def _rows(df, problems: list):
    """Validate every cell, appending (line, column, message) to problems; returns (frame, tasks, corpora)."""
    import numpy as np
    import pandas as pd

    line = np.arange(len(df)) + 2  # the header is line 1
    bad = np.zeros(len(df), bool)

    def flag(mask, column, message):
        for i in np.flatnonzero(mask & ~bad):
            problems.append((int(line[i]), column, message(i) if callable(message) else message))
        bad[mask] = True

    def rows_of(idx):
        mask = np.zeros(len(df), bool)
        mask[idx] = True
        return mask

    def column(name):
        return df[name].str.strip() if name in df else pd.Series([""] * len(df), index=df.index)

    # -- the run of each row: parsed once per distinct spelling ------------------------------------
    run_cols = [c for c in ("run",) + RUN_FIELDS + (SFT_DATA, "checkpoint") if c in df]
    spelled = df[run_cols].apply(lambda c: c.str.strip())
    configs = np.empty(len(df), dtype=object)
    for key, idx in spelled.groupby(run_cols, sort=False).indices.items():
        key = dict(zip(run_cols, key if isinstance(key, tuple) else (key,)))
        try:
            configs[idx] = _config(key)
        except _CellError as e:
            flag(rows_of(idx), e.column, str(e))

    # -- the numbers ---------------------------------------------------------------------------------
    for name in ("task", "metric"):
        flag(column(name).eq("").to_numpy(), name, "empty")
        flag(column(name).map(checks.has_unprintable).to_numpy(), name, "a control character in the name")
    metric = column("metric")
    value = pd.to_numeric(column("value"), errors="coerce").to_numpy(float)
    flag(~np.isfinite(value), "value", lambda i: f"'{df['value'].iloc[i]}' is not a finite number")
    flag(checks.out_of_range(metric.to_numpy(), value), "value", lambda i: checks.range_problem(metric.iloc[i], value[i]))
    is_loss = metric.isin(checks.POSITIVE_METRICS).to_numpy()  # a task of losses alone defaults to kind `text`
    seed = pd.to_numeric(column("seed").replace("", "0"), errors="coerce").to_numpy(float)
    flag(~np.isfinite(seed) | (seed != np.round(seed)) | (seed < 0) | (seed >= 2.0**63), "seed",
         "not a whole number from 0 to 2**63 - 1")
    counts = {}
    for name in ("n_items", "n_correct"):
        if name in df:
            text = column(name)
            counts[name] = pd.to_numeric(text.replace("", "nan"), errors="coerce").to_numpy(float)
            given = text.ne("").to_numpy()
            c = counts[name]
            flag(given & (~np.isfinite(c) | (c != np.round(c)) | (c < 0)), name, "not a whole number >= 0")
    if "n_items" in counts and "n_correct" in counts:
        flag(counts["n_correct"] > counts["n_items"], "n_correct", "more correct than items")
        flag(np.isfinite(counts["n_correct"]) & ~np.isfinite(counts["n_items"]), "n_items",
             "n_correct is given without n_items")
    elif "n_correct" in counts:
        flag(np.isfinite(counts["n_correct"]), "n_correct", "given without an n_items column")

    # -- per-task metadata, the same on every row of a task --------------------------------------------
    tasks = {}
    task = column("task")
    for name, idx in df.groupby(task, sort=False).indices.items():
        meta = {}
        for col, key in (("task_kind", "kind"), ("task_chance", "chance"), ("task_n_benchmarks", "n_benchmarks")):
            if col not in df:
                continue
            given = sorted(set(column(col).iloc[idx]) - {""})
            if len(given) > 1:
                flag(rows_of(idx) & column(col).ne(given[0]).to_numpy() & column(col).ne("").to_numpy(),
                     col, f"task '{name}' has {col} {given[0]!r} on another row")
            if given:
                meta[key] = given[0]
        kind = meta.get("kind") or ("text" if is_loss[idx].all() else "upstream")
        if kind not in TASK_KINDS:
            flag(rows_of(idx) & column("task_kind").ne("").to_numpy(), "task_kind",
                 f"'{kind}' is not one of {', '.join(TASK_KINDS)}")
        chance = meta.get("chance", "")
        if not checks.chance_ok(chance):
            flag(rows_of(idx) & column("task_chance").ne("").to_numpy(), "task_chance",
                 f"'{chance}' is not a chance accuracy in percent (0-100, ';' between components)")
        n_bench = meta.get("n_benchmarks", "1")
        if not n_bench.isdigit() or int(n_bench) < 1:
            flag(rows_of(idx) & column("task_n_benchmarks").ne("").to_numpy(),
                 "task_n_benchmarks", f"'{n_bench}' is not a whole number >= 1")
            n_bench = "1"
        tasks[name] = dict(kind=kind, chance=chance, n_items="", n_benchmarks=int(n_bench))
    if problems:
        problems.sort()
        return None

    frame = pd.DataFrame({f: [getattr(c, f) for c in configs] for f in RUN_FIELDS + (SFT_DATA,)})
    frame["task"], frame["metric"], frame["seed"], frame["value"] = task.to_numpy(), metric.to_numpy(), \
        seed.astype(np.int64), value
    frame = frame.astype({f: np.int64 for f in RUN_FIELDS})
    for name, c in counts.items():
        frame[name] = c
    corpora = []
    if "corpus" in df and column("corpus").ne("").any():
        corpus = column("corpus")
        if corpus.eq("").any():
            flag(corpus.eq("").to_numpy(), "corpus", "empty where other rows name a corpus")
            problems.sort()
            return None
        frame["corpus"] = corpus.to_numpy()
        corpora = list(dict.fromkeys(corpus))
    return frame, tasks, corpora


class _CellError(ValueError):
    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column = column


def _config(cells: dict) -> RunConfig:
    """One run's cells (the run columns of a row) → its RunConfig, checkpoint applied."""
    named, data = cells.get("run", ""), cells.get(SFT_DATA, "")
    fields = {f: cells.get(f, "") for f in RUN_FIELDS if cells.get(f, "")}
    if named and (fields or data):
        column = next(iter(fields)) if fields else SFT_DATA
        raise _CellError(column, f"the run is named ('{named}') and also given by columns: give one")
    try:
        if named:
            cfg = parse_config(named)
        else:
            for f in ("size", "pretrain"):
                if f not in fields:
                    raise _CellError(f, "empty: the run needs a size and pretraining tokens (or a run name)")
            counts = {}
            for f, text in fields.items():
                try:
                    counts[f] = _count(text)
                except ValueError as e:
                    raise _CellError(f, str(e)) from None
            if data:
                try:
                    check_data_name(data)
                except ConfigError as e:
                    raise _CellError(SFT_DATA, str(e)) from None
                stage = STAGE[DATA_KEY]
                if not counts.get(stage.fields[-1]):
                    raise _CellError(SFT_DATA, f"'{data}' names {stage.title} data, but the run has no {stage.title} "
                                               f"stage ({', '.join(stage.fields)})")
            cfg = RunConfig(**counts, sft_data=data)
    except ConfigError as e:
        raise _CellError("run" if named else "size", str(e)) from None
    if cells.get("checkpoint", ""):
        try:
            seen = _count(cells["checkpoint"])
        except ValueError as e:
            raise _CellError("checkpoint", str(e)) from None
        if cfg.stage() != "pt" or not cfg.annealed:
            raise _CellError("checkpoint", f"a checkpoint is of a pretraining run's schedule; '{cfg.name}' is not one")
        if seen > cfg.pretrain or seen <= 0:
            raise _CellError("checkpoint", f"{seen} tokens lies outside the run's 1..{cfg.pretrain}")
        if seen < cfg.pretrain:
            cfg = cfg.replace(pretrain=seen, pretrain_schedule=cfg.pretrain)
    return cfg


def write(ds, path, by_columns: bool = True) -> Path:
    """The Dataset → a long CSV in the documented format (atomically); `read` gives back the same data hash."""
    from dynsim import results

    df = results.to_long(ds)
    out = df[results.config_columns(df)].copy() if by_columns else df[[]].assign(
        run=[c.name for c in results.run_configs(df)])
    for c in ("seed", "corpus", "task", "metric", "value", "n_items", "n_correct"):
        if c in df:
            out[c] = df[c]
    meta = {t: (k, c, b) for t, k, c, b in zip(ds.tasks.values, ds.task_kind.values, ds.task_chance.values,
                                                ds.task_n_benchmarks.values)}
    out["task_kind"] = [meta[t][0] for t in df.task]
    out["task_chance"] = [meta[t][1] for t in df.task]
    out["task_n_benchmarks"] = [meta[t][2] for t in df.task]
    for c in ("n_items", "n_correct"):
        if c in out:
            out[c] = out[c].map(lambda v: "" if v != v else str(int(v)))
    return atomic_write(path, lambda tmp: out.to_csv(tmp, index=False, float_format="%.10g"))
