"""The config error, in a module of its own so that the command line can catch it without
importing the config schema (pydantic, Pyomo, Mesa)."""


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the field and the fix."""
