"""``rlm databricks init``: write the bundle into a project and say what comes next."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import cast

from rlm_engine.deploy.bundle import BundleOptions, Compute, write_bundle


def options_from_args(args: argparse.Namespace) -> BundleOptions:
    return BundleOptions(
        catalog=args.catalog,
        schema=args.schema,
        model=args.model,
        secret_scope=args.secret_scope,
        compute=cast(Compute, args.compute),
        cluster_id=args.cluster_id,
        node_type_id=args.node_type,
        spark_version=args.spark_version,
        host=args.host,
        bundle_name=args.name,
        ingest_source=args.ingest_source,
    ).validated()


def run_init(args: argparse.Namespace) -> int:
    """The handler of ``rlm databricks init``."""
    options = options_from_args(args)
    directory = Path(args.dir).expanduser()
    written = write_bundle(directory, options, force=bool(args.force))
    if args.json:
        data = {"dir": str(directory), "files": [str(p) for p in written]}
        print(json.dumps(data, ensure_ascii=False))
        return 0
    for path in written:
        print(f"wrote {path}")
    print(
        f"next: rlm databricks deploy --dir {directory}   (builds the wheel, deploys, wires "
        "the jobs)\n      rlm databricks check         (says what the workspace still lacks)"
    )
    return 0
