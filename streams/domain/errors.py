"""Exceptions of the domain. The CLI turns each into one readable line."""


class ClaimwatchError(Exception):
    """Base of every error a user can cause and should read as one line."""


class PolicyError(ClaimwatchError):
    """The policy file is missing, unreadable or holds an invalid value."""


class SchemaError(ClaimwatchError):
    """A JSON Schema shipped with claimwatch cannot be found or compiled."""


class InputError(ClaimwatchError):
    """An input file cannot be opened or read (missing, unreadable gzip, …)."""
