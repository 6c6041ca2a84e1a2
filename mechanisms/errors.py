"""Errors raised by the mechanisms, each a one-line message that names the culprit and the fix."""


class MechanismError(ValueError):
    """Invalid input to a mechanism (unknown bidder or product, a bid below the minimum, ...)."""


class SizeLimitError(MechanismError):
    """An exact computation (bundle enumeration) was asked for more products than it allows."""
