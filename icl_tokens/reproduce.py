"""Reproduce the paper end to end: every experiment behind Tables 2-6, 8-10, 14 and
15 for one model, at a named budget, into one results folder.

    python -m icl_tokens reproduce --tables all --budget smoke          # CI, minutes
    python -m icl_tokens reproduce --tables 2,3 --budget small --model smollm2-135m

The folder (``--out-dir``, default ``results/reproduce-<model>-<budget>``)::

    runs/<experiment>_<task>.csv   resumable rows (+ .meta.json sidecars: versions, identity)
    runs/cf_representation_<task>.csv   content-free rows for contextual calibration
    tidy/<experiment>.csv          every task's rows, with the continuous metrics (and, for the
                                   representation level, the calibrated prediction)
    tables/*.md                    each table in the paper's layout beside the paper's numbers
    report.md, report.html         all tables, the pattern checks (paper-spec §8), figures
    provenance.json                command, budget, versions, data files (sha256), model info

Everything outside ``runs/*.meta.json`` and ``timing.json`` is a function of the command and the
inputs only (no clocks, no absolute paths), so a rerun reproduces it byte for byte; a rerun also
resumes every run that is not complete. :mod:`icl_tokens.analysis.report` renders the tables and
the report from a folder without a model (notebook 06).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from .executors.scorer import ModelScorer
from .experiments.registry import EXPERIMENTS
from .tasks import PAPER_TASKS

__all__ = ["Budget", "BUDGETS", "TABLES", "EXPERIMENTS", "experiments_for", "parse_tables",
           "reproduce", "default_out_dir", "PAPER_TASKS", "parse_tasks"]

#: Every table ``reproduce`` makes.
TABLES = tuple(sorted({t for e in EXPERIMENTS.values() for t in e.tables}))


@dataclass(frozen=True)
class Budget:
    """How much of the paper's protocol a run covers (paper-spec §4)."""

    name: str
    seeds: tuple[int, ...]
    n_test: int
    k: int = 4
    description: str = ""
    #: The random-string templates of Tables 8-10 (paper-spec §6.1) that are run.
    numbers: tuple[int, ...] = (1, 2, 3, 4, 5)


BUDGETS: dict[str, Budget] = {
    "smoke": Budget("smoke", (0,), 1, numbers=(1,), description="1 seed x 1 test example, "
                    "random-string template #1 only: checks the pipeline end to end (CI); the "
                    "numbers mean nothing"),
    "small": Budget("small", (0, 1), 12, description="2 seeds x 12 test examples, all five "
                    "random-string templates: every table on six tasks took 101 min with "
                    "Gemma-3-270M on one CPU core (Tables 2, 3 and 15 alone 14 min)"),
    "pilot": Budget("pilot", (0, 1, 2), 40, description="3 seeds x 40 test examples: a pilot "
                    "whose variance components feed the budget planner (python -m icl_tokens "
                    "power); Tables 2, 3 and 15 on the six tasks took about 40 min with "
                    "Gemma-3-270M on this 2-core CPU"),
    "planned": Budget("planned", tuple(range(10)), 80, description="10 seeds x 80 test examples: "
                      "what the planner asks, from the pilot, to detect a 5-point paired "
                      "difference between each Standard ICL − X condition and Standard ICL with "
                      "80% power on the tasks where Gemma-3-270M does ICL (Table 2's Zero-shot "
                      "+ X pairs vary far more by seed and need more seeds)"),
    "paper": Budget("paper", tuple(range(15)), 500, description="the paper's protocol: 15 seeds "
                    "x 500 test examples, k = 4"),
}


