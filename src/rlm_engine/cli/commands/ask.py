"""``rlm ask``: its arguments (the implementation is `rlm_engine.cli.ask`)."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from rlm_engine.cli.commands import handler
from rlm_engine.cli.commands.flags import (
    encoding_name,
    env_var_name,
    http_url,
    int_at_least,
    positive_float,
    temperature,
)

_run_ask = handler("rlm_engine.cli.ask:run_ask")


def _warm_up() -> None:
    """What the run looks up once per process, done ahead: the isolation tools, cached by
    the sandbox module (three short processes, waited for without the interpreter lock).
    A probe that fails here is made again where it is needed, and reported there."""
    try:
        from rlm_engine.sandbox.isolation import probe

        probe(None)  # as the sandbox factory calls it: the cache keys on the arguments
    except Exception:
        pass


def run_ask(args: argparse.Namespace) -> int:
    """`rlm_engine.cli.ask.run_ask`, with the isolation probe (`_warm_up`) run on a thread
    while the engine loads. The implementation joins that thread (``args.warming``)
    before it builds the RLM, so the probe never runs twice."""
    args.warming = threading.Thread(target=_warm_up, name="rlm-warm-up")
    args.warming.start()
    return _run_ask(args)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "ask",
        help="answer a question over a context",
        description="Answer a question over one or more context files or directories. "
        "Contexts are checked before the run starts: bad JSON, empty, binary and "
        "undecodable files are reported with their path and what to do.",
    )
    p.add_argument("question", help="the question to answer")
    add_run_options(p)
    p.add_argument(
        "--session",
        metavar="NAME",
        help="continue (or start) a named session: its REPL state, memory and history",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="print every step")
    p.set_defaults(handler=run_ask)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The context, model, limit and sandbox flags of a run (also the orchestrator job's)."""
    context = p.add_argument_group("context")
    context.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="PATH",
        help="file or directory; '-' reads it from stdin; repeat for several",
    )
    context.add_argument(
        "--binary",
        choices=["refuse", "bytes"],
        default="refuse",
        help="binary context files: refuse them, or load them as bytes",
    )
    context.add_argument(
        "--encoding",
        type=encoding_name("--encoding"),
        metavar="NAME",
        help="text encoding of the context files (default: UTF-8; invalid bytes are "
        "replaced, with a warning)",
    )
    models = p.add_argument_group("models")
    models.add_argument(
        "--model", help="root model, provider/model (default: RLM_MODEL or discovered)"
    )
    models.add_argument(
        "--sub-model", help="model for sub-calls (default: RLM_SUB_MODEL or --model)"
    )
    models.add_argument(
        "--fallback-model",
        action="append",
        default=[],
        metavar="M",
        help="used in order when a model fails for good (repeatable; every role)",
    )
    models.add_argument(
        "--base-url",
        type=http_url("--base-url"),
        metavar="URL",
        help="endpoint of the root model's provider (default: its *_BASE_URL variable, "
        "e.g. OPENAI_BASE_URL); used by every model of that provider",
    )
    models.add_argument(
        "--api-key-env",
        type=env_var_name("--api-key-env"),
        metavar="NAME",
        help="NAME of the environment variable holding the API key of the root model's "
        "provider (default: its own, e.g. OPENAI_API_KEY); the key is never stored",
    )
    models.add_argument(
        "--temperature",
        type=temperature("--temperature"),
        metavar="T",
        help="sampling temperature of the root model, 0 to 2 (default: the provider's)",
    )
    models.add_argument(
        "--max-output-tokens",
        type=int_at_least("--max-output-tokens", 1),
        metavar="N",
        help="longest reply of the root model, in tokens (default: the provider's)",
    )
    models.add_argument(
        "--sub-temperature",
        type=temperature("--sub-temperature"),
        metavar="T",
        help="sampling temperature of sub-calls, 0 to 2 (default: the provider's)",
    )
    models.add_argument(
        "--sub-max-output-tokens",
        type=int_at_least("--sub-max-output-tokens", 1),
        metavar="N",
        help="longest reply of a sub-call, in tokens (default: the provider's)",
    )
    limits = p.add_argument_group("limits")
    limits.add_argument(
        "--max-iterations",
        type=int_at_least("--max-iterations", 1),
        default=30,
        metavar="N",
        help="root turns before the run stops without an answer",
    )
    limits.add_argument(
        "--max-depth",
        type=int_at_least("--max-depth", 1),
        default=1,
        metavar="N",
        help="1: sub-calls are plain model calls; 2 or more: rlm_query starts child RLMs",
    )
    limits.add_argument(
        "--max-children",
        type=int_at_least("--max-children", 0),
        metavar="N",
        help="child RLMs one run may start in all; a batch that would pass it is refused "
        "whole, in the cell, before any starts (default: 1,000)",
    )
    limits.add_argument(
        "--max-concurrency",
        type=int_at_least("--max-concurrency", 1),
        default=32,
        metavar="N",
        help="sub-calls in flight at once",
    )
    limits.add_argument(
        "--max-sub-calls",
        type=int_at_least("--max-sub-calls", 0),
        metavar="N",
        help="sub-calls allowed per run; a batch larger than what is left is refused "
        "before any is sent; 0 allows none (default: 10,000)",
    )
    limits.add_argument(
        "--max-prompt-bytes",
        type=int_at_least("--max-prompt-bytes", 1024),
        metavar="N",
        help="largest sub-call prompt in UTF-8 bytes; a larger one is refused in the cell "
        "(default: 8 MiB)",
    )
    limits.add_argument(
        "--sub-context-tokens",
        type=int_at_least("--sub-context-tokens", 1),
        metavar="N",
        help="the sub-model's input window in tokens, when the price catalogue does not "
        "know it; longer prompts are refused (default: the catalogue's, else unchecked)",
    )
    limits.add_argument(
        "--max-answer-bytes",
        type=int_at_least("--max-answer-bytes", 1024),
        metavar="N",
        help="largest FINAL answer or SUBMIT fields in UTF-8 bytes; a larger one is "
        "refused and the model asked for a shorter one (default: 1 MiB)",
    )
    limits.add_argument(
        "--max-tokens",
        type=int_at_least("--max-tokens", 1),
        metavar="N",
        help="stop when this many tokens (input and output, every call) are used "
        "(default: no limit)",
    )
    limits.add_argument(
        "--budget-usd",
        type=positive_float("--budget-usd"),
        metavar="USD",
        help="stop when this much has been spent (default: no limit)",
    )
    limits.add_argument(
        "--max-seconds",
        type=positive_float("--max-seconds"),
        metavar="S",
        help="stop after this many seconds (default: no limit)",
    )
    limits.add_argument(
        "--request-timeout",
        type=positive_float("--request-timeout"),
        metavar="S",
        help="seconds a model reply may stay silent before the request is retried "
        "(default: RLM_REQUEST_TIMEOUT, else 120)",
    )
    limits.add_argument(
        "--memory-mb",
        type=int_at_least("--memory-mb", 0),
        metavar="MIB",
        help="memory budget of the REPL and every process it starts, in all; a cell over "
        "it is stopped and the REPL restarted (default: 2048; 0: none)",
    )
    limits.add_argument(
        "--cell-timeout",
        type=positive_float("--cell-timeout"),
        default=120.0,
        metavar="S",
        help="seconds one REPL cell may run",
    )
    limits.add_argument(
        "--max-output-chars",
        type=int_at_least("--max-output-chars", 200),
        default=20_000,
        metavar="N",
        help="characters of a cell's output shown to the root model",
    )
    limits.add_argument(
        "--output-mode",
        choices=["truncate", "digest"],
        default="truncate",
        help="long cell output: cut it, or have the sub-model digest it",
    )
    p.add_argument(
        "--response-cache",
        choices=["auto", "on", "off"],
        default="auto",
        help="reuse replies to identical sub-calls, kept in the store: "
        "at temperature 0 only (default), always, or never",
    )
    p.add_argument("--instructions", default="", help="house rules added to the root prompt")
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="extra plugin registered under the rlm_engine.plugins entry point (repeatable)",
    )
    p.add_argument(
        "--tool",
        action="append",
        default=[],
        choices=["databricks-sql"],
        help="a built-in tool set the REPL offers, run on this host with its credentials: "
        "databricks-sql gives execute_sql(query) on a Databricks SQL warehouse (repeatable)",
    )
    p.add_argument(
        "--no-default-plugins",
        action="store_true",
        help="run without the safety, format, lint and telemetry plugins",
    )
    p.add_argument(
        "--isolation",
        choices=["auto", "strict", "none"],
        default="auto",
        help="OS isolation of the REPL: best available (default), required, or off",
    )
