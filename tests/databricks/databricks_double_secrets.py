"""The Secrets API of the Databricks double: Databricks-backed scopes held in memory.

Values travel base64-encoded (``bytes_value`` in, ``value`` out), as on a workspace; ``secrets``
holds them decoded for the tests. ACLs are not emulated.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

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


class SecretsService:
    """State and handlers of ``/api/2.0/secrets/...``."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, str]] = {}
        self._updated: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        base = r"/api/2\.0/secrets"
        return [
            route("POST", f"{base}/scopes/create", self._create_scope),
            route("GET", f"{base}/scopes/list", self._list_scopes),
            route("POST", f"{base}/scopes/delete", self._delete_scope),
            route("POST", f"{base}/put", self._put),
            route("GET", f"{base}/get", self._get),
            route("GET", f"{base}/list", self._list),
            route("POST", f"{base}/delete", self._delete),
        ]

    def _create_scope(self, request: Request, _: re.Match[str]) -> Response:
        scope = _required(request.json(), "scope")
        with self._lock:
            if scope in self.secrets:
                raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Scope {scope} already exists!")
            self.secrets[scope] = {}
        return json_response({})

    def _list_scopes(self, _: Request, __: re.Match[str]) -> Response:
        with self._lock:
            scopes = [{"name": s, "backend_type": "DATABRICKS"} for s in sorted(self.secrets)]
        return json_response({"scopes": scopes} if scopes else {})

    def _delete_scope(self, request: Request, _: re.Match[str]) -> Response:
        scope = _required(request.json(), "scope")
        with self._lock:
            self._scope(scope)
            del self.secrets[scope]
        return json_response({})

    def _put(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        scope, key = _required(body, "scope"), _required(body, "key")
        if not re.fullmatch(r"[\w.-]{1,128}", key):
            raise invalid(f"Invalid secret key {key!r}: use letters, digits, '-', '_' and '.'")
        if "string_value" in body:
            value = str(body["string_value"])
        elif "bytes_value" in body:
            try:
                value = base64.b64decode(str(body["bytes_value"]), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise invalid("bytes_value must be base64 of UTF-8 text") from None
        else:
            raise invalid("One of string_value or bytes_value must be set")
        with self._lock:
            self._scope(scope)[key] = value
            self._updated[(scope, key)] = int(time.time() * 1000)
        return json_response({})

    def _get(self, request: Request, _: re.Match[str]) -> Response:
        scope, key = _required(request.query, "scope"), _required(request.query, "key")
        with self._lock:
            values = self._scope(scope)
            if key not in values:
                raise not_found(f"Failed to get secret '{key}' for scope '{scope}'.")
            encoded = base64.b64encode(values[key].encode()).decode()
        return json_response({"key": key, "value": encoded})

    def _list(self, request: Request, _: re.Match[str]) -> Response:
        scope = _required(request.query, "scope")
        with self._lock:
            keys = sorted(self._scope(scope))
            listed = [
                {"key": k, "last_updated_timestamp": self._updated.get((scope, k), 0)} for k in keys
            ]
        return json_response({"secrets": listed} if listed else {})

    def _delete(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        scope, key = _required(body, "scope"), _required(body, "key")
        with self._lock:
            values = self._scope(scope)
            if key not in values:
                raise not_found(f"Secret '{key}' does not exist in scope '{scope}'.")
            del values[key]
        return json_response({})

    def _scope(self, scope: str) -> dict[str, str]:
        values = self.secrets.get(scope)
        if values is None:
            raise not_found(f"Scope {scope} does not exist!")
        return values


def _required(source: Mapping[str, Any], name: str) -> str:
    value = source.get(name)
    if not value:
        raise invalid(f"Missing required field: {name}")
    return str(value)
