"""Every way `rlm` can fail that a user meets first: the exit status, and a stderr that
names the cause and the remedy, never a traceback. One table, one test."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli_env, is_root

from rlm_engine.sim.config import FaultKind, SimConfig
from rlm_engine.sim.policies import CallablePolicy
from rlm_engine.sim.runner import SimServerThread

# The exit statuses of `rlm_engine.cli.outcome`, spelled out: the table is the contract.
ANSWER, ERROR, USAGE, NO_ANSWER = 0, 1, 2, 3


@dataclass
class Case:
    """What a row runs in: its environment, files and the command prefix (a sandbox)."""

    tmp: Path
    env: dict[str, str]
    stack: ExitStack
    prefix: list[str] = field(default_factory=list[str])

    def file(self, name: str, data: bytes) -> str:
        path = self.tmp / name
        path.write_bytes(data)
        return str(path)


Setup = Callable[[Case], list[str]]


@dataclass(frozen=True)
class Row:
    id: str
    setup: Setup
    code: int
    cause: tuple[str, ...]
    remedy: tuple[str, ...]
    json_error: bool = False
    """With ``--json``: stdout must hold the error object too."""


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sim(case: Case, faults: dict[FaultKind, float]) -> str:
    def reply(messages: list[dict[str, Any]]) -> str:
        return "```repl\nFINAL('never reached')\n```" if is_root(messages) else "x"

    server = SimServerThread(SimConfig(fault_rates=faults), CallablePolicy(reply))
    return case.stack.enter_context(server).url


def ask(*extra: str) -> list[str]:
    return ["ask", "What is in the context?", "--model", "openai/sim-model", *extra]


def provider_down(case: Case) -> list[str]:
    case.env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{closed_port()}/v1"
    return ask()


def http_500(case: Case) -> list[str]:
    case.env["OPENAI_BASE_URL"] = sim(case, {"500": 1.0})
    return ask()


def garbage_body(case: Case) -> list[str]:
    case.env["OPENAI_BASE_URL"] = sim(case, {"malformed": 1.0})
    return ask()


def missing_local_server(case: Case) -> list[str]:
    case.env["OLLAMA_BASE_URL"] = f"http://127.0.0.1:{closed_port()}"
    return ["ask", "What is in the context?", "--model", "ollama/llama3.2"]


def forced_final_without_answer(case: Case) -> list[str]:
    def reply(messages: list[dict[str, Any]]) -> str:
        if "You have used every iteration" in str(messages[-1].get("content")):
            return 'FINAL_VAR("answer")'  # a variable the run never set
        return "```repl\nprint(len(context))\n```"

    server = SimServerThread(SimConfig(), CallablePolicy(reply))
    case.env["OPENAI_BASE_URL"] = case.stack.enter_context(server).url
    return ask("--context", case.file("notes.txt", b"some notes\n"), "--max-iterations", "1")


def context_row(name: str, data: bytes) -> Setup:
    def setup(case: Case) -> list[str]:
        case.env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{closed_port()}/v1"
        return ask("--context", case.file(name, data))

    return setup


def flag_row(*flag: str) -> Setup:
    def setup(case: Case) -> list[str]:
        case.env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{closed_port()}/v1"
        return ask(*flag)

    return setup


def export_row(target: Callable[[Case], Path]) -> Setup:
    def setup(case: Case) -> list[str]:
        return ["runs", "export", "0123456789abcdef", "--format", "md", "-o", str(target(case))]

    return setup


def read_only(case: Case, path: Path) -> None:
    """Make ``path`` unwritable for the `rlm` process: by mode, or for root (whom modes do
    not stop) by a read-only bind mount around the command."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        case.stack.callback(path.chmod, 0o755)
        return
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("running as root without bubblewrap: no way to make a path read-only")
    case.prefix = [bwrap, "--dev-bind", "/", "/", "--ro-bind", str(path), str(path)]


def unwritable_dir(case: Case) -> Path:
    out = case.tmp / "locked"
    read_only(case, out)
    return out / "run.md"


def read_only_home(case: Case) -> list[str]:
    read_only(case, Path(case.env["RLM_HOME"]))
    case.env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{closed_port()}/v1"
    return ask("--json")


PROVIDER_REMEDY = ("hint:", "OPENAI_BASE_URL")

ROWS = [
    Row("provider down", provider_down, ERROR, ("connection failed",), PROVIDER_REMEDY),
    Row("http 500", http_500, ERROR, ("HTTP 500",), ("hint:", "wait for it to recover")),
    Row(
        "garbage body",
        garbage_body,
        ERROR,
        ("malformed",),
        ("hint:", "OPENAI_BASE_URL", "OpenAI-compatible"),
    ),
    Row(
        "missing local server",
        missing_local_server,
        ERROR,
        ("ollama", "connection failed"),
        ("hint:", "ollama serve", "OLLAMA_BASE_URL"),
    ),
    Row(
        "forced final without an answer",
        forced_final_without_answer,
        NO_ANSWER,
        ("max_iterations", "no answer"),
        ("hint:", "--max-iterations"),
    ),
    Row(
        "bad json context",
        context_row("data.json", b'{"rows": [1, 2,'),
        USAGE,
        ("data.json", "JSON"),
        ("line 1",),
    ),
    Row("empty context", context_row("empty.txt", b""), USAGE, ("empty.txt", "empty"), ()),
    Row(
        "binary context",
        context_row("blob.bin", bytes(range(256)) * 8),
        USAGE,
        ("blob.bin", "binary"),
        (),
    ),
    Row("negative budget", flag_row("--budget-usd", "-1"), USAGE, ("--budget-usd",), ("> 0",)),
    Row(
        "negative sub-calls",
        flag_row("--max-sub-calls", "-1"),
        USAGE,
        ("--max-sub-calls",),
        (">= 0",),
    ),
    Row("zero seconds", flag_row("--max-seconds", "0"), USAGE, ("--max-seconds",), ("> 0",)),
    Row(
        "export into a missing directory",
        export_row(lambda case: case.tmp / "no" / "such" / "run.md"),
        USAGE,
        ("run.md", "does not exist"),
        ("hint:", "existing, writable directory"),
    ),
    Row(
        "export onto a directory",
        export_row(lambda case: case.tmp),
        USAGE,
        ("is a directory",),
        ("hint:", "existing, writable directory"),
    ),
    Row(
        "export into an unwritable directory",
        export_row(unwritable_dir),
        USAGE,
        ("run.md",),
        ("hint:", "existing, writable directory"),
    ),
    Row(
        "read-only home",
        read_only_home,
        USAGE,
        ("cannot open the store",),
        ("hint:", "RLM_HOME", "writable"),
        json_error=True,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_a_failure_names_its_cause_and_remedy(row: Row, tmp_path: Path) -> None:
    with ExitStack() as stack:
        case = Case(tmp_path, cli_env(tmp_path, "http://127.0.0.1:9/v1"), stack)
        args = row.setup(case)
        command = [*case.prefix, sys.executable, "-m", "rlm_engine.cli.main", *args]
        done = subprocess.run(
            command, capture_output=True, text=True, env=case.env, timeout=120, check=False
        )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == row.code, done.stderr
    for text in (*row.cause, *row.remedy):
        assert text in done.stderr, f"{text!r} missing from stderr:\n{done.stderr}"
    if row.json_error:
        data = json.loads(done.stdout.strip().splitlines()[-1])
        assert data["exit_code"] == row.code
        assert data["error"]["message"] and data["error"]["hint"]
    if "export" in row.id:
        assert not (tmp_path / "no").exists(), "export must never create parent directories"
