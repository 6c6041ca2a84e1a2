"""`dcmarket view CONFIG`: the Mesa model in Mesa's own visualisation (SolaraViz).

The page shows the auction as the model plays it (sim/market/viz.py: one round per step of Mesa's
controls), then, when the config has a ``[price]`` table, the aggregator's operating day: once
the auction has closed, the price study the run would chain (docs/studies/price.md) on the sites
the aggregator's members won, one period at a time, with buttons to the next and the previous
(Mesa's Step stops with the auction): the substation's price and, per case, the payment, the
lowest site voltage and the load by site. The study runs once, when the auction closes.

`dcmarket view` checks the config, then serves this module with Solara; the config's path reaches
it through the environment (sim.market.view_env.VIEW_CONFIG_ENV), since Solara imports the module
itself. The page is built here, above sim/market and sim/studies, because it needs both.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import solara
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter

from sim.config.schema import load_config
from sim.market.model import MarketModel
from sim.market.view_env import VIEW_CONFIG_ENV
from sim.market.viz import Standings, html_table

_PRICED = "_dcmarket_priced_day"   # where the model keeps the price study's summary once it has run


def hour_rows(priced: Mapping[str, Any], k: int) -> tuple[str, list[tuple[str, ...]]]:
    """The heading and the rows of period ``k`` (0 first) of a price study's summary: per case
    the payment ($/h), the lowest site voltage (p.u.) and the load by site (kW)."""
    periods = priced["periods"]
    period = periods[k]
    heading = (f"Hour {k + 1} of {len(periods)}: {period['period']}, substation "
               f"{period['substation_price_usd_per_mwh']:.2f} $/MWh")
    rows = []
    for case, entry in period["cases"].items():
        title = priced["cases"][case]["title"]
        if not entry["feasible"]:
            rows.append((title, "infeasible", "-", "-"))
            continue
        rows.append((title, f"{entry['payment_usd_per_h']:,.2f}", f"{entry['min_site_voltage_pu']['value']:.4f}",
                     ", ".join(f"{bus}: {kw:g} kW" for bus, kw in entry["load_kw"].items())))
    return heading, rows


def _priced_day(model: MarketModel, path: Path) -> Mapping[str, Any] | str:
    """The price study on the sites the auction sold to the aggregator (once per model), or why
    there is none."""
    kept = model.__dict__.get(_PRICED)
    if kept is None:
        from grid.errors import GridError
        from sim.errors import ConfigError
        from sim.studies.auction import build_summary
        from sim.studies.price.study import AFTER_AUCTION

        try:
            _, priced = AFTER_AUCTION.run(model, build_summary(model), model.config, path, None, lambda _: None)
            kept = priced.summary
        except (ConfigError, GridError) as error:   # e.g. the aggregator won nothing
            kept = str(error)
        model.__dict__[_PRICED] = kept
    return kept


def operating_day(path: Path) -> Callable[[MarketModel], None]:
    """The component of the aggregator's day after the auction, for the config at ``path``: the
    hour shown and buttons to the next and the previous (Mesa's own Step stops with the auction)."""

    @solara.component
    def OperatingDay(model: MarketModel) -> None:
        update_counter.get()  # re-render after every step
        hour, set_hour = solara.use_state(0)
        if model.config.price is None:
            return
        if model.running:
            solara.HTML(tag="div", unsafe_innerHTML="<h3>After the auction</h3><p>Once the auction closes, the "
                        "aggregator's day on the sites its members won plays here, hour by hour.</p>")
            return
        priced = _priced_day(model, path)
        if isinstance(priced, str):
            solara.HTML(tag="div", unsafe_innerHTML=f"<h3>After the auction</h3><p>{html.escape(priced)}</p>")
            return
        last = len(priced["periods"]) - 1
        k = min(hour, last)
        heading, rows = hour_rows(priced, k)
        with solara.Column():
            solara.HTML(tag="div", unsafe_innerHTML=(
                f"<h2>{html.escape(heading)}</h2>"
                + html_table(["case", "payment ($/h)", "lowest site V (p.u.)", "load by site"], rows)))
            with solara.Row():
                solara.Button("Previous hour", on_click=lambda: set_hour(max(k - 1, 0)), disabled=k == 0)
                solara.Button("Next hour", on_click=lambda: set_hour(min(k + 1, last)), disabled=k == last)

    return OperatingDay


def page_for(path: Path) -> Any:
    config = load_config(path)
    model = MarketModel(config, base_dir=path.parent)
    return SolaraViz(model, components=[(Standings, 0), (operating_day(path), 0)],
                     model_params={"config": config, "base_dir": path.parent}, name=f"dcmarket: {path.stem}")


page = page_for(Path(os.environ[VIEW_CONFIG_ENV])) if VIEW_CONFIG_ENV in os.environ else None
