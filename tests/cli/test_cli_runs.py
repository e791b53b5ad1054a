"""`rlm runs list|show|tree|export|delete` against the store under RLM_HOME.

Runs are written through the store's public API the way the engine journals them: a root
turn, a cell, the sub-call it made, and the events of each step.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from cli_support import is_root, turn

from rlm_engine.cli.main import build_parser, main
from rlm_engine.cli.store_access import open_cli_store
from rlm_engine.events import (
    CellFinished,
    CellStarted,
    Final,
    RunFinished,
    RunStarted,
    SubcallFinished,
    SubcallStarted,
)
from rlm_engine.settings import Settings
from rlm_engine.store import CellStart, ModelCall, NewRun, RunTotals, SqlStore, Usage

REPLY = "I will ask a sub-model.\n```repl\nx = llm_query('say hello')\nprint(x)\nFINAL(x)\n```"


@pytest.fixture
def store() -> Iterator[SqlStore]:
    opened = open_cli_store(Settings.from_env())
    yield opened
    opened.close()


def seed_run(
    store: SqlStore, run_id: str, question: str, created_at: float, session: str | None = None
) -> None:
    """A finished run: root turn r/0, cell r/1 that made sub-call r/1/0, and its events."""
    store.create_run(
        NewRun(
            run_id=run_id,
            question=question,
            model="scripted/root",
            sub_model="scripted/sub",
            settings={"context": []},
            session=session,
            created_at=created_at,
        )
    )
    origin: dict[str, Any] = {"run_id": run_id, "depth": 0}
    store.append_event(
        RunStarted(**origin, question=question, model="scripted/root", sub_model="scripted/sub")
    )
    store.record_model_call(
        ModelCall(
            run_id=run_id,
            node_id="r/0",
            parent_id="r",
            kind="root_turn",
            request_hash="h0",
            response=REPLY,
            model="scripted/root",
            usage=Usage(120, 30),
            cost_usd=0.002,
            latency_s=0.5,
        )
    )
    code = "x = llm_query('say hello')\nprint(x)\nFINAL(x)"
    start = CellStart(run_id, "r/1", 1, 0, code)
    store.begin_cell(start)
    store.append_event(CellStarted(**origin, node_id="r/1", iteration=1, cell_index=0, code=code))
    sub = {**origin, "node_id": "r/1/0", "call_id": "c2", "kind": "llm"}
    store.append_event(SubcallStarted(**sub, prompt_chars=9))
    store.record_model_call(
        ModelCall(
            run_id=run_id,
            node_id="r/1/0",
            parent_id="r/1",
            kind="llm",
            request_hash="h1",
            response="HELLO",
            model="scripted/sub",
            usage=Usage(3, 1),
        )
    )
    store.append_event(SubcallFinished(**sub, ok=True, result_chars=5))
    store.finish_cell(start.key, status="completed", output="HELLO\n", meta={"cell_status": "ok"})
    store.append_event(
        CellFinished(
            **origin,
            node_id="r/1",
            iteration=1,
            cell_index=0,
            status="ok",
            output="HELLO\n",
            output_chars=6,
            duration_s=0.1,
        )
    )
    store.append_event(Final(**origin, node_id="r", answer="HELLO"))
    store.append_event(
        RunFinished(
            **origin,
            stop_reason="final",
            iterations=1,
            input_tokens=123,
            output_tokens=31,
            cost_usd=0.002,
            duration_s=1.0,
        )
    )
    totals = RunTotals(input_tokens=123, output_tokens=31, cost_usd=0.002, iterations=1)
    store.finish_run(run_id, status="completed", stop_reason="final", answer="HELLO", totals=totals)


@pytest.fixture
def runs(store: SqlStore) -> list[str]:
    seed_run(store, "run-old", "first question", 1_000.0)
    seed_run(store, "run-mid", "second question", 2_000.0, session="team")
    seed_run(store, "run-new", "third question", 3_000.0)
    return ["run-new", "run-mid", "run-old"]


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_list_json_newest_first_with_filters(
    runs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    listed = cli_json(capsys, "runs", "list", "--json")
    assert [r["run_id"] for r in listed] == runs
    first = listed[0]
    for key in ("run_id", "status", "question", "created_at", "stop_reason", "answer", "session"):
        assert key in first
    assert first["status"] == "completed" and first["answer"] == "HELLO"
    assert first["created_at"] == 3_000.0 and first["totals"]["input_tokens"] == 123
    assert [r["run_id"] for r in cli_json(capsys, "runs", "list", "--json", "--limit", "1")] == [
        "run-new"
    ]
    in_team = cli_json(capsys, "runs", "list", "--json", "--session", "team")
    assert [r["run_id"] for r in in_team] == ["run-mid"]
    assert cli_json(capsys, "runs", "list", "--json", "--status", "failed") == []


def test_list_text(runs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]  # below the header
    assert [line.split()[0] for line in lines] == runs
    assert "third question" in lines[0] and "completed" in lines[0]


def test_list_marks_a_run_whose_process_died_as_interrupted(
    store: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another process opens a run and exits without finishing it, as a killed `rlm ask`.
    script = textwrap.dedent(
        """
        from rlm_engine.cli.store_access import open_cli_store
        from rlm_engine.settings import Settings
        from rlm_engine.store import NewRun
        open_cli_store(Settings.from_env()).create_run(NewRun(run_id="dead", question="q"))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    listed = cli_json(capsys, "runs", "list", "--json")
    assert [(r["run_id"], r["status"]) for r in listed] == [("dead", "interrupted")]


