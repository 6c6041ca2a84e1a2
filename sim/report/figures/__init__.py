"""Figures (PNG, matplotlib): capacity maps, price paths, plan and price figures, sweep plots."""
