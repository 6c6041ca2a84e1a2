"""Solving Pyomo models: solver names, the solve call with its checks, and KKT rows of convex QPs."""
