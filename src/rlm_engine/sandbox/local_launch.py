"""Everything one local worker needs before it starts: the isolation level, a uid slot,
a cgroup, the private directory and the command line; and its release afterwards."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from rlm_engine.sandbox import systemd_scope
from rlm_engine.sandbox.cgroups import SandboxCgroup, usable_root
from rlm_engine.sandbox.context import StagingPolicy
from rlm_engine.sandbox.isolation import IsolationLevel, IsolationMode, choose_level, probe
from rlm_engine.sandbox.launcher import (
    Launch,
    bubblewrap_launch,
    cache_worker_bytecode,
    unshare_launch,
    worker_argv,
)
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.systemd_scope import SystemdScope
from rlm_engine.sandbox.uid_slots import DEFAULT_ALLOCATOR, UidAllocator, UidSlot


def minimal_env(home: str, tmp: str) -> dict[str, str]:
    """The worker's whole environment: nothing of the host's (no credentials)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": home,
        "TMPDIR": tmp,
    }


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What a local sandbox asks of its worker."""

    python: str
    tools: tuple[str, ...]
    output_cap: int
    isolation: IsolationMode = "auto"
    limits: Limits = field(default_factory=Limits)
    workspace: Path | None = None
    bwrap_path: str | None = None
    allocator: UidAllocator = DEFAULT_ALLOCATOR


@dataclass
class PreparedWorker:
    """A planned worker: run ``launch``; call ``release`` after it has exited."""

    level: IsolationLevel
    launch: Launch
    workdir: Path
    staging: StagingPolicy
    slot: UidSlot | None = None
    cgroup: SandboxCgroup | SystemdScope | None = None
    on_release: list[Callable[[], None]] = field(default_factory=list[Callable[[], None]])

    def release(self) -> None:
        """Free the uid slot and the cgroup and remove the private directory."""
        for callback in self.on_release:
            callback()
        self.on_release.clear()
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self.slot is not None:
            self.slot.release()
            self.slot = None
        shutil.rmtree(self.workdir, ignore_errors=True)


def _chown_tree(root: Path, uid: int) -> None:
    """Hand a workspace to the slot's uid (a new run may get a different slot)."""
    os.lchown(root, uid, uid)
    for folder, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            os.lchown(os.path.join(folder, name), uid, uid)


def _in_cgroup(argv: tuple[str, ...], cgroup: SandboxCgroup) -> tuple[str, ...]:
    # The shell joins the cgroup and then becomes the isolation tool, so the worker is
    # born inside it (a pid added after the start would race a fork bomb).
    script = 'echo $$ > "$0" && exec "$@"'
    return ("/bin/sh", "-c", script, str(cgroup.procs_file), *argv)


def prepare_worker(options: WorkerOptions, workdir_parent: Path | None) -> PreparedWorker:
    """Choose the level (``IsolationUnavailable`` under ``strict``), take a uid slot,
    create the private directory and build the command line. Blocking (file system)."""
    caps = probe(options.bwrap_path)
    level = choose_level(options.isolation, caps)
    cache_worker_bytecode()
    limits = options.limits
    workdir = Path(tempfile.mkdtemp(prefix="rlm-sandbox-", dir=workdir_parent))
    prepared: PreparedWorker | None = None
    try:
        (workdir / "contexts").mkdir(mode=0o755)
        slot = options.allocator.acquire() if caps.is_root and level != "none" else None
        uid = None if slot is None else slot.uid
        dedicated = uid is not None
        worker_args = ["--output-cap", str(options.output_cap), "--tools", ",".join(options.tools)]
        # NPROC counts every process of a uid: only safe on a uid of the sandbox's own.
        rlimits = replace(limits, nproc=limits.nproc if dedicated else 0)
        worker_args += ["--rlimits", rlimits.to_arg()]
        worker_args += ["--hard-output-cap", str(limits.hard_output_chars)]
        staging = StagingPolicy(link=level != "unshare", shared=dedicated)
        prepared = PreparedWorker(level, _plain(options, workdir, worker_args), workdir, staging)
        prepared.slot = slot
        if options.workspace is not None:
            options.workspace.mkdir(parents=True, exist_ok=True)
            if uid is not None:
                _chown_tree(options.workspace, uid)
        if level == "bubblewrap":
            home = str(workdir)
            inside_ws = None if options.workspace is None else "/data"
            args = worker_args + (["--workspace", inside_ws] if inside_ws else [])
            launch = bubblewrap_launch(
                caps,
                python=options.python,
                worker_args=args,
                workdir=workdir,
                limits=limits,
                workspace=options.workspace,
                uid=uid,
                env=minimal_env(home, "/tmp"),
            )
        elif level == "unshare":
            (workdir / "tmp").mkdir(exist_ok=True)  # _plain made it already
            if uid is not None:
                _chown_tree(workdir, uid)
                os.chown(workdir / "contexts", 0, 0)  # staged files stay root's
            ws = options.workspace
            args = worker_args + (["--workspace", str(ws)] if ws is not None else [])
            launch = unshare_launch(
                caps,
                python=options.python,
                worker_args=args,
                workdir=workdir,
                workspace=ws,
                uid=uid,
                env=minimal_env(str(workdir), str(workdir / "tmp")),
            )
        else:
            launch = prepared.launch
        if level != "none" and caps.is_root:
            root = usable_root()
            if root is not None:
                prepared.cgroup = SandboxCgroup(root, uuid.uuid4().hex[:16], limits)
                launch = Launch(
                    launch.level,
                    _in_cgroup(launch.argv, prepared.cgroup),
                    launch.env,
                    launch.cwd,
                    launch.home,
                    launch.workspace,
                    launch.uid,
                    launch.notes,
                )
        if prepared.cgroup is None and systemd_scope.wanted(limits):
            launch = _in_scope(launch, prepared, limits)
        prepared.launch = launch
        return prepared
    except BaseException:
        if prepared is not None:
            prepared.release()
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        raise


def _in_scope(launch: Launch, prepared: PreparedWorker, limits: Limits) -> Launch:
    """``launch`` inside a transient systemd scope where a manager answers (cached), so
    the kernel bounds the whole tree; unchanged otherwise (the watchdog still does)."""
    route = systemd_scope.detect()
    if route is None:
        return launch
    unit = f"{systemd_scope.UNIT_PREFIX}{uuid.uuid4().hex[:16]}"
    prepared.cgroup = SystemdScope(route, unit)
    return replace(
        launch,
        argv=systemd_scope.scope_argv(route, unit, limits, launch.argv),
        env={**launch.env, **route.env},
        notes=(*launch.notes, f"in the systemd scope {unit}.scope"),
    )


def _plain(options: WorkerOptions, workdir: Path, worker_args: list[str]) -> Launch:
    (workdir / "tmp").mkdir(exist_ok=True)
    ws = options.workspace
    args = worker_args + (["--workspace", str(ws)] if ws is not None else [])
    env = minimal_env(str(workdir), str(workdir / "tmp"))
    # No pid namespace here: the launcher's subreaper keeps the cell's orphans in the tree.
    subreaper = sys.platform.startswith("linux")
    argv = tuple(worker_argv(options.python, args, subreaper=subreaper))
    return Launch("none", argv, env, workdir, str(workdir), None if ws is None else str(ws), None)
