"""The explorer's prompt coloured by a per-token atlas (``python -m icl_tokens atlas``).

:func:`atlas_effects` picks the atlas rows of the explorer's prompt (its seed and test example)
and returns one value per prompt position (NaN outside the demonstrations), after checking that
every row's token is the prompt's token at that position. :func:`atlas_css` turns the values
into one CSS rule per token button (``.icl-pos-<i>``), active while the explorer box has the
class ``atlas-on``: a diverging red–white–blue scale centred at 0 (:func:`effect_color`; red:
knocking the token out lowers the gold label's margin).

    >>> effect_color(0.0, 1.0), effect_color(-1.0, 1.0), effect_color(1.0, 1.0)
    ('#ffffff', '#b2182b', '#2166ac')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["ATLAS_CLASS", "atlas_effects", "atlas_css", "effect_color"]

#: The explorer box's class while the prompt is coloured by the atlas.
ATLAS_CLASS = "atlas-on"
_RED, _WHITE, _BLUE = (178, 24, 43), (255, 255, 255), (33, 102, 172)


def _frame(atlas: pd.DataFrame | str | Path) -> pd.DataFrame:
    if isinstance(atlas, (str, Path)):
        from ..atlas.run import read_atlas

        return read_atlas(atlas)
    if not isinstance(atlas, pd.DataFrame):
        raise TypeError(f"atlas must be a DataFrame or a CSV path, got {type(atlas).__name__}; "
                        "pass read_atlas('atlas.csv') or the path.")
    return atlas


def atlas_effects(atlas: pd.DataFrame | str | Path, tokens: Sequence[Any], *, seed: int,
                  example_id: str, value: str = "delta_margin") -> np.ndarray:
    """Float ``[pos]``: ``value`` of the atlas rows of (``seed``, ``example_id``) at their
    positions, NaN elsewhere. ``tokens`` are the prompt's
    :class:`~icl_tokens.explore.state.TokenInfo` s (their texts must match the rows')."""
    df = _frame(atlas)
    missing = [c for c in ("seed", "example_id", "position", "token", value)
               if c not in df.columns]
    if missing:
        raise ValueError(f"the atlas lacks column(s) {missing}; pass a table written by "
                         "`atlas --out` (read_atlas).")
    rows = df[(df["seed"] == seed) & (df["example_id"].astype(str) == str(example_id))]
    if rows.empty:
        have = df[["seed", "example_id"]].drop_duplicates().head(4)
        raise ValueError(f"the atlas has no rows for seed {seed}, example {example_id!r} (it "
                         f"holds e.g. {[(int(s), e) for s, e in have.itertuples(index=False)]});"
                         " run `atlas` with this seed and enough --n-test, or explore an "
                         "example it covers.")
    if rows["position"].duplicated().any():
        raise ValueError(f"seed {seed}, example {example_id!r} appears in several atlases "
                         "(models or tasks); select one first, e.g. df[df.task == 'sst2'].")
    out = np.full(len(tokens), np.nan)
    for p, tok, v in zip(rows["position"].astype(int), rows["token"].astype(str), rows[value]):
        if p >= len(tokens) or tokens[p].text != tok:
            have = tokens[p].text if p < len(tokens) else "(past the end)"
            raise ValueError(f"atlas position {p} is {tok!r} but the explorer's prompt has "
                             f"{have!r} there; the atlas was computed on another prompt (check "
                             "the task, k and the model's tokenizer).")
        out[p] = float(v)
    return out


def effect_color(v: float, vmax: float) -> str:
    """``v`` on a red (−``vmax``) – white (0) – blue (+``vmax``) scale, as ``#rrggbb``."""
    t = 0.0 if not np.isfinite(v) or vmax <= 0 else float(np.clip(v / vmax, -1.0, 1.0))
    end = _BLUE if t > 0 else _RED
    rgb = [round(w + abs(t) * (e - w)) for w, e in zip(_WHITE, end)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def atlas_css(effects: np.ndarray, scope: str = ".icl-explorer") -> str:
    """One rule per token with a value: its button's background, while ``scope`` has the class
    :data:`ATLAS_CLASS` (tokens without a value turn white)."""
    finite = effects[np.isfinite(effects)]
    vmax = float(np.abs(finite).max()) if finite.size else 0.0
    on = f"{scope}.{ATLAS_CLASS}"
    rules = [f"{on} .icl-tok{{background-color:#ffffff !important;"
             "background-image:none !important}"]
    rules += [f"{on} .icl-pos-{i}{{background-color:{effect_color(float(v), vmax)} !important}}"
              for i, v in enumerate(effects) if np.isfinite(v)]
    return "".join(rules)
