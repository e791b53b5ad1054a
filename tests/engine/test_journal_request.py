"""What the journal keeps of a request for people reading a run: bounded, and a root turn's
conversation is not stored again at every turn."""

from __future__ import annotations

import json

from rlm_engine.engine.journal import REQUEST_KEPT_CHARS, journaled_request
from rlm_engine.types import Message


def test_a_root_turn_keeps_only_what_is_new_since_its_last_reply() -> None:
    messages = [
        Message("system", "rules"),
        Message("user", "question"),
        Message("assistant", "code"),
        Message("user", "cell output"),
    ]
    assert json.loads(journaled_request("root", messages)) == [
        {"role": "user", "content": "cell output"}
    ]
    first = json.loads(journaled_request("root", messages[:2]))
    assert [m["role"] for m in first] == ["system", "user"]


def test_a_sub_call_keeps_its_messages_each_cut_with_its_whole_length() -> None:
    long = "x" * (REQUEST_KEPT_CHARS + 10)
    kept = json.loads(journaled_request("sub", [Message("user", long), Message("user", "s")]))
    assert kept[0] == {"role": "user", "content": long[:REQUEST_KEPT_CHARS], "chars": len(long)}
    assert kept[1] == {"role": "user", "content": "s"}
