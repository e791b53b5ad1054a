"""Epochs of a run's journal: what keeps node ids apart after an accepted divergence.

A resume with ``--accept-divergence`` goes on from a cell whose replay printed something
new, so from there on the root sees a different history and its calls are not the
journaled ones. The journal keeps every entry it had (the superseded history stays
readable) and starts an epoch: the diverged cell and every step after it are journaled
under the node id with the epoch in its first segment (``r/7`` -> ``r~1/7``). A later
resume replays epoch 0 up to that cell and, if the cell again differs from its epoch-0
record, follows the epoch that continued from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_EPOCH = re.compile(r"^r~(\d+)(/|$)")


def epoch_of(key: str) -> int:
    """The epoch of a journal key (0 for plain node ids)."""
    found = _EPOCH.match(key)
    return int(found.group(1)) if found else 0


def epoch_key(node_id: str, epoch: int) -> str:
    """The journal key of ``node_id`` in ``epoch``."""
    if epoch == 0 or not node_id.startswith("r"):
        return node_id
    return f"r~{epoch}{node_id[1:]}"


class JournalEpochs:
    """Which epoch each node id of this run is journaled in."""

    def __init__(self) -> None:
        self.current = 0
        self.highest = 0
        self._of: dict[str, int] = {}

    def saw(self, keys: Iterable[str]) -> None:
        """Note the epochs present in a loaded journal."""
        for key in keys:
            self.highest = max(self.highest, epoch_of(key))

    def key(self, node_id: str) -> str:
        """The key of ``node_id``: a node keeps the epoch it was first used in (a REPL
        restarted after a kill replays earlier cells under their original keys)."""
        return epoch_key(node_id, self._of.setdefault(node_id, self.current))

    def later_keys(self, node_id: str) -> list[str]:
        start = self._of.get(node_id, self.current)
        return [epoch_key(node_id, e) for e in range(start + 1, self.highest + 1)]

    def enter(self, node_id: str, key: str) -> None:
        """Follow the epoch of ``key`` from cell ``node_id`` on."""
        self.current = epoch_of(key)
        self._of[node_id] = self.current

    def begin(self, node_id: str) -> None:
        """A new epoch starts at cell ``node_id``."""
        self.highest += 1
        self.current = self.highest
        self._of[node_id] = self.current
