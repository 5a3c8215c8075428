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
    # a fresh probe (probe19)
    "seeds_twice": (('seeds = [0]', 'seeds = [0, 0]'), "names a seed twice"),
    "name_empty": (('name = "tiny"', 'name = ""'), "[study] name must be a plain name"),
    "name_slash": (('name = "tiny"', 'name = "../../x"'), "[study] name must be a plain name"),
    "name_newline": (('name = "tiny"', 'name = "a\\nb"'), "[study] name must be a plain name"),
    "out_empty": (('seeds = [0]', 'seeds = [0]\nout = ""'), "[study] out must be a run store folder"),
    "out_nul": (('seeds = [0]', 'seeds = [0]\nout = "r\\u0000s"'), "[study] out must be a run store folder"),
    "retries_many": (('seeds = [0]', 'seeds = [0]\nmax_retries = 1000000'), "at most 100"),
    "size_unicode": (('size = ["0.1M"]', 'size = ["\u0661M"]'), "bad size"),
    "cpus_local": (('pt = "cosine"', 'pt = "cosine"\n[resources.pt]\ncpus = 4096'), "CPU(s) a job, and this machine has"),
    "mem_local": (('pt = "cosine"', 'pt = "cosine"\n[resources.default]\nmem_gb = 1e6'), "GB of memory a job"),
    "recipe_lr_nan": (('pt = "cosine"', 'pt = "cosine"\n[recipe.pt]\nlr = nan'), "[pt] lr must be a finite number"),
    "recipe_threads": (('pt = "cosine"', 'pt = "cosine"\n[recipe.run]\nthreads = -1'), "[run] threads must be"),
    "recipe_device": (('pt = "cosine"', 'pt = "cosine"\n[recipe.run]\ndevice = "tpu"'), "[run] device must be one of"),
    # issue 20: a job of several processes
    "tasks_zero": (('pt = "cosine"', 'pt = "cosine"\n[resources.pt]\ntasks = 0'), "tasks >= 1"),
    "nodes_zero": (('pt = "cosine"', 'pt = "cosine"\n[resources.pt]\nnodes = 0'), "nodes >= 1"),
    "tasks_cpus": (('pt = "cosine"', 'pt = "cosine"\n[resources.pt]\ntasks = 2\ncpus = 3'), "make them a multiple of tasks"),
    "tasks_gpus": (('pt = "cosine"', 'pt = "cosine"\n[resources.pt]\ngpus = 2'), "tasks (1) must equal gpus (2)"),
    "nodes_local": (('pt = "cosine"', 'pt = "cosine"\n[resources.pt]\nnodes = 2'), "local jobs run on this machine"),
    "recipe_shape": (('pt = "cosine"', 'pt = "cosine"\n[recipe.model]\nn_layer = -1'), "[model] n_layer must be"),
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
    # a fresh probe (probe19): values of the right type outside their range
    **{f"range_{i}": (f'extends = "miniature"\n{text}\n', words) for i, (text, words) in enumerate((
        ("[pt]\nlr = nan", "[pt] lr must be a finite number in (0, inf)"),
        ("[pt]\nlr = inf", "[pt] lr must be a finite number"),
        ("[sft]\nlr = -1e-3", "[sft] lr must be a finite number"),
        ("[cpt]\nlr = 0.0", "[cpt] lr must be a finite number"),
        ("[pt]\nwarmup_frac = 1.5", "[pt] warmup_frac must be"),
        ("[pt]\nmin_lr_frac = nan", "[pt] min_lr_frac must be"),
        ("[pt]\ndecay_frac = -0.1", "[pt] decay_frac must be"),
        ("[pt]\ngrad_clip = -1.0", "[pt] grad_clip must be"),
        ("[sft]\nweight_decay = nan", "[sft] weight_decay must be"),
        ("[run]\nthreads = -1", "[run] threads must be an integer from 0"),
        ("[rl]\ntemperature = 0.0", "[rl] temperature must be"),
        ("[rl]\nkl_weight = nan", "[rl] kl_weight must be"),
        ("[rl]\ngroup_size = 1", "[rl] group_size must be an integer >= 2"),
        ("[rl]\nmax_new_tokens = 0", "[rl] max_new_tokens must be"),
        ("[eval]\nn_items = 0", "[eval] n_items must be"),
        ("[eval]\nk = -1", "[eval] k must be"),
        ("[eval]\nmax_new_tokens = -1", "[eval] max_new_tokens must be"),
        ("[eval]\ntext_tokens = 0", "[eval] text_tokens must be"),
        ("[eval]\nbatch_size = 0", "[eval] batch_size must be"),
        ("[data]\nvocab_size = 0", "[data] vocab_size must be an integer >= 300"),
        ("[model]\nhead_dim = 0", "[model] head_dim must be"),
        ("[model]\naspect = 0", "[model] aspect must be"),
        ("[model]\nmax_seq_len = 0", "[model] max_seq_len must be"),
        ('[run]\ndevice = "tpu"', "[run] device must be one of"),
        ('[pt]\nschedule = "linear"', "[pt] schedule must be one of"),
        ("[run]\ncheckpoint_every = 0", "[run] checkpoint_every must be"),
        ("[run]\nlog_every = -5", "[run] log_every must be"),
        ("[pt]\nstable_every = 0", "[pt] stable_every must be"),
        ("[sft]\nmix = { arith = -1.0 }", "[sft] mix must map tasks"),
        ("[sft]\nmix = { nosuch = 1.0 }", "[sft] mix must map tasks"),
        ("[rl]\nmix = { arith = 0.0 }", "[rl] mix must map tasks"),
        ("[data]\ndomain_mix = { arith = nan }", "[data] domain_mix must map tasks"),
        ('[size."abc".pt]\nlr = 1e-3', "bad size 'abc'")))},
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
    # a fresh probe (probe19)
    "kind_unknown": ({"tasks": {"arith": {"kind": "sideways", "chance": 0, "n_items": 10}}}, "kind 'sideways' is not one"),
    "chance_text": ({"tasks": {"arith": {"kind": "ID", "chance": "abc", "n_items": 10}}}, "chance 'abc' is not a chance"),
    "chance_200": ({"tasks": {"arith": {"kind": "ID", "chance": 200, "n_items": 10}}}, "chance '200' is not a chance"),
    "task_items": ({"tasks": {"arith": {"kind": "ID", "chance": 0, "n_items": -10}}}, "n_items must be a non-negative"),
    "correct_gt_items": ({"metrics": [GOOD_RECORD["metrics"][0] | {"n_correct": 50}]}, "n_correct 50 is more than n_items"),
    "task_newline": ({"metrics": [GOOD_RECORD["metrics"][0] | {"task": "ari\nth"}]}, "a control character in the task"),
    "metric_blank": ({"metrics": [GOOD_RECORD["metrics"][0] | {"metric": " "}]}, "needs a 'task' and a 'metric'"),
    "seed_huge": ({"seed": 10 ** 30}, "seed must be a non-negative integer below 2**63"),
    "config_unicode": ({"config": "\u0660.1M-1MT"}, "bad size"),
    "config_nul": ({"config": "0.1M-1MT\x00"}, "bad pretraining tokens '1MT\\x00'"),
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
    (d / "study_gpus.toml").write_text(STUDY.replace('pt = "cosine"', 'pt = "cosine"\n[resources.default]\ngpus = 64\ntasks = 64\ncpus = 64'))
    for name, (text, _) in BAD_RECIPES.items():
        (d / f"recipe_{name}.toml").write_text(text.replace("{in}", str(d)))
    (d / "recipe_png.toml").write_bytes(PNG)
    (d / "recipe_threads_1000.toml").write_text('extends = "miniature"\n[run]\nthreads = 1000\n')
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
    (d / "runs.csv").write_text("run,task,metric,value\n1B-20BT,a,acc,5\n")
    (d / "record_dup_key").mkdir()
    (d / "record_dup_key" / "result.json").write_text(json.dumps(GOOD_RECORD).replace('"seed": 0', '"seed": 0, "seed": 1'))
    (d / "results.nc").write_bytes((REPO / "studies" / "mini_evolm" / "results.nc").read_bytes())
    (d / "zero.npz").symlink_to("/dev/zero")  # read for ever, were it read
    for name, text in (("seed_huge", "run,task,metric,value,seed\n1B-20BT,a,acc,5,1" + "0" * 30 + "\n"),
                       ("nul", "run,task,metric,value\n1B-20BT,a\x00,acc,5\n"),
                       ("one_bad_row", "run,task,metric,value\n1B-20BT,a,acc,\n")):
        (d / f"csv_{name}.csv").write_text(text)
    return d


