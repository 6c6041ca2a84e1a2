"""What a study returns: a typed result that holds its summary, its files and its report, writes
its directory, and reads its tables back as DataFrames.

Every study builds its summary.json in one place (its own module) and hands the result back;
the command line writes it (`write`), a notebook reads it (`tables`, the typed fields).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.output import files as outputs

if TYPE_CHECKING:  # pandas, the schema and the grid load only where a result is used
    import pandas as pd

    from grid.capacity.study import CapacityStudy
    from grid.capacity.verify import RiskCheck
    from mechanisms.mechanism import Outcome
    from mechanisms.products import Product
    from sim.config.schema import ExperimentConfig


@dataclass(frozen=True)
class StudyResult:
    """A study's outcome: summary.json as a dict, every file by its path in the directory, and
    the report printed on the terminal."""

    summary: dict[str, Any]
    files: dict[str, bytes]
    report: str

    def write(self, out: Path, *, force: bool = False) -> None:
        """Write the directory whole (under a temporary name, renamed when complete)."""
        outputs.write_run_directory(out, self.files, force=force)

    @property
    def tables(self) -> dict[str, "pd.DataFrame"]:
        """Every CSV file as a DataFrame, by its path without ``.csv`` ("rounds", "plan/plan")."""
        import pandas as pd

        tables = {name.removesuffix(".csv"): pd.read_csv(io.BytesIO(content))
                  for name, content in self.files.items() if name.endswith(".csv") and content.strip()}
        return {**tables, **self._derived_tables(tables)}

    def _derived_tables(self, tables: dict[str, "pd.DataFrame"]) -> dict[str, "pd.DataFrame"]:
        """Tables a study adds to its files' (none by default)."""
        return {}

    def table(self, name: str) -> "pd.DataFrame":
        """One table by name ("products", "rounds", "capacity", ...); a KeyError lists the names."""
        tables = self.tables
        if name not in tables:
            raise KeyError(f"no table {name!r}; this result has {', '.join(sorted(tables)) or 'none'}")
        return tables[name]


@dataclass(frozen=True, kw_only=True)
class AuctionResult(StudyResult):
    """`dcmarket run`: the auction's outcome and products, the capacity study behind them (None
    for listed products), and the results of the studies run after it, by table name."""

    config: "ExperimentConfig" = field(repr=False)
    outcome: "Outcome"
    products: "tuple[Product, ...]"
    capacity: "CapacityStudy | None" = field(repr=False)
    after: dict[str, StudyResult] = field(default_factory=dict)

    def _derived_tables(self, tables: dict[str, "pd.DataFrame"]) -> dict[str, "pd.DataFrame"]:
        """``price_paths``: each product's standing price (column) after each round (row), the
        rounds table pivoted; ``allocation``: each product with its winner (None: unsold) and
        price; ``payments``: each bidder's products, value, payment and surplus ($)."""
        import pandas as pd

        ids = [p.id for p in self.products]
        rounds = tables.get("rounds", pd.DataFrame(columns=["round", "product", "standing_price"]))
        paths = rounds.pivot(index="round", columns="product", values="standing_price").reindex(columns=ids)
        allocation = pd.DataFrame(
            [{"product": p.id, "bus": p.bus, "risk": p.risk, "capacity_mw": p.capacity_mw,
              "winner": self.outcome.allocation[p.id], "price": self.outcome.prices[p.id]} for p in self.products],
            columns=["product", "bus", "risk", "capacity_mw", "winner", "price"])
        bundles = self.outcome.bundles()
        payments = pd.DataFrame(
            [{"bidder": bidder, "products": " ".join(bundles[bidder]), "value": self.summary["values"][bidder],
              "payment": paid, "surplus": self.summary["surplus"][bidder]} for bidder, paid in self.outcome.payments.items()],
            columns=["bidder", "products", "value", "payment", "surplus"])
        return {"price_paths": paths, "allocation": allocation, "payments": payments}


@dataclass(frozen=True, kw_only=True)
class CapacityResult(StudyResult):
    """`dcmarket capacity`: the capacity study, its products and the out-of-sample risk check."""

    config: "ExperimentConfig" = field(repr=False)
    study: "CapacityStudy" = field(repr=False)
    products: "tuple[Product, ...]"
    withheld: "tuple[Product, ...]"
    checks: "tuple[RiskCheck, ...] | None"  # None: skipped (--verify 0)
