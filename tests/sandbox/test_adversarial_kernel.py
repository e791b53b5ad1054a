"""Hostile cells against the kernel's attack surface, from inside the isolated sandbox
(bubblewrap in CI: never skipped there) and the ``unshare`` fallback.

Every refused call must fail with ``EPERM`` (``ENOSYS`` for ``clone3``) without
reaching the kernel code behind it, and the REPL must live on.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sandbox_fakes import FakeHost

from rlm_engine.sandbox.isolation import probe
from rlm_engine.sandbox.launcher import unshare_launch
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.local import LocalSandbox

LIMITS = Limits(memory_mb=1024, cpu_s=60, nproc=48, disk_mb=64, fsize_mb=32)

pytestmark = pytest.mark.skipif(
    probe().bwrap is None,
    reason="bubblewrap is not usable on this machine; CI installs it (.ci/run) so this "
    "suite runs there: " + "; ".join(probe().problems),
)

# A cell prelude: ``attempt(name, *args)`` makes the raw system call and prints how it
# ended. Numbers are the kernel's, per architecture, so no libc wrapper can hide a call.
PRELUDE = """
import ctypes, errno, os
NUMBERS = {
    "x86_64": dict(clone=56, clone3=435, unshare=272, setns=308, mount=165, umount2=166,
                   keyctl=250, add_key=248, request_key=249, bpf=321, ptrace=101,
                   perf_event_open=298, userfaultfd=323, io_uring_setup=425, fsopen=430,
                   open_tree=428, pivot_root=155, name_to_handle_at=303),
    "aarch64": dict(clone=220, clone3=435, unshare=97, setns=268, mount=40, umount2=39,
                    keyctl=219, add_key=217, request_key=218, bpf=280, ptrace=117,
                    perf_event_open=241, userfaultfd=282, io_uring_setup=425, fsopen=430,
                    open_tree=428, pivot_root=41, name_to_handle_at=264),
}[os.uname().machine]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def attempt(name, *args):
    ctypes.set_errno(0)
    result = libc.syscall(NUMBERS[name], *[ctypes.c_long(a) if isinstance(a, int) else a
                                          for a in args])
    if result == 0 and name == "clone":
        os._exit(0)  # a child that must never have been born
    code = errno.errorcode.get(ctypes.get_errno(), "?") if result == -1 else "succeeded"
    print(name, code)
