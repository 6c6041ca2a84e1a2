"""The base of every config table: mechanisms' rules, profiles' fields and the experiment config.

One policy for all of them, so that a field reads the same wherever it is declared: strict types
(`increment = "5"` is an error, not a conversion; ints are still accepted as floats), no
infinities or NaN, frozen values, and an unknown key is an error that suggests the closest field.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Money in $ above this is a typo, and its sums would overflow the welfare checks.
MAX_MONEY = 1e12
# A money amount as a config field (sign rules belong to whoever reads it: a valuation's builder
# says "valuations must be >= 0", which is clearer than a bound on the type).
Money = Annotated[float, Field(le=MAX_MONEY)]
# The other physical ceilings of a config (docs/reference/config-notes.md#ceilings): past them a
# value is a typo, and what is computed from it overflows or never ends.
MAX_MW = 1e6  # MW at one bus, in one product, line, generator, module or site: a terawatt
MW = Annotated[float, Field(le=MAX_MW)]
SignedMW = Annotated[float, Field(ge=-MAX_MW, le=MAX_MW)]  # a net withdrawal (negative: injection)
MAX_ROUNDS = 1_000_000  # rounds of an auction, and the counts that are kept per round
MAX_COUNT = 1_000_000  # any other count: sites a bidder takes, products it keeps, units of a module
MAX_SEED = 2**63 - 1  # a seed is a column of a sweep's table (64-bit integers)
MAX_SECONDS = 1e6  # a solver's time limit: about 11.6 days


def first_error(error: ValidationError) -> str:
    """The first problem of a validation error as one line: ``field[0].key: what is wrong``."""
    first = error.errors()[0]
    path = ""
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = str(first["msg"]).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    return f"{path}: {message}" if path else message


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, allow_inf_nan=False)
    # Internal field name -> the name users write, for hints (e.g. lam -> lambda in [plan]).
    field_aliases: ClassVar[Mapping[str, str]] = {}
    def as_run(self) -> "Settings":
        """These settings with every default the run will use written out (for the effective
        config); most tables have nothing to add."""
        return self

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_fields(cls, data: Any) -> Any:
        # Typos must not pass silently as defaults; suggest the closest field name.
        if isinstance(data, Mapping):
            for key in data:
                if key not in cls.model_fields:
                    raise ValueError(cls.unknown_field_message(str(key)))
        return data

    @classmethod
    def unknown_field_message(cls, key: str) -> str:
        allowed = list(dict.fromkeys(cls.field_aliases.get(f, f) for f in cls.model_fields))
        if not allowed:
            return f"unknown field {key!r}; this table takes no fields"
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed fields: {', '.join(allowed)}"
        return f"unknown field {key!r}; {hint}"
