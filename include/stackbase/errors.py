"""Errors that say whether trying again can help (standard library only)."""

from __future__ import annotations


class DeterministicError(Exception):
    """Bad input or configuration: the same call fails the same way until a person changes
    something, so it fails at once instead of being retried (an Airflow task fails without
    its retries, a command exits with the message)."""


class NotPreparedError(DeterministicError, LookupError):
    """A stage asked for a dataset version that prepare has not split yet: retrying cannot help
    until prepare runs (which then triggers the stage through its Asset)."""
