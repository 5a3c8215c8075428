"""Training recipes: TOML hyperparameters per stage (`recipes/miniature.toml` is the default and names every key),
resolved through `extends` and `[size."N"]` tables, and checked when loaded: unknown tables or keys (a typo such as
`lrr` would otherwise be ignored yet change the recipe hash), values of another type than the default's, missing
tables, `extends` cycles. No torch here: `dynsim sweep plan` checks a study's [recipe] with it before any job runs.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

from dynsim.errors import UserError, shown

RECIPES = Path(__file__).resolve().parent / "recipes"
SECTIONS = ("data", "model", "run", "pt", "cpt", "sft", "rl", "eval")


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
        overrides = recipe
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
    for section, key in COUNTS:
        recipe_count(hp, section, key)
    return hp


COUNTS = (("data", "block_size"), ("pt", "batch_size"), ("cpt", "batch_size"), ("sft", "batch_size"),
          ("rl", "prompts_per_step"), ("rl", "group_size"))  # each an integer >= 1 (recipe_count)


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


def recipe_count(hp: dict, section: str, key: str) -> int:
    """A recipe's integer >= 1 (a batch, a block): a negative batch would train nothing and record it as done."""
    value = hp[section].get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RecipeError(f"recipe [{section}] {key} must be an integer >= 1, got {value!r}")
    return value
