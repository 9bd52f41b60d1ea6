"""Sharding a sweep across machines (``ablate --shard K/N``) and merging the shards back.

**Work units.** A run's work is split into units of one seed and one block of
``chunk_examples`` consecutive test examples (the runner's chunks), in the run's order: seeds as
given, the episode's fixed test order. Shard ``K`` of ``N`` takes the units whose index is
``K - 1`` modulo ``N`` (round-robin, so shards are balanced and every shard sees every seed).
A unit is exactly one of the runner's chunks, so a shard scores the same batches as the
unsharded run and its rows are the same numbers, not merely close ones.

**Identity.** A shard's identity is the run's identity plus ``shard`` (``"K/N"``) and
``shard_unit_examples``; an unsharded config's identity is unchanged. Each shard is an ordinary
resumable results CSV (rerun its command to complete it); its sidecar's ``meta.shard_plan``
records the whole run's order (seeds, example ids, conditions), which the merge checks and
sorts by.

**Merge** (:func:`merge_shards`, ``python -m icl_tokens merge OUT.csv SHARD...``): refuses
shards of different runs (any identity field other than the shard differs), a missing or
repeated shard, a shard that is incomplete or holds rows of another shard, then writes the rows
in the unsharded run's order with the unsharded identity, so the merged file equals the
unsharded run row for row, and the unsharded command finds it complete.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Shard", "SHARD_KEYS", "parse_shard", "work_units", "shard_episodes", "run_plan",
           "merge_shards"]

#: Identity fields that differ between the shards of one run.
SHARD_KEYS = ("shard", "shard_unit_examples")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(spec: str | Shard | None) -> Shard | None:
    """``"2/3"`` → ``Shard(2, 3)``; ``None`` stays None; anything else is a clear error.

    >>> parse_shard("2/3")
    Shard(index=2, count=3)
    """
    if spec is None or isinstance(spec, Shard):
        return spec
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(spec))
    if m is None:
        raise ValueError(f"--shard takes K/N (e.g. 2/3: the second of three shards), got "
                         f"{spec!r}.")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise ValueError(f"--shard {spec}: the number of shards N must be >= 1.")
    if not 1 <= k <= n:
        raise ValueError(f"--shard {spec}: K must be between 1 and N={n} (shards are numbered "
                         "from 1).")
    return Shard(k, n)


def work_units(episodes: Sequence[Any], chunk_examples: int) -> list[tuple[int, tuple[str, ...]]]:
    """The run's units in order: ``(seed, test ids of one block of chunk_examples)``."""
    if chunk_examples < 1:
        raise ValueError("chunk_examples must be >= 1.")
    units = []
    for ep in episodes:
        ids = tuple(t.id for t in ep.tests)
        for s in range(0, len(ids), chunk_examples):
            units.append((int(ep.seed), ids[s : s + chunk_examples]))
    return units


def _assigned(n_units: int, shard: Shard) -> list[int]:
    if shard.count > n_units:
        raise ValueError(
            f"--shard {shard}: this run has only {n_units} work unit(s) (a seed and a block of "
            "test examples each), so some shards would be empty; use at most "
            f"{n_units} shards, or more seeds or examples.")
    return list(range(shard.index - 1, n_units, shard.count))


def shard_episodes(episodes: Sequence[Any], shard: Shard | str, chunk_examples: int
                   ) -> list[Any]:
    """The episodes with only this shard's test examples (episodes keep their demonstrations;
    one without any of the shard's examples keeps no tests)."""
    shard = parse_shard(shard)  # type: ignore[assignment]
    assert shard is not None
    units = work_units(episodes, chunk_examples)
    mine: dict[int, set[str]] = {}
    for i in _assigned(len(units), shard):
        seed, ids = units[i]
        mine.setdefault(seed, set()).update(ids)
    return [replace(ep, tests=tuple(t for t in ep.tests if t.id in mine.get(int(ep.seed), ())))
            for ep in episodes]


def run_plan(episodes: Sequence[Any], conditions: Sequence[str], chunk_examples: int
             ) -> dict[str, Any]:
    """The whole run's order, stored in each shard's sidecar (``meta.shard_plan``)."""
    return {"seeds": [int(ep.seed) for ep in episodes],
            "example_ids": [[t.id for t in ep.tests] for ep in episodes],
            "conditions": list(conditions), "unit_examples": int(chunk_examples)}


