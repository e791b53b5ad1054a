"""Unit tests of the pieces that need no worker process: frames, validation, buffers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rlm_engine.errors import ContextError
from rlm_engine.sandbox import wire
from rlm_engine.sandbox.context import stage_context
from rlm_engine.sandbox.host_protocol import (
    InvalidCall,
    ProtocolViolation,
    parse_call,
    parse_cell_reply,
    parse_context_meta,
)
from rlm_engine.sandbox.raw_output import RawOutput


def test_frames_round_trip_in_pieces() -> None:
    messages = [{"type": "call", "id": i, "text": "é" * i} for i in range(5)]
    stream = b"".join(wire.encode(m) for m in messages)
    decoder = wire.FrameDecoder()
    received = []
    for offset in range(0, len(stream), 3):
        received += decoder.feed(stream[offset : offset + 3])
    assert received == messages
    assert decoder.pending_bytes == 0


def test_lone_surrogates_survive_the_wire() -> None:
    message = {"text": "bad \udcff byte"}
    assert wire.FrameDecoder().feed(wire.encode(message)) == [message]


@pytest.mark.parametrize(
    "frame",
    [
        (2**31).to_bytes(4, "big"),
        b"\x00\x00\x00\x03[1]",
        b"\x00\x00\x00\x02\xff\xfe",
        b"\x00\x00\x00\x04nope",
    ],
)
def test_bad_frames_are_rejected(frame: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.FrameDecoder().feed(frame)


def test_blocking_reads_stop_cleanly_at_end_of_stream() -> None:
    read_fd, write_fd = os.pipe()
    wire.write_all(write_fd, wire.encode({"a": 1}) + b"\x00\x00")
    os.close(write_fd)
    assert wire.read_frame(read_fd) == {"a": 1}
    with pytest.raises(wire.WireError):
        wire.read_frame(read_fd)
    os.close(read_fd)


def test_call_validation() -> None:
    tools = frozenset({"lookup"})
    good = parse_call(
        {"type": "call", "id": 7, "method": "llm_query", "params": {"prompt": "p", "extra": 1}},
        tools,
    )
    assert (good.id, good.method, good.params) == (7, "llm_query", {"prompt": "p", "model": None})
    bad_calls = [
        {"id": 1, "method": "os.system", "params": {}},
        {"id": 1, "method": "llm_query", "params": {"prompt": 3}},
        {"id": 1, "method": "llm_query_batched", "params": {"prompts": ["a", 2]}},
        {"id": 1, "method": "tool", "params": {"name": "rm", "args": [], "kwargs": {}}},
        {"id": 1, "method": "rlm_query_batched", "params": {"prompts": ["a"], "contexts": []}},
        {"id": 1, "method": "memory_get", "params": "key"},
    ]
    for message in bad_calls:
        with pytest.raises(InvalidCall):
            parse_call(message, tools)
    with pytest.raises(ProtocolViolation):
        parse_call({"id": True, "method": "llm_query", "params": {}}, tools)


def test_reply_validation_clips_what_the_root_model_sees() -> None:
    meta = parse_context_meta(
        {
            "type": "str",
            "total_chars": 10,
            "chunk_lengths": list(range(500)),
            "preview": "p" * 10_000,
            "files": 0,
            "extra": {"chunks": 500, "nested": {"no": 1}, "long": "x" * 1000},
        }
    )
    assert len(meta.preview) == 200 and len(meta.chunk_lengths) == 100
    assert meta.extra == {"chunks": 500}
    with pytest.raises(ProtocolViolation):
        parse_context_meta({"type": "str", "total_chars": -1, "chunk_lengths": [], "preview": ""})
    with pytest.raises(ProtocolViolation):
        parse_cell_reply({"status": "ok", "output": 3, "interrupted": False, "dropped": 0})


def test_raw_output_decodes_split_utf8_and_caps() -> None:
    raw = RawOutput(5)
    data = "héllo wörld".encode()
    for index in range(len(data)):
        raw.feed(data[index : index + 1])
    raw.feed(b"\xff")
    raw.finish()
    assert raw.take() == ("héllo", 7)
    assert raw.take() == ("", 0)


def test_staging_rejects_what_cannot_be_a_context(tmp_path: object) -> None:
    from pathlib import Path

    target = Path(str(tmp_path))
    with pytest.raises(ContextError):
        stage_context(b"bytes", target / "a")
    with pytest.raises(ContextError):
        stage_context([1, 2], target / "b")
    with pytest.raises(ContextError):
        stage_context([target], target / "c")  # a directory inside a list


def test_importing_the_worker_stays_light() -> None:
    code = (
        "import sys, rlm_engine.sandbox.worker\n"
        "heavy = {'asyncio', 'pydantic', 'openai', 'httpx', 'rich', 'rlm_engine.sandbox.local'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
