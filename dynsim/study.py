"""Study specs: a TOML file naming the runs of a sweep, how to schedule pretraining, and where to run them.

    [study]            name, description, seeds, executor ("local" | "slurm"), out, max_retries, max_parallel,
                       holdout = [run names]: blind-validation runs of the grid, trained but excluded from the fit
    [schedule]         pt = "wsd" | "cosine"; decay_frac (WSD: final share of each PT budget spent decaying)
    [tokens_per_example]  sft, rl (each stage with an example budget): tokens one example costs per epoch (for
                       token/FLOP accounting only)
    [[grid]]           axes per stage (config.STAGES); the study is the union of the products of each grid's axes:
                       size = ["1B"], pretrain = ["20BT", ...], cpt = ["none", "8+42BT"], sft = [...], rl = [...]
                       "none" = stage absent; combinations with RL but no SFT are left out (RL starts from SFT)
    [resources.<stage>]   nodes, tasks, gpus, cpus, mem_gb, time_min, partition, account (stage: pt, cpt, sft, rl;
                       or default): a job's machines, its processes per machine (the built-in trainer: one per GPU,
                       launched by srun), and per machine its GPUs, CPUs (shared by its tasks) and memory
    [recipe]           overrides merged onto train_runs' miniature recipe (e.g. data.general_corpus = "sample");
                       with a [trainer] command, the user trainer's own hyper-parameters, passed on as they are
    [trainer]          command = "torchrun ... train.py --config {node_json} --out {run_dir}": a user's own trainer
                       instead of the built-in one (TRAINER_PLACEHOLDERS; README "Your own trainer")

Every problem raises `StudyError` with a one-line message naming the file and the bad key. Light: tomllib only.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import shlex
import string
import tomllib
from pathlib import Path

from dynsim.config import (AFTER_PT, EXAMPLE_STAGES, STAGE, STAGES, ConfigError, RunConfig, parse_config,
                           parse_pretrain, parse_size)
from dynsim.errors import UserError, shown

EXECUTORS = ("local", "slurm")
SCHEDULES = ("wsd", "cosine")
# what a [trainer] command may name, each filled per node and seed by train_runs.user_trainer
TRAINER_PLACEHOLDERS = {
    "node_json": "the node's description, a JSON file in its run dir",
    "run_dir": "the node's run dir: the trainer's checkpoints and its result.json go here",
    "parent_dir": "the parent node's run dir (its checkpoint); empty for a node trained from scratch",
    "gpus": "GPUs a job of the node's stage ([resources])",
    "cpus": "CPUs a job of the node's stage ([resources])",
    "seed": "the seed",
    "config": "the node's run config name",
    "stage": "pt, cpt, sft or rl",
}


class StudyError(UserError):
    """A malformed study spec; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Resources:
    """One job of a stage. nodes x tasks processes in all (torch.distributed ranks of the built-in trainer); gpus,
    cpus and mem_gb are per node, cpus shared evenly by the node's tasks."""
    nodes: int = 1
    tasks: int = 1
    gpus: int = 0
    cpus: int = 1
    mem_gb: float = 2.0
    time_min: int = 60
    partition: str = ""
    account: str = ""

    @property
    def cpus_per_task(self) -> int:
        return self.cpus // self.tasks

    def describe(self) -> str:
        """'2 nodes x (8 tasks, 8 GPUs, 64 CPUs, 480 GB)', as plan prints it."""
        per = ", ".join(x for x in (f"{self.tasks} task{'s' * (self.tasks > 1)}",
                                    f"{self.gpus} GPU{'s' * (self.gpus != 1)}" if self.gpus else "",
                                    f"{self.cpus} CPU{'s' * (self.cpus > 1)}", f"{self.mem_gb:g} GB") if x)
        return f"{self.nodes} node{'s' * (self.nodes > 1)} x ({per}), {self.time_min} min"


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    path: Path
    description: str
    seeds: tuple[int, ...]
    executor: str
    out: Path
    max_retries: int
    max_parallel: int
    pt_schedule: str
    decay_frac: float
    tokens_per_example: dict  # stage key -> tokens one example costs per epoch, for each stage with an example budget
    runs: tuple[RunConfig, ...]  # the grid's leaves, deduplicated, in spec order
    resources: dict  # stage -> Resources
    recipe: dict
    holdout: tuple[RunConfig, ...] = ()  # blind-validation runs (among `runs`), excluded from the fit
    trainer_command: str = ""  # a user's own trainer ([trainer] command); "" = the built-in one

    def resources_for(self, stage: str) -> Resources:
        return self.resources[stage]

    def train_recipe(self) -> dict:
        """The recipe overrides a job trains with: the study's [recipe] plus its PT schedule."""
        recipe = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.recipe.items()}
        pt = recipe.setdefault("pt", {})
        pt["schedule"] = self.pt_schedule
        if self.pt_schedule == "wsd":
            pt["decay_frac"] = self.decay_frac
        return recipe


