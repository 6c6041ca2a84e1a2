"""The round bookkeeping every multi-round engine shares: how many rounds ran, how many had
messages, and why the mechanism closed. An engine opens a round (refused once closed), resolves
it its own way, closes the round with what ended it, and builds its outcome from its allocation
and prices."""

from __future__ import annotations

from typing import ClassVar, Sequence

from mechanisms.errors import MechanismError
from mechanisms.mechanism import Outcome


class RoundBook:
    """A mixin of the engines' dataclasses. Its counters start from class-level defaults (plain
    attributes, not dataclass fields), so the engine's own fields keep their order."""

    kind: ClassVar[str]
    bidders: Sequence[str]
    # How the engine names itself in "... closed after round N", and what that refusal adds.
    called: ClassVar[str] = "the mechanism"
    closed_reason: ClassVar[str] = "no more rounds can run"
    _rounds_run: int = 0
    _rounds_with_bids: int = 0
    _closed_by: str | None = None

    @property
    def closed(self) -> bool:
        return self._closed_by is not None

    @property
    def rounds_run(self) -> int:
        return self._rounds_run

    def _open_round(self) -> int:
        """The number of the round about to run; a closed mechanism runs none."""
        if self.closed:
            raise MechanismError(f"{self.called} closed after round {self._rounds_run}; {self.closed_reason}")
        return self._rounds_run + 1

    def _close_round(self, number: int, *, had_messages: bool, closed_by: str | None = None) -> None:
        self._rounds_run = number
        if had_messages:
            self._rounds_with_bids += 1
        if closed_by is not None:
            self._closed_by = closed_by

    def _priced_outcome(self, allocation: dict[str, str | None], prices: dict[str, float]) -> Outcome:
        """Every winner pays the prices of what it won ("open" while the mechanism runs)."""
        return Outcome.priced(self.kind, self.bidders, allocation, prices, rounds_with_bids=self._rounds_with_bids,
                              rounds_run=self._rounds_run, closed_by=self._closed_by or "open")
