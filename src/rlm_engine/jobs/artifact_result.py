"""``result.json``: what one artifact's run left, written by the executor, read by the
orchestrator (and by anyone auditing the artifact).

The cell's output (the REPL merges the cell's stdout and stderr, as the local sandbox
does) is ``stdout``; ``stderr`` holds the executor's own notes about the cell, such as the
variables that could not be carried over to the next cell. Each is capped at
``RESULT_CAP_CHARS`` here, with a truncation flag; ``stdout.txt`` / ``stderr.txt`` keep up
to ``FILE_CAP_CHARS``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from rlm_engine.errors import SandboxError
from rlm_engine.jobs.markers import MarkerStatus
from rlm_engine.sandbox.base import CellResult, CellStatus, FinalValue

RESULT_CAP_CHARS = 1_000_000
FILE_CAP_CHARS = 16_000_000
_CELL_STATUSES = ("ok", "error", "timeout", "killed")


def cap(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit], True)


@dataclass(frozen=True, slots=True)
class ArtifactResult:
    """The contents of ``result.json``. Beyond the documented keys it keeps the REPL's
    variables after the cell (``vars``, for ``list_vars``), the names not carried over,
    the characters dropped above the caps, and whether the executor itself failed."""

    artifact_id: str
    cell_status: CellStatus
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: float = 0.0
    error: str | None = None
    final: Mapping[str, Any] | None = None
    snapshot: str | None = None
    clock_reads: tuple[int, ...] = ()
    dropped_chars: int = 0
    not_carried: tuple[str, ...] = ()
    vars: Mapping[str, str] = field(default_factory=dict[str, str])
    executor_error: bool = False

    @property
    def status(self) -> MarkerStatus:
        return "success" if self.cell_status == "ok" else "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "artifact_id": self.artifact_id,
            "status": self.status,
            "cell_status": self.cell_status,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "duration_s": self.duration_s,
            "error": self.error,
            "final": None if self.final is None else dict(self.final),
            "snapshot": self.snapshot,
            "clock_reads": list(self.clock_reads),
            "dropped_chars": self.dropped_chars,
            "not_carried": list(self.not_carried),
            "vars": dict(self.vars),
            "executor_error": self.executor_error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ArtifactResult:
        status = data.get("cell_status")
        if status not in _CELL_STATUSES:
            status = "ok" if data.get("status") == "success" else "error"
        final = data.get("final")
        variables = data.get("vars")
        return cls(
            artifact_id=str(data.get("artifact_id") or ""),
            cell_status=status,
            stdout=str(data.get("stdout") or ""),
            stderr=str(data.get("stderr") or ""),
            stdout_truncated=bool(data.get("stdout_truncated")),
            stderr_truncated=bool(data.get("stderr_truncated")),
            duration_s=float(data.get("duration_s") or 0.0),
            error=None if data.get("error") is None else str(data.get("error")),
            final=cast(Mapping[str, Any], final) if isinstance(final, dict) else None,
            snapshot=data.get("snapshot") if isinstance(data.get("snapshot"), str) else None,
            clock_reads=tuple(int(n) for n in cast(list[Any], data.get("clock_reads") or [])),
            dropped_chars=int(data.get("dropped_chars") or 0),
            not_carried=tuple(str(n) for n in cast(list[Any], data.get("not_carried") or [])),
            vars=(
                {str(k): str(v) for k, v in cast(dict[Any, Any], variables).items()}
                if isinstance(variables, dict)
                else {}
            ),
            executor_error=bool(data.get("executor_error")),
        )

    def write(self, path: Path) -> None:
        """Write atomically: a reader sees the whole file or none."""
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")
        partial.replace(path)

    @classmethod
    def read(cls, path: Path) -> ArtifactResult | None:
        """The result at ``path``; None when it is missing or unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return cls.from_json(cast(dict[str, Any], data)) if isinstance(data, dict) else None

    def cell_result(self) -> CellResult:
        """The result as the engine sees a cell's (``SandboxError`` when the executor
        could not run the cell at all: that is the sandbox failing, not the code)."""
        if self.executor_error:
            raise SandboxError(self.error or "the executor could not run the artifact")
        return CellResult(
            status=self.cell_status,
            output=self.stdout + self.stderr,
            error=self.error,
            final=_final(self.final),
            duration_s=self.duration_s,
            dropped_chars=self.dropped_chars,
            clock_reads=self.clock_reads,
        )


def _final(value: Mapping[str, Any] | None) -> FinalValue | None:
    if value is None or value.get("kind") not in ("final", "submit"):
        return None
    fields = value.get("fields")
    return FinalValue(
        kind="final" if value.get("kind") == "final" else "submit",
        answer=str(value.get("answer") or ""),
        fields=cast(Mapping[str, Any], fields) if isinstance(fields, dict) else None,
    )