def parse_tables(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"all"`` or ``"2,3,15"`` → table numbers in :data:`TABLES` order (errors name the
    valid ones)."""
    if isinstance(text, str):
        if text.strip() == "all":
            return TABLES
        try:
            wanted = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"--tables takes 'all' or numbers like 2,3,15; got {text!r}.") \
                from None
    else:
        wanted = [int(x) for x in text]
    bad = sorted(set(wanted) - set(TABLES))
    if bad or not wanted:
        raise ValueError(f"tables {bad or wanted} cannot be reproduced; choose from "
                         f"{list(TABLES)} or 'all' (Tables 7, 11-13, 16-20 hold no results).")
    return tuple(t for t in TABLES if t in wanted)


def experiments_for(tables: Sequence[int]) -> list[str]:
    """The experiments the tables need, in a fixed order."""
    return [name for name, e in EXPERIMENTS.items() if set(e.tables) & set(tables)]


def parse_tasks(tasks: Sequence[str] | str | None) -> list[str]:
    """``None`` → the paper's six tasks; a comma-separated string or sequence → its names
    (an empty list, ``""`` or ``","``, is an error rather than all six)."""
    from .tasks import load_task

    if tasks is None:
        return list(PAPER_TASKS)
    items = tasks.split(",") if isinstance(tasks, str) else [str(t) for t in tasks]
    out = list(dict.fromkeys(t.strip() for t in items if t.strip()))
    if not out:
        raise ValueError(f"--tasks {tasks!r} names no task; give e.g. sst2,agnews or leave "
                         f"it out for the paper's six ({','.join(PAPER_TASKS)}).")
    for t in out:
        load_task(t)  # a bad task name fails before anything runs
    return out


def default_out_dir(model: str, budget: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(model).name)
    return Path("results") / f"reproduce-{safe}-{budget}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _data_provenance(task: str, data_source: str | None) -> dict[str, Any]:
    """Where a task's data came from, without machine paths: source kind, file names, sha256."""
    from .data import load_task_data
    from .tasks import load_task

    data = load_task_data(load_task(task), source=data_source)
    loc = Path(str(data.location))
    files = {}
    if loc.is_dir():
        files = {p.name: _sha256(p) for p in sorted(loc.iterdir()) if p.is_file()}
    elif loc.is_file():
        files = {loc.name: _sha256(loc)}
    notes = str(data.notes).replace(str(data.location), f"<data>/{loc.name}")
    return {"source": data.source, "files": files, "notes": notes}


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def reproduce(
    tables: Sequence[int] | str = "all",
    *,
    model: str = "gemma-3-270m",
    tasks: Sequence[str] | None = None,
    budget: str | Budget = "smoke",
    out_dir: str | Path | None = None,
    scoring: str = "generate",
    paper_model: str = "Llama-7B",
    batch_size: int = 16,
    device: str | None = None,
    dtype: str = "float32",
    data_source: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    command: str | None = None,
    executor: Any = None,
) -> Path:
    """Run (or resume) every experiment the tables need, then write the tidy data, the tables,
    the report and the provenance into ``out_dir``; returns the folder.

    Everything is checked before the model loads: tables, budget, tasks (``[]`` is an error;
    ``None`` the paper's six), the folder (writable; a folder of an earlier run must be rerun
    with the same tables, tasks, model and budget); a second ``reproduce`` on the same folder is
    refused while this one runs.

    ``executor`` (a :class:`~icl_tokens.executors.ray_executor.RayExecutor`) scores every run's
    work units and the content-free rows on its workers, which load the model once for the
    whole folder; the driver never loads it, and the folder is the same as a local run's.
    """
    from .results import FolderLock, check_output_path

    tables = parse_tables(tables)
    b = BUDGETS[budget] if isinstance(budget, str) and budget in BUDGETS else budget
    if not isinstance(b, Budget):
        raise ValueError(f"unknown budget {budget!r}; choose one of {list(BUDGETS)}.")
    tasks = parse_tasks(tasks)
    out = Path(out_dir) if out_dir is not None else default_out_dir(model, b.name)
    check_output_path(out / "provenance.json", "results/reproduce-x", option="--out-dir")
    _check_same_run(out, tables, tasks, model, b.name)
    with FolderLock(out):
        t0 = time.time()
        provenance_data = {t: _data_provenance(t, data_source) for t in tasks}
        timing: dict[str, float] = {}
        common = dict(model=model, seeds=b.seeds, k=b.k, n_test=b.n_test, scoring=scoring,
                      engine="cached", batch_size=batch_size, dtype=dtype, device=device,
                      data_source=data_source)
        worker = ModelScorer(common, executor)
        exps = experiments_for(tables)
        stages = _stage_bar(len(exps) * len(tasks), progress)
        try:
            for exp in exps:
                _run_tasks(exp, tasks, common, tables, b, out, worker, progress, log,
                           timing, stages)
        finally:
            if stages is not None:
                stages.close()
        provenance = _provenance(command, tables, tasks, model, b, paper_model, scoring, dtype,
                                 worker.model_info(), provenance_data)
        _write_text(out / "provenance.json", json.dumps(provenance, indent=2, sort_keys=True)
                    + "\n")
        from .analysis.report import write_report

        write_report(out)
        timing["total"] = round(time.time() - t0, 1)
        log(f"results: {out} ({timing['total']:.0f} s)")
        _write_text(out / "timing.json", json.dumps(_add_timing(out / "timing.json", timing),
                                                    indent=2) + "\n")
    return out


def _check_same_run(out: Path, tables: Sequence[int], tasks: Sequence[str], model: str,
                    budget: str) -> None:
    """A folder that holds an earlier run is only resumed by the same run (a narrower
    ``--tasks`` would silently rewrite its tidy data, report and provenance)."""
    prov_path = out / "provenance.json"
    if not prov_path.is_file():
        return
    try:
        prov = json.loads(prov_path.read_text(encoding="utf-8"))
        old = {"tables": list(prov["tables"]), "tasks": list(prov["tasks"]),
               "model": prov["model"], "budget": prov["budget"]["name"]}
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{prov_path}: not a reproduce provenance file ({e}); use another "
                         "--out-dir.") from None
    new = {"tables": list(tables), "tasks": list(tasks), "model": model, "budget": budget}
    diff = [f"{k} {old[k]} (now {new[k]})" for k in old if old[k] != new[k]]
    if diff:
        raise ValueError(f"{out} holds the run with {'; '.join(diff)}; rerun it with the same "
                         "--tables, --tasks, --model and --budget to resume it, or give a new "
                         "--out-dir.")


