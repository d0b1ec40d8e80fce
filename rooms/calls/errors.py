"""What a call refuses, and that it is over."""

from __future__ import annotations


class CallError(Exception):
    """A request the call refuses; `code` is the protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CallEnded(Exception):
    """The call has ended; nobody can join it any more."""
