"""Market mechanisms: products, the simultaneous ascending auction, equilibrium and welfare checks.

Pure Python: nothing here imports Mesa or builds grid models, so tests can drive it alone.
"""
