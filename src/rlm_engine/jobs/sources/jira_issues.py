"""`jira:JQL`: Jira issues a JQL query matches; the answer goes back as a comment.

The prompt is the issue's summary and description. Each issue key is one task, once: a
later edit of an answered issue starts nothing (the answer's own comment edits it too).
The watermark is the newest `updated` instant seen and the keys updated at that instant;
the next poll asks for ``(JQL) AND updated >= "<that minute>"`` (JQL dates have minutes
only, in the user's time zone) and drops what the watermark already covers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.jira_client import JiraClient, JiraIssue
from rlm_engine.jobs.sources import SourceOptions, Task, TaskOutcome

ORDER_BY = re.compile(r"\border\s+by\b.*$", re.IGNORECASE | re.DOTALL)
FOOTER = "rlm-engine run {run_id}"


@dataclass
class JiraIssuesSource:
    """Issues matching ``jql`` on the site ``client`` talks to."""

    jql: str
    client: JiraClient
    page_size: int = 50

    @classmethod
    def from_options(cls, arg: str, options: SourceOptions) -> JiraIssuesSource:
        url = options.jira_url
        if not url:
            raise ConfigurationError(
                "the jira: source needs the Jira site's URL",
                hint="pass --jira-url https://your-site.atlassian.net (or set RLM_JIRA_URL)",
            )
        return cls(arg, JiraClient(url, user=options.jira_user, token=options.jira_token))

    @property
    def name(self) -> str:
        return f"jira:{self.jql}"

    def query(self, watermark: str | None) -> str:
        """The JQL of the next poll: the user's filter, after the watermark's minute,
        oldest update first (the user's own ORDER BY gives way to it)."""
        base = ORDER_BY.sub("", self.jql).strip()
        clauses = [f"({base})"] if base else []
        mark = _load(watermark)
        if mark is not None:
            clauses.append(f'updated >= "{_jql_minute(mark[0], self.client.time_zone())}"')
        return " AND ".join(clauses) + " ORDER BY updated ASC, key ASC"

    def poll(self, watermark: str | None) -> tuple[list[Task], str | None]:
        mark = _load(watermark)
        newest, at_newest = mark if mark is not None else (float("-inf"), set[str]())
        tasks: list[Task] = []
        for issue in self.client.search(self.query(watermark), page_size=self.page_size):
            if mark is not None and (
                issue.updated < mark[0] or (issue.updated == mark[0] and issue.key in mark[1])
            ):
                continue
            tasks.append(_task(issue))
            if issue.updated > newest:
                newest, at_newest = issue.updated, {issue.key}
            elif issue.updated == newest:
                at_newest.add(issue.key)
        if newest == float("-inf"):
            return tasks, watermark
        return tasks, json.dumps({"updated": newest, "keys": sorted(at_newest)})

    def deliver(self, task: Task, outcome: TaskOutcome) -> None:
        """Post the answer (or the failure) as a comment, unless a comment of this run is
        there already (a delivery repeated after a crash)."""
        footer = FOOTER.format(run_id=outcome.run_id or "none")
        if any(footer in c.body for c in self.client.comments(task.reply_to)):
            return
        if outcome.status == "completed":
            body = f"{outcome.answer}\n\n({footer})"
        else:
            body = f"rlm-engine could not answer this issue: {outcome.error}\n\n({footer})"
        self.client.add_comment(task.reply_to, body)


def _task(issue: JiraIssue) -> Task:
    prompt = issue.summary.strip()
    if issue.description.strip():
        prompt = f"{prompt}\n\n{issue.description.strip()}"
    return Task(key=issue.key, prompt=prompt, reply_to=issue.key)


def _load(watermark: str | None) -> tuple[float, set[str]] | None:
    if not watermark:
        return None
    try:
        data = cast(dict[str, Any], json.loads(watermark))
        return float(data["updated"]), {str(k) for k in data.get("keys", [])}
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"the stored Jira watermark {watermark!r} is not readable: {exc}",
            hint="delete the source's row from the lakehouse table ingest_state to start "
            "over (answered issues are still skipped by ingest_log)",
        ) from exc


def _jql_minute(epoch: float, time_zone: str) -> str:
    """``epoch`` floored to its minute, as JQL reads it in ``time_zone``."""
    try:
        from zoneinfo import ZoneInfo

        zone: Any = ZoneInfo(time_zone)
    except (ImportError, ValueError, KeyError):
        zone = UTC
    return datetime.fromtimestamp(epoch, zone).strftime("%Y/%m/%d %H:%M")
