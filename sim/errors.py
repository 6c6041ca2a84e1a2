"""The user-facing errors, in a module of their own so that the command line can catch them
without importing the config schema (pydantic, Pyomo, Mesa); and how errors come to name their
config."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from agents.errors import AgentConfigError
from grid.errors import GridError
from mechanisms.errors import MechanismError


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the field and the fix."""


class OutputError(ValueError):
    """The run directory cannot be written or read; the message names the path and the fix."""


# Errors that come from the user's input or environment: one line, no traceback.
USER_ERRORS = (ConfigError, GridError, MechanismError, AgentConfigError, OutputError)

# An echoed value or key longer than this is cut, so that an error stays one readable line.
SHOWN_CHARS = 60
# Messages that quote a value without `shown` are cut past four times that (a path stays whole),
# and so is a run of text without a space past five times (a --set value, a key).
_QUOTED = re.compile(rf"'[^'\n]{{{4 * SHOWN_CHARS},}}'" + "|" + rf'"[^"\n]{{{4 * SHOWN_CHARS},}}"')
_LONG_WORD = re.compile(rf"\S{{{5 * SHOWN_CHARS},}}")


def shown(value: Any) -> str:
    """``repr(value)``, cut to SHOWN_CHARS characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def cut_quoted(message: str) -> str:
    """``message`` with every quoted value longer than four times SHOWN_CHARS, and every run of
    text without a space longer than five times, cut to about SHOWN_CHARS (a validator's echo
    of a 100 KB name)."""
    message = _QUOTED.sub(lambda m: m.group()[: SHOWN_CHARS - 4] + "..." + m.group()[-1], message)
    return _LONG_WORD.sub(lambda m: m.group()[:SHOWN_CHARS] + "..." + m.group()[-SHOWN_CHARS // 2:], message)


# An error line is cut in the middle past this length, keeping its end (the fix).
MAX_LINE = 1000


def one_line(message: str) -> str:
    """An error as the command line prints it: echoed values cut, one line, at most MAX_LINE
    characters."""
    text = " ".join(cut_quoted(message).splitlines())
    return text if len(text) <= MAX_LINE else text[: MAX_LINE * 2 // 3] + " ... " + text[-MAX_LINE // 3:]


@contextmanager
def named_after(source: str | Path | None) -> Iterator[None]:
    """Prefix a config or grid error raised inside with ``source`` (the config's path), as the
    schema's own errors are; the error's class, and so the exit code, stays. ``None``: as is."""
    try:
        yield
    except (ConfigError, GridError) as error:
        if source is None:
            raise
        raise type(error)(f"{source}: {error}") from None
