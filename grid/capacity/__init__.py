"""Firm and flexible capacity per bus: candidates, shift factors, limits, the LPs, the staged solve, tie-breaking and the risk check."""
