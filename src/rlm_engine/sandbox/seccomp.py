"""The seccomp filter every Linux isolated worker runs under (stdlib only: the worker
imports it too).

Model-written code never needs the kernel interfaces below, and each one is a route out
of the sandbox or into kernel code far from the common path. Refused calls fail with
``EPERM`` (``ENOSYS`` for ``clone3``, so libc falls back to ``clone``, whose flags the
filter can read); the process lives on. What each refusal stops:

- ``unshare``, ``setns``, and ``clone`` with a namespace flag: a nested user namespace
  (uid 0 and every capability inside it, the usual first step of a kernel exploit) or
  an escape into another namespace. ``clone3`` passes its flags in memory the filter
  cannot read, so it is refused as absent.
- ``mount``, ``umount2``, ``pivot_root``, ``chroot``, ``fsopen``, ``fsconfig``,
  ``fsmount``, ``fspick``, ``move_mount``, ``open_tree``, ``mount_setattr``: changing
  the file system view (only possible after a user namespace; refused in depth).
- ``keyctl``, ``add_key``, ``request_key``: kernel keyrings are not namespaced, so they
  reach other users' keys and a large, often-exploited kernel surface.
- ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*``: the kernel surfaces
  behind most recent privilege escalations (``io_uring`` also runs operations that
  seccomp never sees); ``userfaultfd`` makes kernel races reliable.
- ``ptrace``, ``process_vm_readv``/``writev``, ``kcmp``: reading or steering another
  process of the sandbox (the worker itself, which holds the protocol pipes).
- ``kexec_*``, ``init_module``, ``finit_module``, ``delete_module``, ``reboot``,
  ``swapon``/``swapoff``, ``acct``, ``quotactl``/``quotactl_fd``, ``syslog``,
  ``lookup_dcookie``, ``nfsservctl``, ``uselib``, ``iopl``, ``ioperm``, ``_sysctl``:
  administration of the machine, legacy interfaces and raw hardware access.
- ``open_by_handle_at``, ``name_to_handle_at``: opening files by handle bypasses the
  mount tree (the classic container escape).

Calls made under a foreign ABI (x32 on x86_64, 32-bit compat on either) are refused as
absent: the deny list holds native numbers only, so those ABIs must not exist.
"""

from __future__ import annotations

import errno
import os
import struct

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARG0_LOW = 16  # little-endian: the low 32 bits of args[0]

# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET.
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x70000000
X32_SYSCALL_BIT = 0x40000000

_COMMON = {  # numbers shared by x86_64 and the generic table (aarch64)
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "quotactl_fd": 443,
}
_X86_64 = {
    "ptrace": 101,
    "syslog": 103,
    "uselib": 134,
    "pivot_root": 155,
    "_sysctl": 156,
    "chroot": 161,
    "acct": 163,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "nfsservctl": 180,
    "lookup_dcookie": 212,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
}
_AARCH64 = {
    "lookup_dcookie": 18,
    "umount2": 39,
    "mount": 40,
    "pivot_root": 41,
    "nfsservctl": 42,
    "chroot": 51,
    "quotactl": 60,
    "acct": 89,
    "unshare": 97,
    "kexec_load": 104,
    "init_module": 105,
    "delete_module": 106,
    "syslog": 116,
    "ptrace": 117,
    "reboot": 142,
    "add_key": 217,
    "request_key": 218,
    "keyctl": 219,
    "swapon": 224,
    "swapoff": 225,
    "perf_event_open": 241,
    "name_to_handle_at": 264,
    "open_by_handle_at": 265,
    "setns": 268,
    "process_vm_readv": 270,
    "process_vm_writev": 271,
    "kcmp": 272,
    "finit_module": 273,
    "bpf": 280,
    "userfaultfd": 282,
    "kexec_file_load": 294,
}


class Arch:
    """One architecture's audit id, its ``clone``/``clone3`` numbers and deny list."""

    def __init__(
        self, audit: int, clone: int, clone3: int, denied: dict[str, int], x32: bool
    ) -> None:
        self.audit = audit
        self.clone = clone
        self.clone3 = clone3
        self.denied = {**_COMMON, **denied}
        self.x32 = x32


ARCHES = {
    "x86_64": Arch(0xC000003E, clone=56, clone3=435, denied=_X86_64, x32=True),
    "aarch64": Arch(0xC00000B7, clone=220, clone3=435, denied=_AARCH64, x32=False),
}
MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class SeccompUnavailable(OSError):
    """This machine's architecture has no deny list, or the kernel refused the filter."""


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _ret(value: int) -> bytes:
    return _insn(BPF_RET_K, value)


def machine_arch(machine: str | None = None) -> Arch:
    """The ``Arch`` of this machine (or of ``machine``, a ``uname -m`` name)."""
    name = (machine or os.uname().machine).lower()
    arch = ARCHES.get(MACHINE_ALIASES.get(name, name))
    if arch is None:
        supported = ", ".join(ARCHES)
        raise SeccompUnavailable(
            f"no seccomp deny list for the {name!r} architecture (there is one for "
            f"{supported}); use isolation='none' to run without the filter"
        )
    return arch


def program(machine: str | None = None) -> bytes:
    """The filter as packed ``struct sock_filter`` instructions (what ``bwrap --seccomp``
    and ``SECCOMP_SET_MODE_FILTER`` take)."""
    arch = machine_arch(machine)
    eperm = _ret(RET_ERRNO | errno.EPERM)
    enosys = _ret(RET_ERRNO | errno.ENOSYS)
    out = [_insn(BPF_LD_W_ABS, OFFSET_ARCH), _insn(BPF_JEQ_K, arch.audit, jt=1), enosys]
    out.append(_insn(BPF_LD_W_ABS, OFFSET_NR))
    if arch.x32:
        out += [_insn(BPF_JGE_K, X32_SYSCALL_BIT, jf=1), enosys]
    for number in sorted(arch.denied.values()):
        out += [_insn(BPF_JEQ_K, number, jf=1), eperm]
    out += [_insn(BPF_JEQ_K, arch.clone3, jf=1), enosys]
    # Last, because it replaces the syscall number in the accumulator with the flags.
    out += [_insn(BPF_JEQ_K, arch.clone, jf=3), _insn(BPF_LD_W_ABS, OFFSET_ARG0_LOW)]
    out += [_insn(BPF_JSET_K, CLONE_NAMESPACES, jf=1), eperm, _ret(RET_ALLOW)]
    return b"".join(out)


PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


def install() -> None:
    """Put this process (and every child it will have) under the filter, with no new
    privileges; irreversible. Call it while the process has a single thread: the filter
    covers the calling thread only. ``SeccompUnavailable`` if the kernel refuses."""
    import ctypes

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    code = program()
    libc = ctypes.CDLL(None, use_errno=True)
    prog = SockFprog(len(code) // 8, code)
    # Full-width arguments: the kernel refuses the call if unused ones are not zero.
    zero = ctypes.c_ulong(0)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), zero, zero, zero) != 0:
        failure = ctypes.get_errno()
        raise SeccompUnavailable(failure, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(failure)}")
    mode = ctypes.c_ulong(SECCOMP_MODE_FILTER)
    if libc.prctl(PR_SET_SECCOMP, mode, ctypes.byref(prog), zero, zero) != 0:
        failure = ctypes.get_errno()
        raise SeccompUnavailable(
            failure, f"the kernel refused the seccomp filter: {os.strerror(failure)}"
        )
