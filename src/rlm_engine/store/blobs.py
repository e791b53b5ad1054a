"""Content-addressed storage for large values (contexts, long outputs, long prompts).

A blob's reference is the sha256 hex digest of its bytes, so writing the same value twice
stores it once, and a reference can be checked against what it points to.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from rlm_engine.store.errors import BlobNotFoundError, StoreError
from rlm_engine.store.write_errors import store_write_error

_REF = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """The blob reference of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """The blob reference of `text` encoded as UTF-8."""
    return sha256_bytes(text.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A stored blob: its reference, size, and when it was last written or re-stored."""

    ref: str
    size: int
    touched_at: float


@runtime_checkable
class BlobStore(Protocol):
    """Immutable blobs addressed by the sha256 of their content. Thread- and process-safe."""

    def put(self, data: bytes, *, durable: bool = True) -> str:
        """Store `data` and return its reference (sha256 hex). Durable: on disk before
        this returns; otherwise it survives the process dying but maybe not the machine
        (for blobs the journal can do without, which readers then check against `ref`)."""
        ...

    def put_file(self, path: Path) -> str:
        """Store a file's content without reading it all into memory; return its reference."""
        ...

    def get(self, ref: str) -> bytes:
        """The content of `ref`; raises `BlobNotFoundError` if absent."""
        ...

    def open(self, ref: str) -> BinaryIO:
        """A binary file object for streaming a large blob; the caller closes it."""
        ...

    def exists(self, ref: str) -> bool:
        """Whether `ref` is stored."""
        ...

    def delete(self, ref: str) -> None:
        """Remove `ref` if present (used by garbage collection; blobs may be shared)."""
        ...

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob, in no particular order (for garbage collection)."""
        ...


def check_ref(ref: str) -> str:
    """Reject anything that is not a sha256 hex digest (it becomes part of a file path)."""
    if not _REF.match(ref):
        raise StoreError(f"not a blob reference (sha256 hex expected): {ref!r}")
    return ref


class LocalBlobStore(BlobStore):
    """Blobs as files under `root/ab/cd/<sha256>`, written atomically (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # Space set aside on the store's disk, given up when the disk is full so that how a
    # run ended can still be recorded (the run stays resumable either way).
    RESERVE_NAME = "reserve"
    RESERVE_BYTES = 256 * 1024

    def keep_reserve(self) -> None:
        """Set the reserve aside if it is not (best effort: a full or read-only disk keeps
        none, and the store works without it)."""
        reserve = self.root / self.RESERVE_NAME
        if reserve.exists():
            return
        tmp = self.root / f".tmp-{self.RESERVE_NAME}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as out:
                out.write(b"\0" * self.RESERVE_BYTES)
            tmp.replace(reserve)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def release_reserve(self) -> bool:
        """Give the reserve's space back to the disk; False if there was none."""
        try:
            (self.root / self.RESERVE_NAME).unlink()
        except OSError:
            return False
        return True

    def path(self, ref: str) -> Path:
        """Where the blob `ref` lives (whether or not it exists)."""
        check_ref(ref)
        return self.root / ref[:2] / ref[2:4] / ref

    def put(self, data: bytes, *, durable: bool = True) -> str:
        ref = sha256_bytes(data)
        if not self._touch(ref):
            self._write(ref, [data], durable=durable)
        return ref

    def _touch(self, ref: str) -> bool:
        """Mark an existing blob as just stored (so garbage collection's grace period
        covers its new user); False if it is not stored."""
        try:
            os.utime(self.path(ref))
        except FileNotFoundError:
            return False
        except PermissionError:
            pass  # another user's blob: it is stored, and collecting it is theirs to do
        return True

    def put_file(self, path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
        ref = digest.hexdigest()
        if not self._touch(ref):
            self._write(ref, _chunks(path))
        return ref

    def get(self, ref: str) -> bytes:
        try:
            return self.path(ref).read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {ref} is missing from {self.root}") from None

    def open(self, ref: str) -> BinaryIO:
        try:
            return self.path(ref).open("rb")
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {ref} is missing from {self.root}") from None

    def exists(self, ref: str) -> bool:
        return self.path(ref).exists()

    def delete(self, ref: str) -> None:
        self.path(ref).unlink(missing_ok=True)

    def list_blobs(self) -> Iterator[BlobInfo]:
        for path in self.root.glob("??/??/*"):
            if not _REF.match(path.name):
                continue  # a temp file of a write in progress
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # deleted meanwhile
            yield BlobInfo(path.name, stat.st_size, stat.st_mtime)

    def _write(self, ref: str, chunks: Iterable[bytes], *, durable: bool = True) -> None:
        target = self.path(ref)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temp file in the same directory, fsync, then rename: a reader sees the
        # whole blob or none of it, even if this process dies half way.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                digest = hashlib.sha256()
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                if durable:
                    os.fsync(out.fileno())
            if digest.hexdigest() != ref:
                raise StoreError(f"content changed while storing blob {ref}")
            os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            mapped = store_write_error(exc)
            if mapped is not None:  # a full disk: the partial temp file is gone again
                raise mapped from exc
            raise
        if durable:
            _fsync_dir(target.parent)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            yield chunk


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
