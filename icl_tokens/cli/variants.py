"""``python -m icl_tokens variants``: Tables 8-10 (lexical meaning, repetition, structural cues).

    python -m icl_tokens variants --task sst2 --seeds 0,1 --n-test 50 --out results/var.csv

runs Tables 8, 9 and 10 (``--tables 8,9``, ``--numbers 1-2`` for fewer), resumably, and prints
each in the paper's layout beside the paper's numbers, with every template's accuracy and the
pattern checks of paper-spec §8 (6 and 7); ``--conditions all`` also runs every variant under
the representation-level conditions.
"""

from __future__ import annotations

import argparse
from typing import Any

from .notes import note
from .options import with_executor

__all__ = ["cmd_variants"]


def _tables(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"--tables: expected a comma list of 8, 9, 10, got {text!r}.")
    return tuple(int(p) for p in parts)


def _extension_text(df: Any, cfg: Any, metric: str) -> str:
    """Beyond the paper: accuracy of every variant template under each condition (no paper
    numbers exist), mean ± std over seeds; rows ``template|condition``."""
    from ..analysis.tables import accuracy_table, format_accuracy_table

    ext = df[df["base_condition"].isin(cfg.conditions) & ~df["condition"].str.endswith("|k=1")]
    names = [c.name for c in cfg.cells() if c.condition in cfg.conditions and not c.one_shot]
    what = "acc_gen" if metric == "correct" and cfg.scoring == "generate" else "acc_label"
    return (f"every variant under the representation-level conditions ({what}, %; our "
            "extension, no paper numbers):\n"
            + format_accuracy_table(accuracy_table(ext, metric=metric),
                                    data_note=df.attrs.get("data"), order=names))


def cmd_variants(args: argparse.Namespace) -> int:
    """Run (or resume) the variant cells of one task and print the tables."""
    from ..analysis.variants_report import format_variant_report
    from ..experiments.variants import VariantsConfig, run_variants
    from .commands import _output_path

    out = _output_path(args.out, "variants.csv")
    conditions = tuple(c for c in args.conditions.split(",") if c.strip())
    cfg = VariantsConfig(model=args.model, task=args.task, seeds=tuple(args.seeds), k=args.k,
                         n_test=args.n_test, scoring=args.scoring, engine=args.engine,
                         stopword_variant=args.stopword_variant, data_source=args.data_source,
                         batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                         tables=_tables(args.tables),
                         numbers=tuple(args.numbers) if args.numbers else (1, 2, 3, 4, 5),
                         conditions=conditions)
    df = with_executor(args, lambda ex: run_variants(
        cfg, out=out, progress=not args.no_progress, log=note, executor=ex), log=note)
    metrics = ["correct", "label_correct"] if args.scoring == "generate" else ["label_correct"]
    for metric in metrics:
        if cfg.tables:
            print(format_variant_report(df, paper_model=args.paper_model, metric=metric))
            print()
        if cfg.conditions:
            print(_extension_text(df, cfg, metric))
            print()
    print(f"rows: {out}")
    return 0
