"""``--test-level N``: one level of the built-in ladder, asked of the deployed orchestrator.

A level brings generated data; the orchestrator job takes a prompt and no context files,
so the data is uploaded to the artifacts Volume and the prompt says where it is (code in
the cells reads it from there: a job's cluster mounts ``/Volumes``). The answer read back
from the run is judged by the level's own check.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

    from rlm_engine.jobs.levels.base import Prepared


@dataclass(frozen=True, slots=True)
class LevelPrompt:
    """A level's prompt for the job, where its data went, and how to judge the answer."""

    number: int
    name: str
    prompt: str
    files: tuple[str, ...]
    prepared: Prepared

    def judge(self, answer: str) -> tuple[bool, str]:
        """(passed, why not) for the run's ``answer``."""
        verdict = self.prepared.check(answer, None)
        return verdict.passed, verdict.reason


def volume_root(catalog: str, schema: str, number: int, seed: int) -> str:
    return f"/Volumes/{catalog}/{schema}/artifacts/test-levels/seed-{seed}/level-{number}"


def prompt_with_files(question: str, files: tuple[str, ...]) -> str:
    listed = "\n".join(f"- {path}" for path in files)
    return (
        f"{question}\n\nThe context is not loaded into the REPL: it is in these files of a "
        f"Unity Catalog Volume, which code in the REPL can open and read:\n{listed}"
    )


def upload_level(
    w: WorkspaceClient, number: int, *, catalog: str, schema: str, seed: int = 0
) -> LevelPrompt:
    """Build level ``number``'s data, upload it to the Volume, and return its prompt."""
    from rlm_engine.jobs.levels import level

    chosen = level(number)
    root = volume_root(catalog, schema, number, seed)
    with tempfile.TemporaryDirectory(prefix="rlm-level-") as scratch:
        base = Path(scratch)
        prepared = chosen.build(base, seed)
        uploaded: list[str] = []
        for context in prepared.contexts:
            for path in sorted(context.rglob("*")) if context.is_dir() else [context]:
                if not path.is_file():
                    continue
                remote = f"{root}/{path.relative_to(base).as_posix()}"
                with path.open("rb") as handle:
                    w.files.upload(remote, handle, overwrite=True)
                uploaded.append(remote)
    files = tuple(uploaded)
    prompt = prompt_with_files(prepared.question, files)
    return LevelPrompt(chosen.number, chosen.name, prompt, files, prepared)
