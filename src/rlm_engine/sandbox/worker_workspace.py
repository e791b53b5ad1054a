"""``Workspace``: the session's persistent directory as the REPL sees it (stdlib only).

Names are relative paths; every helper resolves symlinks and refuses anything that would
land outside the workspace root. This is a convenience and a guard against mistakes;
the boundary itself is the OS isolation (under bubblewrap the workspace is the only
writable host directory the worker can see).
"""

from __future__ import annotations

import fnmatch
import os


class WorkspaceError(ValueError):
    """A name points outside the workspace, or is not a relative path."""


class Workspace:
    """Files kept between runs of a session: ``read``, ``write``, ``append``, ``list``,
    ``exists``, ``delete`` and ``path`` (the absolute path of a name inside the REPL)."""

    def __init__(self, root: str) -> None:
        self._root = os.path.realpath(root)

    @property
    def root(self) -> str:
        """Absolute path of the workspace inside the sandbox."""
        return self._root

    def path(self, name: object) -> str:
        """The absolute path for ``name``; ``WorkspaceError`` if it escapes the root."""
        if not isinstance(name, str) or not name or os.path.isabs(name) or "\0" in name:
            raise WorkspaceError(f"workspace names are non-empty relative paths, not {name!r}")
        full = os.path.realpath(os.path.join(self._root, name))
        if full != self._root and not full.startswith(self._root + os.sep):
            raise WorkspaceError(f"{name!r} points outside the workspace")
        return full

    def read(self, name: str) -> str:
        """The text of a file (invalid UTF-8 bytes become U+FFFD)."""
        with open(self.path(name), encoding="utf-8", errors="replace", newline="") as handle:
            return handle.read()

    def write(self, name: str, text: object) -> int:
        """Replace a file's text (parent folders are created); returns chars written."""
        return self._put(name, text, "w")

    def append(self, name: str, text: object) -> int:
        """Add text at the end of a file; returns chars written."""
        return self._put(name, text, "a")

    def _put(self, name: str, text: object, mode: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"workspace files hold text; got {type(text).__name__}")
        full = self.path(name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, mode, encoding="utf-8", newline="") as handle:
            return handle.write(text)

    def exists(self, name: str) -> bool:
        return os.path.exists(self.path(name))

    def delete(self, name: str) -> None:
        """Remove one file."""
        os.remove(self.path(name))

    def list(self, pattern: str | None = None) -> list[str]:
        """Relative paths of every file, sorted; ``pattern`` filters with wildcards."""
        found: list[str] = []
        for folder, dirs, names in os.walk(self._root):
            dirs.sort()
            for name in names:
                rel = os.path.relpath(os.path.join(folder, name), self._root)
                found.append(rel.replace(os.sep, "/"))
        found.sort()
        return found if pattern is None else [p for p in found if fnmatch.fnmatch(p, pattern)]

    def __repr__(self) -> str:
        return f"<Workspace {self._root!r}: {len(self.list())} files>"
