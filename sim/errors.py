"""The user-facing errors, in a module of their own so that the command line can catch them
without importing the config schema (pydantic, Pyomo, Mesa); and how errors come to name their
config."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from agents.errors import AgentConfigError
from grid.errors import GridError
from mechanisms.errors import MechanismError


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the field and the fix."""


class OutputError(ValueError):
    """The run directory cannot be written or read; the message names the path and the fix."""


# Errors that come from the user's input or environment: one line, no traceback.
USER_ERRORS = (ConfigError, GridError, MechanismError, AgentConfigError, OutputError)


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
