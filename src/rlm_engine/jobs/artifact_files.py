"""Where the artifacts' files live: a local directory, or a Unity Catalog Volume.

The registry, the artifact sandbox and the executor name an artifact's files by key
(``session_id/artifact_id/name``, relative to the files root), never by a local path, so
the same code runs against a directory (local mode) and a Volume reached through the
Files API (Databricks mode, where the orchestrator and each executor run on different
machines). `stage_in` and `publish` copy an artifact's files between the store and a
local working folder, for the executor's local sandbox.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient


class ArtifactFiles(Protocol):
    """Files by key under one root."""

    @property
    def root(self) -> str:
        """The root as shown to people (a directory, or ``/Volumes/...``)."""
        ...

    def local_root(self) -> Path | None:
        """The root as a local directory; None when the files are remote."""
        ...

    def read_bytes(self, key: str) -> bytes | None:
        """The file's bytes; None when it does not exist."""
        ...

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write the whole file (a reader sees the old file or the new one)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the file; a missing file is fine."""
        ...

    def where(self, key: str) -> str:
        """The file's full path, for messages and for readers that mount the root."""
        ...


class LocalArtifactFiles:
    """Files in a local (or mounted) directory."""

    def __init__(self, root: Path) -> None:
        self._root = root

    @property
    def root(self) -> str:
        return str(self._root)

    def local_root(self) -> Path | None:
        return self._root

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return (self._root / key).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_bytes(data)
        partial.replace(path)

    def delete(self, key: str) -> None:
        (self._root / key).unlink(missing_ok=True)

    def where(self, key: str) -> str:
        return str(self._root / key)


class VolumeArtifactFiles:
    """Files in a Unity Catalog Volume (``/Volumes/{catalog}/{schema}/artifacts``), through
    the Files API of the workspace ``client`` (so no mount is needed on either side)."""

    def __init__(self, client: WorkspaceClient, root: str) -> None:
        if not root.startswith("/Volumes/"):
            from rlm_engine.errors import ConfigurationError

            raise ConfigurationError(
                f"{root!r} is not a Volume path",
                hint="artifact files in Databricks mode live under /Volumes/CATALOG/SCHEMA/...",
            )
        self._client = client
        self._root = root.rstrip("/")

    @property
    def root(self) -> str:
        return self._root

    def local_root(self) -> Path | None:
        return None

    def read_bytes(self, key: str) -> bytes | None:
        from databricks.sdk.errors import NotFound

        try:
            response = self._client.files.download(self.where(key))
        except NotFound:
            return None
        contents: Any = response.contents
        if contents is None:
            return b""
        try:
            return bytes(contents.read())
        finally:
            with contextlib.suppress(Exception):
                contents.close()

    def write_bytes(self, key: str, data: bytes) -> None:
        self._client.files.upload(self.where(key), io.BytesIO(data), overwrite=True)

    def delete(self, key: str) -> None:
        from databricks.sdk.errors import NotFound

        with contextlib.suppress(NotFound):
            self._client.files.delete(self.where(key))

    def where(self, key: str) -> str:
        return f"{self._root}/{key.lstrip('/')}" if key else self._root


def stage_in(files: ArtifactFiles, prefix: str, names: Iterable[str], folder: Path) -> None:
    """Copy the files ``prefix/name`` that exist into ``folder`` (others are skipped)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        data = files.read_bytes(f"{prefix}/{name}")
        if data is not None:
            (folder / name).write_bytes(data)


def publish(files: ArtifactFiles, prefix: str, names: Iterable[str], folder: Path) -> None:
    """Copy the files of ``folder`` named ``names`` that exist to ``prefix/name``."""
    for name in names:
        path = folder / name
        if path.is_file():
            files.write_bytes(f"{prefix}/{name}", path.read_bytes())


def _with_files(spec: Any, rewrite: Any) -> Any:
    """``spec`` (a context spec, see ``artifact_context``) with each ``file`` rewritten."""
    if not isinstance(spec, dict):
        return spec
    out: dict[str, Any] = {}
    for name, value in spec.items():  # pyright: ignore[reportUnknownVariableType]
        if name == "file" and isinstance(value, str):
            out[name] = rewrite(value)
        elif name == "items" and isinstance(value, list):
            out[name] = [_with_files(item, rewrite) for item in value]  # pyright: ignore[reportUnknownVariableType]
        else:
            out[str(name)] = value  # pyright: ignore[reportUnknownArgumentType]
    return out


def upload_context(files: ArtifactFiles, spec: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A context spec whose stored files (written locally by ``encode_context``) are copied
    to ``prefix/`` in ``files``; the spec then names them by their full store path."""

    def moved(local: str) -> str:
        path = Path(local)
        key = f"{prefix}/{path.name}"
        if files.read_bytes(key) is None:  # content-addressed: an existing file is the same
            files.write_bytes(key, path.read_bytes())
        return files.where(key)

    result: dict[str, Any] = _with_files(spec, moved)
    return result


def download_context(files: ArtifactFiles, spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A context spec whose files in ``files`` are copied into ``folder`` and named there
    (the executor's sandbox reads local files); other paths are kept as they are."""
    root = files.root.rstrip("/") + "/"

    def fetched(where: str) -> str:
        if not where.startswith(root):
            return where
        data = files.read_bytes(where[len(root) :])
        if data is None:
            return where  # decode_context says the file is gone
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / Path(where).name
        target.write_bytes(data)
        return str(target)

    result: dict[str, Any] = _with_files(spec, fetched)
    return result
