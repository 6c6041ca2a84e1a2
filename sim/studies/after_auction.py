"""Studies that run after an auction on what it sold: `[plan]` (the DSO plans flexible capacity
modules for the sites that won flexible capacity) and `[price]` (the aggregator operates its sites
against the DSO's DLMPs). A run chains them in order; each is one entry declared by its study
module and listed in sim/studies/auction.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from sim.config.schema import ExperimentConfig
from sim.studies.result import StudyResult

Progress = Callable[[str], None]


class Market(Protocol):
    """What a follow-up study reads of the finished auction (sim.market.model.MarketModel)."""

    products: tuple
    dso: Any
    agents_by_type: Any


@dataclass(frozen=True)
class AfterAuction:
    table: str    # the config table that turns the study on
    folder: str   # its folder inside the run directory
    heading: str  # the line above its report in the run's report
    # Checks the table before the auction (a bad table fails in seconds, not after it) and returns
    # what the run step reuses.
    check: Callable[[ExperimentConfig, Path], Any]
    # (model, summary, config, config path, checked, progress) -> (summary section, the study's result)
    run: Callable[[Market, dict[str, Any], ExperimentConfig, Path, Any, Progress], tuple[dict[str, Any], StudyResult]]