def _plan_units(plan: dict[str, Any]) -> list[tuple[int, tuple[str, ...]]]:
    c = int(plan["unit_examples"])
    return [(int(seed), tuple(ids[s : s + c])) for seed, ids in zip(plan["seeds"],
                                                                  plan["example_ids"])
            for s in range(0, len(ids), c)]


def _shard_keys(plan: dict[str, Any], shard: Shard) -> set[tuple[str, str, str]]:
    units = _plan_units(plan)
    return {(str(seed), ex, c) for i in _assigned(len(units), shard)
            for seed, ids in [units[i]] for ex in ids for c in plan["conditions"]}


# --- merge -----------------------------------------------------------------------------------


@dataclass
class _ShardFile:
    path: Path
    identity: dict[str, Any]
    columns: list[str]
    meta: dict[str, Any]
    shard: Shard


def _read_shard(path: Path) -> _ShardFile:
    from .records import sidecar_path

    side = sidecar_path(path)
    if not path.exists():
        raise ValueError(f"shard {path} does not exist.")
    if not side.exists():
        raise ValueError(f"{path} has no sidecar {side.name}, so it is not a results file.")
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
        identity, columns, meta = doc["identity"], doc["columns"], doc.get("meta") or {}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{side} is not a results sidecar ({e}).") from e
    if not identity.get("shard"):
        raise ValueError(f"{path} is not a shard (written without --shard); only shards of one "
                         "run are merged.")
    if not isinstance(meta.get("shard_plan"), dict):
        raise ValueError(f"{side} has no shard_plan; rerun that shard's command to complete it.")
    return _ShardFile(path, identity, list(columns), meta, parse_shard(identity["shard"]))  # type: ignore[arg-type]


def _check_same_run(files: list[_ShardFile]) -> None:
    ref = files[0]
    base = {k: v for k, v in ref.identity.items() if k != "shard"}
    for f in files[1:]:
        other = {k: v for k, v in f.identity.items() if k != "shard"}
        diff = [f"{k}: {ref.path.name} has {base.get(k)!r}, {f.path.name} {other.get(k)!r}"
                for k in sorted(set(base) | set(other)) if base.get(k) != other.get(k)]
        if f.columns != ref.columns:
            diff.append("columns differ")
        if f.meta["shard_plan"] != ref.meta["shard_plan"]:
            diff.append("the run's seeds, examples or conditions differ (shard_plan)")
        if diff:
            raise ValueError(f"{ref.path} and {f.path} are shards of different runs ("
                             + "; ".join(diff) + "); merge only the shards of one command.")
    counts = sorted({f.shard.count for f in files})
    if len(counts) > 1:
        raise ValueError(f"the shards split the run into different numbers of shards {counts}.")
    n = counts[0]
    seen: dict[int, Path] = {}
    for f in files:
        if f.shard.index in seen:
            raise ValueError(f"shard {f.shard} is given twice ({seen[f.shard.index]} and "
                             f"{f.path}); give each shard once.")
        seen[f.shard.index] = f.path
    missing = [f"{k}/{n}" for k in range(1, n + 1) if k not in seen]
    if missing:
        raise ValueError(f"shard(s) {', '.join(missing)} are missing; the merge needs all {n} "
                         "shards of the run.")


def _check_rows(f: _ShardFile) -> None:
    """Refuse a shard holding a damaged row (torn, or a value out of range such as
    ``correct=2``), naming the file and the line, before anything repairs it."""
    from .lock import ResultsLock
    from .records import _parse_at, _Schema

    lock = ResultsLock(f.path)
    try:
        lock.acquire()
        try:
            raw = f.path.read_bytes()
        finally:
            lock.release()
    except (RuntimeError, ValueError, OSError) as e:
        raise ValueError(f"cannot open shard {f.path}: {e}") from e
    schema = _Schema(f.columns)
    head = _parse_at(raw, 0)
    if isinstance(head, str) or head[1] != f.columns:
        raise ValueError(f"shard {f.shard} ({f.path}): the first line is not the header its "
                         "sidecar names; rerun its command to repair it, then merge.")
    bad = [r for r in schema.scan(raw, head[0]) if r.problem is not None]
    if bad:
        shown = "; ".join(f"line {r.line}: {r.problem}" for r in bad[:3])
        more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ValueError(f"shard {f.shard} ({f.path}) holds {len(bad)} damaged row(s) ({shown}"
                         f"{more}); rerun its command to recompute them, then merge.")


