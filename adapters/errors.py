"""Errors an adapter raises so the router can tell a provider failure from a caller bug."""


class AdapterError(RuntimeError):
    """A provider failed (unreachable, bad answer, refused). Safe to fail over."""

    def __init__(self, message: str, *, outcome: str = "error") -> None:
        super().__init__(message)
        self.outcome = outcome  # ok | error | timeout | refusal | policy_violation


class AdapterUnavailable(AdapterError):
    """The adapter cannot run here at all (missing binary, missing model directory)."""
