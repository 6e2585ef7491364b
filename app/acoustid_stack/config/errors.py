"""The one error configuration loading raises."""

from acoustid_stack.errors import UserError


class ConfigError(UserError):
    """Invalid configuration; the message names the key and the source it came from."""
