"""The ``probe`` and ``attention`` sub-commands: resumable tidy CSVs.

Each builds its config (:class:`~icl_tokens.aggregation.probe_run.ProbeConfig`,
:class:`~icl_tokens.aggregation.attention_run.AttentionConfig`), checks every output path (the
CSV, the figure) before the model loads, and runs
:func:`~icl_tokens.aggregation.probe_run.run_probes` /
:func:`~icl_tokens.aggregation.attention_run.run_attention`: killed and rerun with the same
arguments, a run completes its CSV. See those modules for the rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .notes import note
from .options import _add_executor_options, with_executor

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["cmd_probe", "cmd_attention", "add_probe_parsers"]


def add_probe_parsers(sub: Any, add_common: Callable[..., None], int_list: Any,
                      positive: Any, non_negative: Any) -> None:
    """Register ``probe`` and ``attention`` (from :func:`~icl_tokens.cli.parser.build_parser`,
    which passes its argument types)."""

    p = sub.add_parser("probe", help="linear probes of the demonstration label (and the model's "
                       "answer) on hook_resid_post of every layer, with baseline and a "
                       "permutation null")
    add_common(p, many_seeds=True)
    p.add_argument("--positions", default="all",
                   help="'all' or a comma list of t_in.word, content, stopword, t_in.newline, "
                        "t_out.word, t_out.colon, label, t_out.newline, test.last")
    p.add_argument("--layers", type=int_list, default=None,
                   help="probe only these layers, e.g. 0-8 (default: all)")
    p.add_argument("--aggregation", action="store_true",
                   help="also probe under the aggregation block (demonstration template/"
                        "stopword/label tokens may not attend to demonstration content)")
    p.add_argument("--per-seed", action="store_true",
                   help="one probe per seed (default: pooled over the seeds)")
    p.add_argument("--folds", type=positive, default=5, help="outer group folds (default 5)")
    p.add_argument("--inner-folds", type=positive, default=3,
                   help="inner group folds choosing C (default 3)")
    p.add_argument("--probe-seed", type=int, default=0,
                   help="seed of the fold assignment, the control labels and the shuffles")
    p.add_argument("--permutations", type=non_negative, default=20,
                   help="label shuffles across prompt groups for the permutation null, each "
                        "refitting every layer's probe (0: no null; default 20, the least for "
                        "a corrected p-value under 0.05)")
    _add_run(p, positive)
    p.set_defaults(handler="icl_tokens.cli.probe:cmd_probe")

    a = sub.add_parser("attention", help="share of the test example's attention to each key "
                       "category, per layer and head (hook_pattern)")
    add_common(a, many_seeds=True)
    a.add_argument("--scopes", default="test,last",
                   help="query scopes: test (every test-example token), last (its last token)")
    a.add_argument("--count", default="each", choices=["each", "exact"],
                   help="each: a multi-category key counts toward each of its categories; "
                        "exact: one group per exact category set (shares sum to 1)")
    a.add_argument("--aggregation", action="store_true",
                   help="also measure under the aggregation block")
    _add_run(a, positive)
    a.set_defaults(handler="icl_tokens.cli.probe:cmd_attention")


def _add_run(p: argparse.ArgumentParser, positive: Any) -> None:
    """Batching, device, dtype and output options of both commands."""
    p.add_argument("--batch-size", type=positive, default=8,
                   help="prompts per forward, and per resumable unit (default 8)")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="model dtype (default float32); results are computed in float32, and "
                        "activations that overflow the dtype (inf/NaN) stop the run")
    p.add_argument("--device-map", default=None,
                   choices=["auto", "balanced", "balanced_low_0", "sequential"],
                   help="spread a model larger than one GPU over the visible GPUs; instead of "
                        "--device")
    p.add_argument("--out", required=True,
                   help="CSV path (resumable: rerun the same command after a kill); a "
                        ".meta.json sidecar is written (probe: and, until the CSV is "
                        "complete, the captured features in OUT.features/)")
    p.add_argument("--figure", default=None,
                   help="also write a figure: PATH.html (offline) and PATH.json")
    p.add_argument("--no-progress", action="store_true")
    _add_executor_options(p)


def _common(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields every run shares, from the parsed arguments."""
    return dict(model=args.model, task=args.task, seeds=tuple(args.seeds), k=args.k,
                n_test=args.n_test, stopword_variant=args.stopword_variant,
                data_source=args.data_source, batch_size=args.batch_size, dtype=args.dtype,
                device=args.device, device_map=args.device_map)


def _figure_paths(figure: str | None) -> list[Path]:
    """The files ``--figure PATH`` writes (``PATH.html``, ``PATH.json``), checked before the
    model loads."""
    if figure is None:
        return []
    from ..aggregation.loop import check_paths

    base = Path(figure)
    paths = [base.with_name(base.name + ext) for ext in (".html", ".json")]
    for p in paths:
        check_paths({"--figure": p})
    return paths


