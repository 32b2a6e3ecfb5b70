"""Errors that orchestration code raises, in words a user understands."""


class UserFacingError(Exception):
    """A permanent failure; the message is shown to the user as is."""


class TransientError(Exception):
    """A fault worth retrying (timeouts, 5xx, broker hiccups); the message is shown if retries run out."""


class Wait(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Raised by a handler to be called again after ``seconds`` without holding a worker meanwhile.

    The operation stays running; its progress and message are kept.
    """

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message)
        self.seconds = seconds
        self.message = message


def portal_fault(reference: str) -> str:
    """What the user sees of a bug (never its traceback, never as an outage of an outside system); the
    same reference is in the log line that holds the traceback, so the operators can find it."""
    return f"Something went wrong on the portal's side (reference {reference}). It has been logged for the portal's operators."
