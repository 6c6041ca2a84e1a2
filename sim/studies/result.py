"""What a study run returns: its effective config, its summary, its files and its printed report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.config.schema import ExperimentConfig


@dataclass(frozen=True)
class RunResult:
    config: ExperimentConfig
    summary: dict[str, Any]
    files: dict[str, bytes]  # relative path -> content, written together by the caller
    report: str
