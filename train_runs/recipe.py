"""Training recipes: TOML hyperparameters per stage (`recipes/miniature.toml` is the default and names every key),
resolved through `extends` and `[size."N"]` tables, and checked when loaded: unknown tables or keys (a typo such as
`lrr` would otherwise be ignored yet change the recipe hash), values of another type than the default's, missing
tables, `extends` cycles. No torch here: `dynsim sweep plan` checks a study's [recipe] with it before any job runs.
"""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

from dynsim.config import STAGES
from dynsim.errors import UserError, shown

RECIPES = Path(__file__).resolve().parent / "recipes"
SECTIONS = ("data", "model", "run", *STAGES, "eval")


class RecipeError(UserError):
    """A recipe that cannot be read or resolved: not TOML, an `extends` cycle, a missing or malformed table."""


# -- recipes ------------------------------------------------------------------------------------------
def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("mix", "domain_mix") else v
    return out


def _recipe_path(recipe) -> Path:
    path = Path(recipe) if str(recipe).endswith(".toml") else RECIPES / f"{recipe}.toml"
    if not path.is_file():
        raise FileNotFoundError(f"recipe {shown(recipe)} not found (looked for {shown(str(path))})")
    return path


def _read_recipe_file(path: Path, seen: tuple = ()) -> dict:
    """A recipe TOML; one that says `extends = "<recipe name or path>"` holds only what it changes of that one.
    seen: the recipes that extend this one, so that a cycle is an error rather than a RecursionError."""
    path = path.resolve()
    if path in seen:
        raise RecipeError(f"recipe {path.name} extends itself: {' -> '.join(p.name for p in seen + (path,))}")
    try:
        with open(path, "rb") as f:
            hp = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"recipe {path}: not valid TOML ({e})") from None
    except UnicodeDecodeError:
        raise RecipeError(f"recipe {path}: not a UTF-8 text file") from None
    base = hp.pop("extends", None)
    if base is not None and not isinstance(base, str):
        raise RecipeError(f"recipe {path}: extends must be a recipe name or path, got {base!r}")
    return hp if base is None else _merge(_read_recipe_file(_recipe_path(base), seen + (path,)), hp)


def _for_size(hp: dict, size: int | None) -> dict:
    """hp with its largest fitting `[size."N"]` table (N <= size) merged in, and the size tables removed."""
    by_size = hp.pop("size", {})
    if not isinstance(by_size, dict) or not all(isinstance(v, dict) for v in by_size.values()):
        raise RecipeError(f"a recipe's size tables are [size.\"N\".<stage>] tables, got size = {by_size!r}")
    if size is not None and by_size:
        from dynsim.config import parse_size
        fitting = sorted((parse_size(k), v) for k, v in by_size.items() if parse_size(k) <= size)
        if fitting:
            hp = _merge(hp, fitting[-1][1])
    return hp


def load_recipe(recipe: str | Path | dict | None = None, size: int | None = None) -> dict:
    """The resolved hyperparameters for one model size.

    recipe: None (recipes/miniature.toml), a recipe name or TOML path, or a dict of overrides merged onto the
    default (e.g. {"data": {"general_corpus": "sample"}, "pt": {"lr": 1e-3}}).
    """
    base_path = RECIPES / "miniature.toml"
    overrides = {}
    if isinstance(recipe, dict):
        overrides = dict(recipe)
        base = overrides.pop("extends", None)  # a study's [recipe] may start from another recipe
        if base is not None:
            if not isinstance(base, str):
                raise RecipeError(f"extends must be a recipe name or path, got {base!r}")
            base_path = _recipe_path(base)
    elif recipe is not None:
        base_path = _recipe_path(recipe)
    # the file's [size."N"] tables first, then the overrides (and their own size tables): what a caller asks wins
    hp = _for_size(_read_recipe_file(base_path), size)
    hp = _for_size(_merge(hp, overrides), size)
    for section in SECTIONS:
        if not isinstance(hp.get(section), dict):
            raise RecipeError(f"recipe {base_path} lacks the [{section}] table")
    problem = _key_problem(hp)
    if problem:
        raise RecipeError(f"recipe {base_path.name if not overrides else 'overrides'}: {problem}")
    for section, key in COUNTS + tuple((s, k) for s in STAGES for k in STAGE_COUNTS if k in hp[s]):
        recipe_count(hp, section, key)
    problem = _range_problem(hp)
    if problem:
        raise RecipeError(f"recipe {base_path.name if not overrides else 'overrides'}: {problem}")
    return hp


COUNTS = (("data", "block_size"),)  # each an integer >= 1 (recipe_count), as is each stage's STAGE_COUNTS
STAGE_COUNTS = ("batch_size", "prompts_per_step", "group_size")  # the ones a stage's section holds


