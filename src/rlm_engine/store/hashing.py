"""Stable hashes of model requests, so a replay can tell the same request from another."""

from __future__ import annotations

import json
from typing import Any

from rlm_engine.store.blobs import sha256_text


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_hash(payload: Any) -> str:
    """sha256 of a request's canonical JSON (e.g. `{"model": ..., "messages": [...]}`)."""
    return sha256_text(canonical_json(payload))
