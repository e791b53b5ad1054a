"""Hostile cells against the default caps, in the isolated sandbox (bubblewrap).

A cell asks for 100,000 sub-calls at once, sends a 150 MB prompt, or answers with a
200 MB FINAL: each is refused with an error the cell or the root can act on, and nothing
reaches the provider (requests are counted at the simulator).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rlm_engine import RLM
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.sandbox.isolation import probe
from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread
from rlm_engine.types import Message

pytestmark = pytest.mark.skipif(
    probe().bwrap is None,
    reason="bubblewrap is not usable on this machine; CI installs it (.ci/run) so this "
    "suite runs there: " + "; ".join(probe().problems),
)


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def scripted(*replies: str) -> ScriptedModel:
    def reply(messages: list[Message] | Any) -> str:
        done = sum(1 for m in messages if m.role == "assistant")
        return replies[min(done, len(replies) - 1)]

    return ScriptedModel(reply)


def run_strict(root: ScriptedModel, url: str) -> str:
    """Run one question with the sub-model at the simulator; the root's last feedback."""
    with RLM(root, "openai/sim-sub", env={"OPENAI_BASE_URL": url}, isolation="strict") as rlm:
        result = rlm.run("question")
    assert result.stop_reason == "final", result.stop_detail
    return root.calls[-1][-1].content


def test_a_batch_of_100k_sub_calls_is_refused_before_any_request() -> None:
    root = scripted(
        fence(
            "try:\n    llm_query_batched(['q'] * 100_000)\nexcept RuntimeError as e:\n"
            "    print('REFUSED', e)"
        ),
        "FINAL(done)",
    )
    with SimServerThread(SimConfig(), CallablePolicy(lambda m: "a")) as sim:
        feedback = run_strict(root, sim.url)
        assert sim.requests == []
    assert "REFUSED llm_query_batched failed: BudgetExceeded" in feedback
    assert "a batch of 100,000 sub-calls was refused before any was sent" in feedback
    assert "only 10,000 of the run's 10,000 are left" in feedback


def test_a_150mb_prompt_never_reaches_the_provider() -> None:
    root = scripted(
        fence(
            "p = 'x' * 150_000_000\ntry:\n    llm_query(p)\nexcept RuntimeError as e:\n"
            "    print('REFUSED', e)\ndel p\nprint(llm_query('small'))"
        ),
        "FINAL(done)",
    )
    with SimServerThread(SimConfig(), CallablePolicy(lambda m: "small answer")) as sim:
        feedback = run_strict(root, sim.url)
        sizes = [r.prompt_chars for r in sim.requests]
    assert sizes == [5]  # only the small call left the host
    assert "REFUSED llm_query failed: CapExceeded" in feedback
    assert "150,000,000 bytes or more, above the cap of 8,388,608 bytes" in feedback
    assert "Split the text into chunks" in feedback
    assert "small answer" in feedback  # the sandbox and the run go on


def test_a_call_that_skips_the_helpers_is_held_to_the_byte_cap() -> None:
    # The cell talks to the host channel itself: only the host's check stands in the way.
    root = scripted(
        fence(
            "channel = llm_query.__self__._channel\ntry:\n"
            "    channel.call('llm_query', {'prompt': 'x' * 9_000_000, 'model': None})\n"
            "except RuntimeError as e:\n    print('REFUSED', e)"
        ),
        "FINAL(done)",
    )
    with SimServerThread(SimConfig(), CallablePolicy(lambda m: "a")) as sim:
        feedback = run_strict(root, sim.url)
        assert sim.requests == []
    assert "REFUSED llm_query failed: CapExceeded" in feedback


def is_root(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def turn(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m.get("role") == "assistant")


def cli(args: list[str], home: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "RLM_"))}
    env.update(OPENAI_BASE_URL=url, RLM_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "rlm_engine.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def policy(messages: list[dict[str, Any]]) -> str:
    if not is_root(messages):
        return "sub"
    if turn(messages) == 0:
        return fence("FINAL('y' * 200_000_000)")
    return "FINAL(a short summary)"


def test_a_200mb_final_is_refused_and_never_printed(tmp_path: Path) -> None:
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        args = ["ask", "question", "--model", "openai/sim-root", "--isolation", "strict"]
        proc = cli([*args, "--json"], tmp_path / "home", sim.url)
        roots = [r for r in sim.requests if is_root(r.messages)]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert len(proc.stdout) + len(proc.stderr) < 100_000
    out = json.loads(proc.stdout)
    assert out["answer"] == "a short summary"
    assert len(roots) == 2
    assert roots[1].prompt_chars < 100_000  # the refusal, not the answer, went back
    assert "FINAL(...) was refused" in json.dumps(roots[1].messages)
    # The journal keeps the refused answer as one blob, not inline in the database.
    home = tmp_path / "home"
    databases = [p for p in home.glob("rlm.db*") if p.is_file()]  # with its write-ahead log
    assert databases and sum(p.stat().st_size for p in databases) < 20_000_000
    blobs = [p for p in (home / "blobs").rglob("*") if p.is_file()]
    assert any(p.stat().st_size >= 200_000_000 for p in blobs), [str(p) for p in blobs]