def _order_key(plan: dict[str, Any]) -> Any:
    seed_i = {str(s): i for i, s in enumerate(plan["seeds"])}
    ex_i = [{e: j for j, e in enumerate(ids)} for ids in plan["example_ids"]]
    cond_i = {c: i for i, c in enumerate(plan["conditions"])}

    def key(k: tuple[str, str, str]) -> tuple[int, int, int]:
        s = seed_i[k[0]]
        return s, ex_i[s][k[1]], cond_i[k[2]]

    return key


def merge_shards(out: str | Path, shards: Sequence[str | Path]) -> dict[str, Any]:
    """Merge every shard of one run into ``out`` (which must not exist).

    Each shard is opened as a :class:`~icl_tokens.results.ResultsFile` (locked, validated and
    repaired like a resumed run), checked against the others and its share of the plan, and its
    rows are written in the unsharded run's order under the unsharded identity.

    Returns:
        ``{"out", "rows", "shards": [{"path", "shard", "rows"}]}``.

    Raises:
        ValueError: ``out`` exists or is a shard; a file is not a shard; shards of different
            runs; a shard missing or given twice; a shard holding a damaged row (torn, or a
            value out of range), incomplete, or holding rows that belong to another shard or
            to no shard.
    """
    from . import ResultsFile
    from .records import KEY, check_output_path, sidecar_path

    out = Path(out)
    paths = [Path(p) for p in shards]
    if not paths:
        raise ValueError("give the shard CSVs to merge.")
    if any(out.resolve() == p.resolve() for p in paths):
        raise ValueError(f"the output {out} is one of the shards; choose another path.")
    if out.exists() or sidecar_path(out).exists():
        raise ValueError(f"{out} exists; choose another output path or delete it.")
    check_output_path(out, "merged.csv", option="OUT")
    files = [_read_shard(p) for p in paths]
    _check_same_run(files)
    plan = files[0].meta["shard_plan"]
    columns = files[0].columns
    ki = [columns.index(k) for k in KEY]
    records: dict[tuple[str, str, str], list[str]] = {}
    owner: dict[tuple[str, str, str], Path] = {}
    report = []
    for f in sorted(files, key=lambda f: f.shard.index):
        want = _shard_keys(plan, f.shard)
        _check_rows(f)
        try:
            store = ResultsFile(f.path, columns, f.identity)
        except Exception as e:
            raise ValueError(f"cannot open shard {f.path}: {e}") from e
        try:
            raw = f.path.read_text(encoding="utf-8")
        finally:
            store.close()
        rows = list(csv.reader(io.StringIO(raw, newline="")))[1:]
        got = {}
        for r in rows:
            key = tuple(r[i] for i in ki)
            if key in owner:
                raise ValueError(f"shards {owner[key]} and {f.path} overlap: both hold "
                                 f"{dict(zip(KEY, key))}.")
            got[key] = r
            owner[key] = f.path  # type: ignore[index]
        stray = set(got) - want
        if stray:
            k = min(stray)
            raise ValueError(f"shard {f.shard} ({f.path}) holds {len(stray)} row(s) outside its "
                             f"share of the run, e.g. {dict(zip(KEY, k))}.")
        lack = want - set(got)
        if lack:
            raise ValueError(f"shard {f.shard} ({f.path}) is incomplete: {len(got)} of "
                             f"{len(want)} rows; rerun its command to resume it, then merge.")
        records.update(got)  # type: ignore[arg-type]
        report.append({"path": str(f.path), "shard": str(f.shard), "rows": len(got)})
    identity = {k: v for k, v in files[0].identity.items() if k not in SHARD_KEYS}
    meta = {k: v for k, v in files[0].meta.items() if k != "shard_plan"}
    meta["merged_from"] = report
    if isinstance(meta.get("config"), dict):
        meta["config"] = {**meta["config"], "shard": None}
    order = sorted(records, key=_order_key(plan))
    with ResultsFile(out, columns, identity, meta, expected_keys=set(order)) as store:
        store.append([dict(zip(columns, records[k])) for k in order])
    return {"out": str(out), "rows": len(order), "shards": report}
