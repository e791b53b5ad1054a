"""The REPL's ``memory`` kept in the store: a mutable mapping over one scope."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from rlm_engine.store.protocol import Store
from rlm_engine.store.records import MemoryScope


class StoreMemory(MutableMapping[str, Any]):
    """Session- or user-scoped memory that outlives the process (values must be JSON)."""

    def __init__(self, store: Store, scope: MemoryScope) -> None:
        self.store = store
        self.scope = scope

    def __getitem__(self, key: str) -> Any:
        item = self.store.memory_get(self.scope, key)
        if item is None:
            raise KeyError(key)
        return item.value

    def __setitem__(self, key: str, value: Any) -> None:
        self.store.memory_set(self.scope, key, value)

    def __delitem__(self, key: str) -> None:
        if not self.store.memory_delete(self.scope, key):
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter([item.key for item in self.store.memory_list(self.scope)])

    def __len__(self) -> int:
        return len(self.store.memory_list(self.scope))
