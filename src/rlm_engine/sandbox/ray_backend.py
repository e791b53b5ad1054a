"""``RaySandbox``: the REPL in a Ray actor placed on a cluster node, near the data
(``ray`` extra).

The actor runs the same worker program the local backend runs, launched the same way on
its node (OS isolation chosen there, a private directory, the minimal environment), and
relays the framed protocol: host calls from cells reach the host's handler, deadlines
interrupt and then kill, ``killed`` results follow a hard kill. The actor process
first drops every inherited variable but Ray's own, because a cluster started by the
host inherits the host's environment. Context paths are read on the actor's node;
in-memory values are sent to the actor once, at load.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from rlm_engine.errors import ConfigurationError, MissingExtraError
from rlm_engine.sandbox.base import ContextValue, HostHandler
from rlm_engine.sandbox.context import ContextSpec
from rlm_engine.sandbox.isolation import ISOLATION_MODES, IsolationMode
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.relay_link import Relay, RelayedSandbox, RelayLost, RelaySink
from rlm_engine.sandbox.relay_node import NodeSettings, NodeWorker, scrub_environment

POLL_WAIT_S = 5.0
"""How long one poll of the actor waits for news; a new poll follows at once."""
CLOSE_TIMEOUT_S = 30.0
ACTOR_THREADS = 4
"""Actor methods running at once: a waiting poll, a send, an interrupt or kill, a stage."""


def load_ray() -> Any:
    """The ``ray`` module, or ``MissingExtraError`` naming the ``ray`` extra."""
    try:
        return importlib.import_module("ray")
    except ModuleNotFoundError as exc:
        if exc.name != "ray":
            raise
        raise MissingExtraError("The Ray sandbox backend", "ray", "ray") from None


def connect(ray: Any, address: str | None) -> None:
    """Join the Ray cluster at ``address``; without one, an existing cluster
    (``RAY_ADDRESS`` or the last one started here) or else a new local instance."""
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True)


class RayNodeWorker(NodeWorker):
    """The actor: a ``NodeWorker`` in a process whose environment is scrubbed first."""

    def __init__(self, settings: NodeSettings) -> None:
        scrub_environment(os.environ)
        super().__init__(settings)

    def start(self) -> dict[str, Any]:
        info = super().start()
        ray = importlib.import_module("ray")
        info["node_id"] = str(ray.get_runtime_context().get_node_id())
        return info

    def environment_names(self) -> list[str]:
        """Names (never values) of the variables this actor process still holds."""
        return sorted(os.environ)


@functools.cache
def _actor_class(ray: Any) -> Any:
    return ray.remote(RayNodeWorker)


def _call(actor: Any, method: str, *args: Any) -> Any:
    """Start ``actor.method(*args)``; the result is an awaitable ``ObjectRef``."""
    return getattr(actor, method).remote(*args)


async def _result(ref: Any) -> Any:
    return await ref


def _poll_reply(value: object) -> tuple[bytes, bytes, int | None]:
    output, frames, code = cast(tuple[object, object, object], value)
    if not isinstance(output, bytes) or not isinstance(frames, bytes):
        raise RelayLost("the Ray actor sent a malformed poll reply")
    return output, frames, code if isinstance(code, int) else None


class RayRelay:
    """``Relay`` over a ``RayNodeWorker`` actor handle."""

    def __init__(self, ray: Any, actor: Any) -> None:
        self._ray = ray
        self._actor = actor
        self._pending: list[Any] = []
        self._closed = False

    def _lost(self, exc: BaseException) -> RelayLost:
        return RelayLost(f"the Ray actor holding the worker was lost ({type(exc).__name__}: {exc})")

    async def run(self, sink: RelaySink) -> int | None:
        actor_error = self._ray.exceptions.RayActorError
        while True:
            try:
                reply = await _call(self._actor, "poll", POLL_WAIT_S)
            except actor_error as exc:
                raise self._lost(exc) from None
            output, frames, code = _poll_reply(reply)
            if output:
                sink.output(output)
            if frames:
                sink.frames(frames)
            if code is not None:
                return code

    async def send(self, data: bytes) -> None:
        await _call(self._actor, "send", data)

    async def interrupt(self, worker_pid: int | None) -> None:
        await _call(self._actor, "interrupt")

    def kill(self) -> None:
        if not self._closed:
            # Kept so the result is not reported as an unhandled error when dropped.
            self._pending.append(_call(self._actor, "kill"))

    async def stage(self, value: ContextValue, index: int) -> tuple[ContextSpec, bool]:
        staged = await _call(self._actor, "stage", value, index)
        return cast(tuple[ContextSpec, bool], staged)

    async def unstage(self, index: int) -> None:
        await _call(self._actor, "unstage", index)

    async def environment_names(self) -> list[str]:
        return cast(list[str], await _call(self._actor, "environment_names"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Free the node's uid slot and directory before the actor goes; a dead actor
        # has nothing left to free.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(_result(_call(self._actor, "close")), CLOSE_TIMEOUT_S)
        self._ray.kill(self._actor, no_restart=True)

    def abandon(self) -> None:
        if not self._closed:
            self._closed = True
            # Without an event loop: ask for the cleanup; the actor ends when its handle
            # is dropped (Ray ends actors nobody refers to).
            self._pending.append(_call(self._actor, "close"))


class RaySandbox(RelayedSandbox):
    """A persistent REPL in a Ray actor (implements ``Sandbox``).

    Placement: ``num_cpus`` reserved for the actor (default 1: the worker uses one),
    ``resources`` (custom resources, e.g. ``{"data_node": 1}``), ``scheduling_strategy``
    (e.g. ``NodeAffinitySchedulingStrategy``), ``memory`` (bytes, for scheduling).
    ``ray_address``: cluster to join when this process is not connected yet (default:
    an existing cluster, else a new local instance). ``isolation``, ``limits`` and
    ``workspace`` apply on the actor's node as they do locally; ``workspace`` is a
    directory on that node. Context paths must be readable on that node.
    """

    def __init__(
        self,
        handler: HostHandler,
        *,
        tools: Sequence[str] = (),
        ray_address: str | None = None,
        num_cpus: float = 1.0,
        resources: Mapping[str, float] | None = None,
        scheduling_strategy: Any = None,
        memory: int | None = None,
        isolation: IsolationMode = "auto",
        limits: Limits | None = None,
        workspace: str | Path | None = None,
        output_cap_chars: int = 1_000_000,
        kill_grace_s: float = 0.5,
        lazy_context_bytes: int = 64 * 1024 * 1024,
        start_timeout_s: float = 120.0,
        bwrap_path: str | None = None,
        workdir_parent: str | None = None,
        python: str | None = None,
    ) -> None:
        if isolation not in ISOLATION_MODES:
            raise ConfigurationError(
                f"isolation must be one of {', '.join(ISOLATION_MODES)}, not {isolation!r}"
            )
        if num_cpus < 0:
            raise ConfigurationError("num_cpus must not be negative")
        super().__init__(
            handler,
            tools=tools,
            limits=limits,
            output_cap_chars=output_cap_chars,
            kill_grace_s=kill_grace_s,
            lazy_context_bytes=lazy_context_bytes,
            start_timeout_s=start_timeout_s,
        )
        self._ray = load_ray()
        self._address = ray_address
        placement: dict[str, Any] = {"num_cpus": num_cpus}
        if resources:
            placement["resources"] = dict(resources)
        if scheduling_strategy is not None:
            placement["scheduling_strategy"] = scheduling_strategy
        if memory is not None:
            placement["memory"] = memory
        self._placement = placement
        self._node_settings = NodeSettings(
            tools=self._tools,
            output_cap=output_cap_chars,
            isolation=isolation,
            limits=self._options.limits,
            workspace=None if workspace is None else str(workspace),
            bwrap_path=bwrap_path,
            workdir_parent=workdir_parent,
            lazy_context_bytes=lazy_context_bytes,
            python=python,
        )
        self._ray_relay: RayRelay | None = None
        self.placement: dict[str, Any] = {}
        """Where the worker runs once started: ``node_id``, ``hostname``, ``isolation``."""

    async def _open_relay(self) -> Relay:
        ray = self._ray
        # ray.init blocks for seconds when it starts a local instance.
        await asyncio.to_thread(connect, ray, self._address)
        actor = (
            _actor_class(ray)
            .options(max_concurrency=ACTOR_THREADS, max_restarts=0, **self._placement)
            .remote(self._node_settings)
        )
        relay = RayRelay(ray, actor)
        try:
            info = cast(dict[str, Any], await _call(actor, "start"))
        except BaseException:
            # A failed start has freed what it took on the node; the actor may still be
            # waiting for resources, so it is killed rather than asked to close.
            ray.kill(actor, no_restart=True)
            raise
        self.placement = info
        self.remote_isolation = str(info.get("isolation"))
        self._ray_relay = relay
        return relay

    def _relay_or_fail(self) -> RayRelay:
        if self._ray_relay is None:
            raise RuntimeError("the sandbox is not started; call start() first")
        return self._ray_relay

    async def _stage(self, value: ContextValue, index: int) -> tuple[ContextSpec, bool]:
        return await self._relay_or_fail().stage(value, index)

    async def _unstage(self, index: int) -> None:
        await self._relay_or_fail().unstage(index)

    async def actor_environment(self) -> list[str]:
        """Names of the variables the actor process holds (to audit what it inherited)."""
        return await self._relay_or_fail().environment_names()
