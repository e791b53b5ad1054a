"""Model Serving, the current user and clusters of the Databricks double.

A chat request to an endpoint is forwarded to ``serving_base_url`` (an OpenAI-compatible server
on loopback, e.g. the project's simulator) as ``POST {base}/chat/completions`` with the
endpoint's name as ``model``; its reply (JSON or an SSE stream, read whole) goes back as it
came. Both ways in are served: the SDK's ``/serving-endpoints/{name}/invocations`` and the
OpenAI client's ``/serving-endpoints/chat/completions`` (base URL ``{host}/serving-endpoints``).
Any endpoint name is served once a backend is set; names asked for are listed afterwards.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from databricks_double_http import (
    ApiError,
    Request,
    Response,
    Route,
    invalid,
    json_response,
    not_found,
    route,
)

USER_NAME = "tester@example.com"
USER_ID = "7000000000000001"
CLUSTER_ID = "0101-000000-double01"
_FORWARD_TIMEOUT_S = 120.0


def _require_loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise ValueError(f"serving_base_url must be on loopback, got {url!r}")
    return url.rstrip("/")


class ServingService:
    """State and handlers of serving endpoints and their invocations."""

    def __init__(self, base_url: str | None) -> None:
        self._base_url = _require_loopback(base_url) if base_url else None
        self._names: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def endpoint_names(self) -> list[str]:
        with self._lock:
            return list(self._names)

    def add_endpoint(self, name: str) -> None:
        with self._lock:
            self._names.setdefault(name, int(time.time() * 1000))

    def routes(self) -> list[Route]:
        return [
            route("GET", r"/api/2\.0/serving-endpoints", self._list),
            route("GET", r"/api/2\.0/serving-endpoints/(?P<name>[^/]+)", self._get),
            route("POST", r"/serving-endpoints/chat/completions", self._openai_chat),
            route("POST", r"/serving-endpoints/(?P<name>[^/]+)/invocations", self._invoke),
        ]

    def _endpoint_json(self, name: str, created: int) -> dict[str, Any]:
        return {
            "name": name,
            "id": f"ep-{abs(hash(name)) % 10**12:012d}",
            "creator": USER_NAME,
            "creation_timestamp": created,
            "last_updated_timestamp": created,
            "task": "llm/v1/chat",
            "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
            "config": {"served_entities": [{"name": name, "entity_name": name}]},
        }

    def _list(self, _: Request, __: re.Match[str]) -> Response:
        with self._lock:
            endpoints = [self._endpoint_json(n, c) for n, c in self._names.items()]
        return json_response({"endpoints": endpoints} if endpoints else {})

    def _get(self, _: Request, match: re.Match[str]) -> Response:
        name = match["name"]
        with self._lock:
            created = self._names.get(name)
        if created is None:
            raise not_found(f"Endpoint with name '{name}' does not exist.")
        return json_response(self._endpoint_json(name, created))

    def _invoke(self, request: Request, match: re.Match[str]) -> Response:
        return self._forward(request, match["name"])

    def _openai_chat(self, request: Request, _: re.Match[str]) -> Response:
        model = request.json().get("model")
        if not isinstance(model, str) or not model:
            raise invalid("'model' (the serving endpoint's name) is required")
        return self._forward(request, model)

    def _forward(self, request: Request, name: str) -> Response:
        if self._base_url is None:
            raise not_found(
                f"Endpoint with name '{name}' does not exist (no serving backend configured)."
            )
        body = request.json()
        if "messages" not in body:
            raise invalid("only chat requests ('messages') are served by this endpoint")
        body["model"] = name
        self.add_endpoint(name)
        forwarded = urllib.request.Request(
            f"{self._base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer serving"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(forwarded, timeout=_FORWARD_TIMEOUT_S) as reply:
                status, headers, data = reply.status, reply.headers, reply.read()
        except urllib.error.HTTPError as error:
            status, headers, data = error.code, error.headers, error.read()
        except urllib.error.URLError as error:
            raise ApiError(  # 502, not 503: the SDK would retry a 503 for minutes
                502, "BAD_GATEWAY", f"the serving backend is unreachable: {error}"
            ) from None
        content_type = headers.get("Content-Type", "application/json")
        return Response(status, data, {"Content-Type": content_type, "served-model-name": name})


class WorkspaceInfoService:
    """The current user (SCIM ``Me``) and one running all-purpose cluster."""

    def __init__(self, workspace_url: Callable[[], str]) -> None:
        self._workspace_url = workspace_url

    def routes(self) -> list[Route]:
        clusters = r"/api/2\.[01]/clusters"
        return [
            route("GET", r"/api/2\.0/preview/scim/v2/Me", self._me),
            route("GET", f"{clusters}/list", self._clusters),
            route("GET", f"{clusters}/get", self._cluster),
        ]

    def _me(self, _: Request, __: re.Match[str]) -> Response:
        return json_response(
            {
                "id": USER_ID,
                "userName": USER_NAME,
                "displayName": "Test User",
                "active": True,
                "emails": [{"value": USER_NAME, "type": "work", "primary": True}],
                "groups": [{"display": "users", "value": "1", "type": "direct"}],
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            }
        )

    def _cluster_json(self) -> dict[str, Any]:
        return {
            "cluster_id": CLUSTER_ID,
            "cluster_name": "double-cluster",
            "state": "RUNNING",
            "state_message": "",
            "spark_version": "15.4.x-scala2.12",
            "node_type_id": "i3.xlarge",
            "num_workers": 1,
            "creator_user_name": USER_NAME,
            "cluster_source": "UI",
            "data_security_mode": "USER_ISOLATION",
        }

    def _clusters(self, _: Request, __: re.Match[str]) -> Response:
        return json_response({"clusters": [self._cluster_json()]})

    def _cluster(self, request: Request, _: re.Match[str]) -> Response:
        cluster_id = request.query.get("cluster_id")
        if cluster_id != CLUSTER_ID:
            raise invalid(f"Cluster {cluster_id} does not exist")
        return json_response(self._cluster_json())
