"""The flexible-capacity plan: module data, demand shocks, the two-stage mean-CVaR MILP and its risk measures."""
