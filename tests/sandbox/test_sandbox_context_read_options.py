"""`ContextFile` carries how a context file is read: its encoding, or bytes for a binary
file; staging passes that to the worker's loader, and `describe_context` agrees."""

from __future__ import annotations

from pathlib import Path

from rlm_engine.sandbox.context import ContextFile, stage_context
from rlm_engine.sandbox.context_meta import describe_context
from rlm_engine.sandbox.worker_context import load_context

BLOB = bytes(range(256))


def test_a_file_is_read_in_its_encoding(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes("crème brûlée".encode("cp1252"))
    spec = stage_context(ContextFile.of(path, encoding="cp1252"), tmp_path / "staged")
    assert load_context(spec)[0] == "crème brûlée"
    assert load_context(stage_context(path, tmp_path / "plain"))[0] == "cr\ufffdme br\ufffdl\ufffde"


def test_a_binary_file_is_bytes(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(BLOB)
    value, meta = load_context(stage_context(ContextFile.of(path, as_bytes=True), tmp_path / "s"))
    assert value == BLOB and meta["type"] == "bytes" and meta["total_chars"] == 256
    assert describe_context(ContextFile.of(path, as_bytes=True)).type == "bytes"


def test_a_list_mixes_text_and_bytes(tmp_path: Path) -> None:
    text, blob = tmp_path / "a.txt", tmp_path / "b.bin"
    text.write_bytes("naïve".encode("latin-1"))
    blob.write_bytes(BLOB)
    items = [
        ContextFile.of(text, encoding="latin-1"),
        ContextFile.of(blob, encoding="latin-1", as_bytes=True),
    ]
    value, _ = load_context(stage_context(items, tmp_path / "s"))
    assert value == ["naïve", BLOB]


def test_a_corpus_reads_in_its_encoding_and_gives_binary_files_as_bytes(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.txt").write_bytes("façade".encode("latin-1"))
    (root / "logo.bin").write_bytes(BLOB)
    corpus, _ = load_context(
        stage_context(ContextFile.of(root, encoding="latin-1", as_bytes=True), tmp_path / "s")
    )
    assert corpus.read("a.txt") == "façade"
    assert corpus.read_bytes("logo.bin") == BLOB
