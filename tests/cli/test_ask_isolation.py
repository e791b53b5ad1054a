"""Model-written code run through `rlm ask` is confined (the issue's acceptance, end to end)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cli_support import cli, cli_env, turn

from rlm_engine.sandbox.factory import check_isolation
from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread

CANARY = "sk-canary-7f3a9c1e"

PROBE = """
import glob, json, os, socket
r = {"uid": os.getuid(), "euid": os.geteuid()}
r["env_canary"] = CANARY in json.dumps(dict(os.environ))
leaked = []
for path in glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline"):
    try:
        if CANARY.encode() in open(path, "rb").read():
            leaked.append(path)
    except OSError:
        pass
r["proc_canary"] = leaked
try:
    r["parent_environ"] = CANARY.encode() in open(f"/proc/{os.getppid()}/environ", "rb").read()
except OSError as e:
    r["parent_environ"] = False
try:
    with open("/etc/rlm-probe", "w") as f:
        f.write("x")
    r["etc_write"] = True
except OSError:
    r["etc_write"] = False
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    r["loopback"] = True
except OSError:
    r["loopback"] = False
print("PROBE " + json.dumps(r))
"""


def test_code_from_rlm_ask_cannot_reach_secrets_loopback_or_etc(tmp_path: Path) -> None:
    assert check_isolation("auto") == "bubblewrap", "bubblewrap must be installed (see .ci/run)"

    def policy(messages: list[dict[str, Any]]) -> str:
        if turn(messages) == 0:
            port = urlparse(sim_url[0]).port
            code = PROBE.replace("CANARY", repr(CANARY)).replace("PORT", str(port))
            return f"```repl\n{code}\n```"
        return "FINAL(probed)"

    sim_url: list[str] = []
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        sim_url.append(sim.url)
        env = cli_env(tmp_path, sim.url)
        env.update(OPENAI_API_KEY=CANARY, SECRET_TOKEN=CANARY)
        # The safety plugin would block the /etc write before it runs; this test is about
        # the sandbox, which must hold without it.
        ask = ["ask", "probe", "--model", "openai/m", "--isolation", "strict", "--json"]
        proc = cli([*ask, "--no-default-plugins"], env)
        second_request = sim.requests[1].messages
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["answer"] == "probed"
    feedback = message_text(second_request[-1])
    match = re.search(r"PROBE (\{.*\})", feedback)
    assert match is not None, feedback
    probe = json.loads(match.group(1))
    assert probe["uid"] != 0 and probe["euid"] != 0
    assert probe["env_canary"] is False
    assert probe["proc_canary"] == []
    assert probe["parent_environ"] is False
    assert probe["etc_write"] is False
    assert probe["loopback"] is False
    assert not Path("/etc/rlm-probe").exists()
