"""The ``systemd-run --scope`` route, against fake ``systemd-run`` and ``systemctl`` only.

Our machines have no systemd (cgroup v1, no manager), so a fake ``systemd-run`` on
``PATH`` records its arguments and then execs the command after ``--``, as the real one
does once the scope exists; a fake ``systemctl`` answers ``show`` with a scripted unit
result. What is checked: detection (one trial, cached, properties a manager refuses
dropped, no manager or no ``systemd-run`` means no scope and no error), the exact command
line the worker's launcher gets, that real sandboxes run through it (the worker's
environment stays minimal), and that a kernel OOM kill reported by the unit becomes the
typed memory stop. The kernel's enforcement itself is not exercised here.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_fakes import FakeHost

from rlm_engine.sandbox import systemd_scope
from rlm_engine.sandbox.isolation import IsolationMode, probe
from rlm_engine.sandbox.launcher import SUBREAPER_BOOT
from rlm_engine.sandbox.limits import MIB, Limits
from rlm_engine.sandbox.local import LocalSandbox
from rlm_engine.sandbox.systemd_scope import OPTIONAL, ScopeRoute, SystemdScope

FAKE_RUN = """#!/bin/sh
# Records its arguments, refuses as told, then runs the command after "--".
{ for arg in "$@"; do printf '%s\\0' "$arg"; done; printf '\\001\\0'; } >> "{log}/run"
if [ -e "{log}/refuse-all" ]; then echo "Failed to connect to bus" >&2; exit 1; fi
if [ -e "{log}/refuse" ]; then
    pattern=$(cat "{log}/refuse")
    case " $* " in *"$pattern"*) echo "Unknown assignment: $pattern" >&2; exit 1;; esac
fi
while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
exec "$@"
"""
FAKE_CTL = """#!/bin/sh
{ for arg in "$@"; do printf '%s\\0' "$arg"; done; printf '\\001\\0'; } >> "{log}/ctl"
if [ "$1" = "show" ] || [ "$2" = "show" ]; then
    if [ -e "{log}/result" ]; then cat "{log}/result"; else echo success; fi
