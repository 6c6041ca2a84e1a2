"""The Mesa market model, experiment configs, the CLI and run outputs."""
