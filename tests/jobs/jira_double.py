"""A loopback double of the Jira REST API (v2), as far as the `jira` package calls it.

Serves what `jira.JIRA` asks for at creation (`serverInfo`), `myself`, `field` (its field
cache), issue search by JQL both ways the package pages it (Server/Data Center: `search`
with startAt/maxResults/total; Cloud: `search/jql` with nextPageToken), an issue's
comments and adding one. The double does not parse JQL: every issue matches, except that an
``updated >= "yyyy/MM/dd HH:mm"`` clause (read in UTC) is applied, and results are ordered
by `updated`, then key. Adding a comment bumps the issue's `updated`, as Jira does.
Scripted faults: `fail_next(path_part, status, retry_after)`. Tests assert on `requests`.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlparse

API = "/rest/api/2/"
UPDATED = re.compile(r'updated\s*>=\s*"(\d{4}/\d{2}/\d{2} \d{2}:\d{2})"')


def jira_time(epoch: float) -> str:
    """``epoch`` as Jira writes `updated`: ``2026-12-01T17:40:12.345+0000``."""
    text = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{text[:-3]}+0000"


@dataclass
class Issue:
    key: str
    summary: str
    description: str
    updated: float
    comments: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])

    def raw(self) -> dict[str, Any]:
        return {
            "id": str(abs(hash(self.key)) % 100000),
            "key": self.key,
            "self": f"/rest/api/2/issue/{self.key}",
            "fields": {
                "summary": self.summary,
                "description": self.description,
                "updated": jira_time(self.updated),
            },
        }


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int


@dataclass
class Fault:
    path_part: str
    status: int
    retry_after: str | None


class JiraDouble:
    """``with JiraDouble(cloud=False) as jira: ...``; ``jira.url`` is the site's URL."""

    def __init__(self, *, cloud: bool = False, time_zone: str = "UTC") -> None:
        self.cloud = cloud
        self.time_zone = time_zone
        self.issues: dict[str, Issue] = {}
        self.requests: list[Logged] = []
        self.faults: list[Fault] = []
        self.clock = 1_796_000_000.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> JiraDouble:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def add_issue(self, key: str, summary: str, description: str = "") -> Issue:
        with self._lock:
            self.clock += 61.0  # a minute apart: JQL compares minutes
            issue = Issue(key, summary, description, self.clock)
            self.issues[key] = issue
            return issue

    def fail_next(self, path_part: str, status: int = 429, retry_after: str | None = "0") -> None:
        """The next request whose path contains ``path_part`` gets ``status``."""
        with self._lock:
            self.faults.append(Fault(path_part, status, retry_after))

    def searches(self) -> list[Logged]:
        return [r for r in self.requests if r.path.rstrip("/").endswith(("/search", "/search/jql"))]

    def comments_posted(self) -> list[tuple[str, str]]:
        return [
            (r.path.split("/")[-2], str(r.body["body"]))
            for r in self.requests
            if r.method == "POST" and r.path.endswith("/comment") and r.status == 201
        ]

    # -- the HTTP side ---------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                del format, args

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                status, headers, reply = double._respond(method, url.path, query, body)
                with double._lock:
                    double.requests.append(Logged(method, url.path, query, body, status))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _respond(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            for fault in self.faults:
                if fault.path_part in path:
                    self.faults.remove(fault)
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    return fault.status, headers, {"errorMessages": ["Rate limit exceeded."]}
            if not path.startswith(API):
                return 404, {}, {"errorMessages": ["not found"]}
            route = path[len(API) :].rstrip("/")
            if route == "serverInfo":
                kind = "Cloud" if self.cloud else "Server"
                return 200, {}, {"versionNumbers": [9, 12, 0], "deploymentType": kind}
            if route == "myself":
                return 200, {}, {"name": "rlm-bot", "timeZone": self.time_zone}
            if route == "field":
                return (
                    200,
                    {},
                    [
                        {"id": f, "name": f.title(), "clauseNames": [f]}
                        for f in ("summary", "description", "updated")
                    ],
                )
            if route == "search" and not self.cloud:
                return 200, {}, self._search_page(query)
            if route == "search/jql" and self.cloud:
                return 200, {}, self._token_page(query)
            match = re.fullmatch(r"issue/([^/]+)/comment", route)
            if match and match.group(1) in self.issues:
                issue = self.issues[match.group(1)]
                if method == "POST":
                    self.clock += 1.0
                    comment = {"id": str(len(issue.comments) + 1), "body": body["body"]}
                    issue.comments.append(comment)
                    issue.updated = self.clock
                    return 201, {}, comment
                latest = list(reversed(issue.comments))
                return 200, {}, {"comments": latest, "startAt": 0, "total": len(latest)}
            return 404, {}, {"errorMessages": [f"no route {method} {path}"]}

    def _matching(self, query: dict[str, list[str]]) -> list[Issue]:
        jql = query.get("jql", [""])[0]
        found = sorted(self.issues.values(), key=lambda i: (i.updated, i.key))
        match = UPDATED.search(jql)
        if match:
            since = datetime.strptime(match.group(1), "%Y/%m/%d %H:%M").replace(tzinfo=UTC)
            found = [i for i in found if i.updated >= since.timestamp()]
        return found

    def _search_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        found = self._matching(query)
        start = int(query.get("startAt", ["0"])[0])
        size = int(query.get("maxResults", ["50"])[0])
        page = found[start : start + size]
        return {
            "startAt": start,
            "maxResults": size,
            "total": len(found),
            "issues": [i.raw() for i in page],
        }

    def _token_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        found = self._matching(query)
        start = int(query.get("nextPageToken", ["0"])[0])
        size = int(query.get("maxResults", ["50"])[0])
        page = found[start : start + size]
        more = start + size < len(found)
        reply: dict[str, Any] = {"issues": [i.raw() for i in page], "isLast": not more}
        if more:
            reply["nextPageToken"] = str(start + size)
        return reply
