"""``ModalSandbox``: the REPL in a Modal Sandbox (``modal`` extra).

The Modal Sandbox is created with the project's image, no network
(``block_network=True``), no secrets and an optional Modal Volume mounted as the
workspace. The same worker program runs in it with the Docker backend's stdio
arrangement: protocol frames on its stdin/stdout, everything a cell prints on its
stderr, so printing cannot forge a frame. Soft interrupts are a ``kill -INT`` run in the
sandbox; a hard kill terminates the sandbox. Contexts are staged on the host, then
unpacked into the sandbox; large data belongs on the Volume.

The container is the boundary: Modal runs it under gVisor. Inside, the worker gets a
cleared environment and its rlimits, and runs as the image's user.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rlm_engine.errors import ConfigurationError, ContextError, MissingExtraError
from rlm_engine.sandbox.base import ContextValue, HostHandler
from rlm_engine.sandbox.context import ContextSpec, stage_context
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.relay_link import Relay, RelayedSandbox, RelayLost, RelaySink

DEFAULT_APP = "rlm-engine-sandbox"
REMOTE_ROOT = "/rlm"
WORKSPACE_MOUNT = "/data"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# In the sandbox: make the home, then move the protocol from stdin/stdout to fds 3/4
# and let the cell's stdout join stderr.
STDIO_SHIM = (
    'mkdir -p "$HOME" && cd "$HOME" && exec "$0" -I -m rlm_engine.sandbox.worker '
    '--fds 3,4 "$@" 3<&0 4>&1 0</dev/null 1>&2'
)
STREAM_GRACE_S = 2.0
"""How long the streams may still deliver after the worker has exited."""
UPLOAD_CHUNK = 1 << 20


def load_modal() -> Any:
    """The ``modal`` module, or ``MissingExtraError`` naming the ``modal`` extra."""
    try:
        return importlib.import_module("modal")
    except ModuleNotFoundError as exc:
        if exc.name != "modal":
            raise
        raise MissingExtraError("The Modal sandbox backend", "modal", "modal") from None


def project_image(modal: Any, python_version: str = "3.11") -> Any:
    """The worker image: a slim Python with this ``rlm_engine`` package (the worker
    needs nothing else; it is stdlib only)."""
    return modal.Image.debian_slim(python_version=python_version).add_local_python_source(
        "rlm_engine"
    )


def worker_command(
    *,
    python: str,
    root: str,
    tools: Sequence[str],
    output_cap: int,
    limits: Limits,
    workspace: str | None,
) -> list[str]:
    """The command run in the sandbox: the worker under a cleared environment."""
    home = posixpath.join(root, "work")
    env = [f"PATH={SANDBOX_PATH}", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", f"HOME={home}"]
    env.append("TMPDIR=/tmp")
    # The worker may run as root in the container, where RLIMIT_NPROC does not bind.
    rlimits = replace(limits, nproc=0).to_arg()
    args = ["--output-cap", str(output_cap), "--tools", ",".join(tools)]
    args += ["--hard-output-cap", str(limits.hard_output_chars), "--rlimits", rlimits]
    if workspace is not None:
        args += ["--workspace", workspace]
    return ["env", "-i", *env, "/bin/sh", "-c", STDIO_SHIM, python, *args]


def rebase_spec(spec: ContextSpec, local: str, remote: str) -> ContextSpec:
    """``spec`` with its host paths under ``local`` moved to ``remote``."""

    def move(path: object) -> str:
        relative = os.path.relpath(str(path), local)
        return remote if relative == "." else posixpath.join(remote, *Path(relative).parts)

    moved = dict(spec)
    for key in ("path", "root"):
        if key in moved:
            moved[key] = move(moved[key])
    if isinstance(moved.get("paths"), list):
        moved["paths"] = [move(path) for path in moved["paths"]]
    return moved


def _pack(source: Path, archive: Path) -> None:
    with tarfile.open(archive, "w") as tar:
        tar.add(source, arcname=".")


class ModalRelay:
    """``Relay`` over the worker's process in a Modal Sandbox (async SDK calls)."""

    def __init__(self, sandbox: Any, process: Any) -> None:
        self._sandbox = sandbox
        self._process = process
        self._killed = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    async def _drain(stream: Any, deliver: Any) -> None:
        async for chunk in stream:
            if chunk:
                deliver(bytes(chunk))

    async def run(self, sink: RelaySink) -> int | None:
        readers = [
            asyncio.create_task(self._drain(self._process.stdout, sink.frames)),
            asyncio.create_task(self._drain(self._process.stderr, sink.output)),
        ]
        try:
            try:
                code: object = await self._process.wait.aio()
            except Exception as exc:
                if self._killed:
                    return None
                raise RelayLost(f"the Modal sandbox holding the worker ended: {exc}") from None
            # What the worker wrote before it exited is still on its way.
            await asyncio.wait(readers, timeout=STREAM_GRACE_S)
            return code if isinstance(code, int) else None
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def send(self, data: bytes) -> None:
        self._process.stdin.write(data)
        await self._process.stdin.drain.aio()

    async def exec(self, *argv: str, stdin: Path | None = None) -> tuple[int, str]:
        """Run a helper command in the sandbox; its exit status and stderr."""
        process = await self._sandbox.exec.aio(*argv, text=False)
        if stdin is not None:
            with stdin.open("rb") as source:
                while chunk := await asyncio.to_thread(source.read, UPLOAD_CHUNK):
                    process.stdin.write(chunk)
                    await process.stdin.drain.aio()
        process.stdin.write_eof()
        await process.stdin.drain.aio()
        code: object = await process.wait.aio()
        error = bytes(await process.stderr.read.aio()).decode("utf-8", "replace")
        return (code if isinstance(code, int) else -1), error

    async def interrupt(self, worker_pid: int | None) -> None:
        if worker_pid is not None:
            await self.exec("kill", "-INT", str(worker_pid))

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._sandbox.terminate()
            return
        task = loop.create_task(self._terminate())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _terminate(self) -> None:
        with contextlib.suppress(Exception):  # already gone is fine
            await self._sandbox.terminate.aio()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._killed = True
            await self._terminate()

    def abandon(self) -> None:
        if not self._closed:
            self._closed = True
            self._killed = True
            with contextlib.suppress(Exception):
                self._sandbox.terminate()


