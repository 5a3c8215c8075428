"""The one error type for a user's mistake, and how a message quotes what the user typed.

Every check of a user's input (a flag, a run name, a recipe, a study, a results file, an output path) raises
`UserError` or a subclass of it; `dynsim.cli.main` prints it as one line on stderr and exits 2. Anything else that
escapes a verb is a bug and keeps its traceback. Kept free of imports so that every package can raise it.
"""

from __future__ import annotations


class UserError(ValueError):
    """A user's input that dynsim refuses; the CLI prints it as one line and exits 2.

    A ValueError, so callers that caught the module errors as ValueError before this class existed still do."""


def shown(text, limit: int = 60) -> str:
    """`text` quoted for a one-line message: repr (a newline in a run name stays on the line), cut when long
    (a 5,000-digit size is named, not printed)."""
    text = str(text)
    if len(text) > limit:
        return repr(text[:limit]) + f"… ({len(text)} characters)"
    return repr(text)
