"""A probe run: capture the points of every probe prompt, then fit every position's probes.

:func:`run_probes` takes a :class:`ProbeConfig` and an optional CSV path and runs two resumable
phases through :func:`~icl_tokens.aggregation.loop.run_units`:

1. **extraction** -- one unit per batch of prompts and knockout: the batch's points are stored
   (:class:`~icl_tokens.aggregation.probe_features.FeatureStore`, ``<out>.features/``);
2. **fitting** -- one unit per (knockout, position): :func:`~.probes.probe_table` on the stored
   points, its rows appended to the CSV (cheap to redo: no model forward).

Killing a run and rerunning the same command completes the CSV; the batches are fixed, so the
rows equal an uninterrupted run's. Once the CSV is complete the features folder is deleted.

CSV rows: one per (seed key, position, knockout, layer): ``seed`` is -1 for probes pooled over
the seeds (the default) or the seed with ``per_seed``; ``example_id`` is ``all`` (a probe is fit
on every prompt); ``condition`` is ``{knockout}|{position}|L{layer}``; then
:data:`~.probes.PROBE_COLUMNS`. Values that are not computed (the control where it cannot be
learnt, the null without permutations) are empty cells, read back as NaN.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd

from ..ablation.knockout import Knockout
from ..engine.items import Item, LabelSet
from ..experiments.config import RunConfig
from ..experiments.runner import data_note, layer_count, on_model
from .loop import (
    RunSetup,
    Unit,
    UnitContext,
    check_paths,
    chunks,
    knockout_set,
    open_store,
    prepare_run,
    run_units,
    stderr_log,
)
from .probe_capture import capture_points
from .probe_data import PROBE_POSITIONS, ProbeData, check_positions, probe_episodes, probe_items
from .probe_features import FeatureStore, feature_key, features_folder
from .probe_fit import DEFAULT_CS
from .probe_null import DEFAULT_PERMUTATIONS
from .probes import PROBE_COLUMNS, probe_table

__all__ = ["ProbeConfig", "run_probes", "probe_columns", "PROBE_CSV", "POOLED"]

#: Columns of the probe CSV.
PROBE_CSV: tuple[str, ...] = ("model", "task", "k", "seed", "example_id", "condition",
                              *(c for c in PROBE_COLUMNS if c != "seed"))
#: ``example_id`` of every probe row: a probe is fitted on all prompts.
POOLED = "all"


def probe_columns() -> list[str]:
    """Columns of the probe CSV."""
    return list(PROBE_CSV)


@dataclass
class ProbeConfig(RunConfig):
    """A probe run (see the module docstring).

    Attributes:
        positions: Names of :data:`~.probe_data.PROBE_POSITIONS`.
        layers: Layers to probe (``None``: all; negatives count from the end).
        aggregation: Also probe under the default aggregation block (knockout ``agg``).
        per_seed: One probe per seed (default: pooled over the seeds).
        folds, inner_folds, Cs, probe_seed: The nested group k-fold (see
            :func:`~.probe_fit.fit_probes`); ``probe_seed`` also draws the control and shuffles.
        permutations: Label shuffles of the permutation null (0: none).
    """

    scoring: str = "label"
    batch_size: int = 8
    positions: tuple[str, ...] = tuple(PROBE_POSITIONS)
    layers: tuple[int, ...] | None = None
    aggregation: bool = False
    per_seed: bool = False
    folds: int = 5
    inner_folds: int = 3
    Cs: tuple[float, ...] = DEFAULT_CS
    probe_seed: int = 0
    permutations: int = DEFAULT_PERMUTATIONS

    level: ClassVar[str] = "probe"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.one_run_over_demonstrations("a probe run", " (its fits need every prompt)")
        if self.scoring != "label":
            raise ValueError("probes read the model's label prediction: use scoring='label'.")
        self.positions = tuple(check_positions(self.positions))
        if self.layers is not None:
            self.layers = tuple(int(x) for x in self.layers)
            if not self.layers or len(set(self.layers)) != len(self.layers):
                raise ValueError(f"--layers {list(self.layers)} is empty or repeats a layer.")
        if self.folds < 2 or self.inner_folds < 2:
            raise ValueError("--folds and --inner-folds must be >= 2.")
        if self.permutations < 0:
            raise ValueError(f"permutations must be >= 0, got {self.permutations}.")
        self.Cs = tuple(float(c) for c in self.Cs)
        if not self.Cs or min(self.Cs) <= 0:
            raise ValueError(f"Cs {list(self.Cs)} must be positive numbers (at least one).")

    def knockouts(self) -> dict[str, Knockout | None]:
        """Knockout name → knockout (``icl``: none; ``agg``: the default aggregation block)."""
        return knockout_set(self.aggregation)

    def resolved_layers(self, n_layers: int) -> tuple[int, ...]:
        """The probed layers of a model with ``n_layers`` (checked, negatives resolved)."""
        layers = tuple(range(n_layers)) if self.layers is None else self.layers
        bad = [x for x in layers if not -n_layers <= x < n_layers]
        if bad:
            raise ValueError(f"--layers {bad} out of range: {self.model} has {n_layers} layers "
                             f"(0-{n_layers - 1}).")
        return tuple(x % n_layers for x in layers)

    def seed_keys(self) -> list[int]:
        """The ``seed`` of the rows: each seed with ``per_seed``, else -1 (pooled)."""
        return list(self.seeds) if self.per_seed else [-1]


def _condition(knockout: str, position: str, layer: int) -> str:
    return f"{knockout}|{position}|L{layer}"


def run_probes(
    cfg: ProbeConfig, *, model: Any = None, tokenizer: Any = None,
    out: str | Path | None = None, progress: bool = True,
    log: Callable[[str], None] | None = None, on_unit: Callable[[str], None] | None = None,
    executor: Any = None,
) -> pd.DataFrame:
    """Run (or resume) a probe run; returns its rows (:func:`probe_columns`).

    Args:
        cfg: The run.
        model, tokenizer: A loaded bridge and its tokenizer (loaded from ``cfg`` if None).
        out: CSV path (a ``.meta.json`` sidecar and, while the run is incomplete, a
            ``.features`` folder beside it); rows are appended as they are computed and a rerun
            resumes. ``None``: in memory.
        progress: tqdm bars over the units and, inside each fit unit, over its fits (every
            layer's shuffles of the permutation null).
        log: Where notes go (data source, resume state); ``None``: stderr.
        on_unit: Called with each finished unit's label (``features icl p0-7``,
            ``fit icl t_out.colon``).
        executor: Capture the features on a
            :class:`~icl_tokens.executors.ray_executor.RayExecutor` 's workers (each holds the
            model; this process loads the tokenizer only, stores the features and fits the
            probes).
    """
    log = log or stderr_log
    out = None if out is None else Path(out)
    folder = None if out is None else features_folder(out)
    check_paths({"--out": out})
    if folder is not None:
        check_paths({"--out": folder / "index.csv"})
    setup = prepare_run(cfg, model, log, executor)
    episodes = probe_episodes(setup.data, list(cfg.seeds), k=cfg.k, n_test=cfg.n_test)
    model, tokenizer = setup.model_here(cfg, model, tokenizer)
    layers = cfg.resolved_layers(on_model(executor, model, tokenizer, layer_count))
    items = probe_items(setup.task, tokenizer, LabelSet.for_task(setup.task, tokenizer),
                        episodes, stopword_variant=cfg.stopword_variant)
    _check_points_exist(items, cfg.positions)
    kos = cfg.knockouts()
    fit_keys = {kn: {(str(s), POOLED, _condition(kn, p, la)) for s in cfg.seed_keys()
                     for p in cfg.positions for la in layers} for kn in kos}
    expected = set().union(*fit_keys.values())
    feature_keys = {feature_key(it, kn) for it in items for kn in kos}
    with open_store(out, PROBE_CSV, setup.identity, setup.sidecar, expected,
                    setup.model_info(model), log) as store:
        todo = [kn for kn in kos if store is None or not fit_keys[kn] <= store.done]
        with FeatureStore.open(folder if todo else None, setup.identity, setup.sidecar,
                               feature_keys, log) as feats:
            extract = [u for kn in todo for u in _extract_units(cfg, items, kn, kos[kn], layers,
                                                                 feats)]
            run_units(feats.index, extract, on_unit=on_unit, progress=progress,
                      desc="probe features", ctx=UnitContext(model, tokenizer),
                      executor=executor)
            fits = [u for kn in todo for u in _fit_units(cfg, setup, feats, items, kn, layers,
                                                         store, progress)]
            rows = run_units(store, fits, check=_check_rows, on_unit=on_unit,
                             progress=progress, desc="probe fits")
        complete = store is not None and expected <= store.done
        if complete:
            store.canonicalize(_order(cfg, kos, layers))
    if complete:
        FeatureStore(folder, None).remove()
    df = _typed(store.read() if store is not None else pd.DataFrame(rows, columns=PROBE_CSV))
    df.attrs["data"] = data_note(setup.data, cfg.model, cfg.seeds, cfg.n_test)
    return df


#: The probe CSV's text columns (every other column is a number).
_TEXT = ("model", "task", "example_id", "condition", "position", "knockout", "target",
         "control_note")


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Number columns as numbers (an empty cell, a value not computed, as NaN)."""
    return df.assign(**{c: pd.to_numeric(df[c].replace("", np.nan))
                        for c in df.columns if c not in _TEXT})