def _stage_bar(total: int, enabled: bool) -> Any:
    """A tqdm bar over the (experiment, task) runs, or None when progress is off."""
    if not enabled or not total:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="reproduce", unit="run", file=sys.stderr)


def _run_tasks(exp: str, tasks: Sequence[str], common: dict[str, Any], tables: Sequence[int],
               b: Budget, out: Path, worker: ModelScorer, progress: bool,
               log: Callable[[str], None], timing: dict[str, float], stages: Any = None) -> None:
    """One experiment on every task (resumable runs), then its tidy rows; ``stages`` (a bar
    over the runs) advances once per task."""
    from .results.tidy import read_rows

    e = EXPERIMENTS[exp]
    frames = []
    for task in tasks:
        cfg = e.config_for({**common, "task": task}, tables, numbers=b.numbers)
        path = out / "runs" / f"{exp}_{task}.csv"
        log(f"[{exp} {task}] -> {path}")
        if stages is not None:
            stages.set_postfix_str(f"{exp} {task}")
        t1 = time.time()
        worker.run(cfg, path, progress, log)
        if e.content_free:
            _content_free(cfg, worker, out / "runs" / f"cf_{exp}_{task}.csv", log)
        timing[f"{exp}_{task}"] = round(time.time() - t1, 1)
        if stages is not None:
            stages.update(1)
        frames.append(read_rows(path))
    _write_tidy(exp, frames, out)


