"""The argparse definitions of the ``rlm`` sub-commands, one module each.

These modules import nothing beyond the standard library and the light core of the
package, so building the parser (``rlm --help``, ``rlm models``) stays cheap. Each command's
handler is a `LazyHandler`: the implementation module is imported only when that command
runs, so ``rlm runs list`` never loads the SDKs and ``rlm models`` never loads the store.
"""

from __future__ import annotations

import argparse
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
