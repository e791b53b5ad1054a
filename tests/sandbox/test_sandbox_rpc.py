"""Calls from the REPL to the host: sub-queries, memory, tools, failures, concurrency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandbox_fakes import FakeHost

from rlm_engine.sandbox.local import LocalSandbox


async def test_llm_query_round_trip(sandbox: LocalSandbox, host: FakeHost) -> None:
    result = await sandbox.execute("print(llm_query('hello', model='openai/x'))", timeout_s=10)
    assert result.output == "answer to hello\n"
    assert host.calls == [("llm_query", {"prompt": "hello", "model": "openai/x"})]


async def test_batched_query_is_one_host_call(sandbox: LocalSandbox, host: FakeHost) -> None:
    result = await sandbox.execute("llm_query_batched(['a', 'b', 'c'])", timeout_s=10)
    assert result.output == "['answer to a', 'answer to b', 'answer to c']\n"
    assert host.calls == [("llm_query_batched", {"prompts": ["a", "b", "c"], "model": None})]


async def test_batched_fan_out_runs_concurrently(sandbox: LocalSandbox, host: FakeHost) -> None:
    host.delay_s = 0.1
    began = time.perf_counter()
    result = await sandbox.execute(
        "answers = llm_query_batched([f'q{i}' for i in range(50)])\nprint(len(answers))",
        timeout_s=30,
    )
    elapsed = time.perf_counter() - began
    assert result.output == "50\n", result.error
    assert [method for method, _ in host.calls] == ["llm_query_batched"]
    assert elapsed < 5.0  # 50 x 0.1 s would take 5 s one after another
    assert host.max_in_flight == 50
    print(f"\n50-prompt batch with 0.1 s per prompt: {elapsed * 1000:.0f} ms")


async def test_calls_from_threads_in_a_cell(sandbox: LocalSandbox, host: FakeHost) -> None:
    host.delay_s = 0.1
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "with ThreadPoolExecutor(20) as pool:\n"
        "    answers = list(pool.map(llm_query, [f'p{i}' for i in range(20)]))\n"
        "print(answers == [f'answer to p{i}' for i in range(20)])"
    )
    began = time.perf_counter()
    result = await sandbox.execute(code, timeout_s=30)
    assert result.output == "True\n", result.error
    assert time.perf_counter() - began < 1.5
    assert host.max_in_flight > 1


async def test_rlm_query_passes_json_contexts(sandbox: LocalSandbox, host: FakeHost) -> None:
    result = await sandbox.execute(
        "print(rlm_query('sub', context={'k': [1, 2]}))\n"
        "print(rlm_query_batched(['a', 'b'], contexts=['x', None]))",
        timeout_s=10,
    )
    assert result.output == "child:sub:{\"k\": [1, 2]}\n['child:a:\"x\"', 'child:b:null']\n"
    assert host.calls[0] == ("rlm_query", {"prompt": "sub", "context": {"k": [1, 2]}})
    assert host.calls[1] == ("rlm_query_batched", {"prompts": ["a", "b"], "contexts": ["x", None]})
    bad = await sandbox.execute("rlm_query('sub', context=object())", timeout_s=10)
    assert bad.status == "error" and "TypeError" in (bad.error or "")
    assert len(host.calls) == 2


async def test_memory_proxy(sandbox: LocalSandbox, host: FakeHost) -> None:
    code = (
        "memory['seen'] = {'count': 2}\n"
        "print(memory['seen'], 'seen' in memory, 'other' in memory)\n"
        "print(memory.get('other', 'default'), memory.keys())\n"
        "try:\n"
        "    memory['other']\n"
        "except KeyError as exc:\n"
        "    print('KeyError', exc)"
    )
    result = await sandbox.execute(code, timeout_s=10)
    assert result.status == "ok", result.error
    assert result.output == ("{'count': 2} True False\ndefault ['seen']\nKeyError 'other'\n")
    assert host.memory == {"seen": {"count": 2}}
    assert ("memory_set", {"key": "seen", "value": {"count": 2}}) in host.calls


async def test_user_tool_round_trip(sandbox: LocalSandbox, host: FakeHost) -> None:
    result = await sandbox.execute("lookup('term', limit=3)", timeout_s=10)
    assert result.output == "{'tool': 'lookup', 'args': ['term'], 'kwargs': {'limit': 3}}\n"
    assert host.calls == [("tool", {"name": "lookup", "args": ["term"], "kwargs": {"limit": 3}})]


async def test_host_exceptions_become_runtime_errors(sandbox: LocalSandbox) -> None:
    code = (
        "try:\n"
        "    llm_query('fail')\n"
        "except RuntimeError as exc:\n"
        "    print('caught:', exc)\n"
        "explode()"
    )
    result = await sandbox.execute(code, timeout_s=10)
    assert "caught: llm_query failed: ValueError: the model exploded" in result.output
    assert result.status == "error"
    assert "RuntimeError" in (result.error or "") and "the tool exploded" in (result.error or "")


async def test_bad_arguments_fail_in_the_cell_before_reaching_the_host(
    sandbox: LocalSandbox, host: FakeHost
) -> None:
    for code in ("llm_query(123)", "llm_query_batched('not a list')", "lookup(object())"):
        result = await sandbox.execute(code, timeout_s=10)
        assert result.status == "error" and "TypeError" in (result.error or ""), code
    assert host.calls == []


async def test_forged_calls_are_validated_by_the_host(
    sandbox: LocalSandbox, host: FakeHost
) -> None:
    # Code in the cell can write to the protocol pipe directly; the host must still only
    # accept known methods with well-formed parameters.
    code = (
        "import os, sys, json\n"
        "out_fd = int(sys.argv[sys.argv.index('--fds') + 1].split(',')[1])\n"
        "def send(message):\n"
        "    body = json.dumps(message).encode()\n"
        "    os.write(out_fd, len(body).to_bytes(4, 'big') + body)\n"
        "send({'type': 'call', 'id': 10**9, 'method': 'shell', 'params': {}})\n"
        "send({'type': 'call', 'id': 10**9 + 1, 'method': 'tool',"
        " 'params': {'name': 'secret_tool', 'args': [], 'kwargs': {}}})\n"
        "send({'type': 'call', 'id': 10**9 + 2, 'method': 'llm_query', 'params': {'prompt': 5}})\n"
        "send({'type': 'reply', 'id': 12345, 'ok': True, 'value': None})\n"
        "print('sent')"
    )
    result = await sandbox.execute(code, timeout_s=10)
    assert result.output == "sent\n", result.error
    assert host.calls == []
    assert sandbox.alive
    assert (await sandbox.execute("print(llm_query('ok'))", timeout_s=10)).output == (
        "answer to ok\n"
    )


async def test_garbage_on_the_protocol_pipe_kills_the_worker(sandbox: LocalSandbox) -> None:
    code = (
        "import os, sys, time\n"
        "out_fd = int(sys.argv[sys.argv.index('--fds') + 1].split(',')[1])\n"
        "os.write(out_fd, b'\\x00\\x00\\x00\\x05{bad}')\n"
        "time.sleep(5)"
    )
    result = await sandbox.execute(code, timeout_s=10)
    assert result.status == "killed"
    assert "protocol" in (result.error or "")
    assert not sandbox.alive


async def test_a_child_sandbox_can_serve_rlm_query(tmp_path: Path) -> None:
    """The shape of recursion: the host answers rlm_query by running a child REPL."""

    async def child_handler(method: str, params: Mapping[str, Any]) -> Any:
        raise AssertionError("the child makes no host calls here")

    async def parent_handler(method: str, params: Mapping[str, Any]) -> Any:
        assert method == "rlm_query"
        async with LocalSandbox(child_handler, workdir_parent=tmp_path) as child:
            await child.load_context(params["context"])
            result = await child.execute(
                f"FINAL(context.count({params['prompt']!r}))", timeout_s=10
            )
            assert result.final is not None
            return result.final.answer

    async with LocalSandbox(parent_handler, workdir_parent=tmp_path) as parent:
        result = await parent.execute("rlm_query('a', context='banana')", timeout_s=20)
    assert result.output == "'3'\n", result.error


async def test_sandboxes_run_side_by_side(host: FakeHost, tmp_path: Path) -> None:
    boxes = [LocalSandbox(host, workdir_parent=tmp_path) for _ in range(4)]
    await asyncio.gather(*(box.start() for box in boxes))
    try:
        assert len({box.pid for box in boxes}) == 4
        began = time.perf_counter()
        results = await asyncio.gather(
            *(
                box.execute(f"import time\ntime.sleep(0.3)\n{i}", timeout_s=10)
                for i, box in enumerate(boxes)
            )
        )
        assert time.perf_counter() - began < 1.1
        assert [r.output for r in results] == ["0\n", "1\n", "2\n", "3\n"]
    finally:
        await asyncio.gather(*(box.close() for box in boxes))


async def test_a_thread_pool_from_an_earlier_cell_is_refused_with_a_remedy(
    sandbox: LocalSandbox, host: FakeHost
) -> None:
    # Its threads predate the running cell, so their calls cannot be told apart from a
    # left-over thread's: refused, with what to do instead.
    setup = "from concurrent.futures import ThreadPoolExecutor\npool = ThreadPoolExecutor(2)"
    assert (await sandbox.execute(setup, timeout_s=10)).status == "ok"
    warm = await sandbox.execute("print(pool.submit(llm_query, 'warm').result())", timeout_s=10)
    assert warm.output == "answer to warm\n", warm.error
    reused = await sandbox.execute("pool.submit(llm_query, 'again').result()", timeout_s=10)
    assert reused.status == "error"
    assert "came from a thread started by an earlier cell" in (reused.error or "")
    assert "Start threads in the cell that uses them" in (reused.error or "")
    assert [params["prompt"] for _, params in host.calls] == ["warm"]
