"""Per-task results: one JSON line each in ``results.jsonl``, appended as tasks finish."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, cast

Method = Literal["rlm", "direct"]
METHODS: tuple[Method, ...] = ("rlm", "direct")

# How a task ended: "ok" (an answer was scored), the RLM stop reason when it was not a
# final answer, "context_overflow" (the direct prompt did not fit), or "error".
Status = str

_ANSWER_KEEP_CHARS = 4_000


@dataclass(frozen=True, slots=True)
class TaskResult:
    """The outcome of one task under one method and model."""

    task_id: str
    suite: str
    size_tokens: int
    method: Method
    model: str
    sub_model: str
    score: float
    status: Status
    answer: str
    gold: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    duration_s: float = 0.0
    iterations: int = 0
    sub_calls: int = 0
    error: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies a finished task for resume: task, method and model."""
        return (self.task_id, self.method, self.model)

    @property
    def settled(self) -> bool:
        """Whether resume may skip this task: anything but a harness or provider error,
        which may well pass on a second try."""
        return self.status != "error"

    @property
    def failed(self) -> bool:
        return self.status != "ok"

    def to_json(self) -> str:
        data = asdict(self)
        # Pair answers can be thousands of lines; the score is what matters on disk.
        for field in ("answer", "gold"):
            text = cast(str, data[field])
            if len(text) > _ANSWER_KEEP_CHARS:
                data[field] = text[:_ANSWER_KEEP_CHARS] + f"... [{len(text):,} chars]"
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def load_results(path: Path) -> list[TaskResult]:
    """Results already written; a torn last line (an interrupted write) is ignored."""
    if not path.exists():
        return []
    results: list[TaskResult] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            raw: Any = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(raw, dict):
            results.append(TaskResult.from_dict(cast(dict[str, Any], raw)))
    return results


class ResultsFile:
    """Appends results durably, one line per task, so an interrupted run can resume."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists() and path.stat().st_size > 0:
            with path.open("rb") as handle:
                handle.seek(-1, 2)
                torn = handle.read(1) != b"\n"
            if torn:  # end a line torn by an interruption so the next result starts clean
                with path.open("a", encoding="utf-8") as handle:
                    handle.write("\n")

    def append(self, result: TaskResult) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(result.to_json() + "\n")
            handle.flush()
