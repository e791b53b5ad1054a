"""What the OpenAI-compatible and MCP acceptance tests share: a 5 MB task the simulator's
oracle solves, a real `rlm serve` on it with an API key, and a policy that submits
typed fields."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server_support import Launch, LiveServer, StartSimThread, create_key, server_env

from rlm_engine.sim import CallablePolicy, OraclePolicy, OracleRegistry
from rlm_engine.sim.policies import JsonMessage, message_text

MODEL = "rlm/sim/sim-model"
# 1.3M tokens at four characters each: a little over 5 MB.
FIVE_MB_TOKENS = 1_300_000


@dataclass(frozen=True, slots=True)
class OpenAIServer:
    server: LiveServer
    key: str
    task: Any
    """The needle task (``context``, ``question``, ``answer``) the oracle knows."""

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def run(self, run_id: str) -> dict[str, Any]:
        """GET /v1/runs/{run_id} with this server's key."""
        with self.server.client(self.key) as client:
            reply = client.get(f"/v1/runs/{run_id}")
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body


def five_mb_task(registry: OracleRegistry) -> Any:
    from rlm_engine.bench.gen_sniah import generate
    from rlm_engine.bench.task import register_with_oracle

    task = generate(FIVE_MB_TOKENS, 0, 1)
    assert len(task.context.encode("utf-8")) > 5_000_000
    register_with_oracle(task, registry)
    return task


def oracle_server(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path, **env: str
) -> OpenAIServer:
    """`rlm serve` on the simulator's oracle, a key of tenant ``t1`` and a 5 MB task."""
    registry = OracleRegistry()
    task = five_mb_task(registry)
    sim = sim_thread(None, OraclePolicy(registry))
    environment = server_env(tmp_path / "home", sim.url, **env)
    key = create_key(environment, "t1")
    return OpenAIServer(server=launch(environment), key=key, task=task)


def is_root(messages: list[JsonMessage]) -> bool:
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def submit_policy(fields: dict[str, Any]) -> CallablePolicy:
    """Root: look at the context, then SUBMIT ``fields``; sub-calls are never made."""

    def reply(messages: list[JsonMessage]) -> str:
        if not is_root(messages):
            return "unused"
        turns = sum(1 for m in messages if m.get("role") == "assistant")
        if turns == 0:
            return "```repl\nprint(len(context))\n```"
        args = ", ".join(f"{k}={json.dumps(v)}" for k, v in fields.items())
        return f"```repl\nSUBMIT({args})\n```"

    return CallablePolicy(reply)
