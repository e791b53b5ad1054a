"""The dir: source end to end: `rlm-ingestor --once` over an inbox of prompt files, each
run a real `rlm-orchestrator` subprocess against the simulator; answered files move to
`done/`, and a restart triggers nothing."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator_support import is_root, job_env

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread

INGESTOR = [sys.executable, "-m", "rlm_engine.jobs.ingestor"]
ADD = re.compile(r"add (\d+) and (\d+)")


def adder(messages: list[dict[str, Any]]) -> str:
    """Root: one cell that computes the sum the question asks for and ends the run (the
    arithmetic happens in the REPL, not in the policy)."""
    assert is_root(messages)
    found = ADD.search("\n".join(message_text(m) for m in messages))
    assert found, "the question reached the root prompt"
    return f"```repl\nFINAL(str({found.group(1)} + {found.group(2)}))\n```"


def ingest(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INGESTOR, *args], capture_output=True, text=True, env=env, timeout=150, check=False
    )


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_an_inbox_is_answered_once_and_moved_to_done(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "first.txt").write_text("Please add 2 and 3.")
    (inbox / "second.md").write_text("# Sum\nadd 10 and 20")
    (inbox / "second.json").write_text(json.dumps({"model": "openai/other-model"}))
    (inbox / ".partial.txt").write_text("add 1 and 1")  # still being written: ignored
    with SimServerThread(SimConfig(), CallablePolicy(adder)) as sim:
        env = job_env(tmp_path, sim.url)
        args = ["--source", f"dir:{inbox}", "--once", "--model", "openai/m", "--json"]
        args += ["--executor", "inline"]
        done = ingest(args, env)
        assert done.returncode == 0, done.stderr
        reports = {r["task_key"].split("@")[0]: r for r in lines(done.stdout)}
        assert set(reports) == {"first.txt", "second.md"}
        assert {r["status"] for r in reports.values()} == {"completed"}
        assert (reports["first.txt"]["answer"], reports["second.md"]["answer"]) == ("5", "30")
        models = {r.model for r in sim.requests}
        assert models == {"m", "other-model"}  # the sidecar's model for its task only

        assert sorted(p.name for p in inbox.iterdir()) == [".partial.txt", "done"]
        finished = inbox / "done"
        assert (finished / "first.answer.txt").read_text() == "5"
        assert (finished / "second.answer.txt").read_text() == "30"
        assert (finished / "second.json").is_file() and (finished / "second.md").is_file()
        record = json.loads((finished / "first.result.json").read_text())
        assert record["status"] == "completed"
        assert record["run_id"] == reports["first.txt"]["run_id"]

        # A restart finds nothing new: no line, no model request.
        asked = len(sim.requests)
        again = ingest(args, env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == ""
        assert len(sim.requests) == asked


def test_a_bad_sidecar_fails_its_task_and_the_others_still_run(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "good.txt").write_text("add 4 and 4")
    (inbox / "bad.txt").write_text("add 1 and 2")
    (inbox / "bad.json").write_text('{"modle": "x"}')
    with SimServerThread(SimConfig(), CallablePolicy(adder)) as sim:
        env = job_env(tmp_path, sim.url)
        args = ["--source", f"dir:{inbox}", "--once", "--model", "openai/m"]
        args += ["--executor", "inline"]
        done = ingest(args, env)
        assert done.returncode == 1, done.stderr
        rows = dict(line.split("\t", 1) for line in done.stdout.splitlines())
        by_name = {key.split("@")[0]: rest for key, rest in rows.items()}
        assert by_name["good.txt"].endswith("\tcompleted")
        assert "\tfailed\t" in by_name["bad.txt"] and "modle" in by_name["bad.txt"]
        assert (inbox / "done" / "good.answer.txt").read_text() == "8"
        failed = json.loads((inbox / "failed" / "bad.result.json").read_text())
        assert failed["status"] == "failed" and "unknown key(s) modle" in failed["error"]
        assert len(sim.requests) == 1  # the bad task started no run


def test_unknown_flags_for_the_orchestrator_are_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text("add 1 and 1")
    env = job_env(tmp_path, "http://127.0.0.1:9/v1")
    done = ingest(["--source", f"dir:{inbox}", "--once", "--max-depht", "2"], env)
    assert done.returncode == 2
    assert "--max-depht" in done.stderr and "hint:" in done.stderr
    assert (inbox / "a.txt").is_file()
    reserved = ingest(["--source", f"dir:{inbox}", "--once", "--session-id", "x"], env)
    assert reserved.returncode == 2 and "set by the ingestor" in reserved.stderr
    missing = ingest(["--source", f"dir:{tmp_path / 'nowhere'}", "--once"], env)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    bad = ingest(["--source", "ftp:x", "--once"], env)
    assert bad.returncode == 2 and "delta:PATH" in bad.stderr


def wait_for(path: Path, proc: subprocess.Popen[str], deadline_s: float = 90) -> None:
    deadline = time.monotonic() + deadline_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_without_once_it_polls_until_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "one.txt").write_text("add 1 and 1")
    with SimServerThread(SimConfig(), CallablePolicy(adder)) as sim:
        env = job_env(tmp_path, sim.url)
        args = ["--source", f"dir:{inbox}", "--poll-s", "0.2", "--model", "openai/m"]
        proc = subprocess.Popen(
            [*INGESTOR, *args, "--executor", "inline"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(inbox / "done" / "one.answer.txt", proc)
            (inbox / "two.txt").write_text("add 2 and 2")  # arrives while it runs
            wait_for(inbox / "done" / "two.answer.txt", proc)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert "SIGTERM: stopping" in err
        assert [line.split("\t")[2] for line in out.splitlines()] == ["completed", "completed"]
        assert (inbox / "done" / "two.answer.txt").read_text() == "4"


def test_the_command_line_keeps_task_values_as_values_and_the_task_model_wins() -> None:
    from rlm_engine.jobs.args import orchestrator_parser
    from rlm_engine.jobs.ingestor import session_id_for
    from rlm_engine.jobs.triggers import LocalTrigger, RunRequest, parse_result

    trigger = LocalTrigger(job_args=["--lakehouse", "/lake"], extra_args=["--model", "openai/a"])
    session = session_id_for("dir:/inbox", "notes v2.txt@0a1b")
    assert session.startswith("ingest-") and " " not in session and "@" not in session
    assert session != session_id_for("dir:/inbox", "notes_v2.txt_0a1b")
    argv = trigger.argv(
        RunRequest("--help is what I need", session, "dir:/inbox:k", "/data.csv", "openai/b")
    )
    parsed = orchestrator_parser().parse_args(argv[3:])
    assert (parsed.prompt, parsed.model, parsed.context) == (
        "--help is what I need",
        "openai/b",
        ["/data.csv"],
    )
    assert (parsed.session_id, parsed.dedupe_key, parsed.json) == (session, "dir:/inbox:k", True)

    assert parse_result(-9, "", "Killed").status == "lost"
    interrupted = '{"error": {"type": "RunInterrupted"}, "run_id": "r", "exit_code": 130}'
    assert parse_result(130, interrupted, "").status == "lost"
    refused = (
        '{"error": {"type": "ContextError", "message": "no file", "hint": "h"}, "exit_code": 1}'
    )
    assert parse_result(1, refused, "").error == "ContextError: no file (hint: h)"
    no_answer = '{"answer": "", "run_id": "r", "stop_reason": "max_iterations", "exit_code": 3}'
    assert parse_result(3, no_answer, "").status == "failed"
