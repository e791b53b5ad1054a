"""`rlm ask` on a terminal: the live line tells the truth, and Ctrl-C saves the run.

The CLI runs in a pseudo-terminal (its controlling terminal, so writing ``\\x03`` to it is
a real Ctrl-C) against the simulator. The simulator holds the root's first reply until
the screen says the root model is awaited, and holds sub-calls past the first few, so
every state is seen on the screen without timing anything.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli, cli_env, is_root, turn

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread

CALLS, WIDTH, FREE = 64, 4, 8
BATCH = (
    "```repl\n"
    f"out = llm_query_batched([f'item {{i}}' for i in range({CALLS})])\n"
    "print(sum(a.startswith('answer to item') for a in out))\n"
    "```"
)
WAIT_S = 60.0
# Becomes the controlling terminal's session leader, then runs `rlm` with the given args.
BOOT = (
    "import fcntl, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "from rlm_engine.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]")
LIVE = re.compile(
    r"sub-calls (?P<flight>\d+) in flight, (?P<queued>\d+) queued, (?P<done>\d+) done"
)


class HeldPolicy:
    """Root: the batch (once ``root_gate`` is set), then FINAL. Sub-calls: the first FREE
    answer at once, the others once ``release`` is set."""

    def __init__(self) -> None:
        self.root_gate = threading.Event()
        self.release = threading.Event()
        self.arrivals = 0

    async def __call__(self, messages: list[dict[str, Any]]) -> str:
        if is_root(messages):
            if turn(messages) == 0:
                await _until(self.root_gate)
                return BATCH
            return "```repl\nFINAL('done')\n```"
        self.arrivals += 1
        if self.arrivals > FREE:
            await _until(self.release)
        return f"answer to {message_text(messages[-1])}"


async def _until(flag: threading.Event) -> None:
    for _ in range(int(WAIT_S / 0.02)):
        if flag.is_set():
            return
        await asyncio.sleep(0.02)


class Screen:
    """Everything a process wrote to its terminal, read on a thread."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.raw = bytearray()
        self.changed = threading.Condition()
        self.closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                chunk = b""
            with self.changed:
                if not chunk:
                    self.closed = True
                    self.changed.notify_all()
                    return
                self.raw += chunk
                self.changed.notify_all()

    def text(self) -> str:
        with self.changed:
            return ANSI.sub("", self.raw.decode(errors="replace"))

    def frames(self) -> list[str]:
        """The lines the terminal showed, each redraw of the live line one of them."""
        return [f for f in re.split(r"[\r\n]", self.text()) if f.strip()]

    def wait_for(self, seen: Callable[[str], bool], what: str) -> None:
        with self.changed:
            ok = self.changed.wait_for(
                lambda: self.closed or seen(ANSI.sub("", self.raw.decode(errors="replace"))),
                timeout=WAIT_S,
            )
        assert ok and seen(self.text()), f"never saw {what}; the screen:\n{self.text()}"

    def join(self) -> None:
        self._thread.join(WAIT_S)


def spawn_on_terminal(
    args: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], Screen]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 240, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-c", BOOT, *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "240", "LINES": "40"},
        start_new_session=True,
    )
    os.close(slave)
    return proc, Screen(master)


def holding_slots(text: str) -> bool:
    """A frame shows the held sub-calls: every slot taken, the rest queued."""
    return any(
        int(m["flight"]) == WIDTH and int(m["queued"]) > 0 and int(m["done"]) == FREE
        for m in LIVE.finditer(text)
    )


def only_run(env: dict[str, str]) -> dict[str, Any]:
    listing = cli(["runs", "list", "--json"], env)
    assert listing.returncode == 0, listing.stderr
    runs = json.loads(listing.stdout)
    assert len(runs) == 1, runs
    return runs[0]


def ask_args(tmp_path: Path) -> list[str]:
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("a context")
    model = ["--model", "openai/m", "--max-concurrency", str(WIDTH)]
    return ["ask", "q", "--context", str(ctx), *model]