_TOP = {"study", "schedule", "tokens_per_example", "grid", "resources", "recipe", "trainer"}
_STUDY = {"name", "description", "seeds", "executor", "out", "max_retries", "max_parallel", "holdout"}
_GRID = set(STAGE) | {"size", "pretrain"}
_RES = {f.name for f in dataclasses.fields(Resources)}


def _check_keys(table, allowed: set, where: str, err) -> None:
    if not isinstance(table, dict):
        raise err(f"[{where}] must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise err(f"unknown key '{unknown[0]}' in [{where}] (allowed: {', '.join(sorted(allowed))})")


def _typed(table: dict, key: str, kind, default, where: str, err):
    value = table.get(key, default)
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        name = {"int": "an integer", "float": "a number", "str": "a string", "list": "a list"}[kind.__name__]
        raise err(f"[{where}] {key} must be {name}, got {value!r}")
    return value


def _axis(grid: dict, key: str, i: int, err, parse, required: bool = False) -> list:
    where = f"grid {i + 1}"
    if key not in grid:
        if required:
            raise err(f"[{where}] needs '{key}', e.g. {key} = [\"1B\"]" if key == "size" else f"[{where}] needs '{key}'")
        return [None]
    values = grid[key]
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise err(f"[{where}] {key} must be a non-empty list of strings, got {values!r}")
    out = []
    for v in values:
        if v.strip().lower() == "none":
            if required:
                raise err(f"[{where}] {key} cannot be 'none'")
            out.append(None)
            continue
        try:
            out.append(parse(v))
        except ConfigError as e:
            raise err(f"[{where}] {key}: {e}") from None
    return out


def trainer_argv(command: str, values: dict) -> list[str]:
    """The argument list of a [trainer] command for one node: split like a shell would (no shell runs it), then
    each argument's placeholders filled, so a path with spaces stays one argument."""
    return [arg.format(**values) for arg in shlex.split(command)]


def _trainer_command(table, err) -> str:
    """The [trainer] table's command, checked here so a typo is refused at `plan`, not by every job at run time."""
    _check_keys(table, {"command"}, "trainer", err)
    command = _typed(table, "command", str, "", "trainer", err)
    try:
        args = shlex.split(command)
    except ValueError as e:
        raise err(f"[trainer] command is not a valid command line ({e})") from None
    if not args:
        raise err("[trainer] needs a command, e.g. command = \"python train.py --config {node_json} --out {run_dir}\"")
    allowed = ", ".join("{" + k + "}" for k in TRAINER_PLACEHOLDERS)
    named = set()
    for arg in args:
        try:
            fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(arg) if f is not None]
        except ValueError as e:
            raise err(f"[trainer] command: {e} in {arg!r} (write {{{{ and }}}} for literal braces)") from None
        for f, spec, conv in fields:
            if f not in TRAINER_PLACEHOLDERS:
                raise err(f"[trainer] command: unknown placeholder {{{f}}} (allowed: {allowed})")
            if spec or conv:
                raise err(f"[trainer] command: placeholder {{{f}}} takes no format or conversion")
            named.add(f)
    if not named & {"node_json", "run_dir"}:
        raise err("[trainer] command must name {node_json} or {run_dir}: the trainer needs its node and where to "
                  "write its result.json")
    return command


