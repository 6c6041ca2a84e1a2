"""What a capacity study tells a reader: per-bus tables, blocked limits, theory checks, risk check.

One place formats the study for `dcmarket run` and `dcmarket capacity`, for the terminal and for
the run directory (summary.json, capacity.csv, risk_check.csv).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from agents.capacity_products import tier_labels
from grid.capacity.inputs.criteria import DRAW_SETS, OUTAGE_SETS
from grid.capacity.study import BlockedLimit, CapacityStudy
from grid.capacity.verify import RiskCheck
from sim.report.text import format_table, mw, probability

# Past this many rows the terminal shows the head of a table and points at the CSV.
TERMINAL_ROWS = 30


def _background_text(cap: dict) -> str:
    """What firm capacity holds against, for the headline (the paper's box says nothing)."""
    if cap.get("background") == "peak":
        return "; firm capacity at the forecast peak"
    if cap.get("firm_budget") is not None:
        return f"; firm capacity against {cap['firm_budget']:g} loads at their bounds"
    return ""


def tier_names(study: CapacityStudy) -> list[str]:
    """Column stems per tier: 'flexible' with one risk level, 'flexible_5%' etc. with several."""
    labels = tier_labels([t.risk for t in study.tiers])
    return ["flexible" if label is None else f"flexible_{label}" for label in labels]


def capacity_columns(study: CapacityStudy) -> list[str]:
    columns = ["bus", "demand_mw", "firm_mw", "firm_limited_by"]
    for name in tier_names(study):
        suffix = name[len("flexible"):]
        columns += [f"{name}_mw", f"increment{suffix}_mw", f"{name}_limited_by"]
    names = ["firm", *tier_names(study)]
    columns += [f"standalone_{name}_mw" for name in names]
    if study.full_draw:
        columns += [f"full_draw_{name}_mw" for name in names]
    return columns


def capacity_rows(study: CapacityStudy) -> list[dict[str, Any]]:
    """One row per candidate bus: demand, firm and per-tier capacity (MW), and what limits each;
    then each model's stand-alone hosting capacity (empty: no limit binds it) and, when the draw
    set changed the allocation, the paper's full-draw capacity."""
    rows = []
    extras = _extra_columns(study)
    for k, (bus, demand) in enumerate(zip(study.candidates.buses, study.candidates.demand_mw)):
        firm = study.firm.capacity_mw[bus]
        row: dict[str, Any] = {"bus": bus, "demand_mw": float(demand), "firm_mw": firm,
                               "firm_limited_by": study.firm.limited_by[bus]}
        increments = study.increments_mw(bus)[1:]
        for name, tier, increment in zip(tier_names(study), study.tiers, increments):
            suffix = name[len("flexible"):]
            row[f"{name}_mw"] = tier.capacity_mw[bus]
            row[f"increment{suffix}_mw"] = increment
            row[f"{name}_limited_by"] = tier.limited_by[bus]
        for column, values in extras.items():
            row[column] = values[k]
        rows.append(row)
    return rows


def _extra_columns(study: CapacityStudy) -> dict[str, list[float | None]]:
    """standalone_<model>_mw per model, and full_draw_<model>_mw when the study has them."""
    names = ["firm", *tier_names(study)]
    columns: dict[str, list[float | None]] = {}
    for name, alone in zip(names, study.standalone):
        columns[f"standalone_{name}_mw"] = [_finite_or_none(float(v)) for v in alone.capacity_mw]
    for name, model in zip(names, study.full_draw):
        columns[f"full_draw_{name}_mw"] = [model.capacity_mw[bus] for bus in study.candidates.buses]
    return columns


def capacity_summary(study: CapacityStudy, scenarios: int) -> dict[str, Any]:
    """The `capacity` section of summary.json."""
    network = study.network
    models = [study.firm, *study.tiers]
    names = ["firm"] + [f"flexible {t.risk:g}" for t in study.tiers]
    theory = {
        name: {
            "radial": network.is_radial(),
            "max_total_mw": m.theory.max_total_mw,
            "minimiser_total_mw": list(m.theory.minimiser_total_mw),
            "holds": m.theory.holds,
        }
        for name, m in zip(names, models) if m.theory is not None
    }
    return {
        "case": network.name,
        "buses": len(network.buses),
        "lines": len(network.lines),
        "generators": len(network.generators),
        "radial": network.is_radial(),
        "slack": network.slack,
        "supply_limit_mw": _finite_or_none(network.supply_limit_mw()),
        "notes": list(network.notes),
        "scenarios": scenarios,
        "risk_levels": [t.risk for t in study.tiers],
        "risk_mode": study.risk_mode,
        "formulation": study.tiers[0].formulation if study.tiers else "robust",
        "touch_factor": study.touch_factor,
        "background": study.criteria.background,
        "firm_budget": study.criteria.budget,
        "draw": study.criteria.draw,
        "criterion": study.criteria.outages,
        "outages": None if study.outages is None else {
            "studied": int(study.outages.studied.size),
            "islanding": list(study.outages.islanding),
            "pairs": int(np.sum(study.limits.outage >= 0) // 2) if study.limits.outage is not None else 0,
            "emergency_factor": study.criteria.emergency_factor,
            "list": study.criteria.outage_source,
        },
        "per_bus": capacity_rows(study),
        "total_mw": {name: sum(m.capacity_mw.values()) for name, m in zip(names, models)},
        # The paper's model on the same inputs, when the partial draw set changed an allocation.
        "full_draw_total_mw": {name: sum(m.capacity_mw.values()) for name, m in zip(names, study.full_draw)} or None,
        "unserved_ratio": {name: m.unserved_ratio for name, m in zip(names, models)},
        "binding": {name: list(m.binding) for name, m in zip(names, models)},
        "blocked": {name: [{"limit": b.name, "limit_mw": b.limit_mw, "background_mw": b.background_mw,
                            "statistic": b.statistic, "buses": list(b.buses)} for b in m.blocked]
                    for name, m in zip(names, models) if m.blocked},
        "theory_checks": theory or None,
        "joint": [
            {"risk": tier.risk, "rounds": rounds, "per_constraint_mw": reference,
             "joint_mw": float(tier.vector(study.candidates).sum())}
            for tier, rounds, reference in zip(study.tiers, study.joint_rounds, study.per_constraint_mw)
        ] or None,
    }


def _finite_or_none(value: float) -> float | None:
    return value if value != float("inf") else None


def _head(rows: list, limit: int) -> tuple[list, str]:
    if len(rows) <= limit:
        return rows, ""
    return rows[:limit], f"\n... {len(rows) - limit} more rows"


def capacity_text(summary: Mapping[str, Any], *, rows_shown: int = TERMINAL_ROWS, csv_name: str = "capacity.csv") -> str:
    """The capacity section for the terminal: what was computed, the per-bus table, blocked
    limits and theory checks, in words."""
    cap = summary
    levels = ", ".join(probability(r) for r in cap["risk_levels"]) or "none"
    supply = "none" if cap["supply_limit_mw"] is None else f"{mw(cap['supply_limit_mw'])} MW"
    lines = [
        f"Capacity on '{cap['case']}' ({cap['buses']} buses, {cap['lines']} lines, "
        f"{'radial' if cap['radial'] else 'meshed'}; slack {cap['slack']}, supply limit {supply}); "
        f"{cap['scenarios']:,} scenarios; risk levels {levels} ({cap['risk_mode'].replace('_', '-')} mode, "
        f"{cap['formulation']} formulation"
        + _background_text(cap)
        + "):"
    ]
    for note in cap["notes"]:
        lines.append(f"  note: {note}")
    lines.append(_security_line(cap))
    stems = [c[: -len("_mw")] for c in _tier_value_columns(cap)]
    headers = (["bus", "demand (MW)", "firm (MW)"] + [f"{s.replace('_', ' ')} (MW)" for s in stems]
               + ["firm alone (MW)", "firm limited by"])
    if stems:
        headers.append(f"{stems[-1].replace('_', ' ')} limited by")
    table_rows = []
    for row in cap["per_bus"]:
        alone = row.get("standalone_firm_mw")
        cells = [row["bus"], mw(row["demand_mw"]), mw(row["firm_mw"])] + [mw(row[f"{s}_mw"]) for s in stems]
        cells += ["no limit" if alone is None else mw(alone), row["firm_limited_by"]]
        if stems:
            cells.append(row[f"{stems[-1]}_limited_by"])
        table_rows.append(cells)
    shown, more = _head(table_rows, rows_shown)
    right = [True] * (4 + len(stems)) + [False, False][: 1 + bool(stems)]
    lines.append(format_table(headers, shown, right) + (f"{more} (all in {csv_name})" if more else ""))
    totals = ", ".join(f"{name} {mw(value)} MW" for name, value in cap["total_mw"].items())
    lines.append(f"Total capacity: {totals}")
    if cap.get("full_draw_total_mw"):
        paper = ", ".join(f"{name} {mw(value)} MW" for name, value in cap["full_draw_total_mw"].items())
        lines.append(f"The paper's model (every product drawn in full) would allocate {paper}: the difference counted "
                     f"on other products' counterflow (per bus: full_draw_*_mw in {csv_name})")
    for name, blocked in (cap["blocked"] or {}).items():
        lines.append(f"Blocked limits ({name}): {len(blocked)} limit(s) broken by background load alone:")
        shown_blocked, more = _head(blocked, 10)
        for b in shown_blocked:
            limit = BlockedLimit(b["limit"], b["limit_mw"], b["background_mw"], b["statistic"], tuple(b["buses"]))
            lines.append(f"  {limit.describe(max_buses=12)}")
        if more:
            lines.append(f"  {more.strip()}")
    for tier in cap.get("joint") or []:
        cost = tier["per_constraint_mw"] - tier["joint_mw"]
        share = 100.0 * cost / tier["per_constraint_mw"] if tier["per_constraint_mw"] else 0.0
        lines.append(
            f"Joint risk, eps = {probability(tier['risk'])}: {mw(tier['joint_mw'])} MW against "
            f"{mw(tier['per_constraint_mw'])} MW with per-limit CVaR on the same floors (costs {mw(cost)} MW, "
            f"{share:.1f} %; {tier['rounds']} round(s))"
        )
    for name, check in (cap["theory_checks"] or {}).items():
        verdict = "holds" if check["holds"] else "does NOT hold"
        kind = "radial: Theorem 1 / Proposition 1 predict it" if check["radial"] else "meshed: no theorem covers it"
        low, high = check["minimiser_total_mw"]
        lines.append(
            f"Theory check ({name}; {kind}): every minimiser of the unserved ratio also maximises total "
            f"capacity: {verdict} (max total {mw(check['max_total_mw'])} MW; minimisers' totals "
            f"{mw(low)} to {mw(high)} MW)"
        )
    return "\n".join(lines)


def _security_line(cap: Mapping[str, Any]) -> str:
    """What the capacities hold against, in words."""
    draw = cap.get("draw", "full")
    against = DRAW_SETS.get(draw, draw)
    where = OUTAGE_SETS.get(cap.get("criterion", "n-0"), cap.get("criterion", "n-0"))
    line = (f"Capacities hold for {against}, in {where}; 'alone' is a bus's stand-alone hosting capacity "
            "(no other new load).")
    outages = cap.get("outages")
    if outages:
        islands = outages["islanding"]
        line += (f"\nN-1: {outages['studied']} outages studied from {outages.get('list', 'every branch')} "
                 f"({outages['pairs']} line-outage pairs near their emergency "
                 f"rating became rows); {len(islands)} would island the network and are listed, not studied"
                 + (f": {', '.join(islands[:10])}{' ...' if len(islands) > 10 else ''}" if islands else ""))
    return line


def _tier_value_columns(summary: Mapping[str, Any]) -> list[str]:
    first = summary["per_bus"][0] if summary["per_bus"] else {}
    return [k for k in first if k.startswith("flexible") and k.endswith("_mw")]


RISK_COLUMNS = ("product", "bus", "promised_risk", "capacity_mw", "scenarios", "interruptions",
                "realised_probability", "ci95_low", "ci95_high", "expected_interrupted_mwh", "verdict")


def risk_text(checks: Sequence[RiskCheck], mode: str, *, sample: str = "fresh",
              rows_shown: int = TERMINAL_ROWS) -> str:
    """The risk-check table: promised against realised interruption probability, on fresh
    scenarios or (a scenario file) in sample."""
    if not checks:
        return "Risk check: no products to check"
    count = checks[0].scenarios
    rows = []
    for c in checks:
        low, high = c.interval
        rows.append((c.product, probability(c.promised_risk), mw(c.capacity_mw), probability(c.realised_probability),
                     f"[{probability(low)}, {probability(high)}]", mw(c.expected_interrupted_mwh), c.verdict))
    flexible = [c for c in checks if c.promised_risk > 0]
    exceed = [c for c in flexible if c.verdict == "exceeds"]
    # Firm products promise no interruption: the headline counts every one that had any.
    firm = [c for c in checks if c.promised_risk == 0]
    firm_hit = [c for c in firm if c.interruptions > 0]
    # The table leads with the products that break their promise, then the riskiest.
    order = sorted(range(len(rows)), key=lambda i: (checks[i].verdict != "exceeds", -checks[i].realised_probability))
    shown, more = _head([rows[i] for i in order], rows_shown)
    headers = ["product", "promised eps", "MW", "realised P", "95% interval", "E[interrupted] (MWh/h)", "verdict"]
    summary = (
        (f"Risk check on {count:,} fresh scenarios " if sample == "fresh" else
         f"Risk check IN SAMPLE, on the file's own {count:,} scenarios (none fresh to draw; "
         "this shows the excess on the data, not out-of-sample risk) ")
        + f"({mode.replace('_', '-')} mode): "
        f"{len(exceed)} of {len(flexible)} flexible products exceed their promised risk beyond sampling error; "
        f"{len(firm_hit)} of {len(firm)} firm products interrupted in some scenario"
    )
    if exceed and mode == "per_constraint":
        summary += " (per-limit CVaR does not bound the union of the limits a bus touches; risk_mode = 'joint' does)"
    return summary + ":\n" + format_table(headers, shown, [False, True, True, True, False, True, False]) + (
        f"{more} (all in risk_check.csv)" if more else "")
