"""The ``probe`` and ``attention`` sub-commands (issue 8 points 3 and 4): resumable tidy CSVs.

Both write through :class:`~icl_tokens.results.ResultsFile` (locked, keyed by the run's
identity, damaged rows repaired, a rerun resumes). Its key is ``(seed, example_id, condition)``,
so each command says what those hold:

* ``probe``: one row per (position, layer, knockout); ``seed`` is -1 for probes pooled over the
  seeds (the default) or the seed with ``--per-seed``; ``example_id`` is the probe position;
  ``condition`` is ``{knockout}|L{layer}``. Tidy columns ``position``, ``layer``, ``knockout``
  (``icl`` or ``agg``), ``target``, ``accuracy``, ``majority``, ``control``, ``selectivity``, ...,
  and the permutation null's ``null_mean``, ``null_q95``, ``p_perm``, ``max_null_q95``, ``p_max``
  (see :data:`~icl_tokens.aggregation.probes.PROBE_COLUMNS`). The best-layer correction needs
  every layer of a position, so a resumed position refits all its layers' shuffles.
* ``attention``: one row per (seed, test example, knockout, scope, layer, head, key group);
  ``condition`` is ``{knockout}|{scope}|L{layer}|H{head}|{category}``. Tidy columns ``knockout``,
  ``scope``, ``layer``, ``head``, ``category``, ``mass``, ``n_keys``, ``mass_per_token``,
  ``n_queries`` (see :func:`~icl_tokens.aggregation.attention_mass.category_mass`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["cmd_probe", "cmd_attention", "probe_columns", "attention_columns",
           "add_probe_parsers"]

_LOG: Callable[[str], None] = lambda s: print(s, file=sys.stderr)  # noqa: E731

PROBE_CSV = ("model", "task", "k", "seed", "example_id", "condition", "position", "layer",
             "knockout", "target", "accuracy", "majority", "control", "selectivity", "n",
             "n_groups", "n_classes", "C_median", "folds", "control_seen", "control_note",
             "permutations", "null_mean", "null_q95", "p_perm", "max_null_q95", "p_max")
ATTENTION_CSV = ("model", "task", "k", "seed", "example_id", "condition", "knockout", "scope",
                 "layer", "head", "category", "mass", "n_keys", "mass_per_token", "n_queries")


def probe_columns() -> list[str]:
    """Columns of the ``probe`` CSV."""
    return list(PROBE_CSV)


def attention_columns() -> list[str]:
    """Columns of the ``attention`` CSV."""
    return list(ATTENTION_CSV)


# ------------------------------------------------------------------ parser
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
    p.add_argument("--batch-size", type=positive, default=8)
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--out", required=True,
                   help="CSV path (resumable); a .meta.json sidecar is written")
    p.add_argument("--figure", default=None,
                   help="also write a figure: PATH.html (offline) and PATH.json")
    p.add_argument("--no-progress", action="store_true")


# ------------------------------------------------------------------ shared set-up
@dataclasses.dataclass
class _Setup:
    task: Any
    data: Any
    identity: dict[str, Any]
    meta: dict[str, Any]


def _setup(args: argparse.Namespace, command: str, extra: dict[str, Any]) -> _Setup:
    """Validate the task, data, seeds and device; the run's identity (before any output)."""
    from ..data import load_task_data
    from ..experiments.config import check_common
    from ..experiments.runner import task_hash
    from ..models import check_device, library_versions
    from ..tasks import load_task

    cfg = argparse.Namespace(seeds=tuple(args.seeds), k=args.k, n_test=args.n_test,
                             scoring="label", engine="naive", batch_size=args.batch_size,
                             chunk_examples=1, dtype=args.dtype,
                             stopword_variant=args.stopword_variant)
    check_common(cfg)
    if args.k < 1:
        raise ValueError(f"{command} reads demonstrations: use --k >= 1.")
    task = load_task(args.task)
    data = load_task_data(task, source=args.data_source)
    _LOG(f"data: {data.source} ({data.location}); {data.notes}")
    device = check_device(args.device)
    identity = {"command": command, "model": args.model, "task": task.name,
                "seeds": list(cfg.seeds), "k": args.k, "n_test": args.n_test,
                "stopword_variant": args.stopword_variant, "dtype": args.dtype,
                "data_source": args.data_source, "task_sha256": task_hash(task),
                "resolved_data_source": data.source, "data_location": data.location,
                "device": device, **extra}
    return _Setup(task, data, identity, {"versions": library_versions(), "args": vars(args)})


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from ..models import load_model, load_tokenizer

    model = load_model(args.model, device=args.device, dtype=getattr(torch, args.dtype))
    return model, load_tokenizer(args.model)


