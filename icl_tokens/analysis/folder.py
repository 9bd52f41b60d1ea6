"""A ``reproduce`` results folder as data: its provenance and each experiment's tidy rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..results.tidy import read_tidy

__all__ = ["Results", "load_results", "read_provenance", "display_model"]


@dataclass
class Results:
    """A results folder: its provenance and each experiment's tidy rows."""

    folder: Path
    provenance: dict[str, Any]
    tidy: dict[str, pd.DataFrame]

    @property
    def model(self) -> str:
        return str(self.provenance["model"])

    @property
    def paper_model(self) -> str:
        return str(self.provenance.get("paper_model", "Llama-7B"))

    def note(self) -> str:
        b = self.provenance["budget"]
        srcs = sorted({d["source"] for d in self.provenance["data"].values()})
        ex = "test example" if b["n_test"] == 1 else "test examples"
        return (f"model {display_model(self)}; budget {b['name']} (seeds {b['seeds']}, "
                f"{b['n_test']} {ex} per seed, k = {b['k']}); data source {', '.join(srcs)}")


#: What ``reproduce`` writes into ``provenance.json`` and the reports read: key → type.
_PROVENANCE: dict[str, type] = {"command": str, "tables": list, "tasks": list,
                                "experiments": list, "model": str, "budget": dict,
                                "versions": dict, "model_info": dict, "data": dict}
_BUDGET: dict[str, type] = {"name": str, "seeds": list, "n_test": int, "k": int}
_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def _provenance_problem(prov: Any) -> str | None:
    """What is wrong with a parsed ``provenance.json`` (None when nothing is)."""
    if not isinstance(prov, dict):
        return f"the file holds {type(prov).__name__}, not an object"
    for where, obj, schema in (("", prov, _PROVENANCE), ("budget.", prov.get("budget"), _BUDGET)):
        if not isinstance(obj, dict):
            continue  # a budget that is not an object is reported by the first pass
        for key, kind in schema.items():
            if key not in obj:
                return f"no key {where}{key!r}"
            if not isinstance(obj[key], kind) or isinstance(obj[key], bool):
                return (f"{where}{key} is {type(obj[key]).__name__}, not "
                        f"{_JSON_NAMES[kind]}")
    if "paper_model" in prov and not isinstance(prov["paper_model"], str):
        return "paper_model is not a string"
    bad = [t for t, d in prov["data"].items() if not isinstance(d, dict) or "source" not in d]
    if bad:
        return f"data[{bad[0]!r}] has no 'source'"
    return None


def read_provenance(path: Path) -> dict[str, Any]:
    """The parsed ``provenance.json`` of a results folder, checked for what the reports read.

    Raises:
        ValueError: the file is not JSON, or lacks a key (or has one of the wrong type); the
            message names the file, the problem and the fix.
    """
    try:
        prov = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        problem: str | None = f"not JSON: {e}"
    else:
        problem = _provenance_problem(prov)
    if problem is not None:
        raise ValueError(f"{path}: not a valid provenance file ({problem}); rerun the reproduce "
                         "command that made the folder (it resumes and rewrites it).")
    return prov


def load_results(folder: str | Path) -> Results:
    """Read ``provenance.json`` and ``tidy/*.csv`` of a results folder."""
    folder = Path(folder)
    prov_path = folder / "provenance.json"
    if not prov_path.is_file():
        raise FileNotFoundError(f"{folder} is not a results folder (no provenance.json); make "
                                "one with `python -m icl_tokens reproduce`.")
    prov = read_provenance(prov_path)
    tidy = {}
    for exp in prov["experiments"]:
        p = folder / "tidy" / f"{exp}.csv"
        if not p.is_file() and p.with_suffix(".csv.gz").is_file():
            p = p.with_suffix(".csv.gz")
        if not p.is_file():
            raise FileNotFoundError(f"{p} is missing; rerun the reproduce command (it resumes).")
        tidy[exp] = read_tidy(p)
    return Results(folder, prov, tidy)


def display_model(res: Results) -> str:
    """The model's name as a reader should see it (the checkpoint, e.g. *Instruct*)."""
    from ..models.registry import KNOWN_MODELS

    desc = KNOWN_MODELS.get(res.model, "")
    return f"{res.model} ({desc.split(' (')[0]})" if desc else res.model
