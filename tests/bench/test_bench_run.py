"""``rlm bench run`` end to end against the in-process oracle simulator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from rlm_engine.bench.results import ResultsFile, TaskResult, load_results
from rlm_engine.bench.runner import BenchConfig, run_direct
from rlm_engine.bench.suites import SUITES
from rlm_engine.bench.task import register_with_oracle
from rlm_engine.cli.main import main
from rlm_engine.sim import SimConfig, SimServerThread
from rlm_engine.sim.oracle import OraclePolicy
from rlm_engine.sim.oracle_registry import default_registry

ALL = "sniah,oolong,oolong-pairs,multidoc,codeqa"


def test_oracle_suite_scores_one_everywhere_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    args = ["bench", "run", "--suite", ALL, "--sizes", "2k,4k", "--tasks", "1"]
    args += ["--model", "sim/oracle", "--out", str(out), "--concurrency", "5"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["suites"]) == set(ALL.split(","))
    for name, entry in summary["suites"].items():
        assert entry["rlm"]["score"] == 1.0, name
        assert entry["rlm"]["failures"] == 0, name
        assert set(entry["rlm"]["by_size"]) == {"2k", "4k"}
        assert entry["rlm"]["sub_calls"] > 0
    assert "engine and harness" in summary["note"]
    assert (out / "summary.md").read_text().count("| 1 |") >= 5
    assert (out / "score_vs_context.png").stat().st_size > 0
    first = load_results(out / "results.jsonl")
    assert len(first) == 10

    # A second run with one more task per size resumes: only the new tasks run.
    capsys.readouterr()
    assert main([*args[:7], "2", *args[8:]]) == 0
    assert "resuming, 10 of 20" in capsys.readouterr().out
    again = load_results(out / "results.jsonl")
    assert again[:10] == first and len(again) == 20


def test_direct_baseline_reports_context_overflow(tmp_path: Path) -> None:
    task = SUITES["sniah"].generate(4096, 0, 0)
    register_with_oracle(task, default_registry())
    window = SimConfig(context_window_tokens=2000)
    with (
        SimServerThread(window, OraclePolicy()) as small,
        SimServerThread(SimConfig(), OraclePolicy()) as large,
    ):
        results = [
            asyncio.run(run_direct(task, BenchConfig("sim/oracle", env={"RLM_SIM_URL": sim.url})))
            for sim in (small, large)
        ]
    overflow, fits = results
    assert overflow.status == "context_overflow" and overflow.score == 0.0
    assert "context_length" in overflow.error
    assert fits.status == "ok" and fits.score == 1.0 and fits.input_tokens > 4096


def test_torn_results_line_is_ignored_and_closed(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    result = TaskResult("t", "sniah", 2048, "rlm", "m", "m", 1.0, "ok", "a", "a")
    path.write_text(result.to_json() + "\n" + '{"task_id": "half')
    store = ResultsFile(path)
    store.append(result)
    assert load_results(path) == [result, result]
