"""Shared HTTP error classification and Retry-After parsing."""

from __future__ import annotations

from email.utils import formatdate

import httpx
import pytest

from rlm_engine.lm.http_errors import kind_for_status, parse_retry_after, status_error


def test_retry_after_ms_wins_over_seconds() -> None:
    headers = httpx.Headers({"Retry-After-Ms": "1500", "Retry-After": "9"})
    assert parse_retry_after(headers) == 1.5


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after(httpx.Headers({"retry-after": "7"})) == 7.0
    now = 1_700_000_000.0
    date = formatdate(now + 12, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=lambda: now) == pytest.approx(12.0)
    past = formatdate(now - 60, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=lambda: now) == 0.0


@pytest.mark.parametrize("value", ["soon", "", "-"])
def test_unparseable_retry_after_is_none(value: str) -> None:
    assert parse_retry_after({"retry-after": value}) is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (429, None, "slow down", "rate_limit"),
        (500, None, "boom", "server"),
        (503, None, "overloaded", "server"),
        (529, "overloaded_error", "Overloaded", "server"),
        (401, None, "bad key", "auth"),
        (403, None, "forbidden", "auth"),
        (404, None, "no such model", "not_found"),
        (408, None, "request timeout", "timeout"),
        (400, "context_length_exceeded", "too long", "context_length"),
        (400, None, "This model's maximum context length is 8192 tokens", "context_length"),
        (400, "invalid_request_error", "prompt is too long: 210000 tokens", "context_length"),
        (400, "content_filter", "filtered", "content_filter"),
        (400, "content_policy_violation", "nope", "content_filter"),
        (400, None, "invalid temperature", "bad_request"),
        (422, None, "unprocessable", "bad_request"),
    ],
)
def test_kind_for_status(status: int, code: str | None, message: str, kind: str) -> None:
    assert kind_for_status(status, code, message) == kind


def test_status_error_keeps_retry_after_for_retryable_kinds_only() -> None:
    headers = {"retry-after": "4"}
    limited = status_error("p", 429, "slow", headers=headers)
    assert (limited.kind, limited.retry_after_s, limited.status) == ("rate_limit", 4.0, 429)
    rejected = status_error("p", 400, "bad", headers=headers)
    assert rejected.retry_after_s is None
    assert "HTTP 400" in str(rejected)
