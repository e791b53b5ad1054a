"""Warm sandbox pools shared by the runs of one service (`RLM_WARM_POOL`).

A run's sandbox limits come from its spec, and a pooled worker is started with fixed
limits, so there is one pool per (isolation, memory budget) a run asks for. A pooled
worker serves one run and is closed afterwards: nothing passes between runs or tenants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlm_engine.engine.config import RLMConfig

if TYPE_CHECKING:
    from rlm_engine.sandbox.factory import LocalSandboxFactory
    from rlm_engine.service.spec import RunSpec


class SandboxPools:
    """``size`` warm workers per kind of sandbox the runs ask for; none with ``size`` 0."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._factories: dict[tuple[str, int], LocalSandboxFactory] = {}

    def factory_for(self, spec: RunSpec) -> LocalSandboxFactory | None:
        """The pooled factory for ``spec``'s sandboxes, or None (the run builds its own)."""
        if self.size <= 0:
            return None
        memory_mb = spec.memory_mb if spec.memory_mb is not None else RLMConfig().memory_mb
        key = (spec.isolation, memory_mb)
        factory = self._factories.get(key)
        if factory is None:
            from rlm_engine.sandbox.factory import LocalSandboxFactory
            from rlm_engine.sandbox.limits import Limits

            factory = LocalSandboxFactory(
                isolation=spec.isolation, pool_size=self.size, limits=Limits(memory_mb=memory_mb)
            )
            self._factories[key] = factory
        return factory

    async def aclose(self) -> None:
        factories, self._factories = list(self._factories.values()), {}
        for factory in factories:
            await factory.close()