def load_study(path) -> Study:
    path = Path(path)

    def err(message: str) -> StudyError:
        return StudyError(f"{path}: {message}")

    if not path.is_file():
        raise StudyError(f"{path}: no such study file")
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise err(f"not valid TOML ({e})") from None
    except UnicodeDecodeError:
        raise err("not a UTF-8 text file") from None
    _check_keys(spec, _TOP, "top level", err)
    st = spec.get("study", {})
    _check_keys(st, _STUDY, "study", err)
    name = _typed(st, "name", str, path.stem, "study", err)
    seeds = _typed(st, "seeds", list, [0], "study", err)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise err(f"[study] seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise err(f"[study] seeds names a seed twice: {seeds!r}")
    # the name makes job names and the default run store runs/<name>: no '/', no control character, not empty
    if not name.strip() or "/" in name or not name.isprintable() or name in (".", ".."):
        raise err(f"[study] name must be a plain name (no '/', no control character), got {shown(name)}")
    executor = _typed(st, "executor", str, "local", "study", err)
    if executor not in EXECUTORS:
        raise err(f"[study] executor must be one of {', '.join(EXECUTORS)}, got '{executor}'")
    max_retries = _typed(st, "max_retries", int, 2, "study", err)
    max_parallel = _typed(st, "max_parallel", int, 2, "study", err)
    if not 0 <= max_retries <= 100 or max_parallel < 1:
        raise err("[study] max_retries must be >= 0 (and at most 100) and max_parallel >= 1")

    sch = spec.get("schedule", {})
    _check_keys(sch, {"pt", "decay_frac"}, "schedule", err)
    pt_schedule = _typed(sch, "pt", str, "wsd", "schedule", err)
    if pt_schedule not in SCHEDULES:
        raise err(f"[schedule] pt must be one of {', '.join(SCHEDULES)}, got '{pt_schedule}'")
    decay_frac = _typed(sch, "decay_frac", float, 0.2, "schedule", err)
    if not 0 < decay_frac < 1:
        raise err(f"[schedule] decay_frac must lie strictly between 0 and 1, got {decay_frac}")

    tpe = spec.get("tokens_per_example", {})
    _check_keys(tpe, set(EXAMPLE_STAGES), "tokens_per_example", err)
    tokens_per_example = {k: _typed(tpe, k, int, 0, "tokens_per_example", err) for k in EXAMPLE_STAGES}

    grids = spec.get("grid")
    if not isinstance(grids, list) or not grids:
        raise err(f"needs at least one [[grid]] table of axes (size, pretrain, {', '.join(STAGE)})")
    runs: dict[RunConfig, None] = {}
    for i, g in enumerate(grids):
        _check_keys(g, _GRID, f"grid {i + 1}", err)
        axes = [_axis(g, "size", i, err, parse_size, True), _axis(g, "pretrain", i, err, parse_pretrain, True)]
        axes += [_axis(g, s.key, i, err, lambda v, s=s: dict(zip(s.fields, s.parse_counts(v)))) for s in AFTER_PT]
        # (each stage value: the fields it sets, None = absent)
        for size, (pt, sched), *stages in itertools.product(*axes):
            ran = {s.key for s, fields in zip(AFTER_PT, stages) if fields}
            if any(s.follows and s.key in ran and s.follows not in ran for s in AFTER_PT):
                continue  # RL starts from an SFT model: documented, not an error
            try:
                cfg = RunConfig(size, pt, pretrain_schedule=sched, **{k: v for f in stages if f for k, v in f.items()})
            except ConfigError as e:
                raise err(f"[grid {i + 1}]: {e}") from None
            runs[cfg] = None
    missing = [k for k in EXAMPLE_STAGES if tokens_per_example[k] <= 0 and any(c.has(k) for c in runs)]
    if missing:
        raise err(f"[tokens_per_example] needs {' and '.join(missing)} > 0 (tokens per example) when the grid has "
                  f"{'/'.join(STAGE[k].title for k in missing)} stages")

    holdout = _typed(st, "holdout", list, [], "study", err)
    held: dict[RunConfig, None] = {}
    for name_ in holdout:
        if not isinstance(name_, str):
            raise err(f"[study] holdout entries must be run names, got {name_!r}")
        try:
            cfg = parse_config(name_)
        except ConfigError as e:
            raise err(f"[study] holdout: {e}") from None
        if cfg not in runs:
            raise err(f"[study] holdout: '{name_}' is not a run of the grid")
        held[cfg] = None

    res = spec.get("resources", {})
    _check_keys(res, set(STAGES) | {"default"}, "resources", err)
    default = {}
    if "default" in res:
        _check_keys(res["default"], _RES, "resources.default", err)
        default = res["default"]
    resources = {}
    for stage in STAGES:
        table = {**default, **res.get(stage, {})}
        _check_keys(table, _RES, f"resources.{stage}", err)
        fields = {}
        for f in dataclasses.fields(Resources):
            kind = float if f.type in ("float", float) else int if f.type in ("int", int) else str
            fields[f.name] = _typed(table, f.name, kind, f.default, f"resources.{stage}", err)
        if (fields["nodes"] < 1 or fields["tasks"] < 1 or fields["cpus"] < 1 or fields["gpus"] < 0
                or not 0 < fields["mem_gb"] < math.inf or fields["time_min"] <= 0):
            raise err(f"[resources.{stage}] needs nodes >= 1, tasks >= 1, cpus >= 1, gpus >= 0, mem_gb > 0, "
                      "time_min > 0")
        if fields["cpus"] % fields["tasks"]:
            raise err(f"[resources.{stage}] cpus ({fields['cpus']}) are per node and shared by its tasks "
                      f"({fields['tasks']}): make them a multiple of tasks")
        if "trainer" not in spec and fields["gpus"] and fields["tasks"] != fields["gpus"]:
            raise err(f"[resources.{stage}] the built-in trainer runs one process per GPU: tasks "
                      f"({fields['tasks']}) must equal gpus ({fields['gpus']})")
        resources[stage] = Resources(**fields)

    recipe = spec.get("recipe", {})
    if not isinstance(recipe, dict):
        raise err("[recipe] must be a table")
    trainer_command = _trainer_command(spec["trainer"], err) if "trainer" in spec else ""
    out = _typed(st, "out", str, f"runs/{name}", "study", err)
    if not out.strip() or not out.isprintable():  # '' would be the working directory itself
        raise err(f"[study] out must be a run store folder, got {shown(out)}")
    out = Path(out)
    return Study(name=name, path=path, description=_typed(st, "description", str, "", "study", err),
                 seeds=tuple(seeds), executor=executor, out=out, max_retries=max_retries, max_parallel=max_parallel,
                 pt_schedule=pt_schedule, decay_frac=decay_frac, tokens_per_example=tokens_per_example,
                 runs=tuple(runs), resources=resources, recipe=recipe,
                 holdout=tuple(held), trainer_command=trainer_command)
