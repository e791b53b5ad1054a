"""The description of a context, computed on the host exactly as the worker computes it.

The root's first prompt carries the context's shape (``ContextMeta``). Computing it here,
with the worker's own loader on the same staged files, lets the engine send that prompt
while the worker is still starting; the worker's ``load_context`` later returns the same
value. The body is read (or mapped) in this process once and dropped.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, cast

from rlm_engine.sandbox.base import ContextMeta, ContextValue
from rlm_engine.sandbox.context import StagingPolicy, read_options, stage_context
from rlm_engine.sandbox.host_protocol import parse_context_meta
from rlm_engine.sandbox.worker_context import ContextLoadError, load_context

LAZY_CONTEXT_BYTES = 64 * 1024 * 1024
"""Text contexts at least this large are memory-mapped rather than read into a str."""


def describe_context(
    value: ContextValue, *, lazy_over_bytes: int = LAZY_CONTEXT_BYTES, under: Path | None = None
) -> ContextMeta:
    """What ``LocalSandbox.load_context(value)`` returns, without a worker (blocking).

    Stages ``value`` into a scratch directory under ``under`` (hard links where possible,
    as for the sandbox) and runs the worker's loader on it. Raises ``ContextError`` as
    ``load_context`` would for a missing path or a value that cannot be a context.
    """
    from rlm_engine.errors import ContextError
    from rlm_engine.integrations.table_context import table_sources_of, table_spec

    tables = table_sources_of(value)
    with tempfile.TemporaryDirectory(prefix="rlm-context-meta-", dir=under) as scratch:
        # Tables are described from their files in place: nothing is staged.
        spec = table_spec(tables) if tables is not None else _file_spec(value, lazy_over_bytes)
        if spec is None:
            spec = stage_context(
                value,
                Path(scratch) / "context",
                policy=StagingPolicy(),
                lazy_over_bytes=lazy_over_bytes,
            )
        try:
            _, meta = load_context(spec)
        except ContextLoadError as exc:
            raise ContextError(f"the context could not be loaded: {exc}") from None
        return parse_context_meta(meta)


def _file_spec(value: ContextValue, lazy_over_bytes: int) -> dict[str, Any] | None:
    """The spec staging would give a single regular file, naming the file itself: read in
    place, it needs no link or copy (a copy where the scratch directory is on another
    file system). ``None`` for anything else."""
    if not isinstance(value, os.PathLike):
        return None
    path = Path(cast(os.PathLike[str], value))
    if not path.is_file():
        return None
    kind = "json" if path.suffix.lower() == ".json" else "text"
    spec: dict[str, Any] = {"kind": kind, "path": str(path), "files": 1} | read_options(value)
    lazy = spec["kind"] == "text" and "encoding" not in spec  # a mapped text is UTF-8
    if lazy and lazy_over_bytes > 0 and path.stat().st_size >= lazy_over_bytes:
        spec["lazy"] = True
    return spec
