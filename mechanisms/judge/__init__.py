"""Judging an outcome: competitive-equilibrium checks, certificates, winner determination and welfare."""
