"""rlm-engine: Recursive Language Models over contexts far larger than any model window.

Attributes are imported lazily so that ``import rlm_engine`` (and the REPL worker, which
lives inside this package) starts fast and has no import-time side effects.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlm_engine.engine.result import RunResult
    from rlm_engine.engine.rlm import RLM

__all__ = ["RLM", "RunResult", "__version__"]

# Kept equal to pyproject's version (a test checks): runs record it, and reading it here
# costs nothing where a package-metadata lookup takes tens of milliseconds.
__version__ = "0.1.0"

_LAZY = {
    "RLM": "rlm_engine.engine.rlm",
    "RunResult": "rlm_engine.engine.result",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rlm_engine' has no attribute {name!r}")
    return getattr(import_module(module), name)
