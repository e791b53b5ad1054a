"""``rlm sim serve --script FILE`` answers ``rlm ask`` end to end, offline."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_support import cli, cli_env

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "scripted.jsonl"

Serve = Callable[[Path], str]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start ``rlm sim serve --script`` on a free port; its base URL."""
    procs: list[subprocess.Popen[str]] = []

    def start(script: Path) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlm_engine.cli.main", "sim", "serve", "--port", "0"]
            + ["--script", str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=cli_env(tmp_path, "unused"),
        )
        procs.append(proc)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("rlm sim: serving "), first
        return first.removeprefix("rlm sim: serving ").strip()

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_example_script_answers_rlm_ask(serve: Serve, tmp_path: Path) -> None:
    url = serve(EXAMPLE)
    env = cli_env(tmp_path, url)
    context = tmp_path / "notes.txt"
    context.write_text("rlm-engine notes\nline two\n")
    args = ["ask", "What is this about?", "--model", "openai/sim", "--context", str(context)]
    for _ in range(2):  # a second run replays the script from the top
        done = cli([*args, "--json"], env)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.splitlines()[-1])
        assert result["answer"] == "a Recursive Language Model engine and how to run it"
        assert result["stop_reason"] == "final"


def test_a_script_that_runs_out_fails_the_run_with_the_reason(serve: Serve, tmp_path: Path) -> None:
    script = tmp_path / "short.jsonl"
    script.write_text(json.dumps({"root": "Looking.\n```repl\nprint(1 + 1)\n```"}) + "\n")
    env = cli_env(tmp_path, serve(script))
    done = cli(["ask", "q", "--model", "openai/sim"], env)
    assert done.returncode not in (0, 2)
    assert "no root reply left" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_a_malformed_script_is_refused_with_its_line(tmp_path: Path) -> None:
    script = tmp_path / "bad.jsonl"
    script.write_text('{"root": "fine"}\n{"root": oops}\n')
    done = cli(["sim", "serve", "--port", "0", "--script", str(script)], cli_env(tmp_path, "x"))
    assert done.returncode == 2
    assert f"{script}:2: not valid JSON" in done.stderr
    assert "Traceback" not in done.stderr
