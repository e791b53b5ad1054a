"""``spark`` in the REPL of a Databricks executor cell.

On a job cluster the REPL (the executor's local sandbox, a separate process) builds the
session itself, before the artifact's code: ``pyspark``'s (the cluster's own) or, failing
that, ``databricks-connect``'s. The cell may not end the cluster's session for the next
artifact, so ``spark.stop`` does nothing. Where neither is importable, or no session can be
built from what the sandbox sees, the REPL simply has no ``spark`` (the root model's
instructions say to check for it). The session is removed again before the REPL's
variables are snapshotted: it does not pickle, and each cell gets it anew.
"""

from __future__ import annotations

import importlib.util

SPARK_KEY = "spark"
"""In an artifact's metadata (as the executor prepares it): build ``spark`` first."""

PRELUDE = """\
def _rlm_spark():
    try:
        from pyspark.sql import SparkSession as _Builder
    except Exception:
        try:
            from databricks.connect import DatabricksSession as _Builder
        except Exception:
            return None
    try:
        session = _Builder.builder.getOrCreate()
    except Exception:
        return None
    try:
        session.stop = lambda *args, **kwargs: None
    except Exception:
        pass
    return session
spark = _rlm_spark()
del _rlm_spark
if spark is None:
    del spark
"""

FORGET = "globals().pop('spark', None)\n"
"""Run before the snapshot: the session is not one of the cell's variables to carry."""


def spark_importable() -> bool:
    """Whether this interpreter can import pyspark or databricks-connect."""
    for name in ("pyspark", "databricks.connect"):
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False
