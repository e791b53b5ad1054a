"""``Corpus``: a directory context as the REPL sees it (worker side, stdlib only).

Files are read lazily, so a corpus of many gigabytes costs nothing until the code in the
REPL asks for a file.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator

GrepHit = tuple[str, int, str]


def _walk(root: str) -> dict[str, int]:
    """Relative POSIX path -> size in bytes of every regular file under ``root``."""
    sizes: dict[str, int] = {}
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in names:
            full = os.path.join(folder, name)
            try:
                size = os.stat(full).st_size
            except OSError:
                continue
            if os.path.isfile(full):
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                sizes[rel] = size
    return dict(sorted(sizes.items()))


class Corpus:
    """A directory of text files: list them, read one, or grep them all.

    ``len(corpus)`` is the number of files and iterating yields their relative paths.
    """

    def __init__(self, root: str | os.PathLike[str], *, encoding: str = "utf-8") -> None:
        self._root: str = os.path.abspath(os.fspath(root))
        self._encoding = encoding
        if not os.path.isdir(self._root):
            raise NotADirectoryError(f"corpus root {self._root!r} is not a directory")
        self._sizes = _walk(self._root)

    @property
    def root(self) -> str:
        """Absolute path of the directory inside the sandbox."""
        return self._root

    def files(self, pattern: str | None = None) -> list[str]:
        """Relative paths of the files, sorted; ``pattern`` filters them with shell
        wildcards (``"*.py"``, ``"logs/*.txt"``)."""
        if pattern is None:
            return list(self._sizes)
        return [path for path in self._sizes if fnmatch.fnmatch(path, pattern)]

    def size(self, path: str) -> int:
        """Size of one file in bytes."""
        self._check(path)
        return self._sizes[path]

    @property
    def total_bytes(self) -> int:
        """Sum of the sizes of all files."""
        return sum(self._sizes.values())

    def read(self, path: str) -> str:
        """The text of one file (bytes invalid in the corpus's encoding, UTF-8 unless
        given, become U+FFFD)."""
        self._check(path)
        with open(self._full(path), encoding=self._encoding, errors="replace", newline="") as f:
            return f.read()

    def read_bytes(self, path: str) -> bytes:
        """The raw bytes of one file (for binary files)."""
        self._check(path)
        with open(self._full(path), "rb") as handle:
            return handle.read()

    def _full(self, path: str) -> str:
        return os.path.join(self._root, *path.split("/"))

    def grep(
        self, pattern: str | re.Pattern[str], *, flags: int = 0, max_hits: int = 1000
    ) -> list[GrepHit]:
        """``(path, line_number, line)`` for every line matching the regular expression
        ``pattern``, in file order, at most ``max_hits`` of them. Line numbers start at 1."""
        regex = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
        hits: list[GrepHit] = []
        if max_hits <= 0:
            return hits
        for path in self._sizes:
            text = self.read(path)
            # One search over the whole file skips most files without splitting them.
            if regex.search(text) is None:
                continue
            for number, line in enumerate(text.split("\n"), start=1):
                if regex.search(line) is not None:
                    hits.append((path, number, line.removesuffix("\r")))
                    if len(hits) >= max_hits:
                        return hits
        return hits

    def _check(self, path: str) -> None:
        if path not in self._sizes:
            raise KeyError(f"no file {path!r} in the corpus; corpus.files() lists them")

    def __len__(self) -> int:
        return len(self._sizes)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._sizes))

    def __contains__(self, path: object) -> bool:
        return path in self._sizes

    def __getitem__(self, path: str) -> str:
        return self.read(path)

    def __repr__(self) -> str:
        shown = ", ".join(repr(path) for path in list(self._sizes)[:3])
        more = ", ..." if len(self._sizes) > 3 else ""
        return (
            f"<Corpus of {len(self._sizes)} files, {self.total_bytes:,} bytes, "
            f"root={self._root!r}: [{shown}{more}]>"
        )
