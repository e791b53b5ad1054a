"""The Docker backend: its command line, and the real protocol over a fake ``docker``.

No Docker engine exists on our machines. The fake ``docker`` below runs the worker
locally with the exact in-container command (the stdio shim), so the protocol path is
real; the container flags are checked as text.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sandbox_fakes import FakeHost

from rlm_engine.sandbox.docker_backend import DockerSandbox, docker_run_argv, dockerfile
from rlm_engine.sandbox.factory import sandbox_factory
from rlm_engine.sandbox.limits import Limits

FAKE_DOCKER = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
with open(os.environ.get("FAKE_DOCKER_LOG", "/dev/null"), "a") as log:
    log.write(json.dumps(args) + "\n")
if args[0] != "run":
    sys.exit(0)
image_at = args.index("rlm-test-image")
options, command = args[:image_at], args[image_at + 1:]
workdir = options[options.index("--workdir") + 1]
env = dict(item.split("=", 1) for item in options[1:] if "=" in item and item.isprintable()
           and options[options.index(item) - 1] == "--env")
os.chdir(workdir)
os.execve(command[0], command, env)
"""


def test_docker_command_confines_the_container(tmp_path: Path) -> None:
    limits = Limits(memory_mb=512, nproc=32, disk_mb=100, cpu_quota=1.5)
    argv = docker_run_argv(
        docker="docker",
        image="img",
        name="box1",
        workdir=tmp_path,
        limits=limits,
        worker_args=["--tools", "a"],
        workspace=tmp_path / "ws",
    )
    text = " ".join(argv)
    for flag in (
        "--network none",
        "--read-only",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        "--user 65534:65534",
        "--memory 512m",
        "--memory-swap 512m",
        "--pids-limit 32",
        "--cpus 1.5",
        "--ulimit core=0:0",
        f"type=bind,source={tmp_path}/contexts,target={tmp_path}/contexts,readonly",
        f"type=bind,source={tmp_path / 'ws'},target=/data",
        "/tmp:rw,nosuid,nodev,mode=1777,size=100m",
    ):
        assert flag in text, flag
    assert "OPENAI" not in text and "--privileged" not in text
    assert argv[argv.index("img") + 1 :][:2] == ["/bin/sh", "-c"]
    assert "rlm_engine" in dockerfile() and "USER 65534" in dockerfile()


async def test_protocol_runs_over_the_docker_client_stdio(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / "docker"
    fake.write_text(FAKE_DOCKER.replace("/usr/bin/env python3", sys.executable, 1))
    fake.chmod(0o755)
    log = tmp_path / "docker.log"
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    host = FakeHost()
    factory = sandbox_factory(
        "docker",
        image="rlm-test-image",
        docker=str(fake),
        container_python=sys.executable,
        workdir_parent=tmp_path,
    )
    box = factory(host, ("lookup",))
    assert isinstance(box, DockerSandbox)
    await box.start()
    try:
        await box.load_context("over stdio")
        result = await box.execute(
            "import os\nos.write(1, b'raw\\n')\nprint(context, llm_query('q'), lookup()['tool'])",
            timeout_s=10,
        )
        assert result.status == "ok", result
        assert result.output == "over stdio answer to q lookup\nraw\n"  # raw fd output last
        timeout = await box.execute("import time\ntime.sleep(30)", timeout_s=0.3)
        assert timeout.status == "timeout"
        assert (await box.execute("print(1)", timeout_s=10)).output == "1\n"
    finally:
        await box.close()
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [call[0] for call in calls] == ["run", "rm"], calls
    assert calls[-1] == ["rm", "--force", box.container_name]
