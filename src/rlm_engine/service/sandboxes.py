"""Warm sandbox pools shared by the runs of one service (`RLM_WARM_POOL`).

A run's sandbox limits come from its spec, and a pooled worker is started with fixed
limits, so there is one pool per (isolation, memory budget) a run asks for. A pooled
worker serves one run and is closed afterwards: nothing passes between runs or tenants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlm_engine.engine.config import RLMConfig

if TYPE_CHECKING:
    from rlm_engine.engine.state import SandboxFactory
    from rlm_engine.sandbox.factory import LocalSandboxFactory
    from rlm_engine.service.spec import RunSpec


class SandboxPools:
    """``size`` warm workers per kind of sandbox the runs ask for; none with ``size`` 0."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._factories: dict[tuple[str, int], LocalSandboxFactory] = {}

    def factory_for(
        self, spec: RunSpec, *, run_id: str | None = None, session: str | None = None
    ) -> SandboxFactory | None:
        """The pooled factory for ``spec``'s sandboxes, or None (the run builds its own).

        A run whose spec names an artifact lakehouse (``spec.artifacts``) and that executes
        for real (a ``run_id``: not an offline replay, which runs its cells in a sandbox
        of its own and records nothing) gets a factory whose every cell is an artifact of
        that lakehouse's registry, run by a separate executor process."""
        if spec.artifacts is not None and run_id is not None:
            if spec.artifacts.startswith("databricks:"):  # cells as Databricks job runs
                from rlm_engine.jobs.databricks_mode import artifact_factory

                return artifact_factory(spec, spec.artifacts, run_id, session or run_id)
            return _artifact_factory(spec, spec.artifacts, run_id, session or run_id)
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


def _artifact_factory(spec: RunSpec, root: str, run_id: str, session_id: str) -> SandboxFactory:
    """Sandboxes whose cells go through the artifact registry under ``root``."""
    from rlm_engine.integrations.delta_lake import Lakehouse
    from rlm_engine.jobs.artifact_sandbox import ArtifactSandboxFactory
    from rlm_engine.jobs.artifacts import ArtifactRegistry

    lake = Lakehouse(root)
    registry = ArtifactRegistry(lake, f"{lake.root}/artifacts")
    return ArtifactSandboxFactory(
        registry,
        run_id=run_id,
        session_id=session_id,
        isolation=spec.isolation,
        memory_mb=spec.memory_mb,
    )
