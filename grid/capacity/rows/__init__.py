"""The capacity model's rows: every finite limit with what the background does to it
(limits.py), the stand-alone capacity of one bus in closed form (standalone.py), the N-1
outage set screened pair by pair (outages.py) and the passes over every line of a network too
large to hold its rows (line_passes.py)."""
