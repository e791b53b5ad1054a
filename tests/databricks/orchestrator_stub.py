"""Stands in for ``rlm-orchestrator`` in a deploy test's job run: it parses the command line
the bundle's task gives (with the real orchestrator parser, so a flag the entry point does
not know fails the run) and prints the JSON line the orchestrator prints with ``--json``.

The answer names the executor job id the run was given; for a prompt that lists Volume
files (a test level's), it sums the integers in them, which is level 1's answer.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from rlm_engine.jobs.args import orchestrator_parser


def main() -> int:
    files_root = Path(sys.argv[1])
    args = orchestrator_parser().parse_args(sys.argv[2:])
    paths = re.findall(r"^- (/Volumes/\S+)$", args.prompt or "", re.MULTILINE)
    if paths:
        total = 0
        for path in paths:
            text = (files_root / path.removeprefix("/Volumes/")).read_text(encoding="utf-8")
            total += sum(int(word) for word in text.split())
        answer = str(total)
    else:
        answer = f"executor job {args.executor_job_id}, session {args.session_id}"
    print("orchestrating ...")
    print(json.dumps({"answer": answer, "run_id": "run-stub", "exit_code": 0, "mode": args.mode}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
