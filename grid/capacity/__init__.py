"""Firm and flexible capacity per bus. The studies stand here (study.py, screened.py, firm.py,
flexible.py, headroom.py, verify.py); below them, from the ground up: matrices/ (shift factors,
sparse rows), inputs/ (candidates, security criteria, corrections), rows/ (limits, stand-alone
capacity, N-1 outages, line passes) and lp/ (the programs and their staged solve)."""
