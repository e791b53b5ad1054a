"""Jira through its REST API, by way of the optional `jira` package (imported on first use).

The adapter pages through a JQL search itself, one request per page, so a 429 costs one
page and not the whole search: the `jira` session's own retries are off, and a 429 or 503
is waited out here (its `Retry-After`, else exponential backoff, capped) and retried a
bounded number of times. Jira Cloud serves search at `search/jql` with `nextPageToken`;
Server and Data Center at `search` with `startAt`/`total`; the server's `deploymentType`
picks the one the `jira` package would use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from rlm_engine.errors import ConfigurationError, MissingExtraError, RLMError

if TYPE_CHECKING:
    from jira import JIRA

T = TypeVar("T")
FIELDS = ["summary", "description", "updated"]
RETRYABLE_STATUS = frozenset({429, 503})
UPDATED_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"


class JiraError(RLMError):
    """Jira refused or failed a request; the message has its status and reply."""

    cause_kind = "jira"


@dataclass(frozen=True, slots=True)
class JiraIssue:
    """The fields of an issue a task needs. ``updated`` is epoch seconds."""

    key: str
    summary: str
    description: str
    updated: float
    updated_text: str


@dataclass(frozen=True, slots=True)
class JiraComment:
    id: str
    body: str


def parse_updated(text: str) -> float:
    """Jira's `updated` (``2026-12-01T17:40:12.345+0000``) as epoch seconds."""
    try:
        return datetime.strptime(text, UPDATED_FORMAT).timestamp()
    except ValueError:
        return datetime.fromisoformat(text).timestamp()


class JiraClient:
    """A Jira site at ``url``: basic auth with ``user`` and ``token`` (Cloud: e-mail and API
    token), a bearer personal access token with ``token`` alone, else anonymous."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        token: str | None = None,
        max_tries: int = 5,
        max_wait_s: float = 60.0,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self._user, self._token = user, token
        self._max_tries, self._max_wait_s = max_tries, max_wait_s
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._jira: JIRA | None = None
        self._time_zone: str | None = None

    def _client(self) -> JIRA:
        if self._jira is None:
            try:
                from jira import JIRA
            except ImportError as exc:
                raise MissingExtraError("The jira: task source", "jira", "jira") from exc
            auth: dict[str, Any] = {}
            if self._user and self._token:
                auth["basic_auth"] = (self._user, self._token)
            elif self._token:
                auth["token_auth"] = self._token
            self._jira = self._retrying(
                "connect",
                lambda: JIRA(server=self.url, max_retries=0, timeout=self._timeout_s, **auth),
            )
        return self._jira

    @property
    def is_cloud(self) -> bool:
        return self._client().deploymentType == "Cloud"

    def time_zone(self) -> str:
        """The time zone JQL dates are read in: the user's profile's (UTC if it has none)."""
        if self._time_zone is None:
            client = self._client()
            me = self._retrying("myself", client.myself)
            self._time_zone = str(me.get("timeZone") or "UTC")
        return self._time_zone

    def search(self, jql: str, *, page_size: int = 50) -> Iterator[JiraIssue]:
        """Every issue ``jql`` matches, one page per request, in the order it asks."""
        client: Any = self._client()  # the package's paging methods are untyped
        if self.is_cloud:
            token: str | None = None
            while True:
                page = self._page(
                    lambda t=token: client.enhanced_search_issues(
                        jql,
                        nextPageToken=t,
                        maxResults=page_size,
                        fields=FIELDS,
                        json_result=True,
                    )
                )
                yield from _issues(page)
                token = page.get("nextPageToken")
                if not token or page.get("isLast") is True:
                    return
        start = 0
        while True:
            page = self._page(
                lambda s=start: client.search_issues(
                    jql, startAt=s, maxResults=page_size, fields=FIELDS, json_result=True
                )
            )
            issues = _issues(page)
            yield from issues
            start += len(issues)
            if not issues or start >= int(page.get("total") or 0):
                return

    def _page(self, fetch: Callable[[], Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self._retrying("search", fetch))

    def comments(self, key: str, *, latest: int = 50) -> list[JiraComment]:
        """The newest ``latest`` comments of the issue."""
        client: Any = self._client()
        found = self._retrying(
            "comments",
            lambda: client.comments(key, max_results=latest, order_by="-created"),
        )
        return [JiraComment(str(c.id), str(getattr(c, "body", ""))) for c in found]

    def add_comment(self, key: str, body: str) -> str:
        """Post ``body`` as a comment of the issue; returns the comment's id."""
        client: Any = self._client()
        comment = self._retrying("add comment", lambda: client.add_comment(key, body))
        return str(comment.id)

    def close(self) -> None:
        if self._jira is not None:
            self._jira.close()
            self._jira = None

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, with a 429 or 503 waited out and retried up to the bound."""
        from jira.exceptions import JIRAError
        from requests.exceptions import RequestException

        for attempt in range(1, self._max_tries + 1):
            try:
                return call()
            except JIRAError as exc:
                status = exc.status_code
                if status in RETRYABLE_STATUS and attempt < self._max_tries:
                    self._sleep(self._wait_s(exc, attempt))
                    continue
                raise _typed(what, self.url, exc) from exc
            except RequestException as exc:
                raise JiraError(
                    f"Jira at {self.url} could not be reached ({what}): {exc}",
                    hint="check --jira-url (or RLM_JIRA_URL) and that the site is up",
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _wait_s(self, exc: Any, attempt: int) -> float:
        headers: Any = getattr(getattr(exc, "response", None), "headers", None) or {}
        raw: Any = headers.get("Retry-After")
        try:
            wait = float(raw) if raw is not None else 2.0**attempt
        except ValueError:
            wait = 2.0**attempt
        return max(0.0, min(wait, self._max_wait_s))


def _issues(page: dict[str, Any]) -> list[JiraIssue]:
    out: list[JiraIssue] = []
    for raw in cast(list[dict[str, Any]], page.get("issues") or []):
        fields = cast(dict[str, Any], raw.get("fields") or {})
        updated = str(fields.get("updated") or "")
        out.append(
            JiraIssue(
                key=str(raw["key"]),
                summary=str(fields.get("summary") or ""),
                description=str(fields.get("description") or ""),
                updated=parse_updated(updated) if updated else 0.0,
                updated_text=updated,
            )
        )
    return out


def _typed(what: str, url: str, exc: Any) -> RLMError:
    status = exc.status_code
    text = str(getattr(exc, "text", "") or exc)
    if status in (401, 403):
        return ConfigurationError(
            f"Jira at {url} refused the credentials ({what}: HTTP {status}): {text}",
            hint="set RLM_JIRA_USER and RLM_JIRA_TOKEN (Cloud: your e-mail and an API "
            "token; Server: a personal access token in RLM_JIRA_TOKEN alone)",
        )
    if status == 400:
        return ConfigurationError(
            f"Jira rejected the request ({what}): {text}",
            hint="check the JQL after --source jira: in Jira's issue search first",
        )
    return JiraError(
        f"Jira at {url} failed ({what}: HTTP {status}): {text}",
        hint="retry later; if it persists, check the site's status",
    )
