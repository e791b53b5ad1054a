"""The directories an MCP client may name paths under.

The operator's roots (by default the directory the server was started in) bound every
path. A client that offers its own roots (its workspace) narrows them further; over
stdio, where client and server are the same user on the same machine, the client's roots
replace the default instead, so an editor's workspace works wherever ``rlm mcp`` was
started. A path outside is refused with `PathNotAllowedError`, naming the roots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from rlm_engine.errors import ContextError
from rlm_engine.service.errors import PathNotAllowedError


def root_of_uri(uri: str) -> Path | None:
    """The directory of a ``file://`` root URI (None for any other scheme)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


@dataclass(frozen=True, slots=True)
class Roots:
    """``operator``: the allowed roots; ``client_replaces``: whether a client's own roots
    replace them (stdio) or only narrow them (a server reached over the network)."""

    operator: tuple[Path, ...]
    client_replaces: bool = False

    def effective(self, client: Sequence[Path] | None) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
        """(roots a path must be under, further roots it must also be under)."""
        operator = tuple(p.expanduser().resolve() for p in self.operator)
        offered = tuple(p.expanduser().resolve() for p in client or ())
        if not offered:
            return operator, ()
        if self.client_replaces:
            return offered, ()
        return operator, offered

    def confine(self, raw: str, client: Sequence[Path] | None = None) -> Path:
        """``raw`` resolved (a relative path against the first root), if it and every
        file under it lie within the roots; else `PathNotAllowedError`."""
        bound, narrower = self.effective(client)
        if not bound:
            raise PathNotAllowedError(
                "this server reads no paths", hint="start it with --root DIR to allow one"
            )
        given = Path(raw).expanduser()
        path = (given if given.is_absolute() else bound[0] / given).resolve()
        self._check(raw, path, bound, narrower)
        if not path.exists():
            raise ContextError(f"the path {raw!r} does not exist")
        if path.is_dir():
            for entry in path.rglob("*"):
                # A symlink inside an allowed directory (to a file or a directory) may
                # point anywhere.
                if entry.is_symlink() or entry.is_file():
                    self._check(raw, entry.resolve(), bound, narrower)
        return path

    def _check(
        self, raw: str, path: Path, bound: tuple[Path, ...], narrower: tuple[Path, ...]
    ) -> None:
        if _under(path, bound) and (not narrower or _under(path, narrower)):
            return
        allowed = ", ".join(str(r) for r in (narrower or bound))
        raise PathNotAllowedError(
            f"the path {raw!r} is outside the allowed roots ({allowed})",
            hint="give a path under one of those directories; the operator sets them with "
            "`rlm mcp --root DIR` (or RLM_ALLOWED_PATHS for `rlm serve`)",
        )