def _key_problem(hp: dict) -> str | None:
    """The first table, key or value type of a resolved recipe that the default recipe does not have (None when
    all are known). The default names every setting a stage reads, so anything else is a typo that would be
    ignored, yet hashed into the recipe (a new hash: no checkpoint reused)."""
    default = _for_size(_read_recipe_file(RECIPES / "miniature.toml"), None)
    for (section, key), value in OPTIONAL.items():
        default[section].setdefault(key, value)
    for section, table in hp.items():
        if section not in default:
            return f"unknown table [{section}] (the recipe's tables: {', '.join(SECTIONS)})"
        for key, value in table.items():
            if key not in default[section]:
                return f"unknown key [{section}] {key} (known: {', '.join(default[section])})"
            want = default[section][key]
            same = isinstance(value, bool) == isinstance(want, bool) and (
                isinstance(value, type(want)) or (isinstance(want, float) and isinstance(value, int)))
            if not same:
                got = shown(value) if isinstance(value, str) else repr(value)[:60]
                return f"[{section}] {key} must be {_TYPE_NAMES.get(type(want), type(want).__name__)}, got {got}"
    return None


# Settings a stage reads with a default that the default recipe leaves out (naming them there would change its
# hash, and no stored checkpoint would be reused): known, with their default's type.
OPTIONAL = {("pt", "stable_every"): 500}  # train.add_wsd_branching
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a table"}


def _real(lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False):
    def ok(v) -> bool:
        return math.isfinite(v) and (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi)
    what = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open or hi == math.inf else ']'}"
    return ok, f"a finite number in {what}"


def _at_least(lo: int):
    return (lambda v: v >= lo), f"an integer >= {lo}"


def _one_of(*choices):
    return (lambda v: v in choices or (v.startswith("cuda:") and "cuda" in choices)), \
        f"one of {', '.join(map(repr, choices))}"


_POSITIVE, _FRACTION = _real(0, lo_open=True), _real(0, 1)
# The range of each setting (its type is checked against the default recipe's): a value outside trains nothing
# that can be right (a NaN or negative learning rate, a warmup longer than the run, k = 0 samples) yet records
# a result as if it had, so it is refused when the recipe is loaded, at `sweep plan` too.
RANGES = {
    **{(stage, "lr"): _POSITIVE for stage in STAGES},
    **{(stage, "min_lr_frac"): _FRACTION for stage in STAGES},
    **{(stage, "warmup_frac"): _real(0, 1, hi_open=True) for stage in STAGES},
    **{(stage, "weight_decay"): _real(0) for stage in STAGES},
    **{(stage, "grad_clip"): _POSITIVE for stage in STAGES},
    ("pt", "decay_frac"): _real(0, 1, lo_open=True, hi_open=True), ("pt", "warmup_steps"): _at_least(0),
    ("pt", "stable_every"): _at_least(1), ("pt", "schedule"): _one_of("cosine", "wsd"),
    ("rl", "group_size"): _at_least(2),  # GRPO compares a prompt's samples: one alone has no advantage
    ("rl", "kl_weight"): _real(0), ("rl", "temperature"): _POSITIVE, ("rl", "max_new_tokens"): _at_least(1),
    ("eval", "n_items"): _at_least(1), ("eval", "k"): _at_least(0), ("eval", "max_new_tokens"): _at_least(1),
    ("eval", "text_tokens"): _at_least(1), ("eval", "cloze_items"): _at_least(0), ("eval", "batch_size"): _at_least(1),
    ("eval", "sample_temperature"): _POSITIVE,
    ("data", "vocab_size"): _at_least(300),  # 256 bytes + merges + specials (train_runs/data.py)
    ("model", "head_dim"): _at_least(1), ("model", "aspect"): _POSITIVE, ("model", "max_seq_len"): _at_least(1),
    **{("model", k): _at_least(0) for k in ("n_layer", "d_model", "n_head", "n_kv_head", "ffn_hidden")},
    ("run", "threads"): (lambda v: 0 <= v <= 1024, "an integer from 0 (torch's default) to 1024"),
    ("run", "checkpoint_every"): _at_least(1), ("run", "log_every"): _at_least(1),
    ("run", "device"): _one_of("auto", "cpu", "cuda"),
    ("run", "parallel"): _one_of("ddp", "fsdp"), ("run", "micro_batch"): _at_least(0),
}
MIXES = (*((stage, "mix") for stage in STAGES), ("data", "domain_mix"))  # task name -> share, where given


def _range_problem(hp: dict) -> str | None:
    """The first setting of a resolved (type-checked) recipe outside its range, or a task mix that is empty, names
    an unknown task or has a share that is not a finite number >= 0."""
    for (section, key), (ok, what) in RANGES.items():
        value = hp[section].get(key)
        if value is not None and not ok(value):
            return f"[{section}] {key} must be {what}, got {shown(value) if isinstance(value, str) else value!r}"
    from train_runs.tasks import GENERATORS

    for section, key in MIXES:
        mix = hp[section].get(key)
        if mix is None:
            continue
        bad = [t for t, share in mix.items() if t not in GENERATORS or isinstance(share, bool)
               or not isinstance(share, (int, float)) or not 0 <= share < math.inf]
        if bad or not mix or not sum(mix.values()) > 0:
            return (f"[{section}] {key} must map tasks ({', '.join(GENERATORS)}) to finite shares >= 0, not all 0; got "
                    f"{shown(mix)}")
    return None


def recipe_count(hp: dict, section: str, key: str) -> int:
    """A recipe's integer >= 1 (a batch, a block): a negative batch would train nothing and record it as done."""
    value = hp[section].get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RecipeError(f"recipe [{section}] {key} must be an integer >= 1, got {value!r}")
    return value
