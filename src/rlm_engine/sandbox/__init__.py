"""REPL sandboxes. Public names are imported on first use, so the worker (which lives in
this package) and ``import rlm_engine.sandbox`` stay cheap."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlm_engine.sandbox.factory import LocalSandboxFactory, check_isolation, sandbox_factory
    from rlm_engine.sandbox.isolation import IsolationUnavailable
    from rlm_engine.sandbox.limits import Limits
    from rlm_engine.sandbox.local import LocalSandbox, local_sandbox_factory

_HOMES = {
    "LocalSandbox": "rlm_engine.sandbox.local",
    "local_sandbox_factory": "rlm_engine.sandbox.local",
    "sandbox_factory": "rlm_engine.sandbox.factory",
    "check_isolation": "rlm_engine.sandbox.factory",
    "LocalSandboxFactory": "rlm_engine.sandbox.factory",
    "IsolationUnavailable": "rlm_engine.sandbox.isolation",
    "Limits": "rlm_engine.sandbox.limits",
}
__all__ = [
    "IsolationUnavailable",
    "Limits",
    "LocalSandbox",
    "LocalSandboxFactory",
    "check_isolation",
    "local_sandbox_factory",
    "sandbox_factory",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'rlm_engine.sandbox' has no attribute {name!r}")
