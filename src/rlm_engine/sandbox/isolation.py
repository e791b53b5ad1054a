"""Which OS isolation this machine offers the local worker, and the typed refusal.

Levels, best first:

- ``bubblewrap``: private mount tree (system directories read-only, private ``/proc``,
  ``/dev`` and size-capped ``/tmp`` and working directory), new network, pid, ipc, uts
  and cgroup namespaces, a new session, an empty environment, no capabilities, dies with
  its parent; as root the worker also switches to a dedicated uid.
- ``unshare``: new network, pid, ipc, uts and mount namespaces with ``unshare``, a uid
  switch with ``setpriv`` when the interpreter is readable by that uid, and Landlock
  (writes only in the working directory, no TCP) when the kernel has it.
- ``none``: a plain process; only the rlimits, the minimal environment and the private
  directory remain.

The probe runs each tool once per process (a few milliseconds) and caches the answer.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from typing import Literal

from rlm_engine.errors import SandboxError
from rlm_engine.sandbox import landlock

IsolationMode = Literal["auto", "strict", "none"]
IsolationLevel = Literal["bubblewrap", "unshare", "none"]
ISOLATION_MODES: tuple[IsolationMode, ...] = ("auto", "strict", "none")
PROBE_TIMEOUT_S = 10.0

log = logging.getLogger("rlm_engine.sandbox")

INSTALL_HINT = (
    "Install bubblewrap (Debian/Ubuntu: `apt-get install -y bubblewrap`; Fedora: "
    "`dnf install bubblewrap`; Arch: `pacman -S bubblewrap`) and make sure user "
    "namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1, or "
    "kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04+), or run as root."
)


class IsolationUnavailable(SandboxError):
    """``isolation="strict"`` was asked for and this machine cannot isolate the worker.

    ``missing`` says what is absent; the message also says how to install it.
    """

    def __init__(self, missing: str) -> None:
        super().__init__(
            f"strict isolation was requested but is not available: {missing}. "
            f"{INSTALL_HINT} Use isolation='auto' to run with the best available "
            "isolation, or 'none' to opt out explicitly."
        )
        self.missing = missing


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the probe found. ``problems`` explains each missing level."""

    platform: str
    is_root: bool
    bwrap: str | None
    unshare: str | None
    setpriv: str | None
    landlock_abi: int
    problems: tuple[str, ...]
    bwrap_disables_userns: bool = False
    """bubblewrap has ``--disable-userns`` (0.8.0+; it needs its own user namespace)."""

    @property
    def best(self) -> IsolationLevel:
        if self.bwrap is not None:
            return "bubblewrap"
        if self.unshare is not None:
            return "unshare"
        return "none"


def _runs(argv: list[str]) -> str | None:
    """None if ``argv`` exits 0, otherwise why it did not."""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            env={"PATH": "/usr/bin:/bin"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return done.stderr.decode("utf-8", "replace").strip() or f"exit code {done.returncode}"


def _which(name: str, explicit: str | None) -> str | None:
    if explicit is not None:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    return shutil.which(name, path="/usr/bin:/bin:/usr/local/bin:/usr/sbin:/sbin")


@functools.cache
def probe(bwrap_path: str | None = None) -> Capabilities:
    """Detect the usable isolation tools (cached per ``bwrap_path``)."""
    problems: list[str] = []
    if not sys.platform.startswith("linux"):
        reason = f"OS isolation is implemented for Linux only (this is {sys.platform})"
        return Capabilities(sys.platform, False, None, None, None, 0, (reason,))
    is_root = os.geteuid() == 0
    bwrap = _which("bwrap", bwrap_path)
    if bwrap is None:
        problems.append(f"bubblewrap not found ({bwrap_path or 'bwrap on PATH'})")
    else:
        trial = [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "true"]
        if not is_root:
            trial.insert(1, "--unshare-user")
        failure = _runs(trial)
        if failure is not None:
            problems.append(f"bubblewrap cannot create namespaces here: {failure}")
            bwrap = None
    unshare = _which("unshare", None)
    setpriv = _which("setpriv", None)
    if unshare is not None:
        trial = [unshare, "--net", "--pid", "--fork", "--mount", "--ipc", "--uts"]
        if not is_root:
            trial.insert(1, "--map-root-user")
        failure = _runs([*trial, "true"])
        if failure is not None:
            problems.append(f"unshare cannot create namespaces here: {failure}")
            unshare = None
    else:
        problems.append("unshare (util-linux) not found")
    if is_root and setpriv is None:
        problems.append("setpriv (util-linux) not found: the worker cannot drop root")
    return Capabilities(
        sys.platform,
        is_root,
        bwrap,
        unshare,
        setpriv,
        landlock.abi_version(),
        tuple(problems),
        bwrap is not None and _help_mentions(bwrap, "--disable-userns"),
    )


def _help_mentions(tool: str, option: str) -> bool:
    try:
        done = subprocess.run(
            [tool, "--help"], capture_output=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option.encode() in done.stdout + done.stderr


def choose_level(mode: IsolationMode, caps: Capabilities) -> IsolationLevel:
    """The level to use for ``mode``; raises ``IsolationUnavailable`` under ``strict``
    when bubblewrap (or unshare with a uid switch) is missing, and warns loudly under
    ``auto`` when only a plain process is possible."""
    if mode not in ISOLATION_MODES:
        raise ValueError(f"isolation must be one of {ISOLATION_MODES}, not {mode!r}")
    if mode == "none":
        return "none"
    best = caps.best
    if mode == "strict":
        if best == "none":
            raise IsolationUnavailable("; ".join(caps.problems) or "no isolation tool found")
        if caps.is_root and caps.setpriv is None:
            raise IsolationUnavailable("setpriv is missing, so the worker would run as root")
        return best
    if best == "none":
        why = "; ".join(caps.problems)
        message = (
            "NO OS ISOLATION for the REPL sandbox: model-written code will run as a plain "
            f"process with this user's file system and network access ({why}). {INSTALL_HINT}"
        )
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    elif best == "unshare":
        log.warning(
            "bubblewrap is unavailable (%s); the sandbox falls back to unshare + setpriv%s",
            "; ".join(caps.problems),
            " + Landlock" if caps.landlock_abi else " without Landlock",
        )
    return best
