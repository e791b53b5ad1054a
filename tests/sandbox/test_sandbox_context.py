"""Loading contexts of every kind into the real worker."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rlm_engine.errors import ContextError
from rlm_engine.sandbox.local import LocalSandbox


async def _show(sandbox: LocalSandbox, code: str) -> str:
    result = await sandbox.execute(code, timeout_s=30)
    assert result.status == "ok", result.error
    return result.output


async def test_string_context(sandbox: LocalSandbox) -> None:
    meta = await sandbox.load_context("hello\r\nworld")
    assert (meta.type, meta.total_chars, meta.files) == ("str", 12, 0)
    assert meta.preview == "hello\r\nworld"
    assert await _show(sandbox, "context") == "'hello\\r\\nworld'\n"


async def test_none_context(sandbox: LocalSandbox) -> None:
    meta = await sandbox.load_context(None)
    assert (meta.type, meta.total_chars) == ("NoneType", 0)
    assert await _show(sandbox, "print(context)") == "None\n"


async def test_text_file_context(sandbox: LocalSandbox, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("line one\nline two\n" + "é" * 300)
    meta = await sandbox.load_context(source)
    assert (meta.type, meta.total_chars, meta.files) == ("str", 318, 1)
    assert len(meta.preview) == 200 and meta.preview.startswith("line one")
    assert await _show(sandbox, "print(type(context).__name__, len(context))") == "str 318\n"
    # Once loaded, the staged link is gone: a cell cannot write through it to the original.
    assert sandbox.workdir is not None
    assert list(sandbox.workdir.glob("contexts/*/notes.txt")) == []
    assert source.read_text().startswith("line one")


async def test_large_text_file_loads_fast(sandbox: LocalSandbox, tmp_path: Path) -> None:
    source = tmp_path / "big.log"
    line = "2024-01-01 INFO something happened in the system, id=12345\n"
    source.write_text(line * (20_000_000 // len(line)))
    size = source.stat().st_size
    began = time.perf_counter()
    meta = await sandbox.load_context(source)
    elapsed = time.perf_counter() - began
    print(f"\n{size / 1e6:.0f} MB text context loaded in {elapsed * 1000:.0f} ms")
    assert meta.total_chars == size
    assert len(meta.preview) == 200
    assert elapsed < 5.0
    assert await _show(sandbox, "len(context)") == f"{size}\n"


async def test_json_file_context(sandbox: LocalSandbox, tmp_path: Path) -> None:
    source = tmp_path / "data.json"
    source.write_text(json.dumps({"users": [{"name": "ada"}], "count": 1}))
    meta = await sandbox.load_context(source)
    assert meta.type == "dict" and meta.extra["keys"] == 2 and meta.files == 1
    assert await _show(sandbox, "context['users'][0]['name']") == "'ada'\n"


async def test_mapping_context(sandbox: LocalSandbox) -> None:
    meta = await sandbox.load_context({"a": [1, 2], "b": "text"})
    assert meta.type == "dict" and meta.files == 0
    assert await _show(sandbox, "context") == "{'a': [1, 2], 'b': 'text'}\n"
    with pytest.raises(ContextError):
        await sandbox.load_context({"bad": object()})


async def test_list_of_strings_context(sandbox: LocalSandbox) -> None:
    chunks = [f"chunk {i} " + "x" * i for i in range(150)]
    meta = await sandbox.load_context(chunks)
    assert meta.type == "list"
    assert meta.total_chars == sum(len(c) for c in chunks)
    assert meta.chunk_lengths == tuple(len(c) for c in chunks[:100])
    assert meta.extra["chunks"] == 150
    assert len(meta.preview) <= 200 and meta.preview.startswith("['chunk 0 '")
    assert await _show(sandbox, "len(context), context[149][:9]") == "(150, 'chunk 149')\n"


async def test_list_of_files_context(sandbox: LocalSandbox, tmp_path: Path) -> None:
    first = tmp_path / "a.txt"
    second = tmp_path / "b.json"
    first.write_text("alpha")
    second.write_text('{"not": "parsed"}')
    meta = await sandbox.load_context([first, second, "inline text"])
    assert (meta.type, meta.files, meta.chunk_lengths) == ("list", 2, (5, 17, 11))
    assert await _show(sandbox, "context") == "['alpha', '{\"not\": \"parsed\"}', 'inline text']\n"


async def test_directory_becomes_a_corpus(sandbox: LocalSandbox, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: main")
    (root / "README.md").write_text("# Demo\nTODO: write docs\n")
    (root / "src" / "app.py").write_text("def main():\n    pass  # TODO fix\n")
    (root / "src" / "bin.dat").write_bytes(b"\xff\xfeTODO\n")
    meta = await sandbox.load_context(root)
    assert meta.type == "Corpus" and meta.files == 3
    assert meta.preview == "README.md\nsrc/app.py\nsrc/bin.dat"
    assert sandbox.workdir is not None
    staged = next(sandbox.workdir.glob("contexts/*/repo/src/app.py"))
    assert os.path.samefile(staged, root / "src" / "app.py")  # hard-linked, not copied
    code = (
        "print(len(context), context.files())\n"
        "print(context.files('src/*.py'))\n"
        "for hit in context.grep(r'TODO'):\n"
        "    print(hit)\n"
        "print(context.grep('todo', flags=__import__('re').I, max_hits=1))\n"
        "print(context.read('README.md').splitlines()[0], list(context)[:1],"
        " 'src/app.py' in context)\n"
        "print(repr(context)[:26])"
    )
    assert await _show(sandbox, code) == (
        "3 ['README.md', 'src/app.py', 'src/bin.dat']\n"
        "['src/app.py']\n"
        "('README.md', 2, 'TODO: write docs')\n"
        "('src/app.py', 2, '    pass  # TODO fix')\n"
        "('src/bin.dat', 1, '\ufffd\ufffdTODO')\n"
        "[('README.md', 2, 'TODO: write docs')]\n"
        "# Demo ['README.md'] True\n"
        "<Corpus of 3 files, 64 byt\n"
    )
    missing = await sandbox.execute("context.read('nope.txt')", timeout_s=10)
    assert missing.status == "error" and "nope.txt" in (missing.error or "")
    assert await sandbox.list_vars() == {"hit": "tuple, 3 items"}  # context is reserved


async def test_missing_path_names_the_path(sandbox: LocalSandbox, tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist.txt"
    with pytest.raises(ContextError, match="does-not-exist.txt"):
        await sandbox.load_context(missing)
    with pytest.raises(ContextError, match="does-not-exist.txt"):
        await sandbox.load_context([missing])


async def test_invalid_json_file_is_a_context_error(sandbox: LocalSandbox, tmp_path: Path) -> None:
    source = tmp_path / "broken.json"
    source.write_text("{not json")
    with pytest.raises(ContextError, match="broken.json"):
        await sandbox.load_context(source)
    assert sandbox.alive


async def test_reloading_replaces_the_context(sandbox: LocalSandbox) -> None:
    await sandbox.load_context("first")
    await sandbox.load_context(["second"])
    assert await _show(sandbox, "context") == "['second']\n"
