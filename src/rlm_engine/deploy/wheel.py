"""The wheel the jobs install: built from an ``rlm-engine`` source tree, or given.

A bundle's wheel tasks run the entry points of the wheel in the bundle's ``dist/`` folder.
`prepare_wheel` puts exactly one ``rlm_engine-*.whl`` there: a wheel given with
``--wheel``, else one built (``uv build``, else ``python -m build``) from ``--source``,
the bundle's own directory when it is an ``rlm-engine`` checkout, or the checkout this
package runs from.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

from rlm_engine.errors import ConfigurationError, RLMError

DIST = "dist"
WHEEL_PATTERN = "rlm_engine-*.whl"
PROJECT_NAME = re.compile(r'^name\s*=\s*"rlm[-_]engine"\s*$', re.MULTILINE)


class WheelBuildError(RLMError):
    """Building the wheel failed; the message holds the build's last lines."""


def is_source_tree(directory: Path) -> bool:
    """Whether ``directory`` holds the ``rlm-engine`` project (its ``pyproject.toml``)."""
    pyproject = directory / "pyproject.toml"
    try:
        return bool(PROJECT_NAME.search(pyproject.read_text(encoding="utf-8")))
    except OSError:
        return False


def find_source(bundle_dir: Path, given: Path | None) -> Path:
    """The source tree to build: ``given``, the bundle's directory, or the running checkout."""
    if given is not None:
        if not is_source_tree(given):
            raise ConfigurationError(
                f"--source {given} is not the rlm-engine project (no pyproject.toml naming it)",
                hint="give the directory of an rlm-engine checkout, or a built wheel with --wheel",
            )
        return given
    candidates = [bundle_dir, Path(__file__).resolve().parents[3]]
    for candidate in candidates:
        if is_source_tree(candidate):
            return candidate
    raise ConfigurationError(
        "no rlm-engine source tree to build the jobs' wheel from",
        hint="pass --wheel PATH (e.g. after `pip download rlm-engine --no-deps -d dist`) "
        "or --source DIR (an rlm-engine checkout)",
    )


def build_command(source: Path, out_dir: Path) -> list[str]:
    """``uv build --wheel``, else ``python -m build --wheel``, else a `ConfigurationError`."""
    uv = shutil.which("uv")
    if uv is not None:
        return [uv, "build", "--wheel", "--out-dir", str(out_dir), str(source)]
    if importlib.util.find_spec("build") is not None:
        return [sys.executable, "-m", "build", "--wheel", "--outdir", str(out_dir), str(source)]
    raise ConfigurationError(
        "neither uv nor the build package is installed, so the wheel cannot be built",
        hint="install one (`pip install uv` or `pip install build`), or pass --wheel PATH",
    )


def prepare_wheel(bundle_dir: Path, *, wheel: Path | None, source: Path | None) -> Path:
    """The one wheel in ``bundle_dir/dist`` (older ``rlm_engine`` wheels there are removed,
    so the bundle's ``*.whl`` glob names only this one)."""
    out_dir = bundle_dir / DIST
    out_dir.mkdir(parents=True, exist_ok=True)
    if wheel is not None and not wheel.is_file():
        raise ConfigurationError(f"--wheel {wheel} is not a file", hint="give a built .whl file")
    for old in out_dir.glob(WHEEL_PATTERN):
        if wheel is None or old.resolve() != wheel.resolve():
            old.unlink()
    if wheel is not None:
        target = out_dir / wheel.name
        if target.resolve() != wheel.resolve():
            shutil.copyfile(wheel, target)
        return target
    command = build_command(find_source(bundle_dir, source), out_dir)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    built = sorted(out_dir.glob(WHEEL_PATTERN))
    if done.returncode != 0 or not built:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise WheelBuildError(
            f"building the wheel failed ({' '.join(command[:3])}): {tail or 'no wheel made'}",
            hint="run the same command yourself to see the whole error, or pass --wheel PATH",
        )
    return built[-1]
