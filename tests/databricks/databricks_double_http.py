"""HTTP plumbing shared by the parts of the Databricks double: requests, responses, errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request, as a service handler sees it."""

    method: str
    path: str  # percent-decoded, without the query string
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        value: Any = json.loads(self.body)
        if not isinstance(value, dict):
            raise ApiError(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
        return cast(dict[str, Any], value)


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: dict[str, str]())


def json_response(payload: Mapping[str, Any], status: int = 200) -> Response:
    return Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


class ApiError(Exception):
    """An error answered as the workspace does: ``{"error_code", "message"}`` with a status."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def response(self) -> Response:
        return json_response({"error_code": self.error_code, "message": self.message}, self.status)


def not_found(message: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", message)


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


Handler = Callable[[Request, "re.Match[str]"], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, pattern: str, handler: Handler) -> Route:
    return Route(method, re.compile(pattern + r"\Z"), handler)


def as_object(value: Any, what: str) -> dict[str, Any]:
    """A JSON object from a request (``{}`` when absent), or a typed 400."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{what} must be a JSON object")
    return cast(dict[str, Any], value)


def as_array(value: Any, what: str) -> list[Any]:
    """A JSON array from a request (``[]`` when absent), or a typed 400."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{what} must be a JSON array")
    return cast(list[Any], value)
