"""Interconnection over time: the Mesa model that runs an allocation regime cycle by cycle."""
