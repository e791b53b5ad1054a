"""Paths confined to the allowed roots: the operator's, narrowed by a client's own, or
(over stdio, without explicit roots) replaced by them."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm_engine.errors import ContextError
from rlm_engine.mcp.roots import Roots, root_of_uri
from rlm_engine.service.errors import PathNotAllowedError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("a/inside.txt", "a/sub/deep.txt", "b/other.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    return tmp_path


def test_paths_under_the_operator_roots_only(tree: Path) -> None:
    roots = Roots(operator=(tree / "a",))
    assert roots.confine("inside.txt") == (tree / "a/inside.txt").resolve()
    assert roots.confine(str(tree / "a/sub")) == (tree / "a/sub").resolve()
    for bad in (str(tree / "b/other.txt"), "../b/other.txt", "/etc/passwd"):
        with pytest.raises(PathNotAllowedError, match="outside the allowed roots"):
            roots.confine(bad)
    with pytest.raises(ContextError):
        roots.confine("missing.txt")


def test_a_symlink_out_of_a_root_is_refused(tree: Path) -> None:
    (tree / "a/link.txt").symlink_to(tree / "b/other.txt")
    (tree / "a/sub/escape").symlink_to(tree / "b")
    roots = Roots(operator=(tree / "a",))
    with pytest.raises(PathNotAllowedError):
        roots.confine("link.txt")
    with pytest.raises(PathNotAllowedError):
        roots.confine("sub")  # a directory holding a link to files outside


def test_client_roots_narrow_or_replace(tree: Path) -> None:
    narrowed = Roots(operator=(tree,))
    assert narrowed.confine(str(tree / "a/inside.txt"), [tree / "a"])
    with pytest.raises(PathNotAllowedError):
        narrowed.confine(str(tree / "b/other.txt"), [tree / "a"])
    # A client cannot widen a server's roots.
    with pytest.raises(PathNotAllowedError):
        Roots(operator=(tree / "a",)).confine(str(tree / "b/other.txt"), [tree])
    replaced = Roots(operator=(tree / "a",), client_replaces=True)
    assert replaced.confine(str(tree / "b/other.txt"), [tree / "b"])
    with pytest.raises(PathNotAllowedError):
        replaced.confine(str(tree / "a/inside.txt"), [tree / "b"])


def test_root_uris() -> None:
    assert root_of_uri("file:///home/me/my%20project") == Path("/home/me/my project")
    assert root_of_uri("https://example.com/x") is None
