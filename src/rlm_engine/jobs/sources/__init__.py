"""Task sources of the ingestor: what a task is, and how a `--source` string picks a source.

A source yields tasks after a watermark and takes each task's outcome back to where the
task came from (a results table, a Jira comment, the inbox's `done/` folder). The watermark
is an opaque string the source alone understands; the ingestor stores it durably and hands
it back on the next poll, so a restart continues where the last delivered batch ended.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from rlm_engine.errors import ConfigurationError

TaskStatus = Literal["completed", "failed"]


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work: a prompt, and where its answer goes.

    ``key`` is unique within its source and stable across polls (a row's `task_id`, an
    issue key, a file name with its content hash); ``reply_to`` is the source's own address
    for the answer (the task id, the issue key, the prompt file's path)."""

    key: str
    prompt: str
    context: str | None = None
    model: str | None = None
    reply_to: str = ""
    problem: str = ""
    """Why the task cannot run (a bad sidecar, an empty prompt): it is answered as failed
    with this error and starts no run."""


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """How a task's run ended, as a source writes it back."""

    status: TaskStatus
    run_id: str | None = None
    session_id: str | None = None
    answer: str = ""
    error: str = ""
    finished_time: float | None = None


class Source(Protocol):
    """A place tasks come from. ``name`` identifies it in the ingest tables (``delta:PATH``
    with the path resolved, ``jira:JQL``, ``dir:PATH``)."""

    @property
    def name(self) -> str: ...

    def poll(self, watermark: str | None) -> tuple[list[Task], str | None]:
        """The tasks after ``watermark`` (None: from the start) and the watermark past them."""
        ...

    def deliver(self, task: Task, outcome: TaskOutcome) -> None:
        """Write the outcome back; safe to call again for the same task and outcome."""
        ...


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """What sources need besides their `--source` argument (plain values from the edge)."""

    results: str | None = None
    """The results Delta table of a `delta:` source (None: the lakehouse's `results`)."""
    lakehouse_root: str | None = None
    jira_url: str | None = None
    jira_user: str | None = None
    jira_token: str | None = None


SourceBuilder = Callable[[str, SourceOptions], Source]


def _delta(arg: str, options: SourceOptions) -> Source:
    from rlm_engine.jobs.sources.delta_tasks import DeltaTasksSource

    return DeltaTasksSource.from_options(arg, options)


def _jira(arg: str, options: SourceOptions) -> Source:
    from rlm_engine.jobs.sources.jira_issues import JiraIssuesSource

    return JiraIssuesSource.from_options(arg, options)


def _dir(arg: str, options: SourceOptions) -> Source:
    from rlm_engine.jobs.sources.inbox_dir import InboxDirSource

    return InboxDirSource.from_options(arg, options)


SOURCES: dict[str, SourceBuilder] = {"delta": _delta, "jira": _jira, "dir": _dir}

SOURCE_HINT = (
    "use --source delta:PATH (a tasks Delta table), jira:JQL (issues by a JQL query) or "
    "dir:PATH (an inbox directory of prompt files)"
)


def open_source(spec: str, options: SourceOptions) -> Source:
    """The source a ``--source`` value names; ConfigurationError for anything else."""
    kind, sep, arg = spec.partition(":")
    builder = SOURCES.get(kind.strip().lower())
    if not sep or builder is None:
        raise ConfigurationError(f"unknown task source {spec!r}", hint=SOURCE_HINT)
    if not arg.strip():
        raise ConfigurationError(f"the task source {spec!r} names no {kind}", hint=SOURCE_HINT)
    return builder(arg.strip(), options)


def short_hash(text: str, n: int = 12) -> str:
    """A short stable digest of ``text`` (names of sessions and files, never security)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]
