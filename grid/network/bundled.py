"""Data files shipped inside the package: the IEEE 33- and 37-bus feeders in grid/network/data."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def bundled_data(file_name: str) -> Path:
    """The path of a file in grid/network/data."""
    return Path(str(files("grid.network") / "data" / file_name))
