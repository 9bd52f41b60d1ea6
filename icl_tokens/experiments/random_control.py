"""The count-matched random control: is "TEMP matters more than CONT" a
token-count artefact?

For every category condition of the representation level, the control hides as many
demonstration tokens as the condition hides, drawn uniformly at random from the tokens any
condition may hide (demonstration tokens with a kind; never BOS, the instruction, the label words
or the test example). Draws are made per seed (the demonstrations are shared by an episode's test
examples, so one draw hides the same positions for all of them) from a generator seeded by
``(seed, condition, draw)``. Rows: condition ``rand(+template)#0`` ..., with the columns
``matched`` (the condition), ``draw`` and ``n_hidden`` (positions hidden).

    >>> cfg = RandomControlConfig(conditions=("+template", "icl-content"), draws=3)
    >>> control_names(cfg.conditions, cfg.draws)[:3]
    ['+template', 'rand(+template)#0', 'rand(+template)#1']
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np
import pandas as pd

from ..ablation.conditions import ZERO_SHOT, hidden_categories, parse_conditions
from ..ablation.knockout import Block, Knockout
from ..ablation.selection import KINDS, Sel, key_rule
from ..engine.items import Item
from ..episodes import Episode
from .config import RunConfig
from .items import prompt_item
from .runner import RunContext, run_config

__all__ = ["RandomControlConfig", "run_random_control", "control_names", "matched_positions",
           "hideable", "CONTROL_COLUMNS", "control_table"]

CONTROL_COLUMNS = ("matched", "draw", "n_hidden")


def control_names(conditions: Sequence[str], draws: int) -> list[str]:
    """Row conditions: each condition itself, then its draws ``rand(<condition>)#<d>``."""
    out: list[str] = []
    for c in conditions:
        out += [c] + [f"rand({c})#{d}" for d in range(draws)]
    return out


def hideable(codes: np.ndarray) -> np.ndarray:
    """Bool ``[pos]``: positions some condition may hide (the key rule with every kind hidden)."""
    return key_rule(np.asarray(codes), KINDS)


def matched_positions(codes: np.ndarray, condition: str, seed: int, draw: int) -> np.ndarray:
    """The positions one draw hides: as many as ``condition`` hides, uniformly from
    :func:`hideable` (sorted int array)."""
    n = int(key_rule(np.asarray(codes), hidden_categories(condition)).sum())
    pool = np.flatnonzero(hideable(codes))
    if n > len(pool):  # cannot happen: a condition hides a subset of the pool
        raise AssertionError(f"{condition} hides {n} of {len(pool)} hideable positions")
    digest = hashlib.sha256(f"{seed}|{condition}|{draw}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return np.sort(rng.choice(pool, size=n, replace=False))


@dataclass
class RandomControlConfig(RunConfig):
    """The category conditions and how many random draws each gets."""

    conditions: tuple[str, ...] = ("+template", "+stopword", "+content", "icl-template",
                                   "icl-stopword", "icl-content")
    draws: int = 5

    level: ClassVar[str] = "random-control"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.conditions = tuple(parse_conditions(list(self.conditions)))
        bad = [c for c in self.conditions if c in (ZERO_SHOT, "icl") or c == "none"]
        if bad:
            raise ValueError(f"{bad} hide no category (or everything); the random control "
                             "matches category conditions such as +template or icl-content.")
        if int(self.draws) < 1:
            raise ValueError(f"draws must be >= 1, got {self.draws}.")
        if self.k < 1:
            raise ValueError("the random control needs demonstrations: use k >= 1.")

    def condition_names(self) -> list[str]:
        return control_names(self.conditions, self.draws)

    def build_items(self, ctx: RunContext, episode: Episode) -> list[Item]:
        """Each condition and its count-matched random draws, per test example."""
        return _control_items(ctx, episode, self)

    def extra_columns(self) -> tuple[str, ...]:
        return CONTROL_COLUMNS


def _control_items(ctx: RunContext, ep: Episode, cfg: RandomControlConfig) -> list[Item]:
    from ..ablation.conditions import knockout_for

    items: list[Item] = []
    for test in ep.tests:
        icl = prompt_item(ctx.task, ctx.tokenizer, ctx.labels, ep, test,
                          stopword_variant=cfg.stopword_variant)
        for c in cfg.conditions:
            ko = knockout_for(c)
            n = int(key_rule(np.asarray(icl.codes), hidden_categories(c)).sum())
            items.append(_with(icl.with_knockout(ko if ko.blocks else None, c), c, -1, n))
            for d in range(cfg.draws):
                pos = matched_positions(icl.codes, c, ep.seed, d)
                rko = Knockout((Block(Sel.test(), Sel.positions(pos.tolist())),),
                               name=f"rand({c})#{d}")
                items.append(_with(icl.with_knockout(rko if len(pos) else None,
                                                     f"rand({c})#{d}"), c, d, len(pos)))
    return items


def _with(it: Item, matched: str, draw: int, n: int) -> Item:
    return dataclasses.replace(it, meta={**it.meta, "matched": matched, "draw": draw,
                                         "n_hidden": n})


#: Run (or resume) each condition and its count-matched random draws (the one runner).
run_random_control = run_config


def control_table(df: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """Per matched condition: its accuracy (%), the random draws' mean and spread (std and
    min–max over draws, each draw's accuracy over all seeds and examples), and the gap."""
    need = {"matched", "draw", metric}
    if not need <= set(df.columns):
        raise ValueError(f"these rows lack {sorted(need - set(df.columns))}; run "
                         "run_random_control first.")
    out = []
    for c in dict.fromkeys(df["matched"]):
        sub = df[df["matched"] == c]
        real = sub[sub["draw"].astype(int) < 0]
        rand = sub[sub["draw"].astype(int) >= 0]
        per_draw = rand.groupby("draw")[metric].mean() * 100
        acc = 100 * real[metric].astype(float).mean()
        out.append({"condition": c, "accuracy": acc, "random_mean": per_draw.mean(),
                    "random_std": per_draw.std(ddof=1) if len(per_draw) > 1 else float("nan"),
                    "random_min": per_draw.min(), "random_max": per_draw.max(),
                    "gap": acc - per_draw.mean(), "draws": len(per_draw),
                    "n_hidden": float(real["n_hidden"].astype(float).mean())})
    return pd.DataFrame(out).set_index("condition")
