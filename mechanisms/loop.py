"""The market loop, written once: post the state, collect every bidder's messages, run the round.

The Mesa model (sim/market/model.py), the test driver and the benchmarks all run mechanisms through
these two functions; only how messages are collected differs (Mesa agents activated in random
order, or plain strategy objects).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from mechanisms.mechanism import Mechanism, Outcome, RoundResult

# state -> the messages of every bidder for the round
Respond = Callable[[Any], Sequence[Any]]


def play_round(mechanism: Mechanism, respond: Respond) -> RoundResult:
    """One round: every bidder sees the same posted state (built once, not once per bidder)."""
    return mechanism.run_round(respond(mechanism.state()))


def run_to_close(mechanism: Mechanism, respond: Respond,
                 on_round: Callable[[RoundResult], None] = lambda _: None) -> Outcome:
    """Rounds until the mechanism closes; ``on_round`` sees each result (logs, progress)."""
    while not mechanism.closed:
        on_round(play_round(mechanism, respond))
    return mechanism.outcome()
