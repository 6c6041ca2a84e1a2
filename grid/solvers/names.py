"""The solvers dcmarket can use, by name: a module of its own so that the command line can list
them without importing Pyomo (grid/solvers/solve.py drives them)."""

SOLVERS: tuple[str, ...] = ("highs", "glpk")
