"""What the benchmarks that drive engines through `rlm sim serve` share: starting the
simulator, running `rlm ask` as users do (its own process, a fresh store), running a
peer's driver script in the peer's own virtual environment, and error-carrying samples."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def start_sim(*args: str) -> tuple[subprocess.Popen[str], str]:
    """A `rlm sim serve` process on a free port, and its base URL."""
    command = [sys.executable, "-m", "rlm_engine.cli.main", "sim", "serve", "--port", "0"]
    proc = subprocess.Popen([*command, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    match = re.search(r"(http://\S+)", proc.stdout.readline())
    if match is None:
        proc.kill()
        raise RuntimeError("simulator did not start")
    return proc, match.group(1)


_FANOUT_REPORT = re.compile(r"elapsed ([0-9.]+) answers (\d+) errors (\d+)")


def fanout_seconds(answer: str, count: int) -> float:
    """The in-cell time a FANOUT=<count> run reports; every answer must have come back."""
    match = _FANOUT_REPORT.search(answer)
    if match is None:
        raise RuntimeError(f"no timing in output: {answer[-800:]!r}")
    if int(match.group(2)) != count or int(match.group(3)) != 0:
        raise RuntimeError(f"wrong answers: {match.group(0)}")
    return float(match.group(1))


def cli_env(home: str, url: str, **extra: str) -> dict[str, str]:
    """The environment of an `rlm` command run by a benchmark: this one's, less any model or
    store settings of the user's, pointed at the simulator and a store under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "RLM_"))}
    return {**env, "RLM_HOME": home, "RLM_SIM_URL": url, **extra}


def rlm_ask(
    url: str, question: str, context: str, *flags: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`rlm ask --json` against the simulator at ``url``, journaled in a fresh store under a
    temporary RLM_HOME (SQLite unless ``env`` names another); the printed result."""
    with tempfile.TemporaryDirectory(prefix="rlm-bench-") as home:
        path = Path(home) / "context.txt"
        path.write_text(context)
        command = [str(Path(sys.executable).with_name("rlm")), "ask", question]
        command += ["--model", "sim/sim-model", "--context", str(path), "--json", *flags]
        done = subprocess.run(
            command,
            env=cli_env(home, url, **(env or {})),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"rlm ask exit {done.returncode}: {done.stderr[-800:]}")
    return json.loads(done.stdout)


def run_peer(python: str, driver: str, args: Sequence[str], timeout: float = 900) -> str:
    """Run a peer's driver script with the peer's interpreter; its stdout."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(driver)
    try:
        done = subprocess.run(
            [python, handle.name, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip()][-3:]
        raise RuntimeError(f"exit {done.returncode}: {' / '.join(last)}")
    return done.stdout


def sample(measure: Callable[[], float]) -> float | str:
    """One measurement, or the error that stopped it (reported, never faked)."""
    try:
        return measure()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