def _order(cfg: ProbeConfig, kos: dict[str, Any], layers: tuple[int, ...]) -> list[tuple]:
    """The rows' keys in the order of an uninterrupted run."""
    return [(s, POOLED, _condition(kn, p, la)) for kn in kos for p in cfg.positions
            for s in cfg.seed_keys() for la in layers]


def _check_points_exist(items: list[Item], positions: tuple[str, ...]) -> None:
    """Refuse a position that has no token in any prompt (before any output exists)."""
    for p in positions:
        if not any(PROBE_POSITIONS[p].sel.mask(it).any() for it in items):
            raise ValueError(f"probe position {p!r} matches no token in these prompts; drop it "
                             "from --positions.")


def _extract_units(cfg: ProbeConfig, items: list[Item], kn: str, ko: Knockout | None,
                   layers: tuple[int, ...], feats: FeatureStore) -> list[Unit]:
    """One unit per fixed batch of prompts: capture its points (where the model is) and store
    them (here)."""
    units = []
    for batch in chunks(items, cfg.batch_size):
        first, last = batch[0].meta["prompt"], batch[-1].meta["prompt"]
        units.append(Unit(f"features {kn} p{first}-{last}",
                          frozenset(feature_key(it, kn) for it in batch),
                          remote=(capture_unit, (cfg, list(batch), ko, layers)),
                          then=functools.partial(feats.save, kn, list(batch))))
    return units


