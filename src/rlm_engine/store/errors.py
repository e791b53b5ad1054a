"""Typed store errors. Each says what went wrong and what to do about it."""

from __future__ import annotations

from rlm_engine.errors import RLMError


class StoreError(RLMError):
    """The run store failed or was asked for something it cannot do."""

    cause_kind = "store"  # what `ErrorCause.of` records, as a provider error's kind


class StoreUnavailableError(StoreError):
    """The database could not be reached or opened; the message says how to fix that."""


class ConcurrencyError(StoreError):
    """An optimistic update lost a race: the row changed since it was read.

    Re-read the row and apply the change again.
    """

    def __init__(self, what: str, expected_version: int, actual_version: int) -> None:
        super().__init__(
            f"{what} was changed concurrently: expected version {expected_version}, "
            f"found {actual_version}; re-read it and retry"
        )
        self.expected_version = expected_version
        self.actual_version = actual_version


class NotFoundError(StoreError):
    """A run, session, cell or blob does not exist."""


class RunNotFoundError(NotFoundError):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")
        self.run_id = run_id


class SessionNotFoundError(NotFoundError):
    """No session has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no session named {name!r}")
        self.name = name


class BlobNotFoundError(NotFoundError):
    """No blob has this content hash."""


class RunNotResumableError(StoreError):
    """A run cannot be claimed for resume: it completed, failed for a reason a resume would
    meet again, or another process owns it. `hint` says what to do instead."""


class JournalConflictError(StoreError):
    """A journal write contradicts what is already recorded (e.g. restarting a finished cell)."""
