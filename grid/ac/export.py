"""A case with a data-center allocation as a pandapower net, for a planner to rerun the AC check
in their own tools (``pandapower.from_json`` then ``pandapower.runpp``).

The net is the AC check's own model of the case (grid/ac/case_model.py) at the state the check
solves for the case's own loads with the allocation drawn in full
(docs/models/ac-check.md#eq-a-6 to #eq-a-8): each bus's background load as the load "case load
<bus>", each new load as its own load "new load <bus>" at the check's power factor, and the
units' outputs following the change in total load as the check schedules them; the reference
unit balances the rest. Run it as the check does: ``pp.runpp(net, algorithm="nr",
calculate_voltage_angles=True, trafo_model="pi", enforce_q_lims=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from grid.ac.case_model import ac_case, quiet_pandapower
from grid.ac.check import (
    AcSettings,
    BackgroundStates,
    allocation_vector,
    background_loads,
    schedule_state,
)
from grid.network.cases import CaseOptions


def allocation_net(case: str | Path, allocation_mw: Mapping[int, float], settings: AcSettings = AcSettings(), *,
                   options: CaseOptions | None = None) -> Any:
    """The pandapower net of ``case`` at its own loads with ``allocation_mw`` (MW per bus) added.

    ``case`` and ``options`` as for :func:`grid.ac.check.check_allocation`; bad input is a
    one-line GridError.
    """
    import pandapower as pp

    model = ac_case(case, options)
    added = allocation_vector(model, allocation_mw)
    p_background, q_background = background_loads(model, BackgroundStates.case_load())
    net = model.fresh_net()
    q_added = added * settings.tan_phi
    schedule_state(model, net, p_background[0] + added, q_background[0] + q_added)
    # The new load apart from the background, so that a planner sees it and can scale it.
    net.load.loc[model.load_index, "p_mw"] = p_background[0]
    net.load.loc[model.load_index, "q_mvar"] = q_background[0]
    net.load.loc[model.load_index, "name"] = [f"case load {bus}" for bus in model.buses.tolist()]
    where = np.flatnonzero(added > 0)
    with quiet_pandapower():
        for i in where.tolist():
            pp.create_load(net, int(model.buses[i]), p_mw=float(added[i]), q_mvar=float(q_added[i]),
                           name=f"new load {int(model.buses[i])}")
    net.name = (f"{model.name}: case loads with {float(added.sum()):.6g} MW of new load at {where.size} buses, "
                f"power factor {settings.power_factor:g} lagging (dcmarket AC check state)")
    return net


def allocation_json(case: str | Path, allocation_mw: Mapping[int, float], settings: AcSettings = AcSettings(), *,
                    options: CaseOptions | None = None) -> str:
    """:func:`allocation_net` as pandapower's JSON text (``pandapower.to_json``)."""
    import pandapower as pp

    net = allocation_net(case, allocation_mw, settings, options=options)
    with quiet_pandapower():
        return pp.to_json(net)
