"""`rlm-orchestrator` end to end: a real subprocess against the simulator, its cells run by
`rlm-executor` as artifacts, and the Delta tables it leaves behind."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from orchestrator_support import (
    is_root,
    job_env,
    lakehouse,
    orchestrate,
    table_rows,
    turn,
)

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread

CELLS = [
    "```repl\nhalf = int(llm_query('what is half of 84?'))\nprint(half)\n```",
    "```repl\nFINAL(f'{half} from {context.strip()}')\n```",
]


class Recorder:
    """Root: the two cells (a sub-call whose reply the second cell reads from the REPL, so
    variables must persist from artifact to artifact). Sub-calls: "42"."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.root_turns: list[int] = []
        self.sub_prompts: list[str] = []

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        with self.lock:
            if is_root(messages):
                self.root_turns.append(turn(messages))
                return CELLS[min(turn(messages), len(CELLS) - 1)]
            self.sub_prompts.append(message_text(messages[-1]))
            return "42"


def test_a_run_answers_through_artifacts_and_fills_the_tables(tmp_path: Path) -> None:
    context = tmp_path / "ctx.txt"
    context.write_text("the ledger\n")
    policy = Recorder()
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = job_env(tmp_path, sim.url)
        args = [
            *("--prompt", "what is half of 84?", "--context", str(context)),
            *("--model", "openai/m", "--session-id", "s-one", "--user-id", "ana"),
            *("--dedupe-key", "tasks:1", "--json"),
        ]
        done = orchestrate(args, env)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["answer"] == "42 from the ledger"
        assert (out["session_id"], out["dedupe_key"], out["resumed"]) == ("s-one", "tasks:1", False)
        run_id = out["run_id"]
        assert policy.root_turns == [0, 1] and policy.sub_prompts == ["what is half of 84?"]

        # The same dedupe key again: the recorded answer, and nothing asked of the model.
        again = orchestrate(args, env)
        assert again.returncode == 0, again.stderr
        repeat = json.loads(again.stdout)
        assert (repeat["answer"], repeat["run_id"], repeat["resumed"]) == (
            "42 from the ledger",
            run_id,
            False,
        )
        assert policy.root_turns == [0, 1] and len(policy.sub_prompts) == 1

        text = orchestrate([a for a in args if a != "--json"], env)
        assert text.returncode == 0 and text.stdout.strip() == "42 from the ledger"

    root = lakehouse(tmp_path)
    runs = table_rows(root, "runs")
    assert len(runs) == 1
    (row,) = runs
    assert (row["run_id"], row["status"], row["answer"]) == (run_id, "completed", out["answer"])
    assert (row["session_id"], row["user_id"], row["dedupe_key"]) == ("s-one", "ana", "tasks:1")
    assert row["iterations"] == 2 and row["sub_calls"] == 1

    artifacts = [a for a in table_rows(root, "artifact_registry") if a["session_id"] == "s-one"]
    assert {a["status"] for a in artifacts} == {"completed"}
    codes: list[str] = []
    for artifact in artifacts:
        folder = root / "artifacts" / "s-one" / artifact["artifact_id"]
        assert json.loads((folder / "result.json").read_text())["status"] == "success"
        codes.append((folder / "code.py").read_text())
    # Each of the model's cells ran as one artifact (beside the engine's own setup cell).
    for cell in CELLS:
        body = cell.removeprefix("```repl\n").removesuffix("\n```")
        assert codes.count(body) == 1, codes

    telemetry = [t for t in table_rows(root, "telemetry") if t["run_id"] == run_id]
    seqs = [t["seq"] for t in telemetry]
    assert len(seqs) == len(set(seqs))  # each event once, however often it was mirrored
    types = {t["event_type"] for t in telemetry}
    assert {"run_started", "iteration_finished", "run_finished"} <= types

    (session,) = [s for s in table_rows(root, "sessions") if s["session_id"] == "s-one"]
    state = json.loads(session["state_json"])
    assert state["rlm:iteration"] == 2 and state["rlm:last_run_id"] == run_id
    assert session["user_id"] == "ana"
    assert not any(key.startswith("temp:") for key in state)
