"""Background load: scenario samplers and scenario files."""
