"""A hostile worker against the host's half of the protocol, in the isolated sandbox.

Frames the host cannot decode end the sandbox with a typed result and nothing else (no
traceback in the host); a thread left over from an earlier cell cannot answer or call for
a later one; and a cell that tampers with the helpers' internals does not change what the
next cell's helpers do.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sandbox_fakes import FakeHost

from rlm_engine import RLM
from rlm_engine.events import SandboxRestarted
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.sandbox.isolation import probe
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.local import LocalSandbox

pytestmark = pytest.mark.skipif(
    probe().bwrap is None,
    reason="bubblewrap is not usable on this machine; CI installs it (.ci/run) so this "
    "suite runs there: " + "; ".join(probe().problems),
)

LIMITS = Limits(memory_mb=1024, cpu_s=60, nproc=48, disk_mb=64, fsize_mb=32)

SEND_RAW = """
import os, sys, time
out_fd = int(sys.argv[sys.argv.index('--fds') + 1].split(',')[1])
def send_raw(body, size=None):
    size = len(body) if size is None else size
    os.write(out_fd, size.to_bytes(4, 'big') + body)
"""


@pytest.fixture
async def box(host: FakeHost, tmp_path: Path) -> AsyncIterator[LocalSandbox]:
    sandbox = LocalSandbox(
        host, tools=["lookup"], workdir_parent=tmp_path, isolation="strict", limits=LIMITS
    )
    await sandbox.start()
    assert sandbox.isolation_level == "bubblewrap"
    try:
        yield sandbox
    finally:
        await sandbox.close()


async def run(box: LocalSandbox, code: str) -> str:
    result = await box.execute(textwrap.dedent(code), timeout_s=20)
    assert result.status == "ok", result
    return result.output


def assert_no_host_traceback(caplog: pytest.LogCaptureFixture, err: str) -> None:
    gc.collect()  # an unretrieved task exception is reported when the task is collected
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert "never retrieved" not in record.getMessage()
        assert "Exception in callback" not in record.getMessage()
    assert "Traceback" not in err and "never retrieved" not in err


UNDECODABLE = {
    "deep nesting": "send_raw(b'[' * 200000 + b']' * 200000)",
    "deep object nesting": "send_raw(b'{\"a\":' * 100000 + b'1' + b'}' * 100000)",
    "invalid utf-8": 'send_raw(b\'{"type": "call", "x": "\\xff\\xfe"}\')',
    "not json": "send_raw(b'{bad}')",
    "not an object": "send_raw(b'[1, 2, 3]')",
    "a number for the frame type": 'send_raw(b\'{"type": 5, "id": 1}\')',
    "a string for a call id": (
        'send_raw(b\'{"type": "call", "id": "7", "method": "llm_query",'
        ' "params": {"prompt": "p"}}\')'
    ),
    "an unknown frame type": 'send_raw(b\'{"type": "exec", "id": 1}\')',
    # The exec command's id is guessable: a forged reply with a number for the output.
    "a number for the cell's output": (
        "import json\n"
        "for i in range(1, 64):\n"
        "    send_raw(json.dumps({'type': 'reply', 'id': i, 'ok': True, 'value': {"
        "'status': 'ok', 'output': 5, 'error': None, 'interrupted': False, 'dropped': 0,"
        " 'final': None}}).encode())"
    ),
    # Announces 4 GiB and never sends it: the host must refuse on the header alone.
    "a huge length prefix": "send_raw(b'', size=2**32 - 1)",
}


@pytest.mark.parametrize("attack", list(UNDECODABLE.values()), ids=list(UNDECODABLE))
async def test_undecodable_frames_kill_the_sandbox_with_a_typed_result(
    box: LocalSandbox,
    host: FakeHost,
    attack: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    code = SEND_RAW + attack + "\ntime.sleep(30)\n"
    result = await box.execute(code, timeout_s=60)
    assert result.status == "killed", result
    assert "broke the protocol" in (result.error or "")
    assert "a new sandbox must be started" in (result.error or "")
    for _ in range(200):  # the kill is sent; reaping the worker may take a moment
        if not box.alive:
            break
        await asyncio.sleep(0.05)
    assert not box.alive
    assert host.calls == []
    assert_no_host_traceback(caplog, capsys.readouterr().err)


async def test_a_left_over_thread_cannot_answer_or_call_for_a_later_cell(
    box: LocalSandbox, host: FakeHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await run(
        box,
        """
        import threading
        go, went, seen = threading.Event(), threading.Event(), []
        def late():
            go.wait()
            FINAL('stale answer')
            try:
                seen.append(llm_query('stale question'))
            except RuntimeError as exc:
                seen.append(str(exc))
            went.set()
        threading.Thread(target=late, daemon=True).start()
        """,
    )
    result = await box.execute(
        "FINAL('my own answer')\ngo.set()\nassert went.wait(15)\nprint(seen)", timeout_s=20
    )
    assert result.status == "ok", result
    assert result.final is not None and result.final.answer == "my own answer"
    assert "was refused: it came from a thread started by an earlier cell" in result.output
    assert host.calls == []  # the stale sub-call never reached the model
    assert any("ignored a llm_query call" in r.getMessage() for r in caplog.records)
    # The refusal does not stick to the sandbox: the next cell's calls go through.
    assert await run(box, "print(llm_query('fresh'))") == "answer to fresh\n"
    assert [prompt["prompt"] for _, prompt in host.calls] == ["fresh"]


async def test_a_left_over_thread_cannot_set_the_final_answer(
    box: LocalSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await run(
        box,
        """
        import threading
        go, went = threading.Event(), threading.Event()
        def late():
            go.wait()
            FINAL('stale answer')
            SUBMIT(answer='stale')
            went.set()
        threading.Thread(target=late, daemon=True).start()
        """,
    )
    result = await box.execute("go.set()\nassert went.wait(15)", timeout_s=20)
    assert result.status == "ok", result
    assert result.final is None
    assert any("ignored 2 final answer(s)" in r.getMessage() for r in caplog.records)


async def test_threads_started_in_the_running_cell_still_answer(
    box: LocalSandbox, host: FakeHost
) -> None:
    await run(box, "x = 1")
    result = await box.execute(
        "import threading\n"
        "t = threading.Thread(target=lambda: FINAL(llm_query('from a thread')))\n"
        "t.start(); t.join()",
        timeout_s=20,
    )
    assert result.final is not None and result.final.answer == "answer to from a thread"
    assert host.calls == [("llm_query", {"prompt": "from a thread", "model": None})]


async def test_a_forged_call_for_another_cell_is_refused(
    box: LocalSandbox, host: FakeHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    code = SEND_RAW + (
        "import json\n"
        "send_raw(json.dumps({'type': 'call', 'id': 10**9, 'cell': 424242,"
        " 'method': 'llm_query', 'params': {'prompt': 'forged'}}).encode())\n"
        "time.sleep(0.2)\n"
        "print('sent')\n"
    )
    assert await run(box, code) == "sent\n"
    assert host.calls == []
    assert any("ignored a llm_query call" in r.getMessage() for r in caplog.records)
    assert box.alive


TAMPERING = {
    "code of llm_query": (
        "llm_query.__func__.__code__ = (lambda self, prompt, model=None: 'forged').__code__"
    ),
    "defaults of llm_query": "llm_query.__func__.__defaults__ = ('forged-model',)",
    "keyword defaults of llm_query": "llm_query.__func__.__kwdefaults__ = {'model': 'forged'}",
    "globals of FINAL": "FINAL.__globals__['str'] = lambda value: 'forged'",
    "globals shared by helpers": (
        "llm_query.__globals__['_expect_str'] = lambda value, method: 'forged'"
    ),
    "the helpers' class": "type(llm_query.__self__).llm_query = lambda self, *a, **k: 'forged'",
    "the channel object": (
        "class Fake:\n"
        "    def call(self, method, params):\n"
        "        return 'forged'\n"
        "llm_query.__self__._channel = Fake()\n"
        "memory._channel = Fake()"
    ),
    "the channel's call method": (
        "llm_query.__self__._channel.call = lambda method, params: 'forged'"
    ),
    "the channel's class": (
        "type(llm_query.__self__._channel).call = lambda self, method, params: 'forged'"
    ),
    "the installed helpers": (
        "llm_query.__self__._fixed['llm_query'] = lambda *a, **k: 'forged'\n"
        "llm_query.__self__._fixed['FINAL'] = lambda *a: None"
    ),
    "a tool and the memory proxy": (
        "lookup._name = 'secret_tool'\nlookup._channel = None\n"
        "memory.get = lambda *a: 'forged'\nmemory.__dict__.clear()"
    ),
    "the cell owner": "llm_query.__self__._owner.of_caller = lambda: None",
    "builtins": (
        "import builtins\n"
        "builtins.isinstance = lambda *a: False\n"
        "builtins.str = lambda *a: 'forged'\n"
        "builtins.len = lambda *a: 0"
    ),
    "the namespace's builtins": "__builtins__ = {}",
    "the wire module": (
        "import rlm_engine.sandbox.wire as wire\nwire.encode = lambda message: b''"
    ),
    "the json module": "import json\njson.dumps = lambda *a, **k: '{}'",
}


@pytest.mark.parametrize("tamper", list(TAMPERING.values()), ids=list(TAMPERING))
async def test_tampered_helpers_are_restored_before_the_next_cell(
    box: LocalSandbox, host: FakeHost, tamper: str
) -> None:
    await box.execute(tamper, timeout_s=20)  # may fail half-way: the next cell matters
    result = await box.execute(
        "print(llm_query('real'))\nmemory['k'] = [1]\nprint(memory.get('k'))\nFINAL(str(6 * 7))",
        timeout_s=20,
    )
    assert result.status == "ok", result
    assert result.output == "answer to real\n[1]\n"
    assert result.final is not None and result.final.answer == "42"
    assert ("llm_query", {"prompt": "real", "model": None}) in host.calls
    assert ("memory_set", {"key": "k", "value": [1]}) in host.calls
    assert await run(box, "print(lookup('t'))") == (
        "{'tool': 'lookup', 'args': ['t'], 'kwargs': {}}\n"
    )


def test_the_root_is_told_its_repl_was_restarted_after_a_protocol_break() -> None:
    turns = [
        "```repl\n" + SEND_RAW + "send_raw(b'[' * 200000)\ntime.sleep(30)\n```",
        "```repl\nprint('fresh', 6 * 7)\n```",
        "FINAL(done)",
    ]
    root = ScriptedModel(
        lambda messages: turns[min(sum(m.role == "assistant" for m in messages), 2)]
    )
    events: list[object] = []
    with RLM(root, cell_timeout_s=20, on_event=events.append) as rlm:
        result = rlm.run("question")
    assert result.answer == "done"
    feedback = root.calls[1][-1].content
    assert "SandboxRestarted" in feedback and "started again" in feedback
    assert "fresh 42" in root.calls[2][-1].content
    restarts = [event for event in events if isinstance(event, SandboxRestarted)]
    assert len(restarts) == 1 and "broke the protocol" in restarts[0].reason
