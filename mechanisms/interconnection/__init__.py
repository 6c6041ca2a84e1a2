"""Interconnection over time: allocation regimes that connect data-center requests cycle by cycle."""
