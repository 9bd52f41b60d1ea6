"""A ``reproduce`` results folder as data: its provenance and each experiment's tidy rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Results", "load_results", "display_model"]


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


def load_results(folder: str | Path) -> Results:
    """Read ``provenance.json`` and ``tidy/*.csv`` of a results folder."""
    folder = Path(folder)
    prov_path = folder / "provenance.json"
    if not prov_path.is_file():
        raise FileNotFoundError(f"{folder} is not a results folder (no provenance.json); make "
                                "one with `python -m icl_tokens reproduce`.")
    from ..results.tidy import read_tidy

    try:
        prov = json.loads(prov_path.read_text(encoding="utf-8"))
        experiments = list(prov["experiments"])
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise ValueError(f"{prov_path}: not a valid provenance file ({e}); rerun the reproduce "
                         "command that made the folder.") from None
    tidy = {}
    for exp in experiments:
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