class ModalSandbox(RelayedSandbox):
    """A persistent REPL in a Modal Sandbox (implements ``Sandbox``).

    ``app_name``: the Modal App the sandboxes belong to (created if missing).
    ``image``: a ``modal.Image`` or a registry tag holding ``rlm_engine``; default the
    project image (``project_image``). ``volume``: name of a Modal Volume mounted at
    ``/data`` as the workspace (created if missing). ``limits`` set the worker's rlimits
    and the sandbox's CPU and memory request; ``lifetime_s`` bounds the sandbox's life.
    Context paths are host paths: they are staged here and unpacked in the sandbox.
    """

    def __init__(
        self,
        handler: HostHandler,
        *,
        tools: Sequence[str] = (),
        app_name: str = DEFAULT_APP,
        image: Any = None,
        python_version: str = "3.11",
        volume: str | None = None,
        limits: Limits | None = None,
        lifetime_s: int = 3600,
        region: str | None = None,
        output_cap_chars: int = 1_000_000,
        kill_grace_s: float = 2.0,
        lazy_context_bytes: int = 64 * 1024 * 1024,
        start_timeout_s: float = 300.0,
        remote_root: str = REMOTE_ROOT,
        workspace_mount: str = WORKSPACE_MOUNT,
        container_python: str = "python",
        workspace: Path | None = None,
    ) -> None:
        if workspace is not None:
            raise ConfigurationError(
                "the modal backend keeps its workspace on a Modal Volume: pass volume='name'"
            )
        super().__init__(
            handler,
            tools=tools,
            limits=limits,
            output_cap_chars=output_cap_chars,
            kill_grace_s=kill_grace_s,
            lazy_context_bytes=lazy_context_bytes,
            start_timeout_s=start_timeout_s,
        )
        self._modal = load_modal()
        self._app_name = app_name
        self._image = image
        self._python_version = python_version
        self._volume = volume
        self._lifetime_s = lifetime_s
        self._region = region
        self._root = remote_root
        self._mount = workspace_mount
        self._python = container_python
        self._modal_relay: ModalRelay | None = None
        self.sandbox: Any = None
        """The ``modal.Sandbox`` once started."""

    def _image_object(self) -> Any:
        if self._image is None:
            return project_image(self._modal, self._python_version)
        if isinstance(self._image, str):
            return self._modal.Image.from_registry(self._image)
        return self._image

    def create_options(self) -> dict[str, Any]:
        """Keyword arguments of ``modal.Sandbox.create`` (besides ``app`` and ``image``)."""
        limits = self._options.limits
        volumes: dict[str, Any] = {}
        if self._volume is not None:
            volumes[self._mount] = self._modal.Volume.from_name(
                self._volume, create_if_missing=True
            )
        options: dict[str, Any] = {
            "block_network": True,
            "secrets": [],
            "volumes": volumes,
            "timeout": self._lifetime_s,
        }
        if limits.cpu_quota:
            options["cpu"] = limits.cpu_quota
        if limits.memory_mb:
            options["memory"] = limits.memory_mb
        if self._region is not None:
            options["region"] = self._region
        return options

    async def _open_relay(self) -> Relay:
        modal = self._modal
        app = await modal.App.lookup.aio(self._app_name, create_if_missing=True)
        options = self.create_options()
        sandbox = await modal.Sandbox.create.aio(
            "sleep", "infinity", app=app, image=self._image_object(), **options
        )
        self.sandbox = sandbox
        relay = ModalRelay(sandbox, None)
        try:
            command = worker_command(
                python=self._python,
                root=self._root,
                tools=self._tools,
                output_cap=self._cap,
                limits=self._options.limits,
                workspace=self._mount if self._volume is not None else None,
            )
            relay = ModalRelay(sandbox, await sandbox.exec.aio(*command, text=False))
        except BaseException:
            await relay.close()
            raise
        self.remote_isolation = "modal"
        self._modal_relay = relay
        return relay

    def _relay_or_fail(self) -> ModalRelay:
        if self._modal_relay is None:
            raise RuntimeError("the sandbox is not started; call start() first")
        return self._modal_relay

    def _remote_dir(self, index: int) -> str:
        return posixpath.join(self._root, "contexts", str(index))

    async def _stage(self, value: ContextValue, index: int) -> tuple[ContextSpec, bool]:
        relay = self._relay_or_fail()
        local = Path(tempfile.mkdtemp(prefix="rlm-modal-context-"))
        try:
            target = local / str(index)
            spec = await asyncio.to_thread(
                stage_context, value, target, lazy_over_bytes=self._lazy_bytes
            )
            archive = local / "context.tar"
            await asyncio.to_thread(_pack, target, archive)
            remote = self._remote_dir(index)
            script = 'mkdir -p "$1" && tar -x -f - -C "$1"'
            code, error = await relay.exec("/bin/sh", "-c", script, "sh", remote, stdin=archive)
            if code != 0:
                raise ContextError(f"the context could not be copied into the sandbox: {error}")
        finally:
            await asyncio.to_thread(shutil.rmtree, local, True)
        spec = rebase_spec(spec, str(target), remote)
        return spec, spec.get("kind") != "corpus" and not spec.get("lazy")

    async def _unstage(self, index: int) -> None:
        await self._relay_or_fail().exec("rm", "-rf", self._remote_dir(index))
