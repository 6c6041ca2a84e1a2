"""How `dcmarket view` hands the config to the page that Solara serves (sim/view.py): Solara
imports that module itself, so the path travels in the environment. A module of its own, so that
the command line sets it without importing Solara."""

VIEW_CONFIG_ENV = "DCMARKET_VIEW_CONFIG"
