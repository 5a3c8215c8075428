"""Small checks of a user's input shared by the verbs, so that each is refused in one line before any work.

The number checks are argparse `type=` functions (argparse names the flag in its one-line error); the path checks
raise `UserError` and are called at the top of a verb, before it samples, trains or draws anything.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from dynsim.errors import UserError, shown


# -- numbers (argparse types) ------------------------------------------------------------------------
def _number(text: str, kind, what: str):
    try:
        if not text.isascii():  # int() and float() take '١' or '１' for 1: not what a number on a command line is
            raise ValueError(text)
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {shown(text)}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {shown(text)}")
    return value


def count(text: str) -> int:
    """An integer >= 1 (draws, chains, steps)."""
    value = _number(text, int, "an integer >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def natural(text: str) -> int:
    """An integer >= 0 (seeds, retries, bootstrap resamples)."""
    value = _number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def bounded(lo: int, hi: int, what: str = ""):
    """An argparse type: an integer in lo..hi. hi is beyond any sensible value (a seed beyond 2**32 - 1 that torch
    or PyMC would refuse after minutes of setup, 100,000 chains, a million retries): a typo, refused at once."""
    def parse(text: str) -> int:
        value = _number(text, int, f"an integer from {lo} to {hi:,}")
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer from {lo} to {hi:,}{what}, got {shown(text)}")
        return value
    parse.__name__ = "integer"  # argparse names the type in its 'invalid ... value' message
    return parse


seed = bounded(0, 2**32 - 1)  # numpy, torch and PyMC all take a seed below 2**32


def seconds(text: str) -> float:
    """A refresh interval: 0.1 s (a busy loop below) to a day (time.sleep overflows far above)."""
    value = _number(text, float, "seconds from 0.1 to 86400")
    if not 0.1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"expected seconds from 0.1 to 86400, got {value:g}")
    return value


def positive(text: str) -> float:
    """A finite number > 0 (seconds, tokens per parameter, a size)."""
    value = _number(text, float, "a finite number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {value:g}")
    return value


def percent(text: str) -> float:
    """A credible interval in percent: finite, strictly between 0 and 100."""
    value = _number(text, float, "a percentage strictly between 0 and 100")
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"expected a percentage strictly between 0 and 100, got {value:g}")
    return value


def quantile(text: str) -> float:
    """A probability strictly between 0 and 1 (a quantile level)."""
    value = _number(text, float, "a number strictly between 0 and 1")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {value:g}")
    return value


def token_counts(text: str) -> tuple[int, ...]:
    """'512,1024': integers >= 1, comma-separated."""
    return tuple(count(part) for part in text.split(","))


def nonempty(text: str) -> str:
    """A non-empty name or path (a corpus, a calibration, a file): '' would silently mean the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a non-empty name, got {shown(text)}")
    return text


# -- output paths ------------------------------------------------------------------------------------
def output_file(path, flag: str) -> Path:
    """A file a verb will write: not an existing folder, in a folder that exists or can be made and written."""
    return _output(path, flag, folder=False)


def output_folder(path, flag: str) -> Path:
    """A folder a verb will write into: not an existing file, and one that exists or can be made and written."""
    return _output(path, flag, folder=True)


def _output(path, flag: str, folder: bool) -> Path:
    p = Path(path)
    if has_unprintable(path):
        raise UserError(f"{flag} {shown(path)}: a control character in a path to write is a typo (a pasted newline)")
    try:
        if not folder and p.exists() and not p.is_dir() and not p.is_file():
            raise UserError(f"{flag} {shown(path)} is not a regular file (a device or a link to one); give a file path")
        if p.is_dir() and not folder:
            raise UserError(f"{flag} {shown(path)} is an existing folder; give a file path")
        if folder and p.exists() and not p.is_dir():
            raise UserError(f"{flag} {shown(path)} is an existing file; give a folder")
        _writable_from(p if folder else p.parent, flag, path)
    except OSError as e:  # a name too long, a loop of links
        raise UserError(f"{flag} {shown(path)}: {e.strerror or e}") from None
    return p


def unprintable(c: str) -> bool:
    """A control character, or one that splits a line (str.splitlines): never part of a name or a path typed
    on purpose."""
    return not c.isprintable() and c != " "


def has_unprintable(text) -> bool:
    return any(unprintable(c) for c in str(text))


def not_an_input(out, inputs, flag: str) -> None:
    """An output path must not be one of the verb's inputs: writing it would replace what is being read."""
    target = Path(out).resolve()
    for given in inputs:
        if given and Path(given).resolve() == target:
            raise UserError(f"{flag} {shown(str(out))} is also an input ({shown(str(given))}): "
                            "give another output path")


def _writable_from(folder: Path, flag: str, path) -> None:
    """The nearest existing folder on the way to `folder` must take a new file. Probed by making (and at once
    dropping) a temporary file there: as root, os.access says yes even to /proc."""
    here = folder
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise UserError(f"{flag} {shown(path)}: {shown(str(here))} is a file, not a folder")
    try:
        tempfile.TemporaryFile(dir=here).close()
    except OSError as e:
        raise UserError(f"{flag} {shown(path)}: cannot write in {shown(str(here))} ({e.strerror})") from None


# -- measured values -----------------------------------------------------------------------------------
TASK_KINDS = ("upstream", "upstream_avg", "ID", "OOD", "text")  # a task's kind in a CSV, a record or a Dataset


def chance_ok(chance) -> bool:
    """A task's chance accuracy as stored: '' (not known), or ';'-separated numbers in percent, each in 0-100."""
    try:
        parts = [float(x) for x in str(chance).split(";") if x.strip()]
    except ValueError:
        return False
    return all(0 <= p < 100 for p in parts)  # NaN compares false


POSITIVE_METRICS = ("loss", "bpb", "ppl")  # nats or bits per token, perplexity; every other metric is a percentage


def out_of_range(metrics, values):
    """A boolean per value: outside its metric's range (NaN or infinite; a loss, bpb or perplexity <= 0; an
    accuracy outside 0-100 percent). One rule for a CSV, a result record and a stored Dataset."""
    import numpy as np

    values = np.asarray(values, float)
    positive = np.isin(np.asarray(metrics, dtype=object), POSITIVE_METRICS)
    with np.errstate(invalid="ignore"):
        inside = np.where(positive, values > 0, (values >= 0) & (values <= 100))
    return ~(np.isfinite(values) & inside)


def range_problem(metric: str, value: float) -> str:
    """Why value is out of range for metric (out_of_range), for a one-line message."""
    if metric in POSITIVE_METRICS:
        return f"{value:g}: a {metric} must be positive"
    return f"{value:g}: an accuracy in percent lies in 0-100 (fractions: multiply by 100)"
