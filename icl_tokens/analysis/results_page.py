"""``docs/results.md``: what committed results folders conclude, regenerated from their rows.

    python -m icl_tokens report docs/results/FOLDER ... --doc docs/results.md --note '...'

The page reads only the folders (``provenance.json``, ``timing.json`` and ``tidy/*.csv[.gz]``),
so anyone can regenerate it byte for byte from the repository (a test does).
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Sequence

from .findings import DECISION_METRICS, folder_verdicts
from .folder import display_model, load_results
from .markdown import markdown_table
from .report import paper_tables, render_markdown

__all__ = ["results_doc", "WHY"]

#: Why a pattern may not reproduce on these models.
WHY = (
    "Why a pattern may not reproduce here: the models are 135M and 270M parameters against the "
    "paper's 3B-30B (the paper itself finds the effects grow with size); the weights are 4-bit "
    "GGUF quantisations dequantised to float32; SmolLM2-135M is the *Instruct* checkpoint (the "
    "paper's models are base models); the data are the CBU files (paper-spec §3); Gemma-3's "
    "local layers see only the last 512 tokens, so long prompts (CB, RTE) lose early "
    "demonstrations in those layers (see each folder's sliding-window table); and the prompts, "
    "the fixed test subset and the scoring rule follow the project's decisions where the paper "
    "is silent (paper-spec §10). An *inconclusive* verdict means the budget cannot tell, not "
    "that the pattern fails: each folder gives the smallest effect its budget detects.")


def _wall_line(timing: Path) -> str:
    """The sentence on the wall time a folder's ``timing.json`` recorded."""
    if not timing.is_file():
        return ("Wall time: not recorded (the folder has no `timing.json`; it is written by the "
                "`reproduce` run on the machine that made the folder).")
    try:
        t = json.loads(timing.read_text(encoding="utf-8"))
        total, n = float(t["total"]), int(t.get("invocations", 1))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError,
            AttributeError) as e:
        raise ValueError(f"{timing}: not a valid timing file ({type(e).__name__}: {e}); delete "
                         "it (the page then says the wall time is not recorded) or rerun the "
                         "reproduce command that made the folder.") from None
    return (f"Wall time recorded by the runs that made it: {total / 60:.0f} min on the "
            f"machine that made it (the sum over the {n} invocation{'s' * (n != 1)} that made "
            "and resumed it, from `timing.json`).")


def _cell(g) -> str:  # type: ignore[no-untyped-def]
    """A verdict with the effect and interval of each of its claims."""
    if not g["tasks"].iloc[0]:
        return f"**{g['verdict'].iloc[0]}** (no task where the model does ICL on this metric)"
    acc = g["metric"].iloc[0] in ("correct", "label_correct", "calibrated_correct")
    d = 1 if acc else 2
    parts = [f"{r['effect']:+.{d}f} [{r['ci_low']:+.{d}f}, {r['ci_high']:+.{d}f}]"
             if r["effect"] == r["effect"] else "n/a" for _, r in g.iterrows()]
    return f"**{g['verdict'].iloc[0]}** ({'; '.join(parts)})"


def _doc_dir(command: str, doc: str | Path | None) -> Path:
    """The folder the page is written to: ``doc``'s, else that of the command's ``--doc``, else
    the current directory (links to the figures are relative to it)."""
    if doc is None:
        argv = shlex.split(command)
        doc = argv[argv.index("--doc") + 1] if "--doc" in argv[:-1] else None
    return Path(doc).parent if doc is not None else Path(".")


def _figure_link(folder: str | Path, doc_dir: Path) -> str:
    """The link from the page to a folder's ``figures/`` (``report`` writes the SVGs there)."""
    return Path(os.path.relpath(Path(folder) / "figures", doc_dir)).as_posix()


def results_doc(folders: Sequence[str | Path], command: str, note: str | None = None, *,
                doc: str | Path | None = None) -> str:
    """The page: a summary of every folder's verdicts (per decision metric, with intervals),
    why patterns may not reproduce, then each folder's report with its figures.

    Figure links are relative to ``doc`` (where the page is written; default: the ``--doc`` of
    ``command``); the figures themselves are each folder's ``figures/*.svg``, written by
    :func:`~icl_tokens.analysis.report.write_report`."""
    doc_dir = _doc_dir(command, doc)
    results = [load_results(f) for f in folders]
    tables = [paper_tables(r) for r in results]
    verdict_rows = [folder_verdicts(r) for r in results]
    parts = ["# Measured results", "",
             f"Regenerate this page with `{command}` (it reads the committed folders below: "
             "their provenance, timing and tidy rows; each folder was made, and can be resumed, "
             "by the `reproduce` command shown in its section).", ""]
    if note:
        parts += [note, ""]
    parts += ["## Which of the paper's patterns hold (paper-spec §8)", "",
              "Three-state verdicts from the interval of each claim's paired effect (effect "
              "[95% CI] after each verdict; points for accuracies, nats for the margin), "
              "averaged over the tasks where the model does ICL on that metric.", ""]
    cols, keys = [], []
    for r, v in zip(results, verdict_rows):
        for m in v["metric"].unique() if len(v) else []:
            cols.append((r, v[v.metric == m], m))
    for _, v, _ in cols:
        keys += [k for k in dict.fromkeys(v["name"]) if k not in keys]
    if cols:
        header = ["pattern"] + [f"{r.model} ({r.provenance['budget']['name']}), "
                                f"{DECISION_METRICS.get(m, m)}" for r, _, m in cols]
        body = [[k] + [_cell(v[v.name == k]) if (v.name == k).any() else "not run"
                       for _, v, _ in cols] for k in keys]
        parts += [markdown_table(header, body), ""]
    parts += [WHY, ""]
    for f, res, t, v in zip(folders, results, tables, verdict_rows):
        body = render_markdown(res, t, v, figures=_figure_link(f, doc_dir)).split("\n", 1)[1]
        parts += [f"## {display_model(res)}, budget {res.provenance['budget']['name']}", "",
                  f"Folder: `{Path(f).as_posix()}`", "",
                  _wall_line(Path(f) / "timing.json"), body.replace("\n## ", "\n### "), ""]
    return "\n".join(parts)
