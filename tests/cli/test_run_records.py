"""Failure kinds from a run's error cause, and the engine version a run records."""

from __future__ import annotations

import pytest

from rlm_engine.engine.journal import NondeterminismError
from rlm_engine.errors import (
    BudgetExceeded,
    ContextError,
    ErrorCause,
    ProviderError,
    SandboxDied,
)
from rlm_engine.service.run_records import engine_version, failure_kind
from rlm_engine.store.errors import StoreUnavailableError
from rlm_engine.store.run_rules import is_resumable


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ProviderError("down", kind="connection"), "connection"),
        (ProviderError("no", kind="bad_request"), "bad_request"),
        (NondeterminismError("replay diverged at r/0"), "divergence"),
        (StoreUnavailableError("disk full"), "store"),
        (SandboxDied("worker gone"), "sandbox"),
        (ContextError("gone"), "context"),
        (BudgetExceeded("cost", "spent"), "unknown"),
        (ValueError("boom"), "unknown"),
    ],
)
def test_the_kind_of_a_failure_comes_from_its_type(error: BaseException, kind: str) -> None:
    assert failure_kind(ErrorCause.of(error)) == kind


def test_a_failure_without_a_cause_is_of_unknown_kind_and_resumable() -> None:
    assert failure_kind(None) == "unknown"
    assert is_resumable("failed", "unknown") and is_resumable("failed", None)
    assert is_resumable("interrupted", None) and is_resumable("failed", "auth")
    assert not is_resumable("failed", "content_filter") and not is_resumable("completed", None)
    assert not is_resumable("running", None)


def test_the_engine_version_is_the_installed_one() -> None:
    from importlib.metadata import version

    assert engine_version() == version("rlm-engine")
