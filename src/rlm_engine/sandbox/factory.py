"""The one entry point the engine and the CLI use to build sandboxes.

``sandbox_factory(...)`` returns ``Callable[[HostHandler, tuple[str, ...]], Sandbox]``,
the shape ``RLM(sandbox_factory=...)`` takes. Backends are a registry, not a chain of
``if``s; the local backend is the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rlm_engine.errors import ConfigurationError
from rlm_engine.sandbox.base import HostHandler, Sandbox
from rlm_engine.sandbox.isolation import (
    ISOLATION_MODES,
    IsolationLevel,
    IsolationMode,
    choose_level,
    probe,
)
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.local import LAZY_CONTEXT_BYTES, LocalSandbox
from rlm_engine.sandbox.pool import PooledSandbox, WarmPool

SandboxBuilder = Callable[[HostHandler, tuple[str, ...]], Sandbox]
BackendBuilder = Callable[[Mapping[str, Any]], SandboxBuilder]


def check_isolation(isolation: IsolationMode = "auto", *, bwrap_path: str | None = None) -> str:
    """The level ``isolation`` gives on this machine (``bubblewrap``, ``unshare`` or
    ``none``); raises ``IsolationUnavailable`` for ``strict`` without OS isolation. For
    a CLI to fail fast before any model call."""
    return choose_level(isolation, probe(bwrap_path))


class LocalSandboxFactory:
    """Builds ``LocalSandbox``es (or pooled ones) with fixed settings. Callable as a
    ``SandboxBuilder``; ``close()`` shuts the warm pool down."""

    def __init__(
        self,
        *,
        isolation: IsolationMode = "auto",
        pool_size: int = 0,
        workspace: Path | None = None,
        limits: Limits | None = None,
        output_cap_chars: int = 1_000_000,
        kill_grace_s: float = 0.5,
        python: str | None = None,
        workdir_parent: Path | None = None,
        lazy_context_bytes: int = LAZY_CONTEXT_BYTES,
        bwrap_path: str | None = None,
    ) -> None:
        if isolation not in ISOLATION_MODES:
            raise ConfigurationError(
                f"isolation must be one of {', '.join(ISOLATION_MODES)}, not {isolation!r}"
            )
        if pool_size < 0:
            raise ConfigurationError("pool_size must not be negative")
        # Fail at configuration time, not at the first cell.
        self.level: IsolationLevel = choose_level(isolation, probe(bwrap_path))
        self._settings: dict[str, Any] = {
            "isolation": isolation,
            "workspace": workspace,
            "limits": limits,
            "output_cap_chars": output_cap_chars,
            "kill_grace_s": kill_grace_s,
            "python": python,
            "workdir_parent": workdir_parent,
            "lazy_context_bytes": lazy_context_bytes,
            "bwrap_path": bwrap_path,
        }
        self.pool: WarmPool | None = None
        if pool_size > 0:
            if workspace is not None:
                # One workspace belongs to one session; pre-started workers would share it.
                raise ConfigurationError("a warm pool cannot be combined with a workspace")
            self.pool = WarmPool(lambda handler: self.local(handler, ()), pool_size)

    def local(self, handler: HostHandler, tools: tuple[str, ...]) -> LocalSandbox:
        """A new, unstarted ``LocalSandbox`` with these settings."""
        return LocalSandbox(handler, tools=tools, **self._settings)

    def __call__(self, handler: HostHandler, tools: tuple[str, ...]) -> Sandbox:
        if self.pool is not None:
            lazy = int(self._settings["lazy_context_bytes"])
            return PooledSandbox(self.pool, handler, tools, lazy_context_bytes=lazy)
        return self.local(handler, tools)

    async def close(self) -> None:
        """Close the warm pool's waiting workers (no-op without a pool)."""
        if self.pool is not None:
            await self.pool.close()


def _local_backend(options: Mapping[str, Any]) -> SandboxBuilder:
    return LocalSandboxFactory(**dict(options))


def _without_isolation(backend: str, options: Mapping[str, Any]) -> dict[str, Any]:
    # The container is the boundary there; a silently ignored "strict" would mislead.
    if "isolation" in options:
        raise ConfigurationError(
            f"isolation applies to the local and ray backends, not {backend!r}: "
            "its container is the isolation"
        )
    return dict(options)


def _docker_backend(options: Mapping[str, Any]) -> SandboxBuilder:
    from rlm_engine.sandbox.docker_backend import DockerSandbox

    settings = _without_isolation("docker", options)
    return lambda handler, tools: DockerSandbox(handler, tools=tools, **settings)


def _ray_backend(options: Mapping[str, Any]) -> SandboxBuilder:
    from rlm_engine.sandbox.ray_backend import RaySandbox, load_ray

    load_ray()  # a missing extra fails here, at configuration time
    settings = dict(options)
    return lambda handler, tools: RaySandbox(handler, tools=tools, **settings)


def _modal_backend(options: Mapping[str, Any]) -> SandboxBuilder:
    from rlm_engine.sandbox.modal_backend import ModalSandbox, load_modal

    load_modal()  # a missing extra fails here, at configuration time
    settings = _without_isolation("modal", options)
    return lambda handler, tools: ModalSandbox(handler, tools=tools, **settings)


BACKENDS: dict[str, BackendBuilder] = {
    "local": _local_backend,
    "docker": _docker_backend,
    "ray": _ray_backend,
    "modal": _modal_backend,
}


def sandbox_factory(
    backend: str = "local",
    *,
    isolation: IsolationMode = "auto",
    pool_size: int = 0,
    workspace: Path | None = None,
    limits: Limits | None = None,
    **options: Any,
) -> SandboxBuilder:
    """Build the sandbox factory for ``RLM(sandbox_factory=...)``.

    ``backend``: ``local`` (default), ``docker``, ``ray`` or ``modal``. For ``local``:
    ``isolation`` (``auto``/``strict``/``none``; ``strict`` raises
    ``IsolationUnavailable`` here when the machine cannot isolate), ``pool_size`` warm
    workers, a persistent ``workspace`` directory, ``limits``, and any other
    ``LocalSandboxFactory`` keyword. Remote backends take their own keywords (see
    ``DockerSandbox``, ``RaySandbox``, ``ModalSandbox``); ``ray`` also takes
    ``isolation``, applied on the actor's node. Raises ``ConfigurationError`` for an
    unknown backend or bad settings, ``MissingExtraError`` for a missing extra.
    """
    try:
        build = BACKENDS[backend]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigurationError(f"unknown sandbox backend {backend!r}; known: {known}") from None
    settings: dict[str, Any] = dict(options)
    if backend == "local":
        settings.update(isolation=isolation, pool_size=pool_size, workspace=workspace)
        settings["limits"] = limits
    else:
        if pool_size:
            raise ConfigurationError(f"pool_size applies to the local backend, not {backend!r}")
        if isolation != "auto":
            settings["isolation"] = isolation
        if workspace is not None:
            settings["workspace"] = workspace
        if limits is not None:
            settings["limits"] = limits
    return build(settings)
