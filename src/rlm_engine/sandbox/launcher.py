"""Command lines that start the worker under each isolation level.

The worker sees its working directory at the same path as the host does (so staged
context paths need no translation), but under bubblewrap that path is a fresh,
size-capped tmpfs: the host directory only supplies ``contexts/``, bound read-only.
Nothing else of the host is writable except an optional workspace.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rlm_engine.errors import SandboxError
from rlm_engine.sandbox import seccomp
from rlm_engine.sandbox.isolation import Capabilities, IsolationLevel
from rlm_engine.sandbox.limits import MIB, Limits

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# Files under /etc the interpreter and libc need; nothing with accounts, hosts or keys.
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/alternatives",
)
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
WORKSPACE_INSIDE = "/data"


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one worker: the full argv, its environment and working directory."""

    level: IsolationLevel
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: Path
    home: str
    """The worker's working directory and ``$HOME`` as the worker sees it."""
    workspace: str | None
    uid: int | None
    notes: tuple[str, ...] = field(default=())
    stdio: bool = False
    """Protocol on the command's stdin/stdout, cell output on its stderr."""


@functools.cache
def _interpreter_probe(python: str) -> tuple[str, ...]:
    """The interpreter's prefixes and its ``python -I`` import path (asked of the
    interpreter itself, once per interpreter): ``(prefix, base_prefix, root, *sys.path)``."""
    code = (
        "import json, os, sys; print(json.dumps([sys.prefix, sys.base_prefix, "
        "os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))] + sys.path))"
    )
    try:
        done = subprocess.run(
            [python, "-I", "-c", code],
            capture_output=True,
            timeout=30,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode("utf-8", "replace")[-4000:]
            raise SandboxError(
                f"the REPL worker failed to start: the interpreter {python!r} exited with "
                f"code {done.returncode}. Its output:\n{output}"
            )
        return tuple(str(path) for path in json.loads(done.stdout))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SandboxError(f"cannot start the REPL worker {python!r}: {exc}") from None


def interpreter_paths(python: str) -> tuple[str, ...]:
    """Directories the interpreter needs readable: its prefixes and import path."""
    return _minimal_dirs(_interpreter_probe(python))


def interpreter_sys_path(python: str) -> tuple[str, ...]:
    """The import path ``python -I`` has once ``site`` has run (site-packages and what
    their ``.pth`` files add): the worker starts with ``-S`` and is given this instead."""
    return _interpreter_probe(python)[3:]


def _minimal_dirs(paths: Sequence[str]) -> tuple[str, ...]:
    """Existing directories (an existing zip counts by its folder), without ones nested
    in another, without ``/`` and without anything under ``/usr`` (bound anyway)."""
    dirs: set[str] = set()
    for raw in paths:
        if not raw:
            continue
        path = os.path.realpath(raw)
        if os.path.isfile(path):  # a zip archive on the import path
            path = os.path.dirname(path)
        if not os.path.isdir(path) or path == "/" or path == "/usr" or path.startswith("/usr/"):
            continue
        dirs.add(path)
    ordered = sorted(dirs)
    kept: list[str] = []
    for path in ordered:
        if not any(path.startswith(parent.rstrip("/") + "/") for parent in kept):
            kept.append(path)
    return tuple(kept)


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: index + 1]) for index in range(len(parts))]


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in ETC_FILES:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


def _readable_binds(dirs: Sequence[str]) -> list[str]:
    """Read-only binds of ``dirs``; their parents are created traversable (bubblewrap
    would make them 0700) but hold nothing else, so ``/root`` stays empty."""
    args: list[str] = []
    made: set[str] = set()
    for path in dirs:
        for parent in _parents(path):
            if parent not in made and not parent.startswith("/usr"):
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += ["--ro-bind", path, path]
    return args