def _names(text: str, known: list[str], what: str) -> tuple[str, ...]:
    """``all`` or a comma list of known names (checked)."""
    if text == "all":
        return tuple(known)
    vals = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in vals if v not in known]
    if bad or not vals:
        raise ValueError(f"unknown {what} {bad or text!r}; choose from {known} (or 'all').")
    return tuple(vals)


def _save(fig: Any, figure: str) -> None:
    from ..plotting.base import save_figure

    print(f"figure: {', '.join(str(x) for x in save_figure(fig, figure))}")


def cmd_probe(args: argparse.Namespace) -> int:
    """Probes at every position and layer; prints the best layer per position and knockout."""
    from ..aggregation.probe_data import PROBE_POSITIONS
    from ..aggregation.probe_run import ProbeConfig, run_probes

    cfg = ProbeConfig(**_common(args),
                      positions=_names(args.positions, list(PROBE_POSITIONS), "probe positions"),
                      layers=None if args.layers is None else tuple(args.layers),
                      aggregation=args.aggregation, per_seed=args.per_seed, folds=args.folds,
                      inner_folds=args.inner_folds, probe_seed=args.probe_seed,
                      permutations=args.permutations)
    _figure_paths(args.figure)
    df = with_executor(args, lambda ex: run_probes(cfg, out=args.out,
                                                   progress=not args.no_progress, executor=ex),
                       log=note)
    print(_probe_summary(df))
    if args.figure:
        from ..plotting.aggregation import probe_curves

        _save(probe_curves(df, title=f"{args.model}, {df['task'].iloc[0]}: probes"), args.figure)
    print(f"rows: {args.out}")
    return 0


def cmd_attention(args: argparse.Namespace) -> int:
    """Attention mass per layer, head and key group; prints the layer × group means."""
    from ..aggregation.attention_mass import QUERY_SCOPES
    from ..aggregation.attention_run import AttentionConfig, run_attention

    cfg = AttentionConfig(**_common(args),
                          scopes=_names(args.scopes, list(QUERY_SCOPES), "attention scopes"),
                          count=args.count, aggregation=args.aggregation)
    _figure_paths(args.figure)
    df = with_executor(args, lambda ex: run_attention(cfg, out=args.out,
                                                      progress=not args.no_progress,
                                                      executor=ex), log=note)
    print(_attention_summary(df))
    if args.figure:
        from ..plotting.aggregation import mass_heatmap

        _save(mass_heatmap(df, title=f"{args.model}, {df['task'].iloc[0]}: attention of the "
                           "test example"), args.figure)
    print(f"rows: {args.out}")
    return 0


def _probe_summary(df: pd.DataFrame) -> str:
    """Per position and knockout: the best layer's accuracy beside the baseline, the
    permutation null and its best-layer-corrected p-value (and the control, where learnable)."""
    import numpy as np

    from ..aggregation.probes import UNLEARNABLE

    lines = [f"probes ({df.attrs.get('data')}):",
             f"{'position':14} {'knockout':9} {'best L':>6} {'acc':>6} {'major':>6} "
             f"{'null95':>6} {'max95':>6} {'p_max':>6} {'control':>7} {'mean acc':>8} {'n':>5}"]
    notes: set[str] = set()
    for (pos, kn), g in df.groupby(["position", "knockout"], sort=False):
        notes.update(str(x) for x in g["control_note"].dropna())
        g = g.groupby("layer").mean(numeric_only=True).reset_index()
        best = g.loc[g["accuracy"].idxmax()]
        ctrl = "n/a" if np.isnan(best["control"]) else f"{best['control']:.3f}"
        lines.append(f"{pos:14} {kn:9} {int(best['layer']):>6} {best['accuracy']:6.3f} "
                     f"{best['majority']:6.3f} {best['null_q95']:6.3f} "
                     f"{best['max_null_q95']:6.3f} {best['p_max']:6.3f} {ctrl:>7} "
                     f"{g['accuracy'].mean():8.3f} {int(best['n']):>5}")
    n_perm = int(df["permutations"].max()) if len(df) else 0
    if n_perm:
        lines.append(f"null95 / max95: 95th percentile of the permutation null at that layer / "
                     f"of the best layer under each shuffle; p_max: corrected for choosing the "
                     f"best layer ({n_perm} shuffles, smallest possible p "
                     f"{1 / (1 + n_perm):.3f}).")
    else:
        lines.append("no permutation null (--permutations 0): nothing here tests chance.")
    if UNLEARNABLE in notes:
        lines.append(f"control n/a: {UNLEARNABLE} (no selectivity is reported).")
    return "\n".join(lines)


def _attention_summary(df: pd.DataFrame) -> str:
    """Layer × category mass (mean over heads and examples), per knockout and scope."""
    parts = [f"attention mass ({df.attrs.get('data')}):"]
    for (kn, scope), g in df.groupby(["knockout", "scope"], sort=False):
        t = g.pivot_table(index="layer", columns="category", values="mass", aggfunc="mean",
                          sort=False)
        parts.append(f"\n{kn}, queries = {scope} (share of attention, mean over heads and "
                     "examples):")
        parts.append(t.round(3).to_string())
    return "\n".join(parts)
