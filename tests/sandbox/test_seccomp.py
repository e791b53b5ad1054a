"""The seccomp program, run instruction by instruction on a classic BPF interpreter,
and the filter installed for real in a child interpreter."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlm_engine.sandbox import seccomp
from rlm_engine.sandbox.isolation import probe
from rlm_engine.sandbox.launcher import (
    SECCOMP_FILE,
    _seccomp_fd,  # pyright: ignore[reportPrivateUsage]
    bubblewrap_launch,
    unshare_launch,
)
from rlm_engine.sandbox.limits import Limits

ALLOW = seccomp.RET_ALLOW
EPERM = seccomp.RET_ERRNO | errno.EPERM
ENOSYS = seccomp.RET_ERRNO | errno.ENOSYS
CLONE_THREAD_FLAGS = 0x003D0F00  # what glibc's pthread_create passes
SIGCHLD = 17
CLONE_NEW = {
    "user": 0x10000000,
    "mount": 0x00020000,
    "pid": 0x20000000,
    "net": 0x40000000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "cgroup": 0x02000000,
}
REQUIRED = [
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "ptrace",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "io_uring_setup",
    "swapon",
    "reboot",
    "acct",
    "quotactl",
    "lookup_dcookie",
    "fsopen",
    "fsmount",
    "move_mount",
    "open_tree",
]
# Calls every Python program makes: read, write, openat, mmap, futex, wait4, execve.
EVERYDAY = {"x86_64": (0, 1, 257, 9, 202, 61, 59), "aarch64": (63, 64, 56, 222, 98, 260, 221)}


def run_bpf(code: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """Evaluate a classic BPF seccomp program on one ``struct seccomp_data``."""
    padded = (*args, *(0,) * (6 - len(args)))
    data = struct.pack("=iIQ6Q", nr, arch, 0, *padded)
    insns = [struct.unpack_from("=HBBI", code, at) for at in range(0, len(code), 8)]
    acc, pc = 0, 0
    while True:
        op, jt, jf, k = insns[pc]
        pc += 1
        if op == seccomp.BPF_LD_W_ABS:
            (acc,) = struct.unpack_from("=I", data, k)
        elif op == seccomp.BPF_RET_K:
            return k
        elif op in (seccomp.BPF_JEQ_K, seccomp.BPF_JGE_K, seccomp.BPF_JSET_K):
            taken = {
                seccomp.BPF_JEQ_K: acc == k,
                seccomp.BPF_JGE_K: acc >= k,
                seccomp.BPF_JSET_K: bool(acc & k),
            }[op]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_every_listed_call_is_refused_and_everyday_calls_pass(machine: str) -> None:
    arch = seccomp.ARCHES[machine]
    code = seccomp.program(machine)
    assert len(code) % 8 == 0 and len(code) // 8 < 4096
    assert set(REQUIRED) <= set(arch.denied)
    for name, number in arch.denied.items():
        assert run_bpf(code, number, arch.audit) == EPERM, name
    for number in EVERYDAY[machine]:
        assert run_bpf(code, number, arch.audit) == ALLOW, number
    assert run_bpf(code, arch.clone3, arch.audit) == ENOSYS


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_clone_is_refused_only_with_a_namespace_flag(machine: str) -> None:
    arch = seccomp.ARCHES[machine]
    code = seccomp.program(machine)
    assert run_bpf(code, arch.clone, arch.audit, (CLONE_THREAD_FLAGS,)) == ALLOW
    assert run_bpf(code, arch.clone, arch.audit, (SIGCHLD,)) == ALLOW
    for name, flag in CLONE_NEW.items():
        assert run_bpf(code, arch.clone, arch.audit, (flag | SIGCHLD,)) == EPERM, name
        # High bits of the 64-bit argument do not hide the flag.
        high = (1 << 40) | flag | CLONE_THREAD_FLAGS
        assert run_bpf(code, arch.clone, arch.audit, (high,)) == EPERM, name


def test_foreign_abis_are_refused_as_absent() -> None:
    x86 = seccomp.ARCHES["x86_64"]
    code = seccomp.program("x86_64")
    i386_audit = 0x40000003
    assert run_bpf(code, 1, i386_audit) == ENOSYS  # int 0x80: 32-bit numbers differ
    assert run_bpf(code, seccomp.X32_SYSCALL_BIT | 1, x86.audit) == ENOSYS
    arm = seccomp.ARCHES["aarch64"]
    assert run_bpf(seccomp.program("aarch64"), 1, x86.audit) == ENOSYS
    assert run_bpf(seccomp.program("arm64"), 63, arm.audit) == ALLOW


def test_an_architecture_without_a_list_is_a_typed_refusal() -> None:
    with pytest.raises(seccomp.SeccompUnavailable, match="riscv64.*isolation='none'"):
        seccomp.program("riscv64")


CHILD = textwrap.dedent(
    """
    import ctypes, errno, multiprocessing, os, subprocess, threading
    from rlm_engine.sandbox import seccomp
    seccomp.install()
    libc = ctypes.CDLL(None, use_errno=True)
    arch = seccomp.machine_arch()
    def code(result):
        return errno.errorcode[ctypes.get_errno()] if result == -1 else "allowed"
    print("unshare", code(libc.unshare(0x10000000)))
    print("clone", code(libc.syscall(arch.clone, 0x10000000 | 17, 0, 0, 0, 0)))
    print("clone3", code(libc.syscall(arch.clone3, 0, 0)))
    print("keyctl", code(libc.syscall(arch.denied["keyctl"], 0, 0, 0, 0, 0)))
    box = []
    worker = threading.Thread(target=lambda: box.append(1))
    worker.start(); worker.join()
    print("thread", box)
    print("subprocess", subprocess.run(["true"]).returncode)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        print("fork", pool.map(abs, [-1, -2]))
    print(open("/proc/self/status").read().split("Seccomp:")[1].split()[0])
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="seccomp is Linux-only")
def test_the_installed_filter_refuses_and_python_still_works() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == [
        "unshare EPERM",
        "clone EPERM",
        "clone3 ENOSYS",
        "keyctl EPERM",
        "thread [1]",
        "subprocess 0",
        "fork [1, 2]",
        "2",
        "",
    ]


