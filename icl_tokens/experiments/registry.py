"""Experiments declared as data: each is its config class, the settings it fixes, its paper
tables and its pattern checks. ``reproduce``, ``ablate --level``, calibration, the report and the
verdicts read these declarations; the one runner (:func:`~icl_tokens.experiments.runner.run_config`)
runs any of them.

Adding an experiment: write its config (a :class:`~icl_tokens.experiments.config.RunConfig` whose
``build_items`` turns an episode into items, usually from registered conditions) and its
``PATTERNS`` in one module, and declare it here.

    >>> [e.name for e in EXPERIMENTS.values() if 4 in e.tables]
    ['token']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from . import representation, template_parts, token_level, variants
from .claims import Pattern
from .config import RunConfig

__all__ = ["Experiment", "EXPERIMENTS", "experiment", "experiment_for", "all_patterns",
           "ABLATE_LEVELS"]


@dataclass(frozen=True)
class Experiment:
    """One experiment of the paper (or beyond it).

    Attributes:
        name: Its key (``reproduce`` writes ``runs/<name>_<task>.csv``).
        config: Its config class.
        tables: The paper tables it feeds.
        patterns: Its paper-spec §8 pattern checks.
        settings: Config fields this experiment fixes (e.g. Table 14's NLTK stopwords).
        content_free: Whether ``reproduce`` scores content-free rows for calibration.
        level: Its ``ablate --level`` name (``None``: not run by ``ablate``).
    """

    name: str
    config: type[RunConfig]
    tables: tuple[int, ...]
    patterns: tuple[Pattern, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    content_free: bool = False
    level: str | None = None

    def config_for(self, common: Mapping[str, Any], tables: Sequence[int] = (),
                   **extra: Any) -> RunConfig:
        """The config of one run: ``common`` fields, this experiment's settings, and of
        ``extra`` (and ``tables``) those fields the config has."""
        names = {f.name for f in dataclasses.fields(self.config)}
        fields = {**common, **self.settings}
        if "tables" in names:
            fields["tables"] = tuple(t for t in tables if t in self.tables) or self.tables
        fields.update({k: v for k, v in extra.items() if k in names})
        return self.config(**fields)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("representation", representation.AblationConfig, (2, 3, 15),
               representation.PATTERNS, content_free=True, level="representation"),
    Experiment("nltk", representation.AblationConfig, (14,),
               settings={"stopword_variant": "nltk", "hide_bos": True}),
    Experiment("token", token_level.TokenAblationConfig, (4,), token_level.PATTERNS,
               level="token"),
    Experiment("parts", template_parts.PartsConfig, (5, 6), template_parts.PATTERNS,
               level="template-parts"),
    Experiment("variants", variants.VariantsConfig, (8, 9, 10), variants.PATTERNS),
)}
#: ``ablate --level`` → experiment.
ABLATE_LEVELS: dict[str, Experiment] = {e.level: e for e in EXPERIMENTS.values() if e.level}


def experiment(name: str) -> Experiment:
    """The experiment called ``name``; a clear error if unknown."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {list(EXPERIMENTS)}.")
    return EXPERIMENTS[name]


def experiment_for(cfg: RunConfig) -> Experiment:
    """The declared experiment whose config class ``cfg`` is (the first, for shared ones)."""
    for e in EXPERIMENTS.values():
        if type(cfg) is e.config:
            return e
    raise ValueError(f"{type(cfg).__name__} is not a declared experiment's config.")


def all_patterns() -> tuple[Pattern, ...]:
    """Every experiment's pattern checks, in the paper-spec's order."""
    return tuple(p for e in EXPERIMENTS.values() for p in e.patterns)
