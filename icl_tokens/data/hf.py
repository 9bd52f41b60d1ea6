"""The ``"hf"`` source: Hugging Face ``datasets`` (online on first use, then its cache).

Datasets: ``stanfordnlp/sst2`` (train / validation), ``fancyzhx/ag_news`` (train / test),
``CogComp/trec`` (train / test, coarse labels), ``fancyzhx/dbpedia_14`` (train / test) and
``super_glue`` ``rte``/``cb`` (train / validation). Labels are converted to the raw labels of the
CBU files (AG News and DBpedia 1-based, TREC and SuperGLUE by their ClassLabel names), and texts
get the same cleaning as there. Example ids are ``"<HF split>:<row>"``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Mapping

from ..tasks import TaskSpec
from .common import (
    DataUnavailableError,
    TaskData,
    _check_fields,
    _dropped_note,
    _Row,
    _strip,
    _to_examples,
    clean_agnews_text,
    clean_trec,
)

__all__ = ["hub_location", "import_datasets", "load_hf"]


@dataclass(frozen=True)
class _HFLayout:
    """A hub dataset: id, config, splits, text columns, label column and label conversion."""

    path: str
    config: str | None
    pool_split: str
    eval_split: str
    columns: Mapping[str, str]
    label_column: str
    label_kind: str  # "int": str(i); "plus1": str(i + 1); "names": the ClassLabel name
    clean: Callable[[str], str] = _strip

    @property
    def location(self) -> str:
        return self.path + (f"/{self.config}" if self.config else "")


_HF_LAYOUTS: dict[str, _HFLayout] = {
    "sst2": _HFLayout("stanfordnlp/sst2", None, "train", "validation", {"text": "sentence"},
                      "label", "int"),
    "agnews": _HFLayout("fancyzhx/ag_news", None, "train", "test", {"text": "text"}, "label",
                        "plus1", lambda t: clean_agnews_text(t).strip()),
    "trec": _HFLayout("CogComp/trec", None, "train", "test", {"text": "text"}, "coarse_label",
                      "names", clean_trec),
    "dbpedia": _HFLayout("fancyzhx/dbpedia_14", None, "train", "test", {"text": "content"},
                         "label", "plus1"),
    "rte": _HFLayout("super_glue", "rte", "train", "validation",
                     {"hypothesis": "hypothesis", "premise": "premise"}, "label", "names"),
    "cb": _HFLayout("super_glue", "cb", "train", "validation",
                    {"hypothesis": "hypothesis", "premise": "premise"}, "label", "names"),
}


def hub_location(task: str) -> str | None:
    """The hub dataset used for ``task`` (``"super_glue/rte"``), or ``None`` without a loader."""
    layout = _HF_LAYOUTS.get(task)
    return layout.location if layout else None


def import_datasets() -> ModuleType | None:
    """The ``datasets`` module, or ``None`` when it is not installed."""
    try:
        return importlib.import_module("datasets")
    except ImportError:
        return None


def _hf_label_fn(layout: _HFLayout, ds: Any) -> Callable[[int], str]:
    if layout.label_kind == "plus1":
        return lambda i: str(int(i) + 1)
    if layout.label_kind == "names":
        names = list(ds.features[layout.label_column].names)
        return lambda i: names[int(i)] if 0 <= int(i) < len(names) else str(i)
    return lambda i: str(int(i))


def _hf_rows(layout: _HFLayout, ds: Any) -> list[_Row]:
    to_label = _hf_label_fn(layout, ds)
    labels = list(ds[layout.label_column])
    cols = {f: list(ds[c]) for f, c in layout.columns.items()}
    return [
        _Row(i, to_label(lab), {f: layout.clean(str(cols[f][i] or "")) for f in cols})
        for i, lab in enumerate(labels)
    ]


def load_hf(spec: TaskSpec, datasets: ModuleType, fallback: str = "") -> TaskData:
    """Pool and eval splits from the Hugging Face hub (needs network on first use).

    Args:
        spec: The task.
        datasets: The ``datasets`` module (see :func:`import_datasets`).
        fallback: Appended to the notes (why the earlier sources were skipped).
    """
    if spec.name not in _HF_LAYOUTS:
        raise DataUnavailableError(
            f"no Hugging Face loader for {spec.name!r} (known: {sorted(_HF_LAYOUTS)})."
        )
    layout = _HF_LAYOUTS[spec.name]
    _check_fields(spec, tuple(layout.columns))
    parts = []
    for split, role in ((layout.pool_split, "pool"), (layout.eval_split, "eval")):
        args = (layout.path, layout.config) if layout.config else (layout.path,)
        try:
            ds = datasets.load_dataset(*args, split=split)
        except Exception as e:  # noqa: BLE001 - network/hub errors vary; re-raised with options
            raise DataUnavailableError(
                f"loading {layout.location} split {split!r} from the Hugging Face hub failed "
                f"({type(e).__name__}: {e})."
            ) from e
        where = f"{layout.location}[{split}]"
        parts.append(_to_examples(_hf_rows(layout, ds), split, spec, where, role))
    (pool, p_drop), (ev, e_drop) = parts
    notes = (
        f"{spec.name} from Hugging Face {layout.location}: pool = {layout.pool_split} "
        f"({len(pool)}), eval = {layout.eval_split} ({len(ev)}); {_dropped_note(p_drop, e_drop)}"
        + fallback
    )
    return TaskData(spec.name, pool, ev, "hf", layout.location, notes)
