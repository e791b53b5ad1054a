"""The ``systemd-run --scope`` route to a kernel-enforced budget for one sandbox.

Where no delegated cgroup v2 subtree is writable (``cgroups``) but a systemd manager
answers (the user's manager for a non-root host, the system manager for root), the
worker's launcher is started as ``systemd-run --scope -p MemoryMax=... -p TasksMax=...
-- <launcher>``: systemd puts it in a transient scope unit, its own cgroup, before it
execs the launcher, so the worker and everything it starts are born inside it and the
kernel holds the whole tree to the memory budget and the process limit. The host
watchdog still runs and gives the typed stop when it sees the budget passed first.

Detection is one trial scope (``systemd-run ... -- true``) per process and ``systemd-run``
found, cached: machines without systemd pay a ``PATH`` lookup, those where it is
installed but no manager runs (containers) one failed command. A refusal, a timeout or
no ``systemd-run`` at all means no scope, with no error: the watchdog alone enforces the
budget then. Properties a manager may not know (``MemorySwapMax``, ``OOMPolicy``, older
systemd or swap accounting off) are tried first and dropped on refusal.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rlm_engine.sandbox.limits import MIB, Limits

log = logging.getLogger("rlm_engine.sandbox")

UNIT_PREFIX = "rlm-sandbox-"
TRIAL_TIMEOUT_S = 10.0
CONTROL_TIMEOUT_S = 10.0
# Tried in the trial scope and kept only if the manager takes them: no swap (a budget
# that swapping could stretch is no budget) and one OOM kill taking the whole scope,
# reported as the sandbox's memory stop (as ``memory.oom.group`` on our own cgroups).
OPTIONAL = ("MemorySwapMax=0", "OOMPolicy=kill")
# What a user manager's client needs to find it; removed again before the launcher runs.
USER_ENV = ("XDG_RUNTIME_DIR",)


@dataclass(frozen=True, slots=True)
class ScopeRoute:
    """A systemd manager that answered the trial scope, and how to reach it."""

    systemd_run: str
    user: bool
    """The user's manager (``--user``), not the system's."""
    optional: tuple[str, ...] = ()
    """The ``OPTIONAL`` properties the manager accepted."""
    env: Mapping[str, str] = field(default_factory=dict[str, str])
    """Added to the launcher's environment for ``systemd-run`` alone."""

    @property
    def systemctl(self) -> str:
        """``systemctl`` beside ``systemd-run`` (the same installation), else on PATH."""
        sibling = os.path.join(os.path.dirname(self.systemd_run), "systemctl")
        if os.access(sibling, os.X_OK):
            return sibling
        return shutil.which("systemctl") or "systemctl"

    def manager_flags(self) -> list[str]:
        return ["--user"] if self.user else []


def properties(limits: Limits, optional: Sequence[str] = OPTIONAL) -> list[str]:
    """The scope's properties for ``limits`` (none for a limit that is off)."""
    props: list[str] = []
    if limits.memory_mb:
        props.append(f"MemoryMax={limits.memory_mb * MIB}")
        props += [prop for prop in optional if prop in OPTIONAL]
    if limits.nproc:
        props.append(f"TasksMax={limits.nproc}")
    if limits.cpu_quota:
        props.append(f"CPUQuota={max(1, round(limits.cpu_quota * 100))}%")
    return props


def scope_argv(
    route: ScopeRoute, unit: str, limits: Limits, argv: Sequence[str]
) -> tuple[str, ...]:
    """``argv`` started inside a new transient scope named ``unit`` with ``limits``.

    ``--quiet``: systemd-run's own notice would land in the first cell's output. For a
    user manager the variables that found it are dropped by ``env`` inside the scope, so
    the worker's environment stays the minimal one."""
    head = [route.systemd_run, *route.manager_flags(), "--scope", "--quiet", f"--unit={unit}"]
    for prop in properties(limits, route.optional):
        head += ["-p", prop]
    inner = list(argv)
    if route.env:
        unset = [arg for name in route.env for arg in ("-u", name)]
        env = shutil.which("env", path="/usr/bin:/bin") or "/usr/bin/env"
        inner = [env, *unset, "--", *inner]
    return (*head, "--", *inner)


def user_env() -> dict[str, str]:
    """Where the user's manager listens (read when a sandbox is planned, not at import)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return {"XDG_RUNTIME_DIR": runtime}


def _trial(route: ScopeRoute, optional: Sequence[str]) -> str | None:
    """None if a trial scope with these properties ran, else why not."""
    limits = Limits(memory_mb=64, nproc=16)
    unit = f"{UNIT_PREFIX}probe-{os.getpid()}-{os.urandom(4).hex()}"
    true = shutil.which("true", path="/usr/bin:/bin") or "/bin/true"
    argv = [
        route.systemd_run,
        *route.manager_flags(),
        "--scope",
        "--quiet",
        "--collect",
        f"--unit={unit}",
    ]
    for prop in properties(limits, optional):
        argv += ["-p", prop]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **route.env}
    try:
        done = subprocess.run(
            [*argv, "--", true],
            capture_output=True,
            timeout=TRIAL_TIMEOUT_S,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return done.stderr.decode("utf-8", "replace").strip()[-300:] or f"exit {done.returncode}"


@functools.cache
def _detect(systemd_run: str, user: bool, env: tuple[tuple[str, str], ...]) -> ScopeRoute | None:
    route = ScopeRoute(systemd_run, user, (), dict(env))
    failure = _trial(route, OPTIONAL)
    if failure is None:
        return ScopeRoute(systemd_run, user, OPTIONAL, dict(env))
    failure = _trial(route, ())
    if failure is None:
        return route
    log.info("systemd-run --scope is unavailable (%s); the watchdog enforces the budget", failure)
    return None


def detect() -> ScopeRoute | None:
    """The route to use here, or None (cached per ``systemd-run`` and manager)."""
    systemd_run = shutil.which("systemd-run")
    if systemd_run is None:
        return None
    user = os.geteuid() != 0
    env = user_env() if user else {}
    return _detect(systemd_run, user, tuple(sorted(env.items())))


def clear_cache() -> None:
    """Forget what ``detect`` found (a manager started or stopped since)."""
    _detect.cache_clear()


def wanted(limits: Limits) -> bool:
    """Whether a scope would bound anything (memory or processes)."""
    return bool(limits.memory_mb or limits.nproc)


class SystemdScope:
    """One sandbox's scope unit: the ``cgroup`` of a ``PreparedWorker`` on this route."""

    def __init__(self, route: ScopeRoute, unit: str) -> None:
        self.route = route
        self.unit = unit if unit.endswith(".scope") else f"{unit}.scope"

    def _systemctl(self, *args: str) -> str | None:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **self.route.env}
        command = [self.route.systemctl, *self.route.manager_flags(), *args]
        try:
            done = subprocess.run(
                command, capture_output=True, timeout=CONTROL_TIMEOUT_S, env=env, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer ended the scope (its result is ``oom-kill``)."""
        shown = self._systemctl("show", "--property=Result", "--value", self.unit)
        return shown is not None and shown.strip() == "oom-kill"

    def remove(self) -> None:
        """Kill whatever is left in the scope and forget a failed one (best effort: a
        scope whose processes have all exited is gone already)."""
        self._systemctl("kill", "--signal=SIGKILL", self.unit)
        self._systemctl("reset-failed", self.unit)
