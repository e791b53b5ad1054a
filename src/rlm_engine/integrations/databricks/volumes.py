"""Files in a Unity Catalog volume through the Files API (`/Volumes/{catalog}/{schema}/...`).

Artifacts are small (code, a `result.json`, captured output), so each write is one upload
of the whole file and each read one download; an upload replaces the file, which makes a
retried write land the same bytes.
"""

from __future__ import annotations

import io
import posixpath
from typing import TYPE_CHECKING

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.databricks.workspace import workspace_error

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient


def volume_path(root: str, rel: str) -> str:
    """`root/rel` with `rel` checked to stay below `root` (no `..`, no absolute path): a
    relative key from a table row must not address another volume."""
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or rel.startswith("/") or ".." in parts:
        raise ConfigurationError(
            f"volume file name {rel!r} must be a relative path below {root}",
            hint="use a relative key such as 'session/artifact/code.py' (no '..')",
        )
    return posixpath.join(root, *parts)


class VolumeFiles:
    """Bytes and text under `root`, a volume directory like `/Volumes/main/rlm/artifacts`."""

    def __init__(self, w: WorkspaceClient, root: str) -> None:
        clean = "/" + root.strip("/")
        if not clean.startswith("/Volumes/") or len(clean.split("/")) < 5:
            raise ConfigurationError(
                f"volume root {root!r} is not a Unity Catalog volume path",
                hint="use /Volumes/<catalog>/<schema>/<volume>[/<dir>]",
            )
        self._w = w
        self.root = clean

    def __repr__(self) -> str:
        return f"VolumeFiles({self.root!r})"

    def path(self, rel: str) -> str:
        """The absolute volume path of `rel`."""
        return volume_path(self.root, rel)

    def write_bytes(self, rel: str, data: bytes) -> str:
        """Write `data` to `rel` (replacing it); returns the absolute path."""
        path = self.path(rel)
        try:
            self._w.files.upload(path, io.BytesIO(data), overwrite=True)
        except Exception as exc:
            raise workspace_error(exc, f"writing {path}") from exc
        return path

    def read_bytes(self, rel: str) -> bytes:
        """The bytes of `rel`; `WorkspaceError` if it does not exist."""
        path = self.path(rel)
        try:
            response = self._w.files.download(path)
            contents = response.contents
            if contents is None:
                return b""
            with contents:
                return contents.read()
        except Exception as exc:
            raise workspace_error(exc, f"reading {path}") from exc

    def write_text(self, rel: str, text: str) -> str:
        return self.write_bytes(rel, text.encode("utf-8"))

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def exists(self, rel: str) -> bool:
        """Whether `rel` is a file (one HEAD request)."""
        from databricks.sdk.errors import NotFound

        path = self.path(rel)
        try:
            self._w.files.get_metadata(path)
        except NotFound:
            return False
        except Exception as exc:
            raise workspace_error(exc, f"looking for {path}") from exc
        return True
