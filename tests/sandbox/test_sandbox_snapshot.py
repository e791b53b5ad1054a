"""Namespace snapshots: pickled inside one worker, loaded inside another, opaque between."""

from __future__ import annotations

import base64
import pickle
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from rlm_engine.errors import SandboxError
from rlm_engine.sandbox.host_protocol import ProtocolViolation, parse_snapshot
from rlm_engine.sandbox.local import LocalSandbox

MiB = 1024 * 1024


async def nothing(method: str, params: Mapping[str, Any]) -> Any:
    return None


@pytest.fixture
async def boxes(tmp_path: Path) -> AsyncIterator[tuple[LocalSandbox, LocalSandbox]]:
    first = LocalSandbox(nothing, isolation="none", workdir_parent=tmp_path)
    second = LocalSandbox(nothing, isolation="none", workdir_parent=tmp_path)
    async with first, second:
        for box in (first, second):
            await box.load_context("the context")
        yield first, second


async def run(box: LocalSandbox, code: str) -> str:
    result = await box.execute(code, timeout_s=10)
    assert result.status == "ok", result.error
    return result.output


async def test_a_restored_repl_has_the_variables_functions_and_modules(
    boxes: tuple[LocalSandbox, LocalSandbox],
) -> None:
    first, second = boxes
    await run(
        first,
        "import re, random\n"
        "xs = [1, 2, 3]\nalias = xs\nctx = context\n"
        "def bump(s, k=2):\n    return re.sub('a', 'b', s) * k\n"
        "def make(n):\n    def add(x):\n        return x + n\n    return add\n"
        "add5 = make(5)\nask = llm_query\nrandom.seed(7)\nrandom.random()",
    )
    snapshot = await first.snapshot(max_bytes=MiB)
    assert snapshot.data is not None and snapshot.skipped == () and snapshot.reason is None
    expected = await run(first, "print(random.random())")
    await second.restore(snapshot.data)
    out = await run(
        second,
        "print(bump('aa'), add5(1), alias is xs, ctx is context, ask is llm_query, re.I)\n"
        "print(random.random())",
    )
    assert out.splitlines() == ["bbbb 6 True True True re.IGNORECASE", expected.strip()]


async def test_what_does_not_pickle_is_named_and_no_snapshot_is_kept(
    boxes: tuple[LocalSandbox, LocalSandbox],
) -> None:
    first, _ = boxes
    await run(
        first,
        "fine = 1\ngen = (i for i in range(3))\nfh = open('/dev/null')\n"
        "class Mine:\n    pass\nobj = Mine()",
    )
    snapshot = await first.snapshot(max_bytes=MiB)
    assert snapshot.data is None and set(snapshot.skipped) == {"gen", "fh", "Mine", "obj"}


async def test_an_unchanged_namespace_is_not_sent_again_and_the_cap_holds(
    boxes: tuple[LocalSandbox, LocalSandbox],
) -> None:
    first, _ = boxes
    await run(first, "big = 'x' * 100_000")
    assert (await first.snapshot(max_bytes=MiB)).data is not None
    again = await first.snapshot(max_bytes=MiB)
    assert again.unchanged and again.data is None
    capped = await first.snapshot(max_bytes=10_000)
    assert capped.data is None and capped.reason is not None and "10,000" in capped.reason


async def test_a_snapshot_from_another_worker_version_is_refused(
    boxes: tuple[LocalSandbox, LocalSandbox],
) -> None:
    _, second = boxes
    with pytest.raises(SandboxError, match="another worker version"):
        await second.restore(b"0:other-python\n" + pickle.dumps({"vars": {}}))


def test_the_host_only_decodes_and_measures_the_bytes() -> None:
    data = b"1:tag\n\x80\x05not even a valid pickle"
    reply = {"data": base64.b64encode(data).decode(), "skipped": [], "reason": None}
    assert parse_snapshot(reply, MiB).data == data  # never unpickled: it is not one
    with pytest.raises(ProtocolViolation):
        parse_snapshot({"data": "!!not base64!!"}, MiB)
    with pytest.raises(ProtocolViolation):
        parse_snapshot({"data": base64.b64encode(b"x" * 5000).decode()}, 100)
    with pytest.raises(ProtocolViolation):
        parse_snapshot({"data": None, "skipped": [1, 2]}, MiB)


async def test_a_snapshot_that_runs_forever_is_interrupted_and_the_repl_lives(
    boxes: tuple[LocalSandbox, LocalSandbox],
) -> None:
    first, _ = boxes
    await run(
        first,
        "kept = 41\nimport fractions\ndef forever(self):\n    while True:\n        pass\n"
        "fractions.Fraction.__reduce__ = forever\nstuck = fractions.Fraction(1, 3)",
    )
    snapshot = await first.snapshot(max_bytes=MiB, timeout_s=0.5)
    assert snapshot.data is None and snapshot.reason is not None
    assert "interrupted" in snapshot.reason
    assert first.alive and await run(first, "print(kept + 1)") == "42\n"
