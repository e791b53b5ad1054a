"""Property-based requests over the real server's OpenAPI schema find no 5xx.

schemathesis generates requests for every operation of `/openapi.json`, valid ones and
invalid ones (a bounded number of each per operation, so the whole run stays short), and
sends them to a live `rlm serve` on a fresh SQLite store; every answer is checked with
`not_a_server_error`."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from server_support import Launch, StartSimThread, server_env

from rlm_engine.sim import CallablePolicy

EXAMPLES = 20  # per operation: the whole run stays well under a minute


def final_at_once(messages: list[dict[str, Any]]) -> str:
    return "```repl\nFINAL('done')\n```"


def test_no_generated_request_gets_a_server_error(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> None:
    sim = sim_thread(None, CallablePolicy(final_at_once))
    env = server_env(tmp_path / "home", sim.url, RLM_MAX_CONCURRENT_RUNS="2")
    server = launch(env)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    failures: dict[str, str] = {}
    tried: dict[str, int] = {}

    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            tried[case.operation.label] = tried.get(case.operation.label, 0) + 1
            case.call_and_validate(checks=[not_a_server_error], timeout=60)

        try:
            check()
        except Unsatisfiable:
            # An operation without parameters or body has no invalid form to send.
            assert mode is GenerationMode.NEGATIVE and not operation.path_parameters
        except Exception as exc:  # one failing operation must not hide the others
            failures[f"{operation.label} ({mode.value})"] = (
                f"{type(exc).__name__}: {str(exc)[:1500]}"
            )
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert set(tried) == {op.label for op in operations}
