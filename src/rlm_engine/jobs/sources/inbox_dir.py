"""`dir:PATH`: an inbox directory of prompt files.

Each `*.txt` or `*.md` file directly in the inbox is one task (its text is the prompt);
an optional sidecar `<stem>.json` sets `context` (a path, relative to the inbox) and
`model`. Dot files are ignored, so a writer can create `.name.txt` and rename it into
place when it is complete. Once answered, the prompt file and its sidecar move to `done/`
(or `failed/`) beside `<stem>.answer.txt` and `<stem>.result.json`; the inbox itself is
the state, so the watermark is unused. A task's key is the file name with a digest of its
content and modification time: a file dropped in again is a new task.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from rlm_engine.errors import ConfigurationError
from rlm_engine.jobs.sources import SourceOptions, Task, TaskOutcome, short_hash

PROMPT_SUFFIXES = (".txt", ".md")
DONE, FAILED = "done", "failed"


@dataclass
class InboxDirSource:
    """Prompt files in ``inbox``."""

    inbox: Path

    @classmethod
    def from_options(cls, arg: str, options: SourceOptions) -> InboxDirSource:
        del options
        inbox = Path(arg).expanduser().absolute()
        if not inbox.is_dir():
            raise ConfigurationError(
                f"the inbox {inbox} is not a directory",
                hint="create it, or pass --source dir:PATH with an existing directory",
            )
        return cls(inbox)

    @property
    def name(self) -> str:
        return f"dir:{self.inbox}"

    def poll(self, watermark: str | None) -> tuple[list[Task], str | None]:
        files = [
            p
            for p in self.inbox.iterdir()
            if p.is_file() and p.suffix.lower() in PROMPT_SUFFIXES and not p.name.startswith(".")
        ]
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [self._task(p) for p in files], watermark

    def _task(self, path: Path) -> Task:
        data = path.read_bytes()
        sidecar = path.with_suffix(".json")
        extra: dict[str, Any] = {}
        problem = ""
        try:
            extra = _sidecar(sidecar) if sidecar.is_file() else {}
        except ConfigurationError as exc:
            problem = f"{exc} ({exc.hint})"
        side = sidecar.read_bytes() if sidecar.is_file() else b""
        content = hashlib.sha256(data + b"\0" + side).hexdigest()
        digest = short_hash(f"{path.stat().st_mtime_ns}:{content}", 10)
        context = extra.get("context")
        if context is not None:
            context = str((self.inbox / str(context)).expanduser())
        model = extra.get("model")
        return Task(
            key=f"{path.name}@{digest}",
            prompt=data.decode("utf-8", "replace"),
            context=context,
            model=str(model) if model else None,
            reply_to=str(path),
            problem=problem,
        )

    def deliver(self, task: Task, outcome: TaskOutcome) -> None:
        """Results first, the prompt file last: until it has moved, a restart finds the
        task again and delivers it again (the writes are idempotent)."""
        prompt = Path(task.reply_to)
        folder = self.inbox / (DONE if outcome.status == "completed" else FAILED)
        folder.mkdir(exist_ok=True)
        stem = prompt.stem
        if (folder / prompt.name).exists() and prompt.exists():
            stem = f"{prompt.stem}-{task.key.rpartition('@')[2]}"
        _write(folder / f"{stem}.answer.txt", outcome.answer)
        record = {
            "task_key": task.key,
            "status": outcome.status,
            "run_id": outcome.run_id,
            "session_id": outcome.session_id,
            "answer": outcome.answer,
            "error": outcome.error or None,
            "finished_time": outcome.finished_time,
        }
        _write(folder / f"{stem}.result.json", json.dumps(record, ensure_ascii=False, indent=2))
        sidecar = prompt.with_suffix(".json")
        if sidecar.is_file():
            os.replace(sidecar, folder / f"{stem}.json")
        if prompt.exists():
            os.replace(prompt, folder / f"{stem}{prompt.suffix}")


def _sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"the sidecar {path} is not valid JSON: {exc}",
            hint='write an object such as {"context": "data.csv", "model": "openai/gpt-5-mini"}',
        ) from exc
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"the sidecar {path} is not a JSON object",
            hint='write an object such as {"context": "data.csv", "model": "openai/gpt-5-mini"}',
        )
    fields = cast(dict[str, Any], data)
    unknown = sorted(set(fields) - {"context", "model"})
    if unknown:
        raise ConfigurationError(
            f"the sidecar {path} has unknown key(s) {', '.join(unknown)}",
            hint="a sidecar may set context and model",
        )
    return fields


def _write(path: Path, text: str) -> None:
    """Write ``text`` whole or not at all (a temporary file renamed into place)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