"""
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
SIGCHLD = 17
WORKER_START = "from rlm_engine.sandbox.worker import main; raise SystemExit(main())"


@pytest.fixture
async def box(host: FakeHost, tmp_path: Path) -> AsyncIterator[LocalSandbox]:
    sandbox = LocalSandbox(host, workdir_parent=tmp_path, isolation="strict", limits=LIMITS)
    await sandbox.start()
    assert sandbox.isolation_level == "bubblewrap"
    try:
        yield sandbox
    finally:
        await sandbox.close()


async def run(box: LocalSandbox, code: str) -> str:
    result = await box.execute(PRELUDE + textwrap.dedent(code), timeout_s=30)
    assert result.status == "ok", result
    return result.output


async def still_works(box: LocalSandbox) -> None:
    assert box.alive
    assert (await box.execute("print(6 * 7)", timeout_s=10)).output == "42\n"


async def test_the_worker_runs_filtered_without_new_privileges(box: LocalSandbox) -> None:
    out = await run(
        box,
        """
        lines = open("/proc/self/status").read().splitlines()
        status = dict(line.split(":\\t", 1) for line in lines)
        print(status["Seccomp"].strip(), status["NoNewPrivs"].strip())
        links = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # the descriptor listdir itself had open
                pass
        print(os.path.exists("seccomp.bpf"), any("seccomp" in link for link in links))
        """,
    )
    # Mode 2 is a filter; the file bubblewrap read it from stays on the host, and no
    # descriptor of it is left open.
    assert out.splitlines()[0] == "2 1"
    assert out.splitlines()[1] == "False False"


async def test_no_nested_user_namespace_in_any_form(box: LocalSandbox) -> None:
    out = await run(
        box,
        f"""
        attempt("unshare", {CLONE_NEWUSER})
        attempt("unshare", {CLONE_NEWUSER | CLONE_NEWNS})
        attempt("unshare", {CLONE_NEWNET})
        attempt("clone", {CLONE_NEWUSER | SIGCHLD}, 0, 0, 0, 0)
        attempt("clone", {CLONE_NEWNS | SIGCHLD}, 0, 0, 0, 0)
        attempt("clone3", 0, 0)
        attempt("setns", 0, 0)
        print(libc.unshare({CLONE_NEWUSER}), errno.errorcode[ctypes.get_errno()])
        import subprocess
        done = subprocess.run(["unshare", "-U", "-r", "id", "-u"], capture_output=True,
                              text=True)
        print(done.returncode != 0, "Operation not permitted" in done.stderr, repr(done.stdout))
        """,
    )
    assert out.splitlines() == [
        "unshare EPERM",
        "unshare EPERM",
        "unshare EPERM",
        "clone EPERM",
        "clone EPERM",
        "clone3 ENOSYS",
        "setns EPERM",
        "-1 EPERM",
        "True True ''",
    ]
    await still_works(box)


async def test_no_mounts_by_any_interface(box: LocalSandbox) -> None:
    out = await run(
        box,
        """
        attempt("mount", b"none", b"/tmp", b"tmpfs", 0, None)
        attempt("umount2", b"/proc", 0)
        attempt("pivot_root", b"/tmp", b"/tmp")
        attempt("fsopen", b"tmpfs", 0)
        attempt("open_tree", -100, b"/tmp", 0)
        attempt("name_to_handle_at", -100, b"/tmp", None, None, 0)
        """,
    )
    assert out.splitlines() == [
        "mount EPERM",
        "umount2 EPERM",
        "pivot_root EPERM",
        "fsopen EPERM",
        "open_tree EPERM",
        "name_to_handle_at EPERM",
    ]
    await still_works(box)


async def test_no_keyrings_bpf_tracing_or_io_uring(box: LocalSandbox) -> None:
    # Arguments the kernel itself would reject with EFAULT or EINVAL: EPERM proves the
    # filter answered before the kernel code ran.
    out = await run(
        box,
        """
        attempt("add_key", b"user", b"key", b"secret", 6, -2)
        attempt("keyctl", 0, -2, 0, 0, 0)
        attempt("request_key", b"user", b"key", None, -2)
        attempt("bpf", 0, None, 0)
        attempt("ptrace", 0, 0, 0, 0)
        attempt("perf_event_open", None, 0, -1, -1, 0)
        attempt("userfaultfd", 0)
        attempt("io_uring_setup", 1, None)
        """,
    )
    assert out.splitlines() == [
        "add_key EPERM",
        "keyctl EPERM",
        "request_key EPERM",
        "bpf EPERM",
        "ptrace EPERM",
        "perf_event_open EPERM",
        "userfaultfd EPERM",
        "io_uring_setup EPERM",
    ]
    await still_works(box)


async def test_threads_processes_and_fork_pools_still_work(box: LocalSandbox) -> None:
    out = await run(
        box,
        """
        import concurrent.futures, multiprocessing, subprocess, threading
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            print(sum(pool.map(lambda n: n * n, range(100))))
        with multiprocessing.get_context("fork").Pool(2) as pool:
            print(pool.map(abs, [-3, -4]))
        print(subprocess.run(["sh", "-c", "echo $((6 * 7))"], capture_output=True,
                             text=True).stdout.strip())
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        print(threading.active_count() >= 1)
        """,
    )
    assert out.splitlines() == ["328350", "[3, 4]", "42", "7", "True"]


def test_the_unshare_fallback_is_filtered_too(tmp_path: Path) -> None:
    """The fallback's own command line (namespaces, uid switch) with the worker replaced
    by a probe at the point where the worker would start: the filter is already on."""
    caps = probe()
    if caps.unshare is None:
        pytest.skip("unshare cannot create namespaces here")
    tmp_path.chmod(0o755)
    launch = unshare_launch(
        caps,
        python=sys.executable,
        worker_args=[],
        workdir=tmp_path,
        workspace=None,
        uid=60998 if caps.is_root else None,
        env={"PATH": "/usr/bin:/bin"},
    )
    argv = list(launch.argv)
    boot = argv[argv.index("-c") + 1]
    assert WORKER_START in boot
    probe_code = PRELUDE + textwrap.dedent(
        f"""
        attempt("unshare", {CLONE_NEWUSER})
        attempt("clone", {CLONE_NEWUSER | SIGCHLD}, 0, 0, 0, 0)
        attempt("keyctl", 0, -2, 0, 0, 0)
        print(open("/proc/self/status").read().split("Seccomp:")[1].split()[0], os.getuid())
        """
    )
    argv[argv.index("-c") + 1] = boot.replace(WORKER_START, f"exec({probe_code!r})")
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        env=launch.env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["unshare EPERM", "clone EPERM", "keyctl EPERM"]
    assert lines[3].split()[0] == "2"
    if caps.is_root:
        assert lines[3].split()[1] == str(launch.uid or 0)
