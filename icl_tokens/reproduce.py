"""Reproduce the paper end to end (issue 11): every experiment behind Tables 2-6, 8-10, 14 and
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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

__all__ = ["Budget", "BUDGETS", "TABLES", "EXPERIMENTS", "experiments_for", "parse_tables",
           "reproduce", "default_out_dir", "PAPER_TASKS"]

#: The paper's six tasks, in its column order.
PAPER_TASKS = ("agnews", "sst2", "trec", "dbpedia", "rte", "cb")
#: Every table ``reproduce`` makes.
TABLES = (2, 3, 4, 5, 6, 8, 9, 10, 14, 15)
#: Experiment → the tables it feeds.
EXPERIMENTS: dict[str, tuple[int, ...]] = {
    "representation": (2, 3, 15), "nltk": (14,), "token": (4,), "parts": (5, 6),
    "variants": (8, 9, 10),
}


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
    return [e for e, ts in EXPERIMENTS.items() if set(ts) & set(tables)]


def default_out_dir(model: str, budget: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(model).name)
    return Path("results") / f"reproduce-{safe}-{budget}"


def _config(experiment: str, common: dict[str, Any], tables: Sequence[int],
            numbers: Sequence[int] = (1, 2, 3, 4, 5)) -> Any:
    """The experiment's config for one task."""
    if experiment in ("representation", "nltk"):
        from .representation import AblationConfig

        extra = dict(stopword_variant="nltk", hide_bos=True) if experiment == "nltk" else {}
        return AblationConfig(**common, **extra)
    if experiment == "token":
        from .token_level import TokenAblationConfig

        return TokenAblationConfig(**common)
    if experiment == "parts":
        from .template_parts import PartsConfig

        return PartsConfig(**common)
    from .variants import VariantsConfig

    return VariantsConfig(**common, tables=tuple(t for t in tables if t in (8, 9, 10)),
                          numbers=tuple(numbers))


def _runner(experiment: str) -> Callable[..., pd.DataFrame]:
    if experiment in ("representation", "nltk"):
        from .representation import run_ablation

        return run_ablation
    if experiment == "token":
        from .token_level import run_token_ablation

        return run_token_ablation
    if experiment == "parts":
        from .template_parts import run_template_parts

        return run_template_parts
    from .variants import run_variants

    return run_variants


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"example_id": str, "gold": str, "prediction": str,
                                    "label_prediction": str, "continuation": str},
                       keep_default_na=False)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _data_provenance(task: str, data_source: str | None) -> dict[str, Any]:
    """Where a task's data came from, without machine paths: source kind, file names, sha256."""
    from ..data import load_task_data
    from ..tasks import load_task

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
) -> Path:
    """Run (or resume) every experiment the tables need, then write the tidy data, the tables,
    the report and the provenance into ``out_dir``; returns the folder."""
    import torch

    from ..models import library_versions, load_model, load_tokenizer, model_info
    from ..tasks import load_task

    tables = parse_tables(tables)
    b = BUDGETS[budget] if isinstance(budget, str) and budget in BUDGETS else budget
    if not isinstance(b, Budget):
        raise ValueError(f"unknown budget {budget!r}; choose one of {list(BUDGETS)}.")
    tasks = list(tasks) if tasks else list(PAPER_TASKS)
    for t in tasks:
        load_task(t)  # a bad task name fails before anything runs
    out = Path(out_dir) if out_dir is not None else default_out_dir(model, b.name)
    exps = experiments_for(tables)
    t0 = time.time()
    provenance_data = {t: _data_provenance(t, data_source) for t in tasks}
    bridge = load_model(model, device=device, dtype=getattr(torch, dtype))
    tok = load_tokenizer(model)
    torch.set_grad_enabled(False)
    timing: dict[str, float] = {}
    for exp in exps:
        frames = []
        for task in tasks:
            common = dict(model=model, task=task, seeds=b.seeds, k=b.k, n_test=b.n_test,
                          scoring=scoring, engine="cached", batch_size=batch_size,
                          dtype=dtype, device=device, data_source=data_source)
            cfg = _config(exp, common, tables, b.numbers)
            path = out / "runs" / f"{exp}_{task}.csv"
            log(f"[{exp} {task}] -> {path}")
            t1 = time.time()
            _runner(exp)(cfg, model=bridge, tokenizer=tok, out=path, progress=progress,
                         log=log)
            if exp == "representation":
                _content_free(cfg, bridge, tok, out / "runs" / f"cf_representation_{task}.csv")
            timing[f"{exp}_{task}"] = round(time.time() - t1, 1)
            frames.append(_read_csv(path))
        _write_tidy(exp, frames, out)
    provenance = {
        "command": command or "python -m icl_tokens reproduce "
                   f"--tables {','.join(str(t) for t in tables)} --model {model} "
                   f"--tasks {','.join(tasks)} --budget {b.name}",
        "tables": list(tables), "tasks": tasks, "experiments": exps, "model": model,
        "paper_model": paper_model, "scoring": scoring, "dtype": dtype,
        "budget": {"name": b.name, "seeds": list(b.seeds), "n_test": b.n_test, "k": b.k,
                   "numbers": list(b.numbers), "description": b.description},
        "versions": library_versions(),
        "model_info": {k: v for k, v in model_info(bridge).items()
                       if k not in ("model_dir", "device")},
        "data": provenance_data,
    }
    _write_text(out / "provenance.json", json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    from ..analysis.report import write_report

    write_report(out)
    timing["total"] = round(time.time() - t0, 1)
    log(f"results: {out} ({timing['total']:.0f} s)")
    _write_text(out / "timing.json", json.dumps(_add_timing(out / "timing.json", timing),
                                                indent=2) + "\n")
    return out


def _add_timing(path: Path, timing: dict[str, float]) -> dict[str, float]:
    """This invocation's seconds added to those of earlier invocations on the same folder (a
    resumed run's wall time is the sum; ``invocations`` counts them; one killed before it
    finished recorded nothing)."""
    old = json.loads(path.read_text()) if path.is_file() else {}
    out = {k: round(old.get(k, 0.0) + v, 1) for k, v in timing.items()}
    out.update({k: v for k, v in old.items() if k not in out})
    out["invocations"] = int(old.get("invocations", 0)) + 1
    return out


def _content_free(cfg: Any, model: Any, tok: Any, path: Path) -> None:
    """The content-free rows of a representation run (cheap; recomputed only if missing)."""
    from ..analysis.calibration import content_free_rows

    if path.exists():
        return
    df = content_free_rows(cfg, model=model, tokenizer=tok)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format="%.6f")


def _write_tidy(exp: str, frames: list[pd.DataFrame], out: Path) -> None:
    """``tidy/<exp>.csv``: the runs' rows of every task, with the continuous metrics and, for
    the representation level, the calibrated prediction."""
    from ..analysis.metrics import add_continuous_metrics

    df = pd.concat(frames, ignore_index=True)
    df = add_continuous_metrics(df)
    if exp == "representation":
        from ..analysis.calibration import calibrate

        cf = pd.concat([pd.read_csv(p, dtype={"example_id": str}, keep_default_na=False)
                        for p in sorted((out / "runs").glob("cf_representation_*.csv"))
                        if p.stem.removeprefix("cf_representation_") in set(df["task"])],
                       ignore_index=True)
        df = calibrate(df, cf)
    (out / "tidy").mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "tidy" / f"{exp}.csv", index=False, float_format="%.6f")
