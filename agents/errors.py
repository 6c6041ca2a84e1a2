"""Errors raised while building agents from their configuration."""


class AgentConfigError(ValueError):
    """A valuation profile, strategy or tie policy is invalid; the message names the field and the fix."""