# Every module of this package the worker may import: at its start, for a context,
# for the replay-stable clock and for Landlock.
WORKER_MODULES = (
    "rlm_engine",
    "rlm_engine.sandbox",
    "rlm_engine.sandbox.corpus",
    "rlm_engine.sandbox.landlock",
    "rlm_engine.sandbox.large_text",
    "rlm_engine.sandbox.seccomp",
    "rlm_engine.sandbox.wire",
    "rlm_engine.sandbox.worker",
    "rlm_engine.sandbox.worker_cell",
    "rlm_engine.sandbox.worker_channel",
    "rlm_engine.sandbox.worker_clock",
    "rlm_engine.sandbox.worker_context",
    "rlm_engine.sandbox.worker_entropy",
    "rlm_engine.sandbox.worker_limits",
    "rlm_engine.sandbox.worker_monotonic",
    "rlm_engine.sandbox.worker_names",
    "rlm_engine.sandbox.worker_table",
    "rlm_engine.sandbox.worker_workspace",
)


def worker_sources() -> list[Path]:
    """The source files of ``WORKER_MODULES`` in this installation."""
    package = Path(__file__).resolve().parent.parent
    sources: list[Path] = []
    for name in WORKER_MODULES:
        parts = name.split(".")[1:]
        folder = package.joinpath(*parts)
        sources.append(folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py"))
    return sources


@functools.cache
def cache_worker_bytecode() -> None:
    """Write the bytecode of the worker's modules next to them where it is missing or
    stale (once per process; blocking).

    An isolated worker reads this package through a read-only bind as another uid, so it
    can never cache bytecode itself and would compile these modules from source at every
    start (tens of milliseconds); an unisolated worker writes the same files on its own.
    Where the package is not writable (a system install ships its bytecode), nothing
    changes."""
    import compileall

    for source in worker_sources():
        with contextlib.suppress(OSError):
            compileall.compile_file(str(source), quiet=2)


WORKER_BOOT = (
    "import sys; sys.path[:] = {path!r}; {filter}"
    "from rlm_engine.sandbox.worker import main; raise SystemExit(main())"
)
# Before the worker's first import: no code the worker runs is ever unfiltered.
FILTER_BOOT = "from rlm_engine.sandbox.seccomp import install; install(); "
SECCOMP_FILE = "seccomp.bpf"


# The ``none`` level's launcher, run by the same interpreter before the worker's boot
# (stdlib only; the numbers are Linux's). The host's child K waits for the supervisor S,
# which becomes a child subreaper (PR_SET_CHILD_SUBREAPER = 36) in a process group of its
# own and forks the worker W into a third group. An orphan of the cell (a double fork,
# ``setsid``) is re-parented to S, not to the host's init, so it stays in the tree the
# watchdog counts and kills. The host's kill of K's and W's groups leaves S alive long
# enough to kill every process left below it; then it exits as W did (the same signal or
# code), and K with it. K and S hold none of the sandbox's pipes, and W starts with the
# modules it would have had without them (``ctypes`` is dropped from ``sys.modules``).
SUBREAPER_BOOT = """\
def _rlm_launcher():
    import os, signal, sys
    before = set(sys.modules)

    def leave(status):
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            if signum != signal.SIGKILL:
                signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)

    def detach():
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 65536)

    def below(root):
        found, todo = [], [root]
        while todo:
            pid = todo.pop()
            try:
                tids = os.listdir("/proc/%d/task" % pid)
            except OSError:
                continue
            for tid in tids:
                try:
                    with open("/proc/%d/task/%s/children" % (pid, tid)) as handle:
                        kids = [int(part) for part in handle.read().split()]
                except (OSError, ValueError):
                    continue
                found += kids
                todo += kids
        return found

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keeper = os.fork()
    if keeper:
        detach()
        leave(os.waitpid(keeper, 0)[1])
    os.setpgid(0, 0)
    import ctypes
    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
        os.write(2, b"the sandbox launcher cannot become a child subreaper\\n")
        os._exit(70)
    worker = os.fork()
    if worker == 0:
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for name in set(sys.modules) - before:
            del sys.modules[name]
        return
    detach()
    while True:
        pid, status = os.wait()
        if pid == worker:
            break
    me = os.getpid()
    while True:
        for pid in below(me):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.wait()
        except ChildProcessError:
            break
    leave(status)


_rlm_launcher()
del _rlm_launcher
"""


def worker_argv(
    python: str, extra: Sequence[str], *, filtered: bool = False, subreaper: bool = False
) -> list[str]:
    """The worker command itself, identical under every level.

    ``-I`` ignores the environment and the user's site directory; ``-S`` skips ``site``
    (scanning site-packages and running its ``.pth`` files costs milliseconds at every
    start): the import path it would have built is passed in, so the REPL imports exactly
    what it could before. The worker adds the builtins ``site`` would (``exit``, ``help``).
    ``filtered``: the worker puts itself under the seccomp filter first (where no
    launcher installs it). ``subreaper``: the worker runs below ``SUBREAPER_BOOT``'s
    launcher (Linux; the ``none`` level, which has no pid namespace to hold orphans).
    """
    path = list(interpreter_sys_path(python))
    # This package may be importable only through a hook a .pth file installs (some
    # editable installs): its own directory goes last, so -S cannot lose it.
    package_root = str(Path(__file__).resolve().parents[2])
    if package_root not in path:
        path.append(package_root)
    boot = WORKER_BOOT.format(path=path, filter=FILTER_BOOT if filtered else "")
    if subreaper:
        boot = SUBREAPER_BOOT + boot
    return [python, "-I", "-S", "-c", boot, *extra]


def _setpriv(caps: Capabilities, uid: int) -> list[str]:
    assert caps.setpriv is not None
    return [
        caps.setpriv,
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def bubblewrap_launch(
    caps: Capabilities,
    *,
    python: str,
    worker_args: Sequence[str],
    workdir: Path,
    limits: Limits,
    workspace: Path | None,
    uid: int | None,
    env: dict[str, str],
) -> Launch:
    """bubblewrap: see the module docstring of ``isolation`` for what it confines."""
    assert caps.bwrap is not None
    home = str(workdir)
    tmpfs_size = str(limits.disk_mb * MIB) if limits.disk_mb else None
    args = [caps.bwrap, "--seccomp", "9", "--die-with-parent", "--new-session", "--clearenv"]
    args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--hostname", "sandbox"]
    if caps.is_root:
        # A user namespace made by root maps the sandbox user onto real root, where
        # RLIMIT_NPROC does not apply; a real unprivileged uid (setpriv, below) is
        # stronger. setpriv needs these three capabilities and drops them for good.
        args += ["--cap-drop", "ALL"]
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        args += ["--cap-add", "CAP_SETPCAP"]
    else:
        args += ["--unshare-user", "--cap-drop", "ALL"]
        args += ["--disable-userns"] if caps.bwrap_disables_userns else []
    args += _system_binds()
    args += ["--proc", "/proc", "--dev", "/dev"]
    size = ["--size", tmpfs_size] if tmpfs_size else []
    args += ["--perms", "1777", *size, "--tmpfs", "/tmp"]
    # bubblewrap's /dev/shm is root's: the dedicated uid needs it for semaphores
    # (multiprocessing's locks, queues and pools).
    args += ["--perms", "1777", *size, "--tmpfs", "/dev/shm"]
    # After /tmp, so an interpreter that lives under /tmp is not hidden by the tmpfs.
    args += _readable_binds(interpreter_paths(python))
    for parent in _parents(home):
        args += ["--perms", "0755", "--dir", parent]
    args += ["--perms", "1777", *size, "--tmpfs", home]
    contexts = str(workdir / "contexts")
    args += ["--ro-bind", contexts, contexts]
    inside_ws = None
    if workspace is not None:
        inside_ws = WORKSPACE_INSIDE
        args += ["--bind", str(workspace), inside_ws]
    args += ["--chdir", home]
    for key, value in env.items():
        args += ["--setenv", key, value]
    if caps.is_root:
        if uid is None:
            raise SandboxError("a uid is needed to run the worker as non-root")
        args += _setpriv(caps, uid)
    argv = [*_seccomp_fd(workdir), *args, *worker_argv(python, worker_args)]
    outer_env = {"PATH": SANDBOX_PATH}  # bwrap itself: nothing of the host's environment
    return Launch("bubblewrap", tuple(argv), outer_env, workdir, home, inside_ws, uid)


def _seccomp_fd(workdir: Path) -> list[str]:
    """A shell that opens the filter on a free descriptor and becomes bubblewrap, which
    reads it and closes it. The protocol pipes keep the numbers the host gave them, so
    the shell takes the highest single-digit descriptor they do not use and puts it in
    place of the ``9`` after ``--seccomp``. The file stays in the host's working
    directory, hidden from the worker by its tmpfs."""
    path = workdir / SECCOMP_FILE
    path.write_bytes(_filter_program())
    return ["/bin/sh", "-c", _OPEN_FILTER, str(path)]


# $0: the filter's file; $1 bwrap, $2 --seccomp, $3 the placeholder 9, then the rest.
_OPEN_FILTER = (
    "for n in 9 8 7 6 5 4 3; do [ -e /proc/self/fd/$n ] || break; done; "
    '[ -e /proc/self/fd/$n ] && { echo "no free descriptor for the seccomp filter" >&2; '
    "exit 1; }; "
    r'eval "exec $n<\"\$0\"" && b=$1 && shift 3 && exec "$b" --seccomp "$n" "$@"'
)


def _filter_program() -> bytes:
    try:
        return seccomp.program()
    except seccomp.SeccompUnavailable as exc:
        raise SandboxError(str(exc)) from None


def unshare_launch(
    caps: Capabilities,
    *,
    python: str,
    worker_args: Sequence[str],
    workdir: Path,
    workspace: Path | None,
    uid: int | None,
    env: dict[str, str],
) -> Launch:
    """unshare + setpriv (+ Landlock applied by the worker itself)."""
    assert caps.unshare is not None
    args = [caps.unshare, "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    args += ["--mount", "--ipc", "--uts"]
    if not caps.is_root:
        args.insert(1, "--map-root-user")
    notes: list[str] = []
    switch = caps.is_root and uid is not None and caps.setpriv is not None
    if switch and uid is not None and not _reachable_by_others(python):
        notes.append(f"{python} is not readable by other users, so the worker keeps uid 0")
        switch = False
    if switch and uid is not None:
        args += _setpriv(caps, uid)
    elif caps.is_root and caps.setpriv is not None:
        # Cannot switch uid: still drop every capability.
        args += [caps.setpriv, "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    extra = list(worker_args)
    if caps.landlock_abi:
        writable = [str(workdir)] + ([str(workspace)] if workspace is not None else [])
        extra += ["--landlock", ",".join(writable)]
    else:
        notes.append("Landlock is unavailable: file writes are limited by the uid only")
    _filter_program()  # refuse here, not in the worker, where no list exists
    argv = [*args, *worker_argv(python, extra, filtered=True)]
    home = str(workdir)
    return Launch(
        "unshare",
        tuple(argv),
        env,
        workdir,
        home,
        None if workspace is None else str(workspace),
        uid if switch else None,
        tuple(notes),
    )


def _reachable_by_others(python: str) -> bool:
    """Whether a different unprivileged uid can execute ``python`` and read its library
    (every directory on the way must be searchable by others)."""
    for path in (python, os.path.realpath(python), sys.base_prefix, sys.prefix):
        for parent in [*_parents(path), path]:
            try:
                mode = os.stat(parent).st_mode
            except OSError:
                return False
            if not mode & 0o001 and os.path.isdir(parent):
                return False
    return True
