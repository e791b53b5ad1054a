"""What a run records about itself beyond its settings: the engine and settings shape that
made it (checked before a resume or replay), and why it failed (which decides whether a
resume may go on with it)."""

from __future__ import annotations

from functools import cache
from typing import get_args

from rlm_engine.errors import ConfigurationError, ErrorCause, ProviderErrorKind
from rlm_engine.store.records import Run
from rlm_engine.store.run_rules import FailureKind

SETTINGS_VERSION = 1
"""The shape of the settings a run stores (`RunSpec.to_json`, read by `RunSpec.from_json`).
Bump it when a key is renamed or removed or its meaning changes, and keep reading the older
shapes listed in `READABLE_SETTINGS_VERSIONS`; adding a key read with a default needs none.
Runs recorded before versions were kept have shape 1."""
READABLE_SETTINGS_VERSIONS = frozenset({1})

_PROVIDER_KINDS: dict[str, ProviderErrorKind] = {k: k for k in get_args(ProviderErrorKind)}


@cache
def engine_version() -> str:
    """This engine's version."""
    from rlm_engine import __version__

    return __version__


def check_recorded(run: Run, doing: str) -> str | None:
    """Refuse a run whose settings shape this engine cannot read; before `doing`
    ("resume", "replay") a run another engine version recorded, return the warning to
    show (None when this version recorded it)."""
    shape = 1 if run.settings_version is None else run.settings_version
    if shape not in READABLE_SETTINGS_VERSIONS:
        raise ConfigurationError(
            f"run {run.run_id} stores its settings in shape {shape}, which rlm-engine "
            f"{engine_version()} cannot read (it reads shape "
            f"{', '.join(map(str, sorted(READABLE_SETTINGS_VERSIONS)))})",
            hint=f"{doing} it with the rlm-engine version that recorded it "
            f"({run.engine_version or 'a newer one'})",
        )
    mine = engine_version()
    if run.engine_version == mine:
        return None
    recorded = run.engine_version or "a version that was not recorded"
    return (
        f"run {run.run_id} was recorded by rlm-engine {recorded}; this is "
        f"{mine}. Its journaled model calls and cells are reused as recorded, but this engine "
        f"may build different requests or run cells differently, so the {doing} may diverge "
        "(the run then stays as it was, and the recording engine can continue it)"
    )


@cache
def _names_under(base: type[BaseException]) -> frozenset[str]:
    names = {base.__name__}
    for sub in base.__subclasses__():
        names |= _names_under(sub)
    return frozenset(names)


def failure_kind(cause: ErrorCause | None) -> FailureKind:
    """The kind of failure an error stop's cause names (its class, a provider's kind)."""
    from rlm_engine.engine.journal import NondeterminismError
    from rlm_engine.engine.journal_store import ReplayExhausted
    from rlm_engine.errors import ContextError, ProviderError, RunInterrupted, SandboxError
    from rlm_engine.store.errors import StoreError

    if cause is None:
        return "unknown"
    kinds: list[tuple[type[BaseException], FailureKind]] = [
        (NondeterminismError, "divergence"),
        (ReplayExhausted, "divergence"),
        (StoreError, "store"),
        (SandboxError, "sandbox"),
        (ContextError, "context"),
        (RunInterrupted, "interrupted"),
    ]
    if cause.type in _names_under(ProviderError) and cause.kind in _PROVIDER_KINDS:
        return _PROVIDER_KINDS[cause.kind]
    for base, kind in kinds:
        if cause.type in _names_under(base):
            return kind
    return "unknown"
