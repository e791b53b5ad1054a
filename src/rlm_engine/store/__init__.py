"""Durable storage: runs, call trees, cells (the artifact registry), events, sessions, memory,
contexts, the response cache and blobs. SQLite under RLM_HOME by default, Postgres via
RLM_STORE_URL.

Open one with `open_store(settings.store_url, settings.home)`; program against `Store`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlm_engine.store.blobs import BlobStore, LocalBlobStore, sha256_bytes, sha256_text
    from rlm_engine.store.errors import (
        BlobNotFoundError,
        ConcurrencyError,
        JournalConflictError,
        NotFoundError,
        RunNotFoundError,
        RunNotResumableError,
        SessionNotFoundError,
        StoreError,
        StoreUnavailableError,
    )
    from rlm_engine.store.factory import default_store_url, open_store
    from rlm_engine.store.hashing import request_hash
    from rlm_engine.store.protocol import Store
    from rlm_engine.store.records import (
        LOCAL_TENANT,
        MODEL_CALL_KINDS,
        TERMINAL_CELL_STATUSES,
        TERMINAL_NODE_STATUSES,
        TERMINAL_RUN_STATUSES,
        ApiKey,
        CachedResponse,
        CacheStats,
        Cell,
        CellKey,
        CellStart,
        CellStatus,
        ContextRecord,
        MemoryItem,
        MemoryScope,
        ModelCall,
        NewRun,
        Node,
        NodeKind,
        NodeStart,
        NodeStatus,
        Run,
        RunStatus,
        RunTotals,
        RunTree,
        Session,
        StoredEvent,
        Usage,
        UsageRow,
    )
    from rlm_engine.store.sql_store import SqlStore

__all__ = [
    "LOCAL_TENANT",
    "MODEL_CALL_KINDS",
    "TERMINAL_CELL_STATUSES",
    "TERMINAL_NODE_STATUSES",
    "TERMINAL_RUN_STATUSES",
    "ApiKey",
    "BlobNotFoundError",
    "BlobStore",
    "CacheStats",
    "CachedResponse",
    "Cell",
    "CellKey",
    "CellStart",
    "CellStatus",
    "ConcurrencyError",
    "ContextRecord",
    "JournalConflictError",
    "LocalBlobStore",
    "MemoryItem",
    "MemoryScope",
    "ModelCall",
    "NewRun",
    "Node",
    "NodeKind",
    "NodeStart",
    "NodeStatus",
    "NotFoundError",
    "Run",
    "RunNotFoundError",
    "RunNotResumableError",
    "RunStatus",
    "RunTotals",
    "RunTree",
    "Session",
    "SessionNotFoundError",
    "SqlStore",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "StoredEvent",
    "Usage",
    "UsageRow",
    "default_store_url",
    "open_store",
    "request_hash",
    "sha256_bytes",
    "sha256_text",
]

# Attributes are imported on first use, so that importing a light submodule (records,
# blobs, pinned_context) does not load SQLAlchemy through `open_store`.
_LAZY: dict[str, str] = {
    "ApiKey": "rlm_engine.store.records",
    "BlobNotFoundError": "rlm_engine.store.errors",
    "BlobStore": "rlm_engine.store.blobs",
    "CacheStats": "rlm_engine.store.records",
    "CachedResponse": "rlm_engine.store.records",
    "Cell": "rlm_engine.store.records",
    "CellKey": "rlm_engine.store.records",
    "CellStart": "rlm_engine.store.records",
    "CellStatus": "rlm_engine.store.records",
    "ConcurrencyError": "rlm_engine.store.errors",
    "ContextRecord": "rlm_engine.store.records",
    "JournalConflictError": "rlm_engine.store.errors",
    "LocalBlobStore": "rlm_engine.store.blobs",
    "MODEL_CALL_KINDS": "rlm_engine.store.records",
    "MemoryItem": "rlm_engine.store.records",
    "MemoryScope": "rlm_engine.store.records",
    "ModelCall": "rlm_engine.store.records",
    "NewRun": "rlm_engine.store.records",
    "Node": "rlm_engine.store.records",
    "NodeKind": "rlm_engine.store.records",
    "NodeStart": "rlm_engine.store.records",
    "NodeStatus": "rlm_engine.store.records",
    "NotFoundError": "rlm_engine.store.errors",
    "Run": "rlm_engine.store.records",
    "RunNotFoundError": "rlm_engine.store.errors",
    "RunNotResumableError": "rlm_engine.store.errors",
    "RunStatus": "rlm_engine.store.records",
    "RunTotals": "rlm_engine.store.records",
    "RunTree": "rlm_engine.store.records",
    "Session": "rlm_engine.store.records",
    "SessionNotFoundError": "rlm_engine.store.errors",
    "SqlStore": "rlm_engine.store.sql_store",
    "Store": "rlm_engine.store.protocol",
    "StoreError": "rlm_engine.store.errors",
    "StoreUnavailableError": "rlm_engine.store.errors",
    "StoredEvent": "rlm_engine.store.records",
    "TERMINAL_CELL_STATUSES": "rlm_engine.store.records",
    "TERMINAL_NODE_STATUSES": "rlm_engine.store.records",
    "TERMINAL_RUN_STATUSES": "rlm_engine.store.records",
    "Usage": "rlm_engine.store.records",
    "UsageRow": "rlm_engine.store.records",
    "LOCAL_TENANT": "rlm_engine.store.records",
    "default_store_url": "rlm_engine.store.factory",
    "open_store": "rlm_engine.store.factory",
    "request_hash": "rlm_engine.store.hashing",
    "sha256_bytes": "rlm_engine.store.blobs",
    "sha256_text": "rlm_engine.store.blobs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rlm_engine.store' has no attribute {name!r}")
    return getattr(import_module(module), name)
