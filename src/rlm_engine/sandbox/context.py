"""Host side of context loading: stage a context value into the sandbox's private
directory and describe it with a small spec that names files only.

Files are hard-linked when possible (instant, no extra disk) and copied otherwise (another
file system, or a link refused); in-memory values are written to a file. The worker then
reads from disk, which is an order of magnitude faster than sending the body through the
pipe. See ``worker_context`` for the other half.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PosixPath
from typing import Any, cast

from rlm_engine.errors import ContextError
from rlm_engine.sandbox.base import ContextValue

ContextSpec = dict[str, Any]

# Version-control internals are not part of what a user means by "this directory".
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn"})


@dataclass(frozen=True, slots=True)
class StagingPolicy:
    """``link``: hard links allowed (only where the worker cannot write through them:
    a read-only bind, or no isolation at all). ``shared``: the worker runs as another
    uid, so staged files must be readable by others; unreadable sources are copied."""

    link: bool = True
    shared: bool = False


class ContextFile(PosixPath):
    """A context path with how to read it: its text ``encoding`` (UTF-8 when None), or
    ``as_bytes`` for a binary file (the ``context`` is then ``bytes``; for a directory,
    ``Corpus.read_bytes`` reads its binary files). A `Path` everywhere else, so pinning
    and listing treat it as one; paths derived from it are plain."""

    encoding: str | None = None
    as_bytes: bool = False

    @classmethod
    def of(
        cls, path: str | os.PathLike[str], *, encoding: str | None = None, as_bytes: bool = False
    ) -> ContextFile:
        made = cls(path)
        made.encoding = encoding
        made.as_bytes = as_bytes
        return made


def read_options(value: object) -> dict[str, Any]:
    """The spec fields a `ContextFile` adds (none for a plain path)."""
    if not isinstance(value, ContextFile):
        return {}
    if value.as_bytes and not value.is_dir():
        return {"kind": "bytes"}
    return {} if value.encoding is None else {"encoding": value.encoding}


def item_encoding(value: object) -> str | None:
    """One file of a list context: ``"bytes"``, its encoding, or None for UTF-8."""
    options = read_options(value)
    return "bytes" if options.get("kind") == "bytes" else options.get("encoding")


_DEFAULT_POLICY = StagingPolicy()
# Staging runs in a worker thread; a context variable keeps the policy out of every helper.
_POLICY: ContextVar[StagingPolicy | None] = ContextVar("staging_policy", default=None)


def _policy() -> StagingPolicy:
    return _POLICY.get() or _DEFAULT_POLICY


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if _policy().shared:
        path.chmod(0o755)


def _link_or_copy(source: Path, target: Path) -> None:
    policy = _policy()
    _mkdir(target.parent)
    readable = not policy.shared or bool(source.stat().st_mode & stat.S_IROTH)
    if policy.link and readable:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copyfile(source, target)  # sendfile: no copy through this process's memory
    if policy.shared:
        target.chmod(0o644)


def _existing(path: Path) -> Path:
    if not path.exists():
        raise ContextError(f"context path {str(path)!r} does not exist")
    return path


def _stage_tree(source: Path, target: Path) -> int:
    """Mirror the regular files under ``source`` into ``target``; returns the count.
    Symlinks to files are followed; symlinked directories are not (they could loop)."""
    count = 0
    for folder, dirs, names in os.walk(source):
        dirs[:] = sorted(name for name in dirs if name not in SKIPPED_DIRS)
        relative = Path(folder).relative_to(source)
        for name in names:
            path = Path(folder) / name
            if not path.is_file():  # dangling links, sockets, FIFOs (reading one would hang)
                continue
            _link_or_copy(path.resolve(), target / relative / name)
            count += 1
    _mkdir(target)
    return count


def _stage_file(source: Path, target_dir: Path, index: int | None = None) -> Path:
    name = source.name if index is None else f"{index:05d}-{source.name}"
    target = target_dir / name
    _link_or_copy(source, target)
    return target


def _write_text(target: Path, text: str) -> Path:
    _mkdir(target.parent)
    with target.open("w", encoding="utf-8", errors="surrogatepass", newline="") as handle:
        handle.write(text)
    if _policy().shared:
        target.chmod(0o644)
    return target


def _write_json(target: Path, value: object) -> Path:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ContextError(f"a mapping or list context must be JSON-serialisable: {exc}") from None
    return _write_text(target, text)


def _stage_path(path: Path, target_dir: Path, options: dict[str, Any]) -> ContextSpec:
    source = _existing(path)
    if source.is_dir():
        root = target_dir / (source.name or "corpus")
        spec = {"kind": "corpus", "root": str(root), "files": _stage_tree(source, root)}
        return spec | options
    if not source.is_file():
        raise ContextError(f"context path {str(path)!r} is neither a file nor a directory")
    staged = _stage_file(source, target_dir)
    kind = "json" if source.suffix.lower() == ".json" else "text"
    return {"kind": kind, "path": str(staged), "files": 1} | options


def _stage_sequence(items: Sequence[object], target_dir: Path) -> ContextSpec:
    if all(isinstance(item, str) for item in items):
        # One JSON file for many strings: thousands of tiny files would be slow.
        return {"kind": "json", "path": str(_write_json(target_dir / "context.json", items))}
    paths: list[str] = []
    encodings: list[str | None] = []
    files = 0
    for index, item in enumerate(items):
        encodings.append(item_encoding(item))
        if isinstance(item, str):
            paths.append(str(_write_text(target_dir / f"{index:05d}.txt", item)))
        elif isinstance(item, os.PathLike):
            source = _existing(Path(cast(os.PathLike[str], item)))
            if not source.is_file():
                raise ContextError(
                    f"a list context may hold files only; {str(source)!r} is not one"
                )
            paths.append(str(_stage_file(source, target_dir, index)))
            files += 1
        else:
            raise ContextError(
                f"a list context may hold str and paths only, not {type(item).__name__}"
            )
    spec: ContextSpec = {"kind": "texts", "paths": paths, "files": files}
    if any(encodings):
        spec["encodings"] = encodings
    return spec


def stage_context(
    value: ContextValue | object,
    target_dir: Path,
    *,
    policy: StagingPolicy | None = None,
    lazy_over_bytes: int = 0,
) -> ContextSpec:
    """Place ``value`` under ``target_dir`` (created here) and return the worker's spec.

    A single text file of at least ``lazy_over_bytes`` (when positive) is marked
    ``lazy``: the worker maps it instead of reading it, and it must stay staged.
    Raises ``ContextError`` for a missing path or a value that cannot be a context.
    """
    token = _POLICY.set(policy or StagingPolicy())
    try:
        spec = _stage(value, target_dir)
    finally:
        _POLICY.reset(token)
    if policy is not None and policy.shared:
        # Folders made on the way (``parents=True``) follow the host's umask.
        for folder, _, _ in os.walk(target_dir):
            os.chmod(folder, 0o755)
    kind = spec.get("kind")
    if (
        lazy_over_bytes > 0
        and kind == "text"
        and "encoding" not in spec  # a mapped text is read as UTF-8
        and os.path.getsize(spec["path"]) >= lazy_over_bytes
    ):
        spec["lazy"] = True
    return spec


def _stage_tables(value: ContextValue | object, target_dir: Path) -> ContextSpec | None:
    """A table context (a Delta table, Parquet/CSV/JSONL files or a directory of them):
    its resolved files staged like a corpus (they stay: DuckDB reads them on demand)."""
    from rlm_engine.integrations.table_context import table_sources_of, table_spec

    tables = table_sources_of(value)
    return None if tables is None else table_spec(tables, target_dir, _link_or_copy)


def _stage(value: ContextValue | object, target_dir: Path) -> ContextSpec:
    _mkdir(target_dir)
    tables = _stage_tables(value, target_dir)
    if tables is not None:
        return tables
    if value is None:
        return {"kind": "none"}
    if isinstance(value, str):
        return {"kind": "text", "path": str(_write_text(target_dir / "context.txt", value))}
    if isinstance(value, os.PathLike):
        options = read_options(cast(object, value))
        return _stage_path(Path(cast(os.PathLike[str], value)), target_dir, options)
    if isinstance(value, Mapping):
        mapping = dict(cast(Mapping[str, Any], value))
        return {"kind": "json", "path": str(_write_json(target_dir / "context.json", mapping))}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return _stage_sequence(cast(Sequence[object], value), target_dir)
    raise ContextError(
        f"unsupported context type {type(value).__name__}: use str, a Path, a list of them, "
        "a JSON-like mapping, or None"
    )
