"""The capacity LP in its solver's form: the programs (programs.py), their staged solve
(staged_solve.py) and the tie-break QP in capacity space (tie_break.py)."""