def test_show_json_has_the_run_its_events_and_cells(
    runs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    shown = cli_json(capsys, "runs", "show", "run-mid", "--json")
    assert shown["run_id"] == "run-mid" and shown["session"] == "team"
    assert shown["settings"] == {"context": []}
    types = [e["type"] for e in shown["events"]]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert "subcall_started" in types and "cell_finished" in types
    assert [e["seq"] for e in shown["events"]] == list(range(len(types)))
    (cell,) = shown["cells"]
    assert cell["node_id"] == "r/1" and cell["output"] == "HELLO\n"


def test_show_text(runs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "show", "run-old"]) == 0
    out = capsys.readouterr().out
    assert "question: first question" in out and "answer: HELLO" in out
    assert "events: 7; cells: 1" in out


def test_tree_nests_turns_cells_and_sub_calls(
    runs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    tree = cli_json(capsys, "runs", "tree", "run-new", "--json")
    assert tree["id"] == "r" and tree["kind"] == "run" and tree["status"] == "completed"
    turn, cell = tree["children"]
    assert (turn["id"], turn["kind"], turn["model"]) == ("r/0", "root_turn", "scripted/root")
    assert turn["usage"]["input_tokens"] == 120 and turn["cost_usd"] == 0.002
    assert (cell["id"], cell["kind"], cell["status"]) == ("r/1", "cell", "completed")
    (sub,) = cell["children"]
    assert (sub["id"], sub["kind"], sub["model"]) == ("r/1/0", "llm", "scripted/sub")

    assert main(["runs", "tree", "run-new"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("r  ")
    assert lines[1].startswith("  r/0  root turn  completed  scripted/root  120 in / 30 out")
    assert "$0.0020" in lines[1]
    assert lines[2].startswith("  r/1  cell 1.1  completed")
    assert lines[3].startswith("    r/1/0  llm  completed  scripted/sub")


@pytest.mark.parametrize("fmt", ["ipynb", "jsonl", "md"])
def test_export_writes_each_format(
    runs: list[str], tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "exports" / f"run.{fmt}"
    target.parent.mkdir()
    assert main(["runs", "export", "run-new", "--format", fmt, "-o", str(target)]) == 0
    text = target.read_text(encoding="utf-8")
    if fmt == "ipynb":
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code[1].source.startswith("x = llm_query") and "'HELLO'" in code[0].source
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
        assert [r["record"] for r in rows] == ["event"] * 7 + ["cell"]
    else:
        assert "third question" in text and "I will ask a sub-model." in text
    assert str(target) in capsys.readouterr().err


def test_export_to_stdout(runs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "export", "run-new", "--format", "md", "-o", "-"]) == 0
    assert capsys.readouterr().out.startswith("# RLM run run-new")


def test_delete(runs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "delete", "run-mid", "--yes"]) == 0
    assert "deleted run run-mid" in capsys.readouterr().out
    assert [r["run_id"] for r in cli_json(capsys, "runs", "list", "--json")] == [
        "run-new",
        "run-old",
    ]


def test_gc_frees_blobs_no_run_refers_to(
    store: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    orphan = store.blobs.put(b"left behind by a deleted run")
    kept = cli_json(capsys, "runs", "gc", "--json")  # within the default hour of grace
    assert kept["blobs_removed"] == 0 and store.blobs.exists(orphan)
    freed = cli_json(capsys, "runs", "gc", "--grace-hours", "0", "--json")
    assert freed["blobs_removed"] == 1 and freed["bytes_freed"] == 28
    assert not store.blobs.exists(orphan)
    assert main(["runs", "gc", "--grace-hours", "-1"]) == 2


def test_a_reader_that_goes_away_ends_the_listing_quietly(store: SqlStore) -> None:
    for i in range(200):  # about 200 KB of JSON: more than a pipe holds
        store.create_run(NewRun(run_id=f"r{i}", question="q" * 1000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_engine.cli.main", "runs", "list", "--json", "--limit", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # like `| head -c 10`
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""


def test_delete_without_yes_and_without_a_terminal_refuses(
    runs: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert main(["runs", "delete", "run-mid"]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert len(cli_json(capsys, "runs", "list", "--json")) == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "show", "nope"],
        ["runs", "show", "nope", "--json"],
        ["runs", "tree", "nope"],
        ["runs", "export", "nope", "--format", "md", "-o", "x.md"],
        ["runs", "delete", "nope", "--yes"],
    ],
)
def test_unknown_run_is_a_usage_error_that_says_how_to_list_runs(
    runs: list[str], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no run 'nope'" in err and "rlm runs list" in err
    assert "is recorded" not in err  # nothing is: the store holds no such run


def test_resume_stays_registered_under_runs() -> None:
    args = build_parser().parse_args(["runs", "resume", "some-run", "--json"])
    assert args.run_id == "some-run" and callable(args.handler)


def test_a_run_of_rlm_ask_exports_to_a_notebook_that_reexecutes_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The acceptance path: `rlm ask` against the simulator, then `rlm runs export`, then
    the notebook runs in a fresh kernel with the simulator gone."""
    from nbclient import NotebookClient

    from rlm_engine.sim.config import SimConfig
    from rlm_engine.sim.policies import CallablePolicy, message_text
    from rlm_engine.sim.runner import SimServerThread

    def policy(messages: list[dict[str, Any]]) -> str:
        if not is_root(messages):
            return message_text(messages[-1]).upper()
        return [
            "First the lines.\n```repl\nlines = context.splitlines()\nlines\n```",
            "Shout each line.\n```repl\nloud = llm_query_batched(lines)\nprint(loud)\n```",
            "```repl\nFINAL(' | '.join(loud))\n```",
        ][min(turn(messages), 2)]

    ctx = tmp_path / "ctx.txt"
    ctx.write_text("one fish\ntwo fish\n", encoding="utf-8")
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        monkeypatch.setenv("OPENAI_BASE_URL", sim.url)
        argv = ["ask", "Shout it", "--context", str(ctx), "--model", "openai/m", "--json"]
        assert main(argv) == 0
        run_id = json.loads(capsys.readouterr().out)["run_id"]
    target = tmp_path / "run.ipynb"
    assert main(["runs", "export", run_id, "--format", "ipynb", "-o", str(target)]) == 0
    notebook = nbformat.read(str(target), as_version=4)
    nbformat.validate(notebook)
    recorded = [[dict(o) for o in c.outputs] for c in notebook.cells if c.cell_type == "code"]
    assert recorded[1] == [
        {"output_type": "stream", "name": "stdout", "text": "['one fish', 'two fish']\n"}
    ]
    assert recorded[2][0]["text"] == "['ONE FISH', 'TWO FISH']\n"
    NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    executed = [c for c in notebook.cells if c.cell_type == "code"]
    for cell, expected in zip(executed, recorded, strict=True):
        assert joined_streams(cell.outputs) == joined_streams(expected)


def joined_streams(outputs: list[Any]) -> list[tuple[str, str]]:
    """(stream name, text) with adjacent chunks of one stream joined: a kernel may flush a
    stream in several pieces."""
    joined: list[tuple[str, str]] = []
    for out in outputs:
        assert out["output_type"] == "stream", out
        if joined and joined[-1][0] == out["name"]:
            joined[-1] = (out["name"], joined[-1][1] + out["text"])
        else:
            joined.append((out["name"], out["text"]))
    return joined
