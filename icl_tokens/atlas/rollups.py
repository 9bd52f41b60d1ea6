"""Roll-ups of an atlas that test the paper's unit (categories) against single tokens.

* :func:`effect_shares`: each category's (or role's) share of the example's total
  ``|delta_margin|``, beside its share of the tokens;
* :func:`concentration`: how many of a category's tokens carry ``mass`` (e.g. 80 %) of its
  ``|delta_margin|``;
* :func:`additivity`: the sum of a category knockout's single-token effects against the
  measured category knockout (``group_<g>``): ``interaction = measured - sum``.

Every mean comes with an interval that fits the design, seeds x test examples crossed
(:mod:`~icl_tokens.atlas.intervals`; the method is in each summary's ``interval`` column).
Categories are a token's exact set (``template|stopword`` is its own group, so shares add up
to 1); roles drop the demonstration number (``demo_3.t_out.colon`` → ``t_out.colon``, a label
word is ``d_out``).

    >>> role_kind("demo_2.d_in.text|demo_2.t_in.newline")
    'd_in.text|t_in.newline'
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
import pandas as pd

from .crosscheck import EXAMPLE
from .intervals import design_note, layout_of, mean_interval, ratio_interval

__all__ = ["role_kind", "effect_shares", "concentration", "additivity", "BY"]

#: What :func:`effect_shares` and :func:`concentration` group tokens by.
BY = ("categories", "role")
_DEMO = re.compile(r"^demo_\d+\.")


def role_kind(roles: str) -> str:
    """A token's roles without their demonstration number (``|``-joined)."""
    return "|".join(dict.fromkeys(_DEMO.sub("", r) for r in str(roles).split("|") if r))


def _groups(df: pd.DataFrame, by: str) -> pd.Series:
    if by not in BY:
        raise ValueError(f"unknown grouping {by!r}; use one of {list(BY)}.")
    return df["categories"].astype(str) if by == "categories" else df["roles"].map(role_kind)


#: The range of each summarised statistic (intervals are cut to it).
_BOUNDS = {"share": (0.0, 1.0), "token_share": (0.0, 1.0), "carrier_share": (0.0, 1.0),
           "n_tokens": (0.0, math.inf), "carriers": (0.0, math.inf)}


def _summarise(per: pd.DataFrame, cols: Sequence[str], keys: Sequence[str], *,
               n_boot: int, level: float) -> pd.DataFrame:
    """Mean of ``cols`` over seeds and examples per ``keys`` with design intervals."""
    out = []
    for key, g in per.groupby(list(keys), sort=False):
        lay = layout_of(g)
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)),
                   n_seeds=lay.n_seeds, n_examples=len(g), interval=design_note(lay))
        for c in cols:
            row[c], row[f"{c}_lo"], row[f"{c}_hi"] = mean_interval(
                g, c, n_boot=n_boot, level=level, bounds=_BOUNDS.get(c))
        out.append(row)
    return pd.DataFrame(out)


def effect_shares(df: pd.DataFrame, by: str = "categories", value: str = "delta_margin", *,
                  n_boot: int = 2000, level: float = 0.95) -> pd.DataFrame:
    """Per (model, task, group): mean share of the example's total ``|value|`` (``share``)
    and of its demonstration tokens (``token_share``), with intervals; sorted by share."""
    d = df.assign(group=_groups(df, by), mag=df[value].abs())
    per = []
    for key, g in d.groupby(EXAMPLE, sort=False):
        total = g["mag"].sum()
        for grp, h in g.groupby("group", sort=False):
            per.append({**dict(zip(EXAMPLE, key)), "group": grp,
                        "share": h["mag"].sum() / total if total else np.nan,
                        "token_share": len(h) / len(g)})
    per_df = _fill_missing(pd.DataFrame(per))
    out = _summarise(per_df, ["share", "token_share"], ["model", "task", "group"],
                     n_boot=n_boot, level=level)
    return out.sort_values(["model", "task", "share"], ascending=[True, True, False],
                           ignore_index=True)


