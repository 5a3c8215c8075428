"""Bad input to every verb, as a hostile new user types it (issue 19): each is refused with exit 2, exactly one
line on stderr and no traceback, before any work, and leaves no file behind. None of these samples or trains: a
case that got past its check would run for minutes (or write a file) and fail here. About 20 s on the 2-core
dev machine, most of it the first torch and xarray imports."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from dynsim.cli import main

REPO = Path(__file__).resolve().parent.parent
HUGE = "5" * 5000  # a 5,000-digit count
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\xff\xfe"

STUDY = """
[study]
name = "tiny"
seeds = [0]
executor = "local"
[schedule]
pt = "cosine"
[[grid]]
size = ["0.1M"]
pretrain = ["50KT", "100KT"]
"""
BAD_STUDIES = {  # name: (what replaces what in STUDY, the words of the refusal)
    "unknown_key": (('seeds = [0]', 'seeds = [0]\nseed = 1'), "unknown key 'seed'"),
    "executor": (('executor = "local"', 'executor = "cloud"'), "executor must be one of"),
    "negative_seed": (('seeds = [0]', 'seeds = [-1]'), "seeds must be a non-empty list"),
    "no_seeds": (('seeds = [0]', 'seeds = []'), "seeds must be a non-empty list"),
    "mem_nan": (('pt = "cosine"', 'pt = "cosine"\n[resources.default]\nmem_gb = nan'), "mem_gb > 0"),
    "mem_inf": (('pt = "cosine"', 'pt = "cosine"\n[resources.default]\nmem_gb = inf'), "mem_gb > 0"),
    "cpus_zero": (('pt = "cosine"', 'pt = "cosine"\n[resources.pt]\ncpus = 0'), "cpus >= 1"),
    "decay": (('pt = "cosine"', 'pt = "wsd"\ndecay_frac = 1.5'), "decay_frac must lie strictly"),
    "schedule": (('pt = "cosine"', 'pt = "linear"'), "pt must be one of"),
    "retries": (('seeds = [0]', 'seeds = [0]\nmax_retries = -1'), "max_retries must be >= 0"),
    "parallel": (('seeds = [0]', 'seeds = [0]\nmax_parallel = 0'), "max_parallel >= 1"),
    "size": (('size = ["0.1M"]', 'size = ["tiny"]'), "bad size 'tiny'"),
    "no_size": (('size = ["0.1M"]\n', ''), "needs 'size'"),
    "pretrain": (('pretrain = ["50KT", "100KT"]', 'pretrain = [50]'), "non-empty list of strings"),
    "holdout": (('seeds = [0]', 'seeds = [0]\nholdout = ["0.1M-70KT"]'), "is not a run of the grid"),
    "no_grid": (('[[grid]]\nsize = ["0.1M"]\npretrain = ["50KT", "100KT"]\n', ''), "at least one [[grid]]"),
    "toml": (('[schedule]', '[schedule'), "not valid TOML"),
    "recipe_key": (('pt = "cosine"', 'pt = "cosine"\n[recipe.pt]\nlrr = 1e-3'), "[recipe]: unknown key [pt] lrr"),
    "recipe_batch": (('pt = "cosine"', 'pt = "cosine"\n[recipe.sft]\nbatch_size = -4'), "batch_size must be an integer"),
    "recipe_type": (('pt = "cosine"', 'pt = "cosine"\n[recipe.run]\nthreads = "all"'), "[run] threads must be an integer"),
}
MINIATURE = (REPO / "train_runs" / "recipes" / "miniature.toml").read_text()
BAD_RECIPES = {  # name: (text, the words of the refusal)
    "self": ('extends = "{in}/recipe_self.toml"\n', "extends itself"),
    "cycle_a": ('extends = "{in}/recipe_cycle_b.toml"\n', "extends itself"),
    "cycle_b": ('extends = "{in}/recipe_cycle_a.toml"\n', None),  # the other half of the cycle
    "toml": ("[pt\nlr = 1\n", "not valid TOML"),
    "no_model": (MINIATURE.replace("[model]", "[modle]"), "lacks the [model] table"),
    "negative_batch": ('extends = "miniature"\n[pt]\nbatch_size = -4\n', "batch_size must be an integer >= 1"),
    "float_batch": ('extends = "miniature"\n[pt]\nbatch_size = 1.5\n', "batch_size must be an integer"),
    "zero_prompts": ('extends = "miniature"\n[rl]\nprompts_per_step = 0\n', None),  # an RL run's: below
    "zero_block": ('extends = "miniature"\n[data]\nblock_size = 0\n', "block_size must be"),
    "size_table": ('extends = "miniature"\nsize = 5\n', "size tables"),
    "extends_number": ("extends = 5\n", "extends must be a recipe name"),
    "no_base": ('extends = "no_such_base"\n', "no_such_base"),
    "unknown_key": ('extends = "miniature"\n[pt]\nlrr = 1e-3\n', "unknown key [pt] lrr"),
    "unknown_table": ('extends = "miniature"\n[optimizer]\nlr = 1e-3\n', "unknown table [optimizer]"),
    "lr_text": ('extends = "miniature"\n[pt]\nlr = "fast"\n', "[pt] lr must be a number, got 'fast'"),
}
GOOD_RECORD = {"schema": "dynsim.result/1", "config": "0.1M-1MT", "seed": 0,
               "metrics": [{"task": "arith", "metric": "greedy", "value": 50.0, "n_items": 10, "n_correct": 5}],
               "tasks": {"arith": {"kind": "ID", "chance": 0, "n_items": 10}}}
BAD_RECORDS = {  # name: (changes to GOOD_RECORD, the words of the refusal)
    "no_metrics": ({"metrics": None}, "needs 'metrics'"),
    "empty_metrics": ({"metrics": []}, "needs 'metrics'"),
    "value_text": ({"metrics": [{"task": "arith", "metric": "greedy", "value": "abc"}]}, "value must be a finite"),
    "value_nan": ({"metrics": [{"task": "arith", "metric": "greedy", "value": float("nan")}]}, "value must be a finite"),
    "value_inf": ({"metrics": [{"task": "arith", "metric": "greedy", "value": float("inf")}]}, "value must be a finite"),
    "value_missing": ({"metrics": [{"task": "arith", "metric": "greedy"}]}, "value must be a finite"),
    "value_bool": ({"metrics": [{"task": "arith", "metric": "greedy", "value": True}]}, "value must be a finite"),
    "no_task": ({"metrics": [{"metric": "greedy", "value": 5}]}, "needs a 'task' and a 'metric'"),
    "metric_number": ({"metrics": [{"task": "arith", "metric": 3, "value": 5}]}, "needs a 'task' and a 'metric'"),
    "metric_list": ({"metrics": [[1, 2]]}, "needs a 'task' and a 'metric'"),
    "n_items": ({"metrics": [{"task": "arith", "metric": "greedy", "value": 5, "n_items": -1}]}, "n_items must be"),
    "seed_text": ({"seed": "zero"}, "seed must be a non-negative integer"),
    "seed_negative": ({"seed": -2}, "seed must be a non-negative integer"),
    "tasks_list": ({"tasks": [1, 2]}, "'tasks' must be a table"),
    "tasks_numbers": ({"tasks": {"arith": 3}}, "'tasks' must be a table"),
    "config_bad": ({"config": "0.1M-lots"}, "bad pretraining tokens"),
    "config_missing": ({"config": None}, "empty run name"),
    "config_newline": ({"config": "0.1M-1\nMT"}, r"bad pretraining tokens '1\nMT'"),
    "schema": ({"schema": "other/1"}, "not a dynsim.result/1 record"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The files the cases name: damaged studies, recipes, records, a PNG, a plain file, a folder."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "image.png").write_bytes(PNG)
    (d / "empty.npz").write_bytes(b"")
    (d / "plain.txt").write_text("not a folder\n")
    (d / "folder.npz").mkdir()
    (d / "taken.nc").mkdir()  # p.nc beside -o p.npz would be a folder
    (d / "no_records").mkdir()
    (d / "study.toml").write_text(STUDY)
    for name, ((old, new), _) in BAD_STUDIES.items():
        assert old in STUDY, name
        (d / f"study_{name}.toml").write_text(STUDY.replace(old, new))
    (d / "study_png.toml").write_bytes(PNG)
    (d / "study_gpus.toml").write_text(STUDY.replace('pt = "cosine"', 'pt = "cosine"\n[resources.default]\ngpus = 64'))
    for name, (text, _) in BAD_RECIPES.items():
        (d / f"recipe_{name}.toml").write_text(text.replace("{in}", str(d)))
    (d / "recipe_png.toml").write_bytes(PNG)
    for name, (changes, _) in BAD_RECORDS.items():
        (d / f"record_{name}").mkdir()
        record = {k: v for k, v in (GOOD_RECORD | changes).items() if v is not None}
        (d / f"record_{name}" / "result.json").write_text(json.dumps(record))
    (d / "record_png").mkdir()
    (d / "record_png" / "result.json").write_bytes(PNG)
    (d / "record_list.json").write_text("[1, 2]")
    (d / "record_truncated.json").write_text(json.dumps(GOOD_RECORD)[:40])
    (d / "good.json").write_text(json.dumps(GOOD_RECORD))
    (d / "png.csv").write_bytes(PNG)
    (d / "columns.csv").write_text("run,task,metric,vale\n1B-20BT,a,acc,5\n")
    (d / "rows.csv").write_text("run,task,metric,value\n")
    return d


def _cases():
    """(argv, words the one line must hold); {in} is the inputs folder, {tmp} the case's own empty folder (also
    the working directory, so that a default output path would be caught as a file left behind)."""
    S = str(REPO / "studies" / "mini.toml")
    c = []
    # -- predict: the run configuration
    p = ["predict"]
    c += [(p, "--pretrain is required"),
          (p + ["--pretrain", "320XT"], "bad pretraining tokens"),
          (p + ["--pretrain", "abc"], "bad pretraining tokens 'abc'"),
          (p + ["--pretrain", "0BT"], "must be positive"),
          (p + ["--pretrain=-5BT"], "-5BT"),
          (p + ["--pretrain", "20of10BT"], "must lie before the end"),
          (p + ["--pretrain", "0.0000000001BT"], "is not a whole number"),
          (p + ["--pretrain", HUGE + "BT"], "not below 1e24"),
          (p + ["--pretrain", "1" + "0" * 30 + "BT"], "not below 1e24"),
          (p + ["--size", "0B", "--pretrain", "320BT"], "bad size '0B'"),
          (p + ["--size", "abc", "--pretrain", "320BT"], "bad size 'abc'"),
          (p + ["--size", "1.5", "--pretrain", "320BT"], "not a whole number"),
          (p + ["--size", HUGE + "B", "--pretrain", "320BT"], "(5001 characters)"),
          (p + ["--size", "1B\n2", "--pretrain", "320BT"], r"bad size '1B\n2'"),
          (p + ["--size"], "expected one argument"),
          (p + ["1B-160BT", "--pretrain", "320BT"], "give either a run name or stage flags"),
          (p + ["abc"], "bad run name 'abc'"),
          (p + [""], "empty run name"),
          (p + ["1B"], "bad run name '1B'"),
          (p + ["1B-160BT-8+42BT-100Kep1-100Kep8-1Kep1"], "too many parts"),
          (p + ["1B-160BT-100Kep1-8+42BT"], "must come right after the PT tokens"),
          (p + ["1B-160BT\n-x"], "bad SFT budget 'x'"),
          (p + ["1B-160BT", "extra"], "unrecognized arguments"),
          (p + ["1B-160BT-8+0BT"], "domain tokens must be > 0"),
          (p + ["--pretrain", "160BT", "--cpt", "8+0BT"], "domain tokens must be > 0"),
          (p + ["--pretrain", "160BT", "--cpt", "842BT"], "bad CPT mix"),
          (p + ["--pretrain", "160BT", "--cpt", "8+BT"], "8+BT"),
          (p + ["--pretrain", "160BT", "--sft", "100K"], "bad SFT budget"),
          (p + ["--pretrain", "160BT", "--sft", "0Kep1"], "must be positive"),
          (p + ["--pretrain", "160BT", "--sft", "100Kep0"], "must be positive"),
          (p + ["--pretrain", "160BT", "--sft", "MNLI:100Kep1"], "the data name 'MNLI'"),
          (p + ["--pretrain", "160BT", "--sft", "100Kep" + HUGE], "not below 1e24"),
          (p + ["--pretrain", "160BT", "--rl", "100Kep8"], "RL without SFT"),
          (p + ["--pretrain", "160BT", "--sft", "100Kep1", "--rl", "mnli:100Kep8"], "only the SFT stage names"),
          (p + ["--pretrain", "160BT", "--sft", "100Kep1", "--rl", "100K"], "bad RL budget")]
    # -- predict: the other flags
    q = p + ["--pretrain", "160BT"]
    c += [(q + ["--interval", v], "argument --interval") for v in ("nan", "inf", "-inf", "0", "100", "-5", "120", "abc", "")]
    c += [(q + ["--seed", v], "argument --seed") for v in ("-1", "abc", "1.5", "")]
    c += [(q + ["--corpus", ""], "expected a non-empty name"),
          (q + ["--corpus", "  "], "expected a non-empty name"),
          (q + ["--corpus", "rpj"], "one pretraining corpus"),
          (["predict", "--calibration", "gadre2024", "--size", "1.4B", "--pretrain", "28BT", "--corpus", "pile"],
           "unknown pretraining corpus"),
          (q + ["--calibration", "nope"], "unknown calibration 'nope'"),
          (["predict", "--calibration", "gadre2024", "--pretrain", "26BT", "--cpt", "1+10BT"], "has no runs with CPT"),
          (["predict", "--calibration", "gadre2024", "--pretrain", "26BT", "--sft", "1Kep1", "--rl", "1Kep1"],
           "has no runs with SFT or RL"),
          (q + ["--posterior", "/no/such.npz"], "no such posterior"),
          (q + ["--posterior", "{in}/image.png"], "not a readable dynsim posterior"),
          (q + ["--posterior", "{in}/empty.npz"], "not a readable dynsim posterior"),
          (q + ["--posterior", "{in}/folder.npz"], "folder.npz"),
          (q + ["--json", "--draws"], "not allowed with argument"),
          (q + ["--bogus"], "unrecognized arguments")]
    # -- fit: refused before the data is read or the sampler imported
    f = ["fit", "-o", "{tmp}/p.npz"]
    for flag, values in (("--draws", ("0", "-5", "abc", "1.5")), ("--tune", ("0", "-1")), ("--chains", ("0", "-2")),
                         ("--thin", ("0", "-1")), ("--seed", ("-1", "x")),
                         ("--min-tokens-per-param", ("nan", "inf", "0", "-1", "abc")),
                         ("--hold-out-size-from", ("nan", "0", "-1e9"))):
        c += [(f + [flag, v], f"argument {flag}") for v in values]
    c += [(f + ["--hold-out", "1B-160BT", "--hold-out-size-from", "1e9"], "not allowed with argument"),
          (f + ["--hold-out-study", S, "--hold-out", "1B-160BT"], "not allowed with argument"),
          (f + ["--hold-out-size-from", "1e9", "--hold-out-study", S], "not allowed with argument"),
          (f + ["--hold-out", "abc"], "bad run name 'abc'"),
          (f + ["--form", "bogus"], "invalid choice"),
          (f + ["--calibration", "nope"], "unknown calibration 'nope'"),
          (f + ["--data", "/no/such.nc"], "no such results file"),
          (f + ["--data", "{in}/image.png"], "not a readable results Dataset"),
          (f + ["--data", "{in}/no_records"], "not a readable results Dataset"),
          (["fit", "-o", "{in}/folder.npz"], "is an existing folder"),
          (["fit", "-o", "{in}/taken.npz"], "is an existing folder"),  # its .nc sibling
          (["fit", "-o", "{in}/plain.txt/p.npz"], "is a file, not a folder"),
          (["fit", "-o", "/proc/x/p.npz"], "cannot write in '/proc'"),
          (["fit", "-o", "{tmp}/p.txt"], "a posterior is a .npz file"),
          (["fit", "-o", "{tmp}/posterior"], "a posterior is a .npz file"),
          (["fit", "-o", ""], "a posterior is a .npz file"),
          (["fit", "-o", "{tmp}/" + "x" * 300 + ".npz"], "File name too long")]
    # -- validate
    v = ["validate"]
    c += [(v + ["--interval", x], "argument --interval") for x in ("nan", "0", "100", "-1", "abc")]
    c += [(v + ["--boot", x], "argument --boot") for x in ("-1", "x", "2.5")]
    c += [(v + ["--split", "sideways"], "invalid choice"),
          (v + ["--calibration", "nope"], "unknown calibration 'nope'"),
          (v + ["--data", "/no/such.nc"], "no such results file"),
          (v + ["--data", "{in}/image.png"], "not a readable results Dataset")]
    # -- train: refused before any data is read or folder made
    t = ["train", "0.1M-1MT", "--out", "{tmp}/runs", "--quiet"]
    c += [(t + ["--seed", x], "argument --seed") for x in ("-1", "x", "0.5")]
    c += [(["train", "abc", "--out", "{tmp}/runs"], "bad run name 'abc'"),
          (["train", "", "--out", "{tmp}/runs"], "empty run name"),
          (["train", "0.1M-1MT\n", "--out", "{tmp}/runs", "--seed", "-1"], "argument --seed"),
          (["train", "10B-1MT", "--out", "{tmp}/runs"], "GiB for weights, gradients and optimizer state"),
          (["train", "1T-1MT", "--out", "{tmp}/runs"], "this machine has"),
          (["train", "0.1M-1000000TT", "--out", "{tmp}/runs"], "the limit is 10,000,000"),
          (["train", "0.1M-1MT-1Kep1000000000", "--out", "{tmp}/runs"], "its SFT stage would take"),
          (["train", "0.1M-1MT-1Kep1-1000Kep1000", "--out", "{tmp}/runs"], "its RL stage would take"),
          (["train", "1K-1MT", "--out", "{tmp}/runs"], "too small"),
          (["train", "0.1M-1MT", "--out", "{in}/plain.txt"], "is an existing file"),
          (["train", "0.1M-1MT", "--out", "{in}/plain.txt/runs"], "is a file, not a folder"),
          (["train", "0.1M-1MT", "--out", "/proc/x/runs"], "cannot write in '/proc'"),
          (t + ["--recipe", "no_such_recipe"], "recipe 'no_such_recipe' not found"),
          (t + ["--recipe", "{in}/recipe_png.toml"], "not a UTF-8 text file"),
          (t + ["--recipe", "{in}/image.png"], "not found")]  # not a .toml: taken as a recipe's name
    c += [(t + ["--recipe", f"{{in}}/recipe_{name}.toml"], words) for name, (_, words) in BAD_RECIPES.items() if words]
    c += [(["train", "0.1M-1MT-1Kep1-1Kep1", "--out", "{tmp}/runs", "--recipe", "{in}/recipe_zero_prompts.toml"],
           "prompts_per_step must be")]
    # -- results import
    r = ["results", "import"]
    c += [(r + ["{in}/good.json", "-o", "{in}"], "is an existing folder"),
          (r + ["{in}/good.json", "-o", "{in}/plain.txt/r.nc"], "is a file, not a folder"),
          (r + ["{in}/good.json", "-o", "/proc/x/r.nc"], "cannot write in '/proc'"),
          (r + ["{in}/good.json"], "the following arguments are required: -o/--out"),
          (r + ["/no/such", "-o", "{tmp}/r.nc"], "no such file or folder"),
          (r + ["{in}/no_records", "-o", "{tmp}/r.nc"], "no result.json records"),
          (r + ["{in}/record_png", "-o", "{tmp}/r.nc"], "not a JSON result record"),
          (r + ["{in}/image.png", "-o", "{tmp}/r.nc"], "not a JSON result record"),
          (r + ["{in}/record_list.json", "-o", "{tmp}/r.nc"], "not a dynsim.result/1 record"),
          (r + ["{in}/record_truncated.json", "-o", "{tmp}/r.nc"], "not a JSON result record"),
          (r + ["{in}/png.csv", "-o", "{tmp}/r.nc"], "not UTF-8"),
          (r + ["{in}/columns.csv", "-o", "{tmp}/r.nc"], "unknown column(s) 'vale'"),
          (r + ["{in}/rows.csv", "-o", "{tmp}/r.nc"], "no rows"),
          (r + ["{in}/columns.csv", "{in}/good.json", "-o", "{tmp}/r.nc"], "give one CSV")]
    c += [(r + [f"{{in}}/record_{name}", "-o", "{tmp}/r.nc"], words) for name, (_, words) in BAD_RECORDS.items()]
    # -- sweep
    w = ["sweep"]
    c += [(w + ["plan", f"{{in}}/study_{name}.toml"], words) for name, (_, words) in BAD_STUDIES.items()]
    c += [(w + ["plan", "{in}/study_png.toml"], "not a UTF-8 text file"),
          (w + ["plan", "/no/such.toml"], "no such study file"),
          (w + ["plan", "{in}"], "no such study file"),
          (w + ["plan"], "the following arguments are required: study"),
          (w + ["launch", S], "invalid choice"),
          (w + ["status", S, "--out", "{tmp}/runs", "--watch", "-1"], "argument --watch"),
          (w + ["status", S, "--out", "{tmp}/runs", "--watch", "0"], "argument --watch"),
          (w + ["status", S, "--out", "{tmp}/runs", "--watch", "nan"], "argument --watch"),
          (w + ["submit", "{in}/study.toml", "--out", "{tmp}/runs", "--retries", "-1"], "argument --retries"),
          (w + ["submit", "{in}/study.toml", "--out", "{tmp}/runs", "--executor", "cloud"], "invalid choice"),
          (w + ["submit", "{in}/study.toml", "--out", "{tmp}/runs", "--detach"], "--detach needs the slurm executor"),
          (w + ["submit", "{in}/study_mem_nan.toml", "--out", "{tmp}/runs"], "mem_gb > 0"),
          (w + ["submit", "{in}/study_gpus.toml", "--out", "{tmp}/runs"], "asks for 64 GPU(s) a job"),
          (w + ["submit", "{in}/study_recipe_key.toml", "--out", "{tmp}/runs"], "unknown key [pt] lrr"),
          (w + ["collect", S, "--out", "{tmp}/runs", "-o", "{in}"], "is an existing folder"),
          (w + ["collect", S, "--out", "{tmp}/runs", "-o", "{in}/plain.txt/r.nc"], "is a file, not a folder"),
          (w + ["collect", S, "--out", "{tmp}/runs", "-o", "{tmp}/r.nc"], "no results yet"),
          (w + ["collect", S, "--out", "{tmp}/runs"], "the following arguments are required: -o/--output")]
    if shutil.which("sbatch") is None:  # where Slurm is installed this would submit for real
        c += [(w + ["submit", "{in}/study.toml", "--out", "{tmp}/runs", "--executor", "slurm"], "needs Slurm's sbatch")]
    # -- figs
    g = ["figs", "--out", "{tmp}/figures"]
    c += [(g + ["--only", "fig99"], "unknown figure 'fig99'"),
          (g + ["--only", ","], "unknown figure ','"),
          (g + ["--calibration", "nope"], "unknown calibration 'nope'"),
          (g + ["--data", "/no/such.nc"], "--data needs --posterior"),
          (g + ["--posterior", "/no/such.npz"], "no such posterior file"),
          (g + ["--data", "/no/such.nc", "--posterior", "/no/such.npz"], "no such"),
          (["figs", "--out", "{in}/plain.txt"], "is an existing file"),
          (["figs", "--out", "{in}/plain.txt/figures"], "is a file, not a folder"),
          (["figs", "--out", "/proc/x"], "cannot write in '/proc'")]
    # -- an empty value, which would silently mean the default
    c += [(q + ["--posterior", ""], "argument --posterior: expected a non-empty"),
          (q + ["--calibration", ""], "argument --calibration: expected a non-empty"),
          (f + ["--data", ""], "argument --data: expected a non-empty"),
          (f + ["--calibration", ""], "argument --calibration: expected a non-empty"),
          (f + ["--hold-out-study", ""], "argument --hold-out-study: expected a non-empty"),
          (f + ["--hold-out", ""], "empty run name"),
          (v + ["--compare", ""], "argument --compare: expected a non-empty"),
          (v + ["--data", ""], "argument --data: expected a non-empty"),
          (t + ["--recipe", ""], "argument --recipe: expected a non-empty"),
          (["train", "0.1M-1MT", "--out", ""], "argument --out: expected a non-empty"),
          (r + ["{in}/good.json", "-o", ""], "is an existing folder"),
          (w + ["status", S, "--out", ""], "argument --out: expected a non-empty"),
          (w + ["collect", S, "--out", "{tmp}/runs", "-o", ""], "is an existing folder"),
          (["figs", "--out", ""], "argument --out: expected a non-empty"),
          (g + ["--only", ""], "argument --only: expected a non-empty")]
    # -- the command itself
    c += [([], "the following arguments are required: verb"),
          (["bogus"], "invalid choice"),
          (["results"], "the following arguments are required: results_verb"),
          (["sweep"], "the following arguments are required: sweep_verb")]
    return c


CASES = _cases()


def _case_id(i: int, argv: list) -> str:
    return f"{i:03d}-" + re.sub(r"[^\w.+:=-]+", "_", " ".join(a[:24] for a in argv))[:70]


def _files(*folders) -> set:
    return {p for d in folders for p in Path(d).rglob("*")}


@pytest.fixture(autouse=True)
def no_work(monkeypatch):
    """A case that got past its checks fails here at once, rather than sampling or training for minutes."""
    def started(*args, **kwargs):
        raise AssertionError("work started: the input was not refused before it")

    for target in ("calibrate.fit.fit", "calibrate.validate.loco", "calibrate.validate.bayes_holdout",
                   "train_runs.train.make_context", "train_runs.sweep._Dispatcher.run", "paper_figs.run"):
        monkeypatch.setattr(target, started)


def test_the_table_is_large():
    assert len(CASES) >= 140


@pytest.mark.parametrize("argv, words", CASES, ids=[_case_id(i, a) for i, (a, _) in enumerate(CASES)])
def test_a_bad_input_is_refused_in_one_line(argv, words, inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a default output path (runs/, posterior.npz) would land here and be caught
    argv = [a.replace("{in}", str(inputs)).replace("{tmp}", str(tmp_path)) for a in argv]
    before = _files(inputs, tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert len(err.splitlines()) == 1 and err.endswith("\n") and err.strip(), err
    assert "Traceback" not in err and err.startswith("dynsim: error: "), err
    assert words in err, err
    assert _files(inputs, tmp_path) == before  # nothing written, no folder made
