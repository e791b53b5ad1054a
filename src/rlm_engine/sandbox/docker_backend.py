"""``DockerSandbox``: the same worker program in a Docker container (``docker`` extra for
image builds; running needs only the ``docker`` command line).

The container has no network, a read-only root, no capabilities, no new privileges,
memory, pid and file limits, an unprivileged user, and size-capped tmpfs for its working
directory and ``/tmp``. The host's staged contexts are bound read-only at the same path,
so context specs need no translation. The protocol runs over the client's stdin and
stdout; everything the cell prints goes to stderr, so printing cannot forge a frame.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlm_engine.sandbox.base import HostHandler
from rlm_engine.sandbox.context import StagingPolicy
from rlm_engine.sandbox.launcher import Launch
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.local import LocalSandbox
from rlm_engine.sandbox.local_launch import PreparedWorker, minimal_env

DEFAULT_IMAGE = "rlm-engine-sandbox:latest"
CONTAINER_USER = "65534:65534"
# Inside the container: the protocol moves from stdin/stdout to fds 3/4 and the cell's
# stdout joins stderr.
STDIO_SHIM = 'exec "$0" -I -m rlm_engine.sandbox.worker --fds 3,4 "$@" 3<&0 4>&1 0</dev/null 1>&2'


def dockerfile(python_version: str = "3.11") -> str:
    """A Dockerfile for the worker image: the stdlib-only worker needs nothing but the
    ``rlm_engine`` package. Build it with ``build_context_files`` next to it."""
    return (
        f"FROM python:{python_version}-slim\n"
        f"COPY rlm_engine /usr/local/lib/python{python_version}/site-packages/rlm_engine\n"
        "RUN python -I -c 'import rlm_engine.sandbox.worker'\n"
        "USER 65534:65534\n"
    )


def build_context_files() -> dict[str, Path]:
    """Image build inputs: ``rlm_engine`` -> the installed package directory."""
    import rlm_engine

    return {"rlm_engine": Path(rlm_engine.__file__).parent}


def docker_run_argv(
    *,
    docker: str,
    image: str,
    name: str,
    workdir: Path,
    limits: Limits,
    worker_args: Sequence[str],
    workspace: Path | None = None,
    python: str = "python",
) -> list[str]:
    """The ``docker run`` command line for one worker."""
    home = str(workdir)
    size = f",size={limits.disk_mb}m" if limits.disk_mb else ""
    argv = [docker, "run", "--rm", "-i", "--name", name]
    argv += ["--network", "none", "--read-only", "--cap-drop", "ALL"]
    argv += ["--security-opt", "no-new-privileges", "--user", CONTAINER_USER]
    argv += ["--ipc", "none"]
    if limits.memory_mb:
        argv += ["--memory", f"{limits.memory_mb}m", "--memory-swap", f"{limits.memory_mb}m"]
    if limits.nproc:
        argv += ["--pids-limit", str(limits.nproc)]
    if limits.cpu_quota:
        argv += ["--cpus", f"{limits.cpu_quota:g}"]
    if limits.nofile:
        argv += ["--ulimit", f"nofile={limits.nofile}:{limits.nofile}"]
    if limits.fsize_mb:
        blocks = limits.fsize_mb * 1024 * 1024
        argv += ["--ulimit", f"fsize={blocks}:{blocks}"]
    argv += ["--ulimit", "core=0:0"]
    if limits.cpu_s:
        argv += ["--ulimit", f"cpu={limits.cpu_s}:{limits.cpu_s}"]
    argv += ["--tmpfs", f"/tmp:rw,nosuid,nodev,mode=1777{size}"]
    argv += ["--tmpfs", f"{home}:rw,nosuid,nodev,mode=1777{size}"]
    contexts = str(workdir / "contexts")
    argv += ["--mount", f"type=bind,source={contexts},target={contexts},readonly"]
    if workspace is not None:
        argv += ["--mount", f"type=bind,source={workspace},target=/data"]
    argv += ["--workdir", home]
    for key, value in minimal_env(home, "/tmp").items():
        argv += ["--env", f"{key}={value}"]
    argv += [image, "/bin/sh", "-c", STDIO_SHIM, python, *worker_args]
    return argv


class DockerSandbox(LocalSandbox):
    """A ``LocalSandbox`` whose worker runs in a container (same protocol, same API)."""

    def __init__(
        self,
        handler: HostHandler,
        *,
        tools: Sequence[str] = (),
        image: str = DEFAULT_IMAGE,
        docker: str = "docker",
        container_python: str = "python",
        limits: Limits | None = None,
        workspace: Path | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            handler, tools=tools, limits=limits, workspace=workspace, isolation="none", **options
        )
        self._image = image
        self._docker = docker
        self._container_python = container_python
        self.container_name = f"rlm-sandbox-{uuid.uuid4().hex[:12]}"

    def _prepare(self) -> PreparedWorker:
        import tempfile

        workdir = Path(tempfile.mkdtemp(prefix="rlm-sandbox-", dir=self._workdir_parent))
        (workdir / "contexts").mkdir(mode=0o755)
        options = self._options
        args = ["--output-cap", str(options.output_cap), "--tools", ",".join(options.tools)]
        args += ["--hard-output-cap", str(options.limits.hard_output_chars)]
        if options.workspace is not None:
            options.workspace.mkdir(parents=True, exist_ok=True)
            args += ["--workspace", "/data"]
        argv = docker_run_argv(
            docker=self._docker,
            image=self._image,
            name=self.container_name,
            workdir=workdir,
            limits=options.limits,
            worker_args=args,
            workspace=options.workspace,
            python=self._container_python,
        )
        # The client (host side) needs DOCKER_HOST, DOCKER_CONFIG, ...; the container
        # gets only the --env entries above, never this environment.
        env = dict(os.environ)
        launch = Launch("none", tuple(argv), env, workdir, str(workdir), None, None, stdio=True)
        prepared = PreparedWorker("none", launch, workdir, StagingPolicy(link=True, shared=True))
        prepared.on_release.append(self._remove_container)
        return prepared

    def _remove_container(self) -> None:
        # Killing the client does not always stop the container: remove it by name.
        subprocess.run(
            [self._docker, "rm", "--force", self.container_name],
            capture_output=True,
            timeout=30,
            check=False,
        )

    @property
    def isolation_level(self) -> Any:
        return "docker"


if __name__ == "__main__":  # print the Dockerfile: python -m rlm_engine.sandbox.docker_backend
    sys.stdout.write(dockerfile())