def _fill_missing(per: pd.DataFrame) -> pd.DataFrame:
    """A share of 0 for every group an example lacks (so means are over all examples)."""
    rows = []
    for (model, task), g in per.groupby(["model", "task"], sort=False):
        groups = g["group"].unique()
        for key, h in g.groupby(EXAMPLE, sort=False):
            have = set(h["group"])
            rows.append(h)
            lack = [gr for gr in groups if gr not in have]
            if lack:
                rows.append(pd.DataFrame([{**dict(zip(EXAMPLE, key)), "group": gr,
                                           "share": 0.0, "token_share": 0.0} for gr in lack]))
    return pd.concat(rows, ignore_index=True) if rows else per


def _carriers(mag: np.ndarray, mass: float) -> int:
    """The fewest tokens whose magnitudes reach ``mass`` of the total (0 if the total is 0)."""
    total = mag.sum()
    if total <= 0:
        return 0
    cum = np.cumsum(np.sort(mag)[::-1])
    return int(np.searchsorted(cum, mass * total - 1e-12 * total) + 1)


def concentration(df: pd.DataFrame, by: str = "categories", mass: float = 0.8,
                  value: str = "delta_margin", *, n_boot: int = 2000, level: float = 0.95
                  ) -> pd.DataFrame:
    """Per (model, task, group): mean number of tokens (``n_tokens``) and of those that carry
    ``mass`` of the group's ``|value|`` (``carriers``), and their ratio (``carrier_share``)."""
    if not 0 < mass <= 1:
        raise ValueError(f"mass must be in (0, 1], got {mass}.")
    d = df.assign(group=_groups(df, by), mag=df[value].abs())
    per = []
    for key, g in d.groupby(EXAMPLE + ["group"], sort=False):
        c = _carriers(g["mag"].to_numpy(float), mass)
        per.append({**dict(zip(EXAMPLE + ["group"], key)), "n_tokens": len(g), "carriers": c,
                    "carrier_share": c / len(g) if c else np.nan})
    out = _summarise(pd.DataFrame(per), ["n_tokens", "carriers", "carrier_share"],
                     ["model", "task", "group"], n_boot=n_boot, level=level)
    return out.assign(mass=mass)


def additivity(df: pd.DataFrame, groups: Sequence[str] | None = None, *, n_boot: int = 2000,
               level: float = 0.95) -> pd.DataFrame:
    """Per (model, task, group): mean ``measured`` category effect, mean ``summed`` single-token
    effect of its tokens, mean ``interaction`` (measured - summed), and ``interaction_share``
    (mean interaction / mean |measured|, a ratio with its linearized design interval)."""
    if groups is None:
        groups = [c[len("group_"):] for c in df.columns if c.startswith("group_")]
    if not groups:
        raise ValueError("the atlas has no group_<condition> columns; run it with --groups "
                         "(e.g. icl-template,icl-stopword,icl-content).")
    out = []
    for g in groups:
        if f"group_{g}" not in df.columns:
            raise ValueError(f"the atlas did not measure {g!r}; it has "
                             f"{[c[6:] for c in df.columns if c.startswith('group_')]}.")
        for (model, task), t in df.groupby(["model", "task"], sort=False):
            per = t.groupby(EXAMPLE, sort=False).apply(
                lambda e, g=g: pd.Series({
                    "measured": float(e[f"group_{g}"].iloc[0]),
                    "summed": float(e["delta_margin"][e[f"in_{g}"] == 1].sum()),
                    "n_tokens": int((e[f"in_{g}"] == 1).sum())}), include_groups=False)
            per["interaction"] = per["measured"] - per["summed"]
            per = per.reset_index()
            lay = layout_of(per)
            row = {"model": model, "task": task, "group": g, "n_seeds": lay.n_seeds,
                   "n_examples": len(per), "n_tokens": float(per["n_tokens"].mean()),
                   "interval": design_note(lay)}
            for c in ("measured", "summed", "interaction"):
                row[c], row[f"{c}_lo"], row[f"{c}_hi"] = mean_interval(per, c, n_boot=n_boot,
                                                                       level=level)
            row["interaction_share"], row["interaction_share_lo"], row["interaction_share_hi"] = \
                ratio_interval(per, per["interaction"].to_numpy(float),
                               per["measured"].abs().to_numpy(float), n_boot=n_boot,
                               level=level)
            out.append(row)
    return pd.DataFrame(out)
