"""``LargeText`` gives what ``str`` gives on the same text.

Random texts mix ASCII, multi-byte characters, every line ending ``str.splitlines``
knows and Unicode whitespace; block, piece and window sizes are shrunk so that every
operation crosses many of their boundaries.
"""

from __future__ import annotations

import pickle
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_fakes import FakeHost

from rlm_engine.sandbox import large_text
from rlm_engine.sandbox.large_text import LargeText
from rlm_engine.sandbox.local import LocalSandbox

TOKENS = (
    *("a", "b", "aa", "ab", "A", "1", "42", "é", "ß", "Σ", "中", "😀", "İ"),
    *(" ", " ", "  ", "\n", "\n", "\r\n", "\r", "\t", "\x0c", "\x1c", "\x85"),
    *("\u2028", "\u3000", "\xa0"),
)
SUBS = ("", "a", "aa", "ab", "é", "Σa", "\n", "\r\n", " a", "😀", "zz", "中\n")
SEPARATORS = (None, " ", "\n", "a", "aa", "ab", "é", "\r\n", "😀")
PATTERNS = (
    r"\w+",
    r"a+",
    r"(a)(b)?",
    r"(?m)^\S+",
    r"^a",
    r"\S$",
    r"(?m)a$",
    r"\d{2}",
    r"(?<=\n)b",
    r"é|😀",
    r"\s+",
    r"",
)
CASES = 120


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(TOKENS) for _ in range(rng.randrange(0, 160)))


def random_bound(rng: random.Random, size: int) -> int | None:
    return rng.choice((None, rng.randrange(-size - 3, size + 4)))


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(large_text, "BLOCK", 7)
    monkeypatch.setattr(large_text, "PIECE", 11)
    monkeypatch.setattr(large_text, "WINDOW", 24)
    monkeypatch.setattr(large_text, "LOOKAHEAD", 64)


@pytest.fixture
def texts(tmp_path: Path) -> Iterator[tuple[random.Random, str, LargeText]]:
    """Pairs of a random ``str`` and the ``LargeText`` of its UTF-8 file."""
    rng = random.Random(20261201)

    def pairs() -> Iterator[tuple[random.Random, str, LargeText]]:
        for number in range(CASES):
            text = random_text(rng)
            path = tmp_path / f"t{number}.txt"
            path.write_bytes(text.encode("utf-8"))
            yield rng, text, LargeText(str(path))

    return pairs()


def same(s: str, t: LargeText, method: str, *args: Any) -> None:
    """``method`` returns equal values on both, or raises the same exception type."""
    try:
        want: Any = getattr(s, method)(*args)
    except Exception as exc:  # the str behaviour is the specification, errors included
        with pytest.raises(type(exc)):
            getattr(t, method)(*args)
        return
    assert getattr(t, method)(*args) == want, (method, args)


def test_length_indexing_and_slicing(texts: Iterator[tuple[random.Random, str, LargeText]]) -> None:
    for rng, s, t in texts:
        assert len(t) == len(s) and t.nbytes == len(s.encode())
        assert str(t) == s and t.read() == s and "".join(t) == s
        for _ in range(8):
            i = rng.randrange(-len(s) - 2, len(s) + 2)
            same(s, t, "__getitem__", i)
            key = slice(
                random_bound(rng, len(s)),
                random_bound(rng, len(s)),
                rng.choice((None, 1, 2, 3, -1, -2)),
            )
            assert t[key] == s[key], key


def test_searching(texts: Iterator[tuple[random.Random, str, LargeText]]) -> None:
    for rng, s, t in texts:
        for _ in range(6):
            sub = rng.choice((*SUBS, s[rng.randrange(0, len(s) + 1) :][: rng.randrange(0, 4)]))
            start, end = random_bound(rng, len(s)), random_bound(rng, len(s))
            for name in ("find", "rfind", "index", "rindex", "count", "startswith", "endswith"):
                same(s, t, name, sub, start, end)
            assert (sub in t) == (sub in s)
            assert t.find(sub) == s.find(sub) and t.count(sub) == s.count(sub)
            assert t.startswith((sub, "a")) == s.startswith((sub, "a"))
            assert t.endswith(("zz", sub)) == s.endswith(("zz", sub))


def test_splitting_and_lines(texts: Iterator[tuple[random.Random, str, LargeText]]) -> None:
    for _, s, t in texts:
        assert t.splitlines() == s.splitlines()
        assert t.splitlines(keepends=True) == s.splitlines(keepends=True)
        assert list(t.iter_lines()) == s.splitlines() == list(t.lines())
        for sep in SEPARATORS:
            for maxsplit in (-1, 0, 1, 2, 5):
                assert t.split(sep, maxsplit) == s.split(sep, maxsplit), (sep, maxsplit)
                assert t.rsplit(sep, maxsplit) == s.rsplit(sep, maxsplit), (sep, maxsplit)
        assert "".join(t.chunks(5)) == s


