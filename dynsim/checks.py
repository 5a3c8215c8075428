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


def token_pair(text: str) -> tuple[int, int]:
    """'512,1024': two integers >= 1."""
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected two integers >= 1 as SFT,RL, got {shown(text)}")
    return count(parts[0]), count(parts[1])


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
    try:
        if p.is_dir() and not folder:
            raise UserError(f"{flag} {shown(path)} is an existing folder; give a file path")
        if folder and p.exists() and not p.is_dir():
            raise UserError(f"{flag} {shown(path)} is an existing file; give a folder")
        _writable_from(p if folder else p.parent, flag, path)
    except OSError as e:  # a name too long, a loop of links
        raise UserError(f"{flag} {shown(path)}: {e.strerror or e}") from None
    return p


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
