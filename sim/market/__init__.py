"""The Mesa market model and its interactive view."""