def test_new_texts(texts: Iterator[tuple[random.Random, str, LargeText]]) -> None:
    for _, s, t in texts:
        for chars in (None, "a ", "\n\r", "é😀"):
            assert t.strip(chars) == s.strip(chars)
            assert t.lstrip(chars) == s.lstrip(chars)
            assert t.rstrip(chars) == s.rstrip(chars)
        for old, new, count in (("a", "X", -1), ("aa", "", 2), ("é", "e", 1), ("", "-", 3)):
            assert t.replace(old, new, count) == s.replace(old, new, count)
        for name in ("lower", "upper", "casefold", "swapcase", "title"):
            assert getattr(t, name)() == getattr(s, name)(), name
        assert t.encode() == s.encode() and t.encode("utf-16") == s.encode("utf-16")
        assert t.partition("a") == s.partition("a") and t.isspace() == s.isspace()


def test_regular_expressions(texts: Iterator[tuple[random.Random, str, LargeText]]) -> None:
    for _, s, t in texts:
        for pattern in PATTERNS:
            want = [(m.span(), m.group(), m.groups()) for m in re.finditer(pattern, s)]
            got = [(m.span(), m.group(), m.groups()) for m in t.finditer(pattern)]
            assert got == want, pattern
            assert t.findall(pattern) == re.findall(pattern, s), pattern
            first, found = re.search(pattern, s), t.search(pattern)
            assert (found and found.span()) == (first and first.span()), pattern


def test_grep_lists_matching_lines_at_their_offsets(
    texts: Iterator[tuple[random.Random, str, LargeText]],
) -> None:
    for _, s, t in texts:
        offsets: list[tuple[int, str]] = []
        position = 0
        for line in s.split("\n"):
            offsets.append((position, line.removesuffix("\r")))
            position += len(line) + 1
        want = [(at, line) for at, line in offsets if re.search("é", line)]
        assert t.grep("é") == want
        assert t.grep("é", max_hits=1) == want[:1]


def test_invalid_utf8_reads_as_one_replacement_character_per_byte(tmp_path: Path) -> None:
    raw = b"ok \xff\xfe line\n\xe2\x82 cut \xf0\x9f\x98 end \xc3\xa9\n" * 5
    path = tmp_path / "bad.txt"
    path.write_bytes(raw)
    t = LargeText(str(path))
    s = str(t)
    assert "\ufffd\ufffd" in s and len(t) == len(s)
    assert t[3:9] == s[3:9] and t[-12:] == s[-12:]
    assert t.find("é") == s.find("é") and t.count("line") == s.count("line") == 5
    assert t.splitlines() == s.splitlines()
    assert t.encode() == s.encode()


def test_errors_match_str(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("abc")
    t = LargeText(str(path))
    with pytest.raises(TypeError, match="requires string as left operand"):
        _ = 1 in t  # type: ignore[operator]
    with pytest.raises(ValueError, match="empty separator"):
        t.split("")
    with pytest.raises(ValueError, match="substring not found"):
        t.index("z")
    with pytest.raises(IndexError):
        _ = t[3]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = t.nope


def test_pickles_as_a_reference_to_its_file(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("line one\nline two\n")
    copy = pickle.loads(pickle.dumps(LargeText(str(path))))
    assert isinstance(copy, LargeText) and copy.splitlines() == ["line one", "line two"]


def test_an_empty_file_is_an_empty_text(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    t = LargeText(str(path))
    assert len(t) == 0 and t[:] == "" and t.split() == [] and t.split(",") == [""]
    assert t.splitlines() == [] and t.find("") == 0 and t.count("") == 1 and "" in t


async def test_a_large_context_in_the_worker_is_used_like_a_str(
    host: FakeHost, tmp_path: Path
) -> None:
    text = "".join(f"{n:05d} café Σ 😀 line\r\n" for n in range(40_000))
    big = tmp_path / "big.txt"
    big.write_bytes(text.encode("utf-8"))
    async with LocalSandbox(
        host, isolation="none", workdir_parent=tmp_path, lazy_context_bytes=100_000
    ) as box:
        meta = await box.load_context(big)
        assert meta.type == "LargeText" and meta.total_chars == big.stat().st_size
        code = (
            "lines = context.splitlines()\n"
            "print(type(context).__name__, len(context), len(lines), lines[7])\n"
            "print(context.find('31337'), context.count('é'), context[-9:].strip())\n"
            "print(context.search(r'(\\d+) caf').group(1), context.upper()[:10])"
        )
        out = (await box.execute(code, timeout_s=60)).output.splitlines()
    assert out[0] == f"LargeText {len(text)} 40000 {text.splitlines()[7]}"
    assert out[1] == f"{text.find('31337')} 40000 😀 line"
    assert out[2] == f"00000 {text.upper()[:10]}"
