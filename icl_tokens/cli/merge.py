"""``python -m icl_tokens merge OUT.csv SHARD...``: join the ``--shard K/N`` CSVs of one run."""

from __future__ import annotations

import argparse

__all__ = ["cmd_merge"]


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge every shard of one run into ``args.out`` (see :mod:`icl_tokens.results.shard`)."""
    from ..results.shard import merge_shards

    report = merge_shards(args.out, args.shards)
    for s in report["shards"]:
        print(f"shard {s['shard']}: {s['rows']} rows from {s['path']}")
    print(f"merged {report['rows']} rows into {report['out']} (the unsharded run's order and "
          "identity: the unsharded command resumes it as complete)")
    return 0
