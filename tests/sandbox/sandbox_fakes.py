"""Shared by the sandbox tests: a scripted host handler and a process check."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class FakeHost:
    """A deterministic host handler that records every call it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.memory: dict[str, Any] = {}
        self.delay_s = 0.0
        self.in_flight = 0
        self.max_in_flight = 0

    async def _answer(self, prompt: str) -> str:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        if prompt == "fail":
            raise ValueError("the model exploded")
        return f"answer to {prompt}"

    async def __call__(self, method: str, params: Mapping[str, Any]) -> Any:
        self.calls.append((method, dict(params)))
        if method == "llm_query":
            return await self._answer(params["prompt"])
        if method == "llm_query_batched":
            return list(await asyncio.gather(*(self._answer(p) for p in params["prompts"])))
        if method == "rlm_query":
            return f"child:{params['prompt']}:{json.dumps(params['context'])}"
        if method == "rlm_query_batched":
            contexts = params["contexts"] or [None] * len(params["prompts"])
            return [
                f"child:{p}:{json.dumps(c)}"
                for p, c in zip(params["prompts"], contexts, strict=True)
            ]
        if method == "memory_get":
            return self.memory[params["key"]]
        if method == "memory_set":
            self.memory[params["key"]] = params["value"]
            return None
        if method == "memory_keys":
            return sorted(self.memory)
        if method == "tool":
            if params["name"] == "explode":
                raise RuntimeError("the tool exploded")
            return {"tool": params["name"], "args": params["args"], "kwargs": params["kwargs"]}
        raise AssertionError(f"unexpected method {method}")


def process_gone(pid: int, wait_s: float = 3.0) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def descendants(pid: int) -> list[int]:
    """Host pids of every process below ``pid`` (children first, depth first)."""
    found: list[int] = []
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return found
    for child in (int(part) for part in text.split()):
        found.append(child)
        found.extend(descendants(child))
    return found