def _provenance(command: str | None, tables: Sequence[int], tasks: Sequence[str], model: str,
                b: Budget, paper_model: str, scoring: str, dtype: str, info: dict[str, Any],
                data: dict[str, Any]) -> dict[str, Any]:
    from .models import library_versions

    return {
        "command": command or "python -m icl_tokens reproduce "
                   f"--tables {','.join(str(t) for t in tables)} --model {model} "
                   f"--tasks {','.join(tasks)} --budget {b.name}",
        "tables": list(tables), "tasks": list(tasks), "experiments": experiments_for(tables),
        "model": model, "paper_model": paper_model, "scoring": scoring, "dtype": dtype,
        "budget": {"name": b.name, "seeds": list(b.seeds), "n_test": b.n_test, "k": b.k,
                   "numbers": list(b.numbers), "description": b.description},
        "versions": library_versions(),
        "model_info": {k: v for k, v in info.items()
                       if k not in ("model_dir", "device")},
        "data": data,
    }


def _add_timing(path: Path, timing: dict[str, float]) -> dict[str, float]:
    """This invocation's seconds added to those of earlier invocations on the same folder (a
    resumed run's wall time is the sum; ``invocations`` counts them; one killed before it
    finished recorded nothing)."""
    old = json.loads(path.read_text()) if path.is_file() else {}
    out = {k: round(old.get(k, 0.0) + v, 1) for k, v in timing.items()}
    out.update({k: v for k, v in old.items() if k not in out})
    out["invocations"] = int(old.get("invocations", 0)) + 1
    return out


def _content_free(cfg: Any, worker: ModelScorer, path: Path, log: Callable[[str], None]) -> None:
    """The content-free rows of a run (for contextual calibration) in a resumable results file
    keyed like every run: a torn or short file is repaired and completed, never trusted."""
    from .analysis.calibration import CONTENT_FREE
    from .data import load_task_data
    from .experiments.runner import result_columns, run_identity
    from .results import ResultsFile
    from .tasks import load_task

    task = load_task(cfg.task)
    data = load_task_data(task, source=cfg.data_source)
    names = cfg.condition_names()
    expected = {(str(s), f"content-free:{i}", c) for s in cfg.seeds
                for i in range(len(CONTENT_FREE)) for c in names}
    identity = {**run_identity(cfg, task, data, worker.device(cfg)),
                "content_free": list(CONTENT_FREE)}
    with ResultsFile(path, result_columns(task, ("content_free",)), identity, {},
                     expected_keys=expected) as store:
        for n in store.notes:
            log(f"{store.path}: {n}")
        if expected <= store.done:
            return
        df = worker.content_free(cfg)
        rows = [r for r in df.to_dict("records")
                if not store.is_done(int(r["seed"]), str(r["example_id"]), str(r["condition"]))]
        for r in rows:
            for c in r:
                if c.startswith("score_"):
                    r[c] = f"{float(r[c]):.6f}"
        store.append(rows)
        store.canonicalize(sorted(expected, key=lambda k: (int(k[0]), k[1], names.index(k[2]))))


def _write_tidy(exp: str, frames: list[pd.DataFrame], out: Path) -> None:
    """``tidy/<exp>.csv``: the runs' rows of every task, with the continuous metrics and, for
    the representation level, the calibrated prediction."""
    from .analysis.metrics import add_continuous_metrics

    df = pd.concat(frames, ignore_index=True)
    df = add_continuous_metrics(df)
    if exp == "representation":
        from .analysis.calibration import calibrate
        from .results.tidy import read_rows

        cf = pd.concat([read_rows(p) for p in sorted((out / "runs").glob(f"cf_{exp}_*.csv"))
                        if p.stem.removeprefix(f"cf_{exp}_") in set(df["task"])],
                       ignore_index=True)
        df = calibrate(df, cf)
    (out / "tidy").mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "tidy" / f"{exp}.csv", index=False, float_format="%.6f")