needs_bwrap = pytest.mark.skipif(probe().bwrap is None, reason="bubblewrap is not usable here")


@needs_bwrap
def test_bubblewrap_reads_the_program_on_fd_9_before_the_worker(tmp_path: Path) -> None:
    (tmp_path / "contexts").mkdir()
    launch = bubblewrap_launch(
        probe(),
        python=sys.executable,
        worker_args=[],
        workdir=tmp_path,
        limits=Limits(),
        workspace=None,
        uid=60999,
        env={},
    )
    assert (tmp_path / SECCOMP_FILE).read_bytes() == seccomp.program()
    argv = list(launch.argv)
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3] == str(tmp_path / SECCOMP_FILE)
    assert argv[4:7] == [probe().bwrap, "--seccomp", "9"]
    assert "install()" not in argv[-1]


def test_the_filter_never_takes_a_descriptor_the_protocol_pipes_use(tmp_path: Path) -> None:
    # The host passes its pipes under their own numbers, which may be 9: the shell that
    # opens the filter must pick another one and tell bubblewrap which.
    filter_file = tmp_path / "filter file"
    filter_file.write_bytes(b"bpf")
    report = tmp_path / "report.py"
    report.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "n = int(sys.argv[2])\n"
        "print(n, os.read(n, 10).decode(), os.path.exists('/proc/self/fd/9'))\n"
    )
    report.chmod(0o755)
    shell = _seccomp_fd(tmp_path)
    shell[3] = str(filter_file)
    taken = ["/bin/sh", "-c", 'exec 9</dev/null 8</dev/null && exec "$@"', "sh"]
    done = subprocess.run(
        [*taken, *shell, str(report), "--seccomp", "9"],
        capture_output=True,
        text=True,
        check=True,
    )
    chosen, content, nine_open = done.stdout.split()
    assert chosen not in ("9", "8") and content == "bpf" and nine_open == "True"


@pytest.mark.skipif(probe().unshare is None, reason="unshare is not usable here")
def test_the_unshare_worker_installs_the_filter_before_its_first_import(tmp_path: Path) -> None:
    launch = unshare_launch(
        probe(),
        python=sys.executable,
        worker_args=[],
        workdir=tmp_path,
        workspace=None,
        uid=None,
        env={},
    )
    boot = launch.argv[launch.argv.index("-c") + 1]
    assert boot.index("seccomp import install; install()") < boot.index("sandbox.worker import")
    assert os.path.basename(launch.argv[0]) == "unshare"
