"""The jira: source against a loopback double of Jira's REST API, through the real `jira`
package: search by JQL over two pages with a 429 in between, the answer posted back as a
comment, and a restart that neither repeats nor drops an issue."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from jira_double import JiraDouble

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.delta_lake import Lakehouse
from rlm_engine.integrations.jira_client import JiraClient
from rlm_engine.jobs.ingestor import Ingestor, dedupe_key_for, session_id_for
from rlm_engine.jobs.sources.jira_issues import JiraIssuesSource
from rlm_engine.jobs.triggers import RunRequest, TriggerResult


class ScriptedTrigger:
    """Answers every run at once with ``answer: <prompt's first line>`` (run id
    ``run-<task key>``) and records it."""

    def __init__(self) -> None:
        self.requests: list[RunRequest] = []
        self._lock = threading.Lock()

    def run(self, request: RunRequest) -> TriggerResult:
        with self._lock:
            self.requests.append(request)
        first = request.prompt.splitlines()[0]
        key = request.dedupe_key.rpartition(":")[2]
        return TriggerResult("completed", f"run-{key}", f"answer: {first}")

    def stop(self) -> None:
        pass


def source_for(
    jira: JiraDouble, waits: list[float], jql: str = "project = OPS"
) -> JiraIssuesSource:
    client = JiraClient(jira.url, user="bot@example.com", token="t0k", sleep=waits.append)
    return JiraIssuesSource(jql, client, page_size=2)


@pytest.mark.parametrize("cloud", [False, True], ids=["server-startAt", "cloud-nextPageToken"])
def test_issues_over_two_pages_and_a_429_are_answered_once_as_comments(
    tmp_path: Path, cloud: bool
) -> None:
    lake = Lakehouse(tmp_path / "lake")
    with JiraDouble(cloud=cloud) as jira:
        for n in range(1, 4):
            jira.add_issue(f"OPS-{n}", f"Question {n}", f"Details of question {n}.")
        route = "/search/jql" if cloud else "/search"
        jira.fail_next(route, 429, retry_after="1")
        waits: list[float] = []
        trigger = ScriptedTrigger()
        ingestor = Ingestor(source_for(jira, waits), lake, trigger)

        reports = ingestor.poll_once()

        assert [(r.key, r.status) for r in reports] == [
            ("OPS-1", "completed"),
            ("OPS-2", "completed"),
            ("OPS-3", "completed"),
        ]
        assert waits == [1.0]  # the 429's Retry-After, waited out once
        pages = [r for r in jira.searches() if r.status == 200]
        assert len(pages) == 2
        if cloud:
            assert "nextPageToken" not in pages[0].query
            assert pages[1].query["nextPageToken"] == ["2"]
        else:
            assert [p.query["startAt"] for p in pages] == [["0"], ["2"]]
        assert pages[0].query["jql"] == ["(project = OPS) ORDER BY updated ASC, key ASC"]
        assert sorted(jira.comments_posted()) == [
            (f"OPS-{n}", f"answer: Question {n}\n\n(rlm-engine run run-OPS-{n})") for n in (1, 2, 3)
        ]
        assert {r.prompt for r in trigger.requests} == {
            f"Question {n}\n\nDetails of question {n}." for n in (1, 2, 3)
        }
        source = ingestor.name
        assert {r.dedupe_key for r in trigger.requests} == {
            dedupe_key_for(source, f"OPS-{n}") for n in (1, 2, 3)
        }
        assert {r.session_id for r in trigger.requests} == {
            session_id_for(source, f"OPS-{n}") for n in (1, 2, 3)
        }
        log = lake.read("ingest_log", where={"source": source})
        assert sorted((r["task_key"], r["status"], r["attempts"]) for r in log) == [
            (f"OPS-{n}", "completed", 1) for n in (1, 2, 3)
        ]
        mark = json.loads(ingestor.watermark() or "{}")
        assert mark["keys"] == ["OPS-3"]

        # A restart: the comments bumped `updated`, so the issues come back, and are
        # skipped (one run per key). A new issue is triggered, once.
        jira.add_issue("OPS-4", "Question 4")
        again = Ingestor(source_for(jira, waits), lake, trigger)
        assert [(r.key, r.status) for r in again.poll_once()] == [("OPS-4", "completed")]
        assert 'updated >= "' in jira.searches()[-1].query["jql"][0]
        assert len(trigger.requests) == 4
        assert Ingestor(source_for(jira, waits), lake, trigger).poll_once() == []
        assert len(trigger.requests) == 4
        assert len(jira.comments_posted()) == 4


def test_a_repeated_delivery_posts_no_second_comment(tmp_path: Path) -> None:
    """A crash after the comment but before the log row: the next delivery of the same run
    finds its comment and posts nothing."""
    from rlm_engine.jobs.sources import Task, TaskOutcome

    with JiraDouble() as jira:
        jira.add_issue("OPS-1", "Question 1")
        source = source_for(jira, [])
        task = Task("OPS-1", "Question 1", reply_to="OPS-1")
        outcome = TaskOutcome("completed", run_id="r1", answer="42")
        source.deliver(task, outcome)
        source.deliver(task, outcome)
        assert jira.comments_posted() == [("OPS-1", "42\n\n(rlm-engine run r1)")]


def test_a_429_that_does_not_end_is_a_typed_error_after_the_bound(tmp_path: Path) -> None:
    from rlm_engine.integrations.jira_client import JiraError

    with JiraDouble() as jira:
        jira.add_issue("OPS-1", "Question 1")
        for _ in range(5):
            jira.fail_next("/search", 429, retry_after="2")
        waits: list[float] = []
        ingestor = Ingestor(
            source_for(jira, waits), Lakehouse(tmp_path / "lake"), ScriptedTrigger()
        )
        with pytest.raises(JiraError) as caught:
            ingestor.poll_once()
        assert "HTTP 429" in str(caught.value)
        assert waits == [2.0, 2.0, 2.0, 2.0]
        assert ingestor.watermark() is None


def test_refused_credentials_say_which_variables_to_set(tmp_path: Path) -> None:
    with JiraDouble() as jira:
        jira.fail_next("/serverInfo", 401, retry_after=None)
        ingestor = Ingestor(source_for(jira, []), Lakehouse(tmp_path / "lake"), ScriptedTrigger())
        with pytest.raises(ConfigurationError) as caught:
            ingestor.poll_once()
        assert "RLM_JIRA_TOKEN" in caught.value.hint


def test_the_jira_source_needs_a_url() -> None:
    from rlm_engine.jobs.sources import SourceOptions, open_source

    with pytest.raises(ConfigurationError) as caught:
        open_source("jira:project = OPS", SourceOptions())
    assert "RLM_JIRA_URL" in caught.value.hint


def test_rlm_ingestor_answers_an_issue_through_a_real_orchestrator(tmp_path: Path) -> None:
    import subprocess
    import sys

    from orchestrator_support import is_root, job_env

    from rlm_engine.sim.config import SimConfig
    from rlm_engine.sim.policies import CallablePolicy, message_text
    from rlm_engine.sim.runner import SimServerThread

    def policy(messages: list[dict[str, Any]]) -> str:
        assert is_root(messages)
        text = "\n".join(message_text(m) for m in messages)
        assert "How many legs has a spider?" in text and "Count them." in text
        return "```repl\nFINAL(str(4 * 2))\n```"

    with JiraDouble() as jira, SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        jira.add_issue("BUG-7", "How many legs has a spider?", "Count them.")
        env = job_env(tmp_path, sim.url)
        env.update(RLM_JIRA_URL=jira.url, RLM_JIRA_USER="bot", RLM_JIRA_TOKEN="secret")
        args = [sys.executable, "-m", "rlm_engine.jobs.ingestor", "--source", "jira:project = BUG"]
        args += ["--once", "--model", "openai/m", "--executor", "inline"]
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=150)
        assert done.returncode == 0, done.stderr
        [(key, run_id, status)] = [line.split("\t") for line in done.stdout.splitlines()]
        assert (key, status) == ("BUG-7", "completed")
        assert jira.comments_posted() == [("BUG-7", f"8\n\n(rlm-engine run {run_id})")]
        assert "secret" not in done.stdout + done.stderr
