"""The config error, in a module of its own so that the command line can catch it without
importing the config schema (pydantic, Pyomo, Mesa); and how errors come to name their config."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from grid.errors import GridError


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the field and the fix."""


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
