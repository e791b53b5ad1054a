"""Running `rlm` in a subprocess against the simulator on loopback, for the CLI tests."""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rlm_engine.sim.policies import message_text
from rlm_engine.store.factory import open_store
from rlm_engine.store.records import MemoryScope


def is_root(messages: list[dict[str, Any]]) -> bool:
    """Whether a request is the root model's (its system prompt opens the conversation)."""
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def turn(messages: list[dict[str, Any]]) -> int:
    """How many replies the model has given in this conversation so far."""
    return sum(1 for m in messages if m.get("role") == "assistant")


def cli(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlm_engine.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        **kw,
    )


def cli_env(tmp_path: Path, url: str) -> dict[str, str]:
    """This environment without provider or rlm settings, pointed at ``url`` and a
    fresh RLM_HOME under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "RLM_"))}
    env.update(OPENAI_BASE_URL=url, RLM_HOME=str(tmp_path / "home"))
    return env


def kill_once_attempted(proc: subprocess.Popen[bytes], home: Path) -> None:
    """SIGKILL ``proc`` (an `rlm ask`) once its cell has set `attempted` in the user's
    stored memory: the cell does so after its sub-call came back, and the host journals a
    sub-call before the cell sees its answer."""
    scope = MemoryScope.user(getpass.getuser())
    store = open_store(None, home)
    try:
        deadline = time.monotonic() + 90
        while store.memory_get(scope, "attempted") is None:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the run never reached its sleep"
            time.sleep(0.05)
    finally:
        store.close()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
