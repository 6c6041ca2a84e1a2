"""The config schema, its reading and overrides, and the tables of the plan, price and sweep studies."""