def test_the_live_line_is_honest_and_ctrl_c_saves_the_run(tmp_path: Path) -> None:
    policy = HeldPolicy()
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        proc, screen = spawn_on_terminal(ask_args(tmp_path), env)
        try:
            screen.wait_for(lambda t: "waiting for the root model" in t, "the root awaited")
            policy.root_gate.set()
            screen.wait_for(holding_slots, f"{WIDTH} sub-calls in flight and the rest queued")
            os.write(screen.master, b"\x03")  # Ctrl-C, through the terminal
            code = proc.wait(WAIT_S)
        finally:
            policy.release.set()
            if proc.poll() is None:
                proc.kill()
        screen.join()
        run = only_run(env)
        run_id = run["run_id"]

        frames = screen.frames()
        counts = [m for f in frames for m in LIVE.finditer(f)]
        assert counts and all(int(m["flight"]) <= WIDTH for m in counts), frames
        text = screen.text()
        assert code == 130, text
        assert re.search(rf"run {run_id} \| elapsed \d+s \| iteration \d", text), text
        assert run["status"] == "interrupted", run
        ending = text[text.index("rlm: stopping run") :]
        # The last line stays, with the outcome and what the interrupt cut off.
        assert re.search(
            r"\| interrupted \| sub-calls 8 done(, \d+ failed)?, \d+ unfinished \|", ending
        )
        assert f"rlm: interrupted: run {run_id} is saved" in ending, ending
        assert f"rlm runs resume {run_id}" in ending, ending

        resumed = cli(["runs", "resume", run_id, "--json"], env)
        assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["answer"] == "done" and out["run_id"] == run_id


def interrupt_on_terminal(args: list[str], env: dict[str, str], keys: bytes) -> tuple[int, str]:
    """Run ``rlm ARGS`` on a terminal until the held sub-calls fill every slot, then type
    ``keys``; the exit status and the screen."""
    proc, screen = spawn_on_terminal(args, env)
    try:
        screen.wait_for(holding_slots, f"{WIDTH} sub-calls in flight")
        os.write(screen.master, keys)
        code = proc.wait(WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    screen.join()
    return code, screen.text()


def test_a_second_ctrl_c_quits_at_once_and_an_interrupted_resume_resumes(
    tmp_path: Path,
) -> None:
    policy = HeldPolicy()
    policy.root_gate.set()
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        try:
            code, text = interrupt_on_terminal(ask_args(tmp_path), env, b"\x03\x03")
            assert code == 130, text
            run_id = only_run(env)["run_id"]
            assert f"continue it with: rlm runs resume {run_id}" in text, text
            assert only_run(env)["status"] == "interrupted"

            # The resume answers the journaled sub-calls (8 done) and is held like the ask.
            code, text = interrupt_on_terminal(["runs", "resume", run_id], env, b"\x03")
            assert code == 130, text
            assert f"rlm: interrupted: run {run_id} is saved" in text, text
            assert only_run(env)["status"] == "interrupted"
        finally:
            policy.release.set()
        resumed = cli(["runs", "resume", run_id, "--json"], env)
        assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["answer"] == "done"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_a_piped_run_saves_it_with_plain_lines(
    tmp_path: Path, sig: signal.Signals
) -> None:
    policy = HeldPolicy()
    policy.root_gate.set()
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlm_engine.cli.main", *ask_args(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            _until_arrivals(policy, FREE + WIDTH, proc)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=WAIT_S)
        finally:
            policy.release.set()
            if proc.poll() is None:
                proc.kill()
        run = only_run(env)
    stderr = err.decode()
    assert proc.returncode == 130, stderr
    assert stderr.startswith(f"run {run['run_id']} started\n"), stderr
    assert "\x1b[" not in stderr  # no terminal, no escapes
    assert f"rlm runs resume {run['run_id']}" in stderr
    assert run["status"] == "interrupted" and sig.name in (run["detail"] or ""), run


def _until_arrivals(policy: HeldPolicy, count: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until ``count`` sub-calls reached the simulator (the held ones among them)."""
    pause = threading.Event()
    for _ in range(int(WAIT_S / 0.02)):
        if policy.arrivals >= count or proc.poll() is not None:
            break
        pause.wait(0.02)
    assert policy.arrivals >= count, proc.poll()
