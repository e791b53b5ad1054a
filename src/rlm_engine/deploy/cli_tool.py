"""The ``databricks`` command-line tool, which deploys bundles (the SDK cannot).

Only the current CLI (the Go binary, version 0.218 or later) knows ``bundle``; the legacy
``databricks-cli`` Python package installs a command of the same name that does not, and
is told apart by its version line.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from rlm_engine.errors import ConfigurationError, RLMError

MIN_VERSION = (0, 218, 0)
INSTALL_HINT = (
    "install the Databricks CLI (0.218 or later): `brew tap databricks/tap && brew install "
    "databricks`, or `curl -fsSL https://raw.githubusercontent.com/databricks/setup-cli/main/"
    "install.sh | sh`, or `winget install Databricks.DatabricksCLI` "
    "(https://docs.databricks.com/dev-tools/cli/install.html); or deploy the bundle some "
    "other way and run `rlm databricks deploy --skip-deploy`"
)


class BundleCommandError(RLMError):
    """A ``databricks bundle`` command failed; the message holds its last lines."""


@dataclass(frozen=True, slots=True)
class DatabricksCli:
    """The CLI at ``path``, run in a bundle's directory with an optional profile."""

    path: str
    profile: str | None = None

    def run(self, args: Sequence[str], cwd: Path) -> str:
        command = [self.path, *args]
        if self.profile:
            command += ["--profile", self.profile]
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-8:])
            raise BundleCommandError(
                f"`databricks {' '.join(args)}` failed (exit status {done.returncode}): {tail}",
                hint="run the same command in the bundle's directory to see all of it; "
                "`rlm databricks check` says what the workspace lacks",
            )
        return done.stdout

    def deploy(self, bundle_dir: Path, target: str) -> None:
        self.run(["bundle", "validate", "--target", target], bundle_dir)
        self.run(["bundle", "deploy", "--target", target], bundle_dir)

    def job_ids(self, bundle_dir: Path, target: str) -> dict[str, int]:
        """Resource key -> job id, from ``bundle summary`` (what the deploy just made)."""
        out = self.run(["bundle", "summary", "--target", target, "--output", "json"], bundle_dir)
        return job_ids_from_summary(json.loads(out))


def job_ids_from_summary(summary: dict[str, Any]) -> dict[str, int]:
    resources = cast(dict[str, Any], summary.get("resources") or {})
    jobs = cast(dict[str, dict[str, Any]], resources.get("jobs") or {})
    return {key: int(job["id"]) for key, job in jobs.items() if str(job.get("id", "")).isdigit()}


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``Databricks CLI v0.230.0`` -> (0, 230, 0); None for another tool's output."""
    found = re.search(r"Databricks CLI v(\d+)\.(\d+)\.(\d+)", text)
    if found is None:
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def find_cli(profile: str | None = None) -> DatabricksCli:
    """The installed CLI, or a `ConfigurationError` that says how to install it."""
    path = shutil.which("databricks")
    if path is None:
        raise ConfigurationError(
            "the `databricks` command is not installed; it is what deploys a bundle",
            hint=INSTALL_HINT,
        )
    done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    version = parse_version(done.stdout + done.stderr)
    if version is None or version < MIN_VERSION:
        found = (done.stdout or done.stderr).strip() or "an unknown version"
        raise ConfigurationError(
            f"`{path}` is not a Databricks CLI that can deploy bundles ({found}); the legacy "
            "databricks-cli Python package cannot",
            hint=INSTALL_HINT,
        )
    return DatabricksCli(path, profile)