def capture_unit(ctx: UnitContext, cfg: ProbeConfig, batch: list[Item], ko: Knockout | None,
                 layers: tuple[int, ...]) -> Any:
    """The probe points of one batch of prompts, in the process that holds the model."""
    return capture_points(ctx.model, ctx.tokenizer, batch, positions=cfg.positions,
                          layers=layers, knockout=ko, batch_size=cfg.batch_size)


def _fit_units(cfg: ProbeConfig, setup: RunSetup, feats: FeatureStore, items: list[Item], kn: str,
               layers: tuple[int, ...], store: Any, progress: bool = False) -> list[Unit]:
    """One unit per position: every layer's probe (and its null) on the stored points; with
    ``progress``, a bar over the unit's fits (layers x shuffles of the permutation null)."""
    loaded: list[dict[str, ProbeData]] = []

    def data(p: str) -> ProbeData:
        """The position's points (all positions are read at the first call; each is freed
        once fitted)."""
        if not loaded:
            loaded.append(feats.load(kn, items, cfg.positions, layers))
        return loaded[0].pop(p)

    def done(seed: int, layer: int, p: str) -> bool:
        return store is not None and store.is_done(seed, POOLED, _condition(kn, p, layer))

    units = []
    for p in cfg.positions:
        def compute(p: str = p) -> list[dict[str, Any]]:
            try:
                table = probe_table(data(p), knockout=kn, folds=cfg.folds,
                                    inner_folds=cfg.inner_folds, Cs=cfg.Cs, seed=cfg.probe_seed,
                                    per_seed=cfg.per_seed, permutations=cfg.permutations,
                                    progress=progress, skip=lambda s, layer: done(s, layer, p))
            except np.linalg.LinAlgError as e:
                raise ValueError(f"the probe fit of {p} ({kn}) failed ({e}) on features "
                                 f"captured in {cfg.dtype}; rerun with --dtype float32.") from e
            return [_csv_row(cfg, setup, r) for r in table.to_dict("records")]

        keys = frozenset((str(s), POOLED, _condition(kn, p, la)) for s in cfg.seed_keys()
                         for la in layers)
        units.append(Unit(f"fit {kn} {p}", keys, compute))
    return units


def _csv_row(cfg: ProbeConfig, setup: RunSetup, row: dict[str, Any]) -> dict[str, Any]:
    """A :func:`probe_table` row as a CSV row (NaN, a value not computed, as an empty cell)."""
    cells = {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}
    return {**cells, "model": cfg.model, "task": setup.task.name, "k": cfg.k,
            "example_id": POOLED,
            "condition": _condition(row["knockout"], row["position"], row["layer"])}


def _check_rows(rows: list[dict[str, Any]]) -> None:
    """Refuse a row whose accuracy or baseline is not a finite number."""
    for r in rows:
        bad = [c for c in ("accuracy", "majority") if not np.isfinite(float(r[c]))]
        if bad:
            raise ValueError(f"probe row {r['condition']} has non-finite {bad}; its features "
                             "hold inf or NaN: rerun with --dtype float32.")
