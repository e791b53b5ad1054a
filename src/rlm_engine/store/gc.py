"""Garbage collection: free the blobs and pinned contexts no run refers to any more.

Deleting a run keeps its blobs, since blobs are shared by content. `collect_garbage`
removes contexts no run uses and blobs nothing refers to. Only what has gone unused for
a grace period goes: a blob another process has just stored (or stored again, which marks
it as new) may not have its row committed yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rlm_engine.store.errors import StoreError
from rlm_engine.store.pinned_context import MANIFEST_KIND, pinned_entries
from rlm_engine.store.protocol import Store

DEFAULT_GRACE_S = 3600.0


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one collection removed."""

    contexts_removed: int
    blobs_removed: int
    bytes_freed: int
    blobs_kept: int


def collect_garbage(store: Store, *, grace_s: float = DEFAULT_GRACE_S) -> GcReport:
    """Remove unused contexts and unreferenced blobs older than ``grace_s`` seconds."""
    contexts_removed = store.delete_unused_contexts(older_than_s=grace_s)
    in_use = store.blob_refs_in_use()
    for record in store.list_contexts():
        if record.kind != MANIFEST_KIND:
            continue
        try:
            entries = pinned_entries(store, record.content_hash) or []
        except StoreError:
            continue  # its manifest is gone: no run can restore those files any more
        in_use.update(f["ref"] for entry in entries for f in entry["files"])
    removed = freed = kept = 0
    cutoff = time.time() - grace_s  # blob times are file modification times
    for blob in store.blobs.list_blobs():
        if blob.ref in in_use or blob.touched_at >= cutoff:
            kept += 1
            continue
        store.blobs.delete(blob.ref)
        removed += 1
        freed += blob.size
    return GcReport(contexts_removed, removed, freed, kept)
