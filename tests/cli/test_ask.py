"""`rlm ask` through the real OpenAI SDK against the simulator on loopback."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_support import is_root, turn

from rlm_engine.cli import discover
from rlm_engine.cli.main import main
from rlm_engine.errors import ConfigurationError
from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread

NEEDLE = "8675309"

ROOT_TURNS = [
    "```repl\nprint(type(context).__name__, len(context))\n```",
    "```repl\n"
    "lines = context.splitlines()\n"
    "chunks = ['\\n'.join(lines[i:i + 20000]) for i in range(0, len(lines), 20000)]\n"
    "answers = llm_query_batched(['Report the magic number or NONE.\\n' + c for c in chunks])\n"
    "hits = [a for a in answers if a != 'NONE']\nprint(len(chunks), hits)\n```",
    "```repl\nFINAL(hits[0])\n```",
]


def policy(messages: list[dict[str, Any]]) -> str:
    if is_root(messages):
        return ROOT_TURNS[min(turn(messages), len(ROOT_TURNS) - 1)]
    for line in message_text(messages[-1]).splitlines():
        if "magic number for" in line:
            return line.rsplit(" ", 1)[-1].rstrip(".")
    return "NONE"


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    rng = random.Random(3)
    words = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
    ]
    lines = [" ".join(rng.choice(words) for _ in range(10)) for _ in range(330_000)]
    lines[211_007] = f"The special magic number for silent-river is {NEEDLE}."
    path = tmp_path / "big.txt"
    path.write_text("\n".join(lines))
    assert path.stat().st_size > 20_000_000
    return path


def test_ask_finds_a_needle_in_20mb_through_the_openai_sdk(big_file: Path, tmp_path: Path) -> None:
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "RLM_"))}
        env.update(OPENAI_BASE_URL=sim.url, RLM_HOME=str(tmp_path / "home"))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "rlm_engine.cli.main",
                "ask",
                "What is the special magic number for silent-river?",
                "--context",
                str(big_file),
                "--model",
                "openai/sim-model",
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        records = sim.requests
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"] == NEEDLE
    assert out["stop_reason"] == "final"
    assert out["iterations"] == 3
    assert {"run_id", "usage", "cost_usd"} <= out.keys()
    root_sizes = [r.prompt_chars for r in records if is_root(r.messages)]
    sub_sizes = [r.prompt_chars for r in records if not is_root(r.messages)]
    assert len(root_sizes) == 3 and len(sub_sizes) == 17
    # The root sees a few KB (system prompt, metadata, outputs); the chunks go to sub-calls.
    assert max(root_sizes) < 12_000
    assert sum(sub_sizes) > 20_000_000

    listing = subprocess.run(
        [sys.executable, "-m", "rlm_engine.cli.main", "runs", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    runs = json.loads(listing.stdout)
    assert runs[0]["run_id"] == out["run_id"] and runs[0]["status"] == "completed"


def test_discovery_prefers_explicit_then_servers_then_keys() -> None:
    def probe(url: str) -> list[str]:
        return ["qwen3"] if "11434" in url else []

    assert discover.discover_model({"RLM_MODEL": "x/y"}, probe) == "x/y"
    assert discover.discover_model({}, probe) == "ollama/qwen3"
    assert discover.discover_model({"OPENAI_API_KEY": "k"}, lambda u: []) == "openai/gpt-5-mini"
    with pytest.raises(ConfigurationError) as info:
        discover.discover_model({}, lambda u: [])
    assert "--model" in str(info.value) and "OPENAI_BASE_URL" in str(info.value)


def test_ask_without_a_model_explains_how_to_configure_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(discover, "list_models", lambda url, timeout_s=0.5: [])
    assert main(["ask", "question"]) == 2
    err = capsys.readouterr().err
    assert "no model is configured" in err and "rlm demo" in err


def test_missing_context_path_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "q", "--model", "scripted/none.jsonl", "--context", "/no/such/file"])
    assert code != 0
    assert "/no/such/file" in capsys.readouterr().err


def test_models_lists_variables_without_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-value-123")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "OPENAI_API_KEY" in out and "sk-canary-value-123" not in out


def test_demo_runs_offline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--lines", "20000", "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.splitlines()[-1])
    assert result["answer"] == "db-7 at 2026-03-14T03:14:15Z"
    assert result["stop_reason"] == "final"
    assert "scripted model" in out
