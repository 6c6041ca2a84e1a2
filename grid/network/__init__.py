"""Networks: the data object, built-in and file cases (MATPOWER, CSV), line ratings, map layout, the three-phase feeder data."""