def _open(out: Path, columns: list[str], setup: _Setup, expected: set[tuple[str, str, str]],
          model: Any) -> Any:
    from ..models import model_info
    from ..results import ResultsFile

    store = ResultsFile(out, columns, setup.identity, setup.meta, expected_keys=expected)
    for n in store.notes:
        _LOG(f"{store.path}: {n}")
    store.update_meta({"model_info": model_info(model)})
    if store.done:
        _LOG(f"{store.path}: resuming, {len(store.done)} of {len(expected)} rows done")
    return store


def _output(text: str) -> Path:
    from ..results import check_output_path

    path = Path(text)
    check_output_path(path, "run.csv")
    return path


def _knockouts(aggregation: bool) -> dict[str, Any]:
    """Knockout name → knockout (``icl``: none; ``agg``: the default aggregation block)."""
    out: dict[str, Any] = {"icl": None}
    if aggregation:
        from ..aggregation.block import aggregation_knockout

        ko = aggregation_knockout()
        out[ko.name] = ko
    return out


def _list(text: str, known: list[str], what: str) -> list[str]:
    if text == "all":
        return list(known)
    vals = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in vals if v not in known]
    if bad or not vals:
        raise ValueError(f"unknown {what} {bad or text!r}; choose from {known} (or 'all').")
    if len(set(vals)) != len(vals):
        raise ValueError(f"{what} {vals} repeat a name; give each once.")
    return vals


# ------------------------------------------------------------------ probe
def cmd_probe(args: argparse.Namespace) -> int:
    from ..aggregation.probes import (
        DEFAULT_CS,
        PROBE_POSITIONS,
        collect_probe_data,
        probe_episodes,
        probe_items,
        probe_table,
    )
    from ..engine.items import LabelSet

    out = _output(args.out)
    positions = _list(args.positions, list(PROBE_POSITIONS), "probe positions")
    if args.folds < 2 or args.inner_folds < 2:
        raise ValueError("--folds and --inner-folds must be >= 2.")
    kos = _knockouts(args.aggregation)
    setup = _setup(args, "probe", {
        "positions": positions, "layers": args.layers, "knockouts": list(kos),
        "per_seed": args.per_seed, "folds": args.folds, "inner_folds": args.inner_folds,
        "Cs": list(DEFAULT_CS), "probe_seed": args.probe_seed,
        "permutations": args.permutations})
    episodes = probe_episodes(setup.data, list(args.seeds), k=args.k, n_test=args.n_test)
    model, tok = _load(args)
    n_layers = int(model.cfg.n_layers)
    layers = list(range(n_layers)) if args.layers is None else args.layers
    bad = [x for x in layers if not -n_layers <= x < n_layers]
    if bad:
        raise ValueError(f"--layers {bad} out of range: {args.model} has {n_layers} layers "
                         f"(0-{n_layers - 1}).")
    layers = [x % n_layers for x in layers]
    seed_keys = list(args.seeds) if args.per_seed else [-1]
    expected = {(str(s), p, f"{kn}|L{layer}") for s in seed_keys for p in positions
                for layer in layers for kn in kos}
    items = probe_items(setup.task, tok, LabelSet.for_task(setup.task, tok), episodes,
                        stopword_variant=args.stopword_variant)
    store = _open(out, probe_columns(), setup, expected, model)
    try:
        for kn, ko in kos.items():
            todo = [p for p in positions if any(not store.is_done(s, p, f"{kn}|L{layer}")
                                                for s in seed_keys for layer in layers)]
            if not todo:
                continue
            _LOG(f"probe {kn}: capturing {len(items)} prompts at {len(todo)} positions")
            collected = collect_probe_data(model, tok, items, positions=todo, layers=layers,
                                           knockout=ko, batch_size=args.batch_size)
            for p in todo:
                def write(row: dict[str, Any], p: str = p) -> None:
                    store.append([{**row, "model": args.model, "task": setup.task.name,
                                   "k": args.k, "example_id": p,
                                   "condition": f"{row['knockout']}|L{row['layer']}"}])

                probe_table(collected[p], knockout=kn, folds=args.folds,
                            inner_folds=args.inner_folds, seed=args.probe_seed,
                            per_seed=args.per_seed, permutations=args.permutations,
                            progress=not args.no_progress, on_row=write,
                            skip=lambda s, layer, p=p: store.is_done(s, p, f"{kn}|L{layer}"))
                if not args.no_progress:
                    _LOG(f"probe {kn}: {p} done")
    except BaseException:
        store.discard_if_empty()
        raise
    finally:
        store.close()
    df = _numeric(store.read())
    print(_probe_summary(df, setup))
    if args.figure:
        from ..plotting.aggregation import probe_curves
        from ..plotting.base import save_figure

        paths = save_figure(probe_curves(df, title=f"{args.model}, {setup.task.name}: probes"),
                            args.figure)
        print(f"figure: {', '.join(str(x) for x in paths)}")
    print(f"rows: {out}")
    return 0


