"""The worker's half of ``limits``: apply the ``--rlimits`` argument (stdlib only, and
light: the worker imports this before anything else, so it must not pull in
``dataclasses`` and what that imports)."""

from __future__ import annotations

import resource

_RLIMITS = (
    resource.RLIMIT_AS,
    resource.RLIMIT_CPU,
    resource.RLIMIT_NPROC,
    resource.RLIMIT_NOFILE,
    resource.RLIMIT_FSIZE,
)


def apply_rlimits(arg: str) -> None:
    """Apply a ``Limits.to_arg`` string to this process (soft = hard) and disable core
    dumps. A value of 0 keeps the current limit. ``RLIMIT_CPU`` gets a soft limit one
    second below the hard one, so ``SIGXCPU`` arrives before the ``SIGKILL``."""
    values = [int(part) for part in arg.split(",")]
    if len(values) != len(_RLIMITS):
        raise ValueError(f"--rlimits needs {len(_RLIMITS)} values, got {arg!r}")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for which, value in zip(_RLIMITS, values, strict=True):
        if value <= 0:
            continue
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY and value > hard:
            value = hard  # never ask for more than the host already allows
        soft = max(1, value - 1) if which == resource.RLIMIT_CPU else value
        resource.setrlimit(which, (soft, value))
