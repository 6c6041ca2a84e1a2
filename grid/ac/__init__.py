"""AC checks of what the DC capacity study allocates: an AC power flow (pandapower,
Newton-Raphson) of each background state with and without the new data-center load, with line
loadings in MVA, bus voltages and the violations each one causes (docs/models/ac-check.md)."""