fi
"""


class FakeSystemd:
    """The fakes' directory (first on ``PATH``) and what they recorded."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.log = root / "log"
        self.bin.mkdir(parents=True)
        self.log.mkdir()
        for name, text in (("systemd-run", FAKE_RUN), ("systemctl", FAKE_CTL)):
            path = self.bin / name
            path.write_text(text.replace("{log}", str(self.log)))
            path.chmod(0o755)

    @property
    def run_path(self) -> str:
        return str(self.bin / "systemd-run")

    def calls(self, tool: str) -> list[list[str]]:
        """Each recorded invocation's arguments, oldest first."""
        path = self.log / tool
        if not path.exists():
            return []
        calls: list[list[str]] = [[]]
        for part in path.read_bytes().split(b"\0")[:-1]:
            if part == b"\1":
                calls.append([])
            else:
                calls[-1].append(part.decode())
        return calls[:-1]

    def trials(self) -> list[list[str]]:
        return [args for args in self.calls("run") if "--collect" in args]

    def launches(self) -> list[list[str]]:
        return [args for args in self.calls("run") if "--collect" not in args]

    def refuse(self, pattern: str | None = None) -> None:
        if pattern is None:
            (self.log / "refuse-all").touch()
        else:
            (self.log / "refuse").write_text(pattern)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    systemd = FakeSystemd(tmp_path / "systemd")
    monkeypatch.setenv("PATH", f"{systemd.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    systemd_scope.clear_cache()
    yield systemd
    systemd_scope.clear_cache()


LEVELS: list[IsolationMode] = ["none", "strict"] if probe().bwrap is not None else ["none"]
USER = os.geteuid() != 0


def test_detection_runs_one_trial_and_is_cached(fake: FakeSystemd) -> None:
    route = systemd_scope.detect()
    assert route is not None
    assert route.systemd_run == fake.run_path and route.user == USER
    assert route.optional == OPTIONAL
    assert systemd_scope.detect() is route
    (trial,) = fake.trials()
    manager = ["--user"] if USER else []
    unit = trial[len(manager) + 3]
    assert trial[: len(manager) + 4] == [*manager, "--scope", "--quiet", "--collect", unit]
    assert unit.startswith(f"--unit=rlm-sandbox-probe-{os.getpid()}-")
    props = [trial[i + 1] for i, arg in enumerate(trial) if arg == "-p"]
    assert props == [f"MemoryMax={64 * MIB}", *OPTIONAL, "TasksMax=16", "CPUQuota=100%"]
    assert trial[-2] == "--" and os.path.basename(trial[-1]) == "true"


def test_properties_the_manager_refuses_are_dropped(fake: FakeSystemd) -> None:
    fake.refuse("MemorySwapMax")
    route = systemd_scope.detect()
    assert route is not None and route.optional == ()
    first, second = fake.trials()
    assert "MemorySwapMax=0" in first and "MemorySwapMax=0" not in second
    assert f"MemoryMax={64 * MIB}" in second and "TasksMax=16" in second


def test_no_manager_means_no_scope_and_no_error(fake: FakeSystemd) -> None:
    fake.refuse()
    assert systemd_scope.detect() is None
    assert len(fake.trials()) == 2  # all properties, then the bare ones
    assert systemd_scope.detect() is None and len(fake.trials()) == 2  # cached


def test_without_systemd_run_nothing_is_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    systemd_scope.clear_cache()
    assert systemd_scope.detect() is None


async def test_a_refusing_manager_leaves_the_sandbox_to_the_watchdog(
    fake: FakeSystemd, host: FakeHost, tmp_path: Path
) -> None:
    fake.refuse()
    limits = Limits(memory_mb=128, address_space_mb=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with LocalSandbox(
            host, isolation="none", limits=limits, workdir_parent=tmp_path
        ) as box:
            ok = await box.execute("print('plain')", timeout_s=10)
            big = await box.execute("block = bytearray(400 * 1024 * 1024)\n" + WAIT, timeout_s=30)
    assert ok.output == "plain\n"
    assert not fake.launches()
    assert big.status == "killed"
    assert big.error is not None and big.error.startswith("MemoryLimitExceeded")


WAIT = "import time\nfor _ in range(300):\n    time.sleep(0.1)"


@pytest.mark.parametrize("isolation", LEVELS)
async def test_the_launcher_starts_in_a_scope_with_the_exact_command_line(
    fake: FakeSystemd, host: FakeHost, tmp_path: Path, isolation: IsolationMode
) -> None:
    limits = Limits(memory_mb=256, nproc=32, address_space_mb=1024)
    async with LocalSandbox(
        host, isolation=isolation, limits=limits, workdir_parent=tmp_path
    ) as box:
        env = await box.execute("import os\nprint(sorted(os.environ))", timeout_s=10)
        big = await box.execute("block = bytearray(400 * 1024 * 1024)\n" + WAIT, timeout_s=30)
    (argv,) = fake.launches()
    manager = ["--user"] if USER else []
    split = argv.index("--")
    head, command = argv[:split], argv[split + 1 :]
    unit = head[len(manager) + 2]
    assert unit.startswith("--unit=rlm-sandbox-") and len(unit) == len("--unit=rlm-sandbox-") + 16
    assert head == [
        *manager,
        "--scope",
        "--quiet",
        unit,
        "-p",
        f"MemoryMax={256 * MIB}",
        "-p",
        "MemorySwapMax=0",
        "-p",
        "OOMPolicy=kill",
        "-p",
        "TasksMax=32",
        "-p",
        "CPUQuota=100%",
    ]
    if USER:  # the user manager's address is dropped again inside the scope
        assert command[:4] == [command[0], "-u", "XDG_RUNTIME_DIR", "--"]
        command = command[4:]
    if isolation == "none":
        assert command[:4] == [sys.executable, "-I", "-S", "-c"]
        assert command[4].startswith(SUBREAPER_BOOT)
    else:  # bubblewrap, behind the shell that opens its seccomp filter
        assert command[:2] == ["/bin/sh", "-c"] and "bwrap" in command[4]
    assert command[-2] == "--fds"
    assert "XDG_RUNTIME_DIR" not in env.output and "PATH" in env.output
    # The watchdog still gives the typed stop inside the scope.
    assert big.status == "killed"
    assert big.error is not None and big.error.startswith("MemoryLimitExceeded")
    # Released: whatever was left is killed and a failed unit forgotten.
    verbs = [args[len(manager)] for args in fake.calls("ctl")]
    assert verbs[-2:] == ["kill", "reset-failed"]
    assert fake.calls("ctl")[-1][-1] == unit.removeprefix("--unit=") + ".scope"


async def test_an_oom_kill_in_the_scope_is_a_memory_stop(
    fake: FakeSystemd, host: FakeHost, tmp_path: Path
) -> None:
    """The kernel kills the worker at MemoryMax before the watchdog samples: the unit's
    result says ``oom-kill`` and the cell gets the typed memory stop, not a bare kill."""
    (fake.log / "result").write_text("oom-kill\n")
    limits = Limits(memory_mb=256)
    async with LocalSandbox(host, isolation="none", limits=limits, workdir_parent=tmp_path) as box:
        # What the OOM killer does to the tree, as seen from the host: SIGKILL.
        result = await box.execute("import os, signal\nos.kill(os.getpid(), 9)", timeout_s=10)
    assert result.status == "killed"
    assert result.error is not None
    assert result.error.startswith("MemoryLimitExceeded: the cell used more than 256 MiB")
    shows = [args for args in fake.calls("ctl") if "show" in args]
    assert shows and shows[0][-3:] == ["--property=Result", "--value", shows[0][-1]]
    assert shows[0][-1].startswith("rlm-sandbox-") and shows[0][-1].endswith(".scope")


def test_the_user_managers_command_line() -> None:
    route = ScopeRoute("/usr/bin/systemd-run", True, (), {"XDG_RUNTIME_DIR": "/run/user/1000"})
    argv = systemd_scope.scope_argv(route, "rlm-sandbox-x", Limits(nproc=8, memory_mb=0), ["w"])
    assert argv[:5] == (
        "/usr/bin/systemd-run",
        "--user",
        "--scope",
        "--quiet",
        "--unit=rlm-sandbox-x",
    )
    assert argv[5:] == (
        "-p",
        "TasksMax=8",
        "-p",
        "CPUQuota=100%",
        "--",
        argv[-5],
        "-u",
        "XDG_RUNTIME_DIR",
        "--",
        "w",
    )
    assert os.path.basename(argv[-5]) == "env"
    no_limits = Limits(memory_mb=0, nproc=0)
    assert not systemd_scope.wanted(no_limits)
    assert SystemdScope(route, "rlm-sandbox-x").unit == "rlm-sandbox-x.scope"
