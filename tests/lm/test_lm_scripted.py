"""The scripted model: list, JSONL, callable, exhaustion, streaming and recorded prompts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rlm_engine.errors import ConfigurationError
from rlm_engine.lm import ScriptedModel, ScriptExhaustedError, StreamDone, TextDelta
from rlm_engine.lm.scripted import load_replies
from rlm_engine.types import Message, ModelSettings

ASK = [Message("system", "sys"), Message("user", "question?")]


async def test_list_replies_in_order_and_records_calls() -> None:
    model = ScriptedModel(["one", "two"])
    first = await model.complete(ASK)
    second = await model.complete([Message("user", "again")])

    assert (first.text, second.text) == ("one", "two")
    assert model.calls == [tuple(ASK), (Message("user", "again"),)]
    assert model.remaining == 0
    assert first.model == "scripted/default" and first.provider == "scripted"


async def test_usage_is_estimated_from_characters() -> None:
    model = ScriptedModel(["a reply of 22 chars.."])
    completion = await model.complete(ASK)
    assert completion.usage.input_tokens == math.ceil(len("sys" + "question?") / 4)
    assert completion.usage.output_tokens == math.ceil(21 / 4)
    assert completion.usage.requests == 1
    assert completion.cost_usd is None


async def test_exhaustion_is_a_clear_error() -> None:
    model = ScriptedModel(["only"])
    await model.complete(ASK)
    with pytest.raises(ScriptExhaustedError, match="no reply left.*given 1"):
        await model.complete(ASK)


async def test_sync_and_async_callables() -> None:
    def sync_reply(messages: list[Message]) -> str:
        return f"{len(messages)} messages"

    async def async_reply(messages: list[Message]) -> str:
        return messages[-1].content.upper()

    assert (await ScriptedModel(sync_reply).complete(ASK)).text == "2 messages"
    assert (await ScriptedModel(async_reply).complete(ASK)).text == "QUESTION?"
    assert ScriptedModel(sync_reply).remaining is None


async def test_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "script.jsonl"
    lines = [json.dumps("plain"), "", json.dumps({"reply": "from object"})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = ScriptedModel.from_jsonl(path)
    assert [(await model.complete(ASK)).text for _ in range(2)] == ["plain", "from object"]
    assert model.name == f"scripted/{path}"


@pytest.mark.parametrize(
    ("content", "error"),
    [("{not json}\n", "not valid JSON"), ('{"answer": 1}\n', "expected a JSON string")],
)
def test_bad_jsonl_names_file_and_line(tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps("ok") + "\n" + content)
    with pytest.raises(ConfigurationError, match=f"bad.jsonl:2: {error}"):
        load_replies(path)


def test_missing_file_is_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_replies(tmp_path / "absent.jsonl")


async def test_stream_splits_reply_into_deltas() -> None:
    model = ScriptedModel(["abcdefghij"], stream_parts=3)
    events = [event async for event in model.stream(ASK)]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 3
    assert "".join(deltas) == "abcdefghij"
    assert isinstance(events[-1], StreamDone)
    assert events[-1].completion.text == "abcdefghij"


async def test_settings_stop_and_limit() -> None:
    model = ScriptedModel(["keep this STOP drop that", "x" * 100])
    stopped = await model.complete(ASK, ModelSettings(stop=("STOP",)))
    limited = await model.complete(ASK, ModelSettings(max_output_tokens=5))
    assert stopped.text == "keep this "
    assert (limited.text, limited.finish_reason) == ("x" * 20, "length")
