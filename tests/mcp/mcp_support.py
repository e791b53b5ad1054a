"""What the MCP acceptance tests share: a needle task in a file under a root, and the
checks of an `rlm_ask` call's progress and result."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_engine.sim import OracleRegistry

TOOLS = {"rlm_ask", "rlm_runs", "rlm_resume"}


@dataclass(frozen=True, slots=True)
class Haystack:
    root: Path
    path: Path
    question: str
    answer: str


def haystack(tmp_path: Path, registry: OracleRegistry) -> Haystack:
    """A 400 kB needle task written to ``<tmp>/project/haystack.txt``."""
    from rlm_engine.bench.gen_sniah import generate
    from rlm_engine.bench.task import register_with_oracle

    task = generate(100_000, 0, 1)
    register_with_oracle(task, registry)
    root = tmp_path / "project"
    root.mkdir()
    path = root / "haystack.txt"
    path.write_text(task.context, encoding="utf-8")
    return Haystack(root=root, path=path, question=task.question, answer=task.answer)


@dataclass
class ProgressLog:
    seen: list[tuple[float, str | None]] = field(default_factory=list[tuple[float, str | None]])

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, message))

    def check(self) -> None:
        messages = [m or "" for _, m in self.seen]
        assert any(m.startswith("Queued as run ") for m in messages), messages
        assert any("Iteration 1 started" in m for m in messages), messages
        assert any("sub-calls so far" in m for m in messages), messages
        progress = [p for p, _ in self.seen]
        assert progress == sorted(set(progress)), progress


def result_of(result: Any) -> dict[str, Any]:
    """The structured result of a successful tool call."""
    assert not result.is_error, result.content
    data: dict[str, Any] = result.structured_content or json.loads(result.content[0].text)
    return data


def error_text(result: Any) -> str:
    assert result.is_error, result
    return " ".join(getattr(c, "text", "") for c in result.content)
