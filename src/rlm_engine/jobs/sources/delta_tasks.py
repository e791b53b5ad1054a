"""`delta:PATH`: new rows of a user's tasks Delta table, read from its change data feed.

The table needs `task_id` and `prompt` columns (optional `context`, a path, and `model`) and
the change data feed on. Only inserts are tasks: an update or delete of a row that was
already ingested starts nothing. The watermark is the last table version read, so the next
poll reads the feed from the version after it. Answers go to a results Delta table keyed by
(source, task_id): the lakehouse's `results`, or the table at `--results PATH`.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlm_engine.errors import ConfigurationError, MissingExtraError
from rlm_engine.jobs.sources import SourceOptions, Task, TaskOutcome

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from rlm_engine.integrations.delta_lake import Lakehouse

CDF_PROPERTY = "delta.enableChangeDataFeed"
REQUIRED = ("task_id", "prompt")


class ChangeDataFeedDisabled(ConfigurationError):
    """The tasks table has no change data feed, so new rows cannot be told apart."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"the tasks table {path} does not have the change data feed enabled",
            hint=f"enable it once (rows written before are not read): in SQL, ALTER TABLE "
            f"<table> SET TBLPROPERTIES ({CDF_PROPERTY} = true); with deltalake, "
            f"DeltaTable({path!r}).alter.set_table_properties({{'{CDF_PROPERTY}': 'true'}})",
        )


def _deltalake() -> Any:
    try:
        import deltalake
    except ImportError as exc:
        raise MissingExtraError("The delta: task source", "delta", "deltalake") from exc
    return deltalake


def results_lakehouse(results: str | None, lakehouse_root: str | None) -> Lakehouse:
    """The lakehouse whose `results` table takes the answers: the jobs' lakehouse, or one
    whose `results` table is the Delta table at ``results``."""
    from rlm_engine.integrations.delta_lake import Lakehouse

    if results is None:
        if lakehouse_root is None:
            raise ConfigurationError(
                "no lakehouse for the results table", hint="pass --lakehouse or --results"
            )
        return Lakehouse(lakehouse_root)

    class _ResultsAt(Lakehouse):
        """The same tables, with `results` at the path the user chose."""

        def uri(self, table: str) -> str:
            return self.root if table == "results" else super().uri(table)

    return _ResultsAt(results)


@dataclass
class DeltaTasksSource:
    """Tasks from the change data feed of the Delta table at ``path``."""

    path: str
    results: Lakehouse

    @classmethod
    def from_options(cls, arg: str, options: SourceOptions) -> DeltaTasksSource:
        path = arg if "://" in arg else str(Path(arg).expanduser().absolute())
        return cls(path, results_lakehouse(options.results, options.lakehouse_root))

    @property
    def name(self) -> str:
        return f"delta:{self.path}"

    def poll(self, watermark: str | None) -> tuple[list[Task], str | None]:
        table = self._open()
        config = table.metadata().configuration
        if str(config.get(CDF_PROPERTY, "false")).lower() != "true":
            raise ChangeDataFeedDisabled(self.path)
        current = table.version()
        start = _first_feed_version(table) if watermark is None else int(watermark) + 1
        if start > current:
            return [], str(current) if watermark is None else watermark
        pa: Any = importlib.import_module("pyarrow")  # untyped: used as Any
        feed: Any = pa.table(
            table.load_cdf(starting_version=start, ending_version=current).read_all()
        )
        missing = [c for c in REQUIRED if c not in feed.column_names]
        if missing:
            raise ConfigurationError(
                f"the tasks table {self.path} has no column(s) {', '.join(missing)}",
                hint="a tasks table needs task_id and prompt columns (and may have context "
                "and model)",
            )
        return _tasks(feed.to_pylist(), self.path), str(current)

    def deliver(self, task: Task, outcome: TaskOutcome) -> None:
        self.results.merge(
            "results",
            [
                {
                    "source": self.name,
                    "task_id": task.key,
                    "run_id": outcome.run_id,
                    "session_id": outcome.session_id,
                    "status": outcome.status,
                    "answer": outcome.answer,
                    "error": outcome.error or None,
                    "finished_time": outcome.finished_time,
                }
            ],
        )

    def _open(self) -> DeltaTable:
        deltalake = _deltalake()
        try:
            return deltalake.DeltaTable(self.path)
        except deltalake.exceptions.TableNotFoundError:
            raise ConfigurationError(
                f"no Delta table at {self.path}",
                hint="pass --source delta:PATH with the directory of the tasks table (it "
                "holds _delta_log/)",
            ) from None


def _first_feed_version(table: DeltaTable) -> int:
    """The first version the feed covers: 0 for a table created with it, else the commit
    that switched it on (the feed holds nothing before it)."""
    enabled = 0
    history: list[dict[str, Any]] = table.history()
    for commit in sorted(history, key=lambda c: int(c.get("version", 0))):
        params: dict[str, Any] = commit.get("operationParameters") or {}
        text = str(params.get("properties", "")) + str(params.get("metadata", ""))
        if commit.get("operation") == "SET TBLPROPERTIES" and CDF_PROPERTY in text:
            enabled = int(commit["version"])
    return enabled


def _tasks(rows: list[dict[str, Any]], path: str) -> list[Task]:
    """Inserted rows as tasks, in commit order; a task id seen twice keeps its first row
    (one run per task id)."""
    inserts = [r for r in rows if r.get("_change_type") == "insert"]
    inserts.sort(key=lambda r: int(r.get("_commit_version") or 0))
    tasks: dict[str, Task] = {}
    for row in inserts:
        task_id, prompt = row.get("task_id"), row.get("prompt")
        if task_id is None or str(task_id).strip() == "":
            print(f"rlm-ingestor: {path}: a row without task_id is skipped", file=sys.stderr)
            continue
        key = str(task_id)
        if key in tasks:
            continue
        context: Any = row.get("context")
        model: Any = row.get("model")
        tasks[key] = Task(
            key=key,
            prompt="" if prompt is None else str(prompt),
            context=str(context) if context else None,
            model=str(model) if model else None,
            reply_to=key,
        )
    return list(tasks.values())
