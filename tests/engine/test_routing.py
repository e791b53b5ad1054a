"""Fallback between models and the response cache, against the simulator on loopback."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rlm_engine import RLM
from rlm_engine.events import Event, ModelFallback
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy
from rlm_engine.sim.runner import SimServerThread
from rlm_engine.store import open_store
from rlm_engine.store.response_cache import StoreResponseCache
from rlm_engine.types import Message, ModelSettings


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def turns(*replies: str) -> ScriptedModel:
    return ScriptedModel(
        lambda m: replies[min(sum(x.role == "assistant" for x in m), len(replies) - 1)]
    )


def test_sub_calls_fall_back_when_the_first_model_is_refused() -> None:
    config = SimConfig(model_faults={"strict-model": "content_filter"})
    with SimServerThread(config, CallablePolicy(lambda msgs: "answer from B")) as sim:
        env = {"OPENAI_BASE_URL": sim.url}
        root = turns(fence("print(llm_query('q'))"), "FINAL(ok)")
        events: list[Event] = []
        with RLM(
            root,
            "openai/strict-model",
            fallback_models=["openai/lenient-model"],
            env=env,
            on_event=events.append,
        ) as rlm:
            result = rlm.run("question")
        models = [r.model for r in sim.requests]
    assert "answer from B" in root.calls[1][-1].content
    switches = [e for e in events if isinstance(e, ModelFallback)]
    assert len(switches) == 1
    assert switches[0].from_model == "openai/strict-model"
    assert switches[0].to_model == "openai/lenient-model"
    assert switches[0].kind == "content_filter"
    assert models == ["strict-model", "lenient-model"]  # a refusal is not retried
    llm_node = next(n for n in result.tree.walk() if n.kind == "llm")
    assert llm_node.detail["fallbacks"][0]["kind"] == "content_filter"


def test_server_errors_are_retried_then_fall_back() -> None:
    config = SimConfig(model_faults={"flaky": "500"})
    with SimServerThread(config, CallablePolicy(lambda msgs: "fine")) as sim:
        root = turns(fence("print(llm_query('q'))"), "FINAL(ok)")
        with RLM(
            root,
            "openai/flaky",
            fallback_models=["openai/steady"],
            env={"OPENAI_BASE_URL": sim.url},
            retry_budget_s=1.5,
        ) as rlm:
            rlm.run("question")
        models = [r.model for r in sim.requests]
    assert models.count("flaky") >= 2  # retried on the same model first
    assert models[-1] == "steady"
    assert "[cell 1 output]\nfine" in root.calls[1][-1].content


def test_identical_deterministic_sub_calls_are_served_from_the_cache() -> None:
    calls: list[Sequence[Message]] = []

    def sub(messages: Sequence[Message]) -> str:
        calls.append(messages)
        return f"echo {messages[-1].content}"

    root = turns(
        fence(
            "a = llm_query_batched(['same'] * 5 + ['other'])\nb = llm_query('same')\nprint(a, b)"
        ),
        "FINAL(ok)",
    )
    with RLM(root, ScriptedModel(sub), sub_settings=ModelSettings(temperature=0)) as rlm:
        result = rlm.run("question")
    assert len(calls) == 2  # 'same' once, 'other' once
    cached = [n for n in result.tree.walk() if n.detail.get("from_cache")]
    assert len(cached) == 5
    assert result.sub_calls == 7


def test_sampled_sub_calls_are_not_cached_by_default() -> None:
    calls: list[Sequence[Message]] = []

    def sub(messages: Sequence[Message]) -> str:
        calls.append(messages)
        return "x"

    root = turns(fence("print(llm_query_batched(['same'] * 3))"), "FINAL(ok)")
    with RLM(root, ScriptedModel(sub)) as rlm:
        rlm.run("question")
    assert len(calls) == 3


def test_cached_replies_outlive_the_rlm_when_kept_in_the_store(tmp_path: Path) -> None:
    calls: list[Sequence[Message]] = []

    def sub(messages: Sequence[Message]) -> str:
        calls.append(messages)
        return f"echo {messages[-1].content}"

    store = open_store(f"sqlite:///{tmp_path / 'rlm.db'}", tmp_path)
    code = fence("print(llm_query_batched(['same'] * 3 + ['other']))")
    try:
        results = []
        for _ in range(2):  # two processes' worth of RLMs sharing one store
            with RLM(
                turns(code, "FINAL(ok)"),
                ScriptedModel(sub),
                sub_settings=ModelSettings(temperature=0),
                response_store=StoreResponseCache(store),
            ) as rlm:
                results.append(rlm.run("question"))
        stats = store.response_cache_stats()
    finally:
        store.close()
    assert len(calls) == 2  # 'same' and 'other', once each, in the first run only
    second = [n for n in results[1].tree.walk() if n.kind == "llm"]
    assert len(second) == 4 and all(n.detail.get("from_cache") for n in second)
    assert [(s.model, s.entries, s.hits) for s in stats] == [("scripted/default", 2, 2)]