def _cases():
    """(argv, words the one line must hold); {in} is the inputs folder, {tmp} the case's own empty folder (also
    the working directory, so that a default output path would be caught as a file left behind)."""
    S = str(REPO / "studies" / "mini.toml")
    MP = str(REPO / "studies" / "mini_evolm" / "posterior.npz")
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
          (q + ["--json", "--csv"], "not allowed with argument"),
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
    t = ["train", "0.1M-1MT", "--runs", "{tmp}/runs", "--quiet"]
    c += [(t + ["--seed", x], "argument --seed") for x in ("-1", "x", "0.5")]
    c += [(["train", "abc", "--runs", "{tmp}/runs"], "bad run name 'abc'"),
          (["train", "", "--runs", "{tmp}/runs"], "empty run name"),
          (["train", "0.1M-1MT\n", "--runs", "{tmp}/runs", "--seed", "-1"], "argument --seed"),
          (["train", "10B-1MT", "--runs", "{tmp}/runs"], "GiB for weights, gradients and optimizer state"),
          (["train", "1T-1MT", "--runs", "{tmp}/runs"], "this machine has"),
          (["train", "0.1M-1000000TT", "--runs", "{tmp}/runs"], "the limit is 10,000,000"),
          (["train", "0.1M-1MT-1Kep1000000000", "--runs", "{tmp}/runs"], "its SFT stage would take"),
          (["train", "0.1M-1MT-1Kep1-1000Kep1000", "--runs", "{tmp}/runs"], "its RL stage would take"),
          (["train", "1K-1MT", "--runs", "{tmp}/runs"], "too small"),
          (["train", "0.1M-1MT", "--runs", "{in}/plain.txt"], "is an existing file"),
          (["train", "0.1M-1MT", "--runs", "{in}/plain.txt/runs"], "is a file, not a folder"),
          (["train", "0.1M-1MT", "--runs", "/proc/x/runs"], "cannot write in '/proc'"),
          (t + ["--recipe", "no_such_recipe"], "recipe 'no_such_recipe' not found"),
          (t + ["--recipe", "{in}/recipe_png.toml"], "not a UTF-8 text file"),
          (t + ["--recipe", "{in}/image.png"], "not found")]  # not a .toml: taken as a recipe's name
    c += [(t + ["--recipe", f"{{in}}/recipe_{name}.toml"], words) for name, (_, words) in BAD_RECIPES.items() if words]
    c += [(["train", "0.1M-1MT-1Kep1-1Kep1", "--runs", "{tmp}/runs", "--recipe", "{in}/recipe_zero_prompts.toml"],
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
          (w + ["status", S, "--runs", "{tmp}/runs", "--watch", "-1"], "argument --watch"),
          (w + ["status", S, "--runs", "{tmp}/runs", "--watch", "0"], "argument --watch"),
          (w + ["status", S, "--runs", "{tmp}/runs", "--watch", "nan"], "argument --watch"),
          (w + ["submit", "{in}/study.toml", "--runs", "{tmp}/runs", "--retries", "-1"], "argument --retries"),
          (w + ["submit", "{in}/study.toml", "--runs", "{tmp}/runs", "--executor", "cloud"], "invalid choice"),
          (w + ["submit", "{in}/study.toml", "--runs", "{tmp}/runs", "--detach"], "--detach needs the slurm executor"),
          (w + ["submit", "{in}/study_mem_nan.toml", "--runs", "{tmp}/runs"], "mem_gb > 0"),
          (w + ["submit", "{in}/study_gpus.toml", "--runs", "{tmp}/runs"], "[resources] asks for 64 "),
          (w + ["submit", "{in}/study.toml", "--runs", "{tmp}/runs", "--dry-run"], "add --executor slurm"),
          (w + ["submit", "{in}/study.toml", "--runs", "{tmp}/runs", "--dry-run", "--executor", "slurm", "--detach"],
           "drop --detach and --retries"),
          (w + ["submit", "{in}/study_recipe_key.toml", "--runs", "{tmp}/runs"], "unknown key [pt] lrr"),
          (w + ["collect", S, "--runs", "{tmp}/runs", "-o", "{in}"], "is an existing folder"),
          (w + ["collect", S, "--runs", "{tmp}/runs", "-o", "{in}/plain.txt/r.nc"], "is a file, not a folder"),
          (w + ["collect", S, "--runs", "{tmp}/runs", "-o", "{tmp}/r.nc"], "no results yet"),
          (w + ["collect", S, "--runs", "{tmp}/runs"], "the following arguments are required: -o/--out")]
    if shutil.which("sbatch") is None:  # where Slurm is installed this would submit for real
        c += [(w + ["submit", "{in}/study.toml", "--runs", "{tmp}/runs", "--executor", "slurm"], "needs Slurm's sbatch")]
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
          (["train", "0.1M-1MT", "--runs", ""], "argument --runs: expected a non-empty"),
          (r + ["{in}/good.json", "-o", ""], "is an existing folder"),
          (w + ["status", S, "--runs", ""], "argument --runs: expected a non-empty"),
          (w + ["collect", S, "--runs", "{tmp}/runs", "-o", ""], "is an existing folder"),
          (["figs", "--out", ""], "argument -o/--out: expected a non-empty"),
          (g + ["--only", ""], "argument --only: expected a non-empty")]
    # -- a fresh probe (probe19): numbers not typed in ASCII, seeds beyond 2**32 - 1, absurd counts, a flag given
    # twice (argparse keeps the last silently), flags that another one makes unused, outputs over inputs
    c += [(p + ["--size", "\uff11B", "--pretrain", "320BT"], "bad size"),
          (p + ["--size", "\u0663B", "--pretrain", "320BT"], "bad size"),
          (p + ["--pretrain", "\u0663BT"], "bad pretraining tokens"),
          (q + ["--sft", "1Kep\uff11"], "bad SFT budget"),
          (p + ["\uff11B-160BT"], "bad size"),
          (p + ["1B-160BT\u2028"], "a control character or line break"),
          (q + ["--seed", "\u0661"], "argument --seed"),
          (q + ["--seed", str(2 ** 64)], "expected an integer from 0 to 4,294,967,295"),
          (q + ["--seed", str(2 ** 32)], "argument --seed"),
          (q + ["--pretrain", "320BT"], "argument --pretrain: given twice"),
          (q + ["--seed", "1", "--seed", "2"], "argument --seed: given twice"),
          (q + ["--calibration", "evolm", "--calibration", "gadre2024"], "given twice"),
          (q + ["--interval", "50", "--interval", "80"], "given twice"),
          (q + ["--json", "--json"], "argument --json: given twice"),
          (q + ["--csv", "--csv"], "argument --csv: given twice"),
          (q + ["--csv", "--json"], "not allowed with argument"),
          (q + ["--csv", "--interval", "50"], "--interval has no effect with --csv"),
          (q + ["--posterior", MP, "--calibration", "gadre2024"], "--calibration 'gadre2024' is not used with --posterior"),
          (q + ["--posterior", "{in}/ünïcødé\n.npz"], r"\n.npz: no such posterior file"),
          (q + ["--calibration", "evolm\n"], r"unknown calibration 'evolm\n'"),
          (q + ["--posterior", "{in}/zero.npz"], "not a readable dynsim posterior")]
    for flag, value in (("--chains", "100000"), ("--seed", str(2 ** 64)), ("--draws", "10000000"), ("--tune", "1e3")):
        c += [(f + [flag, value], f"argument {flag}")]
    c += [(f + ["--thin", "5000"], "--thin 5000 is more than --draws 1000"),
          (f + ["--data", "{in}/results.nc", "--data", "{in}/results.nc"], "argument --data: given twice"),
          (f + ["-o", "{tmp}/q.npz"], "argument -o/--out: given twice"),
          (f + ["--form", "compute", "--form", "chinchilla"], "given twice"),
          (f + ["--data", "{in}/results.nc", "--calibration", "gadre2024"], "is not used with --data"),
          (["fit", "--data", "{in}/results.nc", "-o", "{in}/results.npz"], "is also an input"),
          (["fit", "-o", "{tmp}/p\n.npz"], "a control character in a path to write"),
          (["fit", "-o", "{in}/zero.npz"], "is not a regular file")]
    c += [(v + ["--boot", "0"], "argument --boot"), (v + ["--boot", "10000000"], "argument --boot"),
          (v + ["--compare", "evolm"], "that is the posterior being validated"),
          (v + ["--refit", "--split", "largest-pt"], "--refit refits leave-one-out folds"),
          (v + ["--split", "loco", "--split", "all"], "argument --split: given twice"),
          (v + ["--data", "{in}/results.nc", "--posterior", MP, "--calibration", "evolm"], "is not used with")]
    c += [(t + ["--seed", str(2 ** 32)], "argument --seed"),
          (t + ["--recipe", "miniature", "--recipe", "quick"], "argument --recipe: given twice"),
          (["train", "0.1M-1MT\u2028", "--runs", "{tmp}/runs"], "a control character or line break"),
          (["train", "0.1M-1MT", "--runs", "{tmp}/a\nb"], "a control character in a path to write"),
          (["train", "0.1M-1MT-mnli:1Kep1", "--runs", "{tmp}/runs"], "no SFT data sets to choose from"),
          (t + ["--recipe", "{in}/recipe_threads_1000.toml"], "[run] threads = 1000, and this machine has")]
    c += [(r + ["{in}/runs.csv", "-o", "{in}/runs.csv"], "a results Dataset is a .nc"),  # not over its input
          (r + ["{in}/good.json", "-o", "{in}/good.json"], "a results Dataset is a .nc"),
          (r + ["{in}/good.json", "-o", "{tmp}/r.nc", "-o", "{tmp}/s.nc"], "given twice"),
          (r + ["{in}/good.json", "-o", "{tmp}/r.npz"], "a results Dataset is a .nc (netCDF) file"),
          (w + ["collect", "{in}/study.toml", "--runs", "{tmp}/runs", "-o", "{tmp}/r.csv"], "a results Dataset is a .nc"),
          (r + ["{in}/zero.npz", "-o", "{tmp}/r.nc"], "not a regular file"),
          (r + ["{in}/record_dup_key", "-o", "{tmp}/r.nc"], "key 'seed' given twice"),
          (r + ["{in}/csv_seed_huge.csv", "-o", "{tmp}/r.nc"], "not a whole number from 0 to 2**63 - 1"),
          (r + ["{in}/csv_nul.csv", "-o", "{tmp}/r.nc"], "a control character in the name"),
          (r + ["{in}/csv_one_bad_row.csv", "-o", "{tmp}/r.nc"], "1 bad row(s); nothing imported")]
    c += [(w + ["plan", "{in}/study.toml", "--runs", "{in}/plain.txt"], "is an existing file"),
          (w + ["status", "{in}/study.toml", "--runs", "{in}/plain.txt"], "is an existing file"),
          (w + ["submit", "{in}/study.toml", "--runs", "{in}/plain.txt"], "is an existing file"),
          (w + ["plan", "{in}/study.toml", "--runs", "{tmp}/a", "--runs", "{tmp}/b"], "argument --runs: given twice"),
          (w + ["submit", "{in}/study.toml", "--runs", "{tmp}/runs", "--retries", "1000000"], "argument --retries"),
          (w + ["status", "{in}/study.toml", "--runs", "{tmp}/runs", "--watch", "1e308"], "argument --watch"),
          (w + ["status", "{in}/study.toml", "--runs", "{tmp}/runs", "--watch", "1e-300"], "argument --watch"),
          (w + ["collect", "{in}/study.toml", "--runs", "{tmp}/runs", "-o", "{in}/study.toml"], "a results Dataset is a .nc"),
          (w + ["submit", "{in}/study_cpus_local.toml", "--runs", "{tmp}/runs"], "CPU(s) a job"),
          (w + ["submit", "{in}/study_name_slash.toml"], "[study] name must be a plain name"),
          (w + ["submit", "{in}/study_out_empty.toml"], "[study] out must be a run store folder")]
    o = ["optimize", "--budget", "1e22FLOPs"]
    c += [(o + ["--gpu-flops", "1e15"], "--gpu-flops converts budgets in GPU-hours"),
          (o + ["--fix", "size=1B", "--fix", "size=4B"], "--fix size given twice"),
          (o + ["--fix", "rl=none", "--fix", "rl=1Kep1"], "--fix rl given twice"),
          (o + ["--fix", "sft=mnli:6Kep3"], "no data set can be chosen here"),
          (o + ["--tokens-per-example", "512"], "expected 2 integers >= 1 as SFT,RL"),
          (o + ["--target", "ID_avg:"], "give a metric after ':'"),
          (o + ["--budget", "1e21FLOPs"], "argument --budget: given twice"),
          (o + ["--top", "100000"], "argument --top"),
          (o + ["--posterior", MP, "--calibration", "gadre2024"], "is not used with --posterior"),
          (["suggest", "-k", "1000"], "argument -k"),
          (["suggest", "--at", "1B-160BT", "--at", "1B-320BT"], "argument --at: given twice"),
          (["suggest", "-k", "3", "-k", "5"], "argument -k: given twice"),
          (g + ["--out", "{tmp}/other"], "argument -o/--out: given twice"),
          (["figs", "--out", "{tmp}/a\nb"], "a control character in a path to write"),
          (g + ["--data", "{in}/results.nc", "--posterior", MP, "--calibration", "nope"], "is not used with")]
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
