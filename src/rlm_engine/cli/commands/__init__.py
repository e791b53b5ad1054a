"""The argparse definitions of the ``rlm`` sub-commands, one module each.

These modules import nothing beyond the standard library and the light core of the
package, so building the parser (``rlm --help``, ``rlm models``) stays cheap. Each command's
handler is a `LazyHandler`: the implementation module is imported only when that command
runs, so ``rlm runs list`` never loads the SDKs and ``rlm models`` never loads the store.
A command may `prefetch` on a thread a module it will need later, while it imports and
sets up the rest.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass
from importlib import import_module
from typing import cast


@dataclass(frozen=True, slots=True)
class LazyHandler:
    """A command's handler named ``"package.module:function"``, imported on first call."""

    target: str

    def __call__(self, args: argparse.Namespace) -> int:
        module, _, name = self.target.partition(":")
        function = getattr(import_module(module), name)
        return cast(int, function(args))


def handler(target: str) -> LazyHandler:
    """The handler ``set_defaults(handler=...)`` takes: ``"rlm_engine.cli.ask:run_ask"``."""
    if ":" not in target:
        raise ValueError(f"handler {target!r} is not 'module:function'")
    return LazyHandler(target)


def prefetch(*modules: str) -> threading.Thread:
    """Import ``modules`` on a thread, in order, and return it (already started).

    Imports take a lock per module, so the command's own import of the same module waits
    for this one and finds it done; what the thread gains is the part of an import that
    runs without the GIL (reading files, loading CA certificates into a TLS context) or
    while the main thread waits on I/O. A module that fails to import is skipped: the code
    that needs it imports it again and reports the error there. Not a daemon thread,
    so the interpreter never shuts down halfway through an import.
    """

    def run() -> None:
        for name in modules:
            try:
                import_module(name)
            except Exception:
                continue

    thread = threading.Thread(target=run, name="rlm-prefetch")
    thread.start()
    return thread