def _numeric(df: pd.DataFrame) -> pd.DataFrame:
    """The probe CSV as read back (every cell a string) with its number columns as floats
    (``nan``, written where the control or the null is not computed, becomes NaN)."""
    import pandas as pd

    text = {"model", "task", "example_id", "condition", "position", "knockout", "target",
            "control_note"}
    return df.assign(**{c: pd.to_numeric(df[c], errors="coerce")
                        for c in df.columns if c not in text})


def _probe_summary(df: pd.DataFrame, setup: _Setup) -> str:
    """Per position and knockout: the best layer's accuracy beside the baseline, the
    permutation null and its best-layer-corrected p-value (and the control, where learnable)."""
    import numpy as np

    from ..aggregation.probes import UNLEARNABLE
    from ..experiments.runner import data_note

    lines = [f"probes ({data_note(setup.data, setup.identity['model'], setup.identity['seeds'], setup.identity['n_test'])}):",  # noqa: E501
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


# ------------------------------------------------------------------ attention
def cmd_attention(args: argparse.Namespace) -> int:
    from ..aggregation.attention_mass import QUERY_SCOPES, attention_mass, key_groups
    from ..engine.items import LabelSet
    from ..episodes import sample_episode
    from ..experiments.representation import prompt_item

    out = _output(args.out)
    scopes = _list(args.scopes, list(QUERY_SCOPES), "attention scopes")
    kos = _knockouts(args.aggregation)
    setup = _setup(args, "attention", {"scopes": scopes, "count": args.count,
                                       "knockouts": list(kos)})
    episodes = [sample_episode(setup.data, s, k=args.k, n_test=args.n_test) for s in args.seeds]
    model, tok = _load(args)
    labels = LabelSet.for_task(setup.task, tok)
    items = [prompt_item(setup.task, tok, labels, ep, t, stopword_variant=args.stopword_variant)
             for ep in episodes for t in ep.tests]
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)

    def keys_of(item: Any, kn: str) -> list[str]:
        return [f"{kn}|{s}|L{layer}|H{h}|{c}" for s in scopes for layer in range(n_layers)
                for h in range(n_heads) for c in key_groups(item, args.count)]

    expected = {(str(it.meta["seed"]), it.example_id, c) for it in items for kn in kos
                for c in keys_of(it, kn)}
    store = _open(out, attention_columns(), setup, expected, model)
    try:
        for kn, ko in kos.items():
            todo = [it for it in items if not all(store.is_done(it.meta["seed"], it.example_id, c)
                                                  for c in keys_of(it, kn))]
            for s in range(0, len(todo), args.batch_size):
                chunk = todo[s:s + args.batch_size]
                df = attention_mass(model, tok, chunk, scopes=scopes, count=args.count,
                                    batch_size=args.batch_size, knockout=ko)
                df["knockout"] = kn
                df["condition"] = (df["knockout"] + "|" + df["scope"] + "|L"
                                   + df["layer"].astype(str) + "|H" + df["head"].astype(str)
                                   + "|" + df["category"])
                df["model"], df["task"], df["k"] = args.model, setup.task.name, args.k
                store.append(df[attention_columns()].to_dict("records"))
                if not args.no_progress:
                    _LOG(f"attention {kn}: {min(s + args.batch_size, len(todo))}/{len(todo)} "
                         "examples")
    except BaseException:
        store.discard_if_empty()
        raise
    finally:
        store.close()
    df = store.read()
    print(_attention_summary(df, setup))
    if args.figure:
        from ..plotting.aggregation import mass_heatmap
        from ..plotting.base import save_figure

        paths = save_figure(mass_heatmap(df, title=f"{args.model}, {setup.task.name}: "
                                         "attention of the test example"), args.figure)
        print(f"figure: {', '.join(str(x) for x in paths)}")
    print(f"rows: {out}")
    return 0


def _attention_summary(df: pd.DataFrame, setup: _Setup) -> str:
    """Layer × category mass (mean over heads and examples), per knockout and scope."""
    from ..experiments.runner import data_note

    parts = [f"attention mass ({data_note(setup.data, setup.identity['model'], setup.identity['seeds'], setup.identity['n_test'])}):"]  # noqa: E501
    for (kn, scope), g in df.groupby(["knockout", "scope"], sort=False):
        t = g.pivot_table(index="layer", columns="category", values="mass", aggfunc="mean",
                          sort=False)
        parts.append(f"\n{kn}, queries = {scope} (share of attention, mean over heads and "
                     "examples):")
        parts.append(t.round(3).to_string())
    return "\n".join(parts)
