"""Errors that orchestration code raises, in words a user understands."""


class UserFacingError(Exception):
    """A permanent failure; the message is shown to the user as is."""


class TransientError(Exception):
    """A fault worth retrying (timeouts, 5xx, broker hiccups); the message is shown if retries run out."""
