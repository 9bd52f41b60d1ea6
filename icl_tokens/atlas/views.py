"""Views of an atlas (plotly, offline): figures built from the atlas table, never from a run.

* :func:`prompt_figure`: one example's prompt as text, each token coloured by its effect
  (diverging scale centred at 0; hover: token, categories, roles, exact and attributed effects);
* :func:`attribution_scatter`: each attribution method against the exact effect, with the
  identity line;
* :func:`rollup_bars`: the share of total ``|effect|`` by category or role beside the share of
  tokens (from :func:`~icl_tokens.atlas.rollups.effect_shares`).

Tests compare the figure data with the table (``fig.data[i].z``, ``.x``, ``.y``), never pixels.

    df = read_atlas("atlas.csv")
    prompt_figure(df, seed=0, example_id="sst2-eval-0012").show()
    attribution_scatter(df).show()
    rollup_bars(effect_shares(df, "role")).show()
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..categorize import TokenizedPrompt
from ..plotting.base import visible_whitespace
from .crosscheck import ATTRIBUTIONS

__all__ = ["EFFECT_WORDS", "example_rows", "prompt_grid", "prompt_figure",
           "attribution_scatter", "rollup_bars"]

#: Axis and colour-bar titles in words for the atlas's value columns.
EFFECT_WORDS = {
    "delta_margin": "exact effect: change of the gold label's margin when the token is knocked "
                    "out (nats)",
    "attribution": "attributed effect: gradient estimate (nats)",
    "attribution_atp": "attributed effect: AtP* estimate (nats)",
}
_METHOD_NAMES = {"attribution": "gradient (one pass)", "attribution_atp": "AtP* (one pass)"}
_GROUP_WORDS = {"categories": "category (a token's exact set of categories)",
                "role": "role (demonstration number dropped)"}


def _need(df: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"the table lacks column(s) {missing}; pass an atlas from read_atlas() "
                         "or run_atlas().")


def example_rows(df: pd.DataFrame, seed: int | None = None,
                 example_id: str | None = None) -> pd.DataFrame:
    """The rows of one test example, by position (``seed`` and ``example_id`` may be left out
    only when the atlas holds a single example)."""
    _need(df, ("seed", "example_id", "position", "token", "delta_margin"))
    keys = df[["seed", "example_id"]].drop_duplicates()
    if seed is None or example_id is None:
        if len(keys) != 1:
            raise ValueError(f"the atlas holds {len(keys)} examples; pass seed= and example_id= "
                             f"(e.g. seed={keys.iloc[0, 0]}, example_id={keys.iloc[0, 1]!r}).")
        seed, example_id = int(keys.iloc[0, 0]), str(keys.iloc[0, 1])
    rows = df[(df["seed"] == seed) & (df["example_id"] == str(example_id))]
    if rows.empty:
        raise ValueError(f"no atlas rows for seed {seed}, example {example_id!r}; it holds "
                         f"{[(int(s), e) for s, e in keys.head(5).itertuples(index=False)]}"
                         f"{' ...' if len(keys) > 5 else ''}.")
    ident = [c for c in ("model", "task") if c in rows.columns]
    if ident and len(rows[ident].drop_duplicates()) > 1:
        raise ValueError(f"seed {seed}, example {example_id!r} appears for several models or "
                         "tasks; select one first, e.g. df[df.task == 'sst2'].")
    return rows.sort_values("position", ignore_index=True)


def _prompt_tokens(rows: pd.DataFrame, tp: TokenizedPrompt | None) -> list[str]:
    """Token texts of the whole prompt (``tp``) or of the atlas rows (demonstrations only)."""
    if tp is None:
        return rows["token"].astype(str).tolist()
    table = tp.table()
    for p, tok in zip(rows["position"], rows["token"]):
        if p >= len(table) or table[p]["text"] != tok:
            have = table[p]["text"] if p < len(table) else "(past the end)"
            raise ValueError(f"position {p} is {tok!r} in the atlas but {have!r} in the prompt; "
                             "pass the categorized prompt this atlas example was computed on.")
    return [t["text"] for t in table]


def prompt_grid(tokens: Sequence[str], width: int = 16) -> list[list[int]]:
    """Token indices laid out in lines: a new line after a token with a newline, or after
    ``width`` tokens.

    >>> prompt_grid(["a", "b:", " c\\n", "d"], width=2)
    [[0, 1], [2], [3]]
    """
    if width < 1:
        raise ValueError(f"width must be >= 1 (tokens per line), got {width}.")
    lines: list[list[int]] = [[]]
    for i, t in enumerate(tokens):
        if len(lines[-1]) == width:
            lines.append([])
        lines[-1].append(i)
        if "\n" in t:
            lines.append([])
    return [line for line in lines if line]


def _hover(r: pd.Series | None, text: str, pos: int) -> list[Any]:
    if r is None:
        return [pos, text, "-", "-", "not a demonstration token (not in the atlas)", "", ""]
    return [pos, text, r.get("categories", ""), r.get("roles", ""),
            f"exact {float(r['delta_margin']):+.4f}",
            f"gradient {float(r['attribution']):+.4f}" if "attribution" in r else "",
            f"AtP* {float(r['attribution_atp']):+.4f}" if "attribution_atp" in r else ""]


def prompt_figure(df: pd.DataFrame, seed: int | None = None, example_id: str | None = None, *,
                  value: str = "delta_margin", tp: TokenizedPrompt | None = None,
                  width: int = 16, title: str | None = None) -> go.Figure:
    """One example's prompt as text, each token a cell coloured by ``value`` (``RdBu``, centred
    at 0, symmetric range; red = knocking the token out lowers the gold margin).

    Args:
        df: An atlas (:func:`~icl_tokens.atlas.run.read_atlas`).
        seed, example_id: The example (optional when the atlas holds one).
        value: ``delta_margin`` (exact) or an attribution column (on the same scale).
        tp: The example's categorized prompt: the whole prompt is shown, tokens outside the
            demonstrations uncoloured (without it: the demonstration tokens only).
        width: Tokens per line at most (a newline token also ends a line).

    Returns:
        A heatmap: ``data[0].z[line][j]`` is the value of token ``data[0].customdata[line][j][0]``
        (``None`` outside the atlas and on padding), ``data[0].text`` the tokens.
    """
    rows = example_rows(df, seed, example_id)
    _need(rows, (value,))
    texts = _prompt_tokens(rows, tp)
    positions = rows["position"].astype(int).tolist() if tp is None else list(range(len(texts)))
    by_pos = {int(r["position"]): r for _, r in rows.iterrows()}
    lines = prompt_grid(texts, width)
    ncol = max(len(line) for line in lines)
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    custom: list[list[list[Any]]] = []
    for line in lines:
        pad = ncol - len(line)
        r_of = [by_pos.get(positions[i]) for i in line]
        z.append([None if r is None else float(r[value]) for r in r_of] + [None] * pad)
        text.append([visible_whitespace(texts[i]) for i in line] + [""] * pad)
        custom.append([_hover(r, texts[i], positions[i]) for r, i in zip(r_of, line)]
                      + [[None, "", "", "", "", "", ""]] * pad)
    vmax = float(np.nanmax(np.abs(rows[value].to_numpy(float)))) or 1.0
    fig = go.Figure(go.Heatmap(
        z=z, text=text, texttemplate="%{text}", customdata=custom, colorscale="RdBu",
        zmid=0.0, zmin=-vmax, zmax=vmax, xgap=2, ygap=2, hoverongaps=False,
        colorbar={"title": {"text": EFFECT_WORDS.get(value, value), "side": "right"}},
        hovertemplate="#%{customdata[0]} %{customdata[1]}<br>categories: %{customdata[2]}"
                      "<br>roles: %{customdata[3]}<br>%{customdata[4]}<br>%{customdata[5]}"
                      "<br>%{customdata[6]}<extra></extra>"))
    r0 = rows.iloc[0]
    fig.update_layout(
        title=title or f"seed {r0['seed']}, example {r0['example_id']}: each demonstration "
                       "token coloured by its effect",
        xaxis={"visible": False}, template="plotly_white", height=90 + 26 * len(lines),
        yaxis={"autorange": "reversed", "visible": False})
    return fig


def attribution_scatter(df: pd.DataFrame, methods: Sequence[str] = ATTRIBUTIONS, *,
                        title: str | None = None) -> go.Figure:
    """Each attribution method (a trace: ``x`` = exact ``delta_margin``, ``y`` = the estimate,
    in table order) with the identity line ``y = x`` as the last trace."""
    _need(df, ("delta_margin", *methods))
    if df.empty:
        raise ValueError("the atlas has no rows to plot.")
    fig = go.Figure()
    exact = df["delta_margin"].to_numpy(float)
    hover = np.stack([df["token"].astype(str).map(visible_whitespace),
                      df.get("roles", pd.Series([""] * len(df))).astype(str),
                      df["example_id"].astype(str), df["position"].astype(int)], axis=1)
    for m in methods:
        fig.add_trace(go.Scatter(
            x=exact, y=df[m].to_numpy(float), mode="markers", name=_METHOD_NAMES.get(m, m),
            customdata=hover, marker={"size": 6, "opacity": 0.7},
            hovertemplate="%{customdata[0]} (%{customdata[1]})<br>example %{customdata[2]}, "
                          "#%{customdata[3]}<br>exact %{x:+.4f}<br>estimate %{y:+.4f}"
                          "<extra>%{fullData.name}</extra>"))
    vals = np.concatenate([exact] + [df[m].to_numpy(float) for m in methods])
    vals = vals[np.isfinite(vals)]
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (-1.0, 1.0)
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="identity (y = x)",
                             line={"color": "#444", "dash": "dash"}, hoverinfo="skip"))
    fig.update_layout(title=title or "one-pass attribution against the exact knockout, per "
                                     "demonstration token",
                      xaxis_title=EFFECT_WORDS["delta_margin"],
                      yaxis_title="attributed effect: first-order estimate of the same change "
                                  "(nats)", template="plotly_white")
    return fig


def rollup_bars(shares: pd.DataFrame, *, by: str = "categories",
                title: str | None = None) -> go.Figure:
    """Horizontal bars from :func:`~icl_tokens.atlas.rollups.effect_shares` (one model and
    task): ``data[0]`` the mean share of total ``|effect|`` (error bars: its interval),
    ``data[1]`` the share of tokens, one bar per group in the table's order."""
    _need(shares, ("group", "share", "token_share"))
    ident = [c for c in ("model", "task") if c in shares.columns]
    if ident and len(shares[ident].drop_duplicates()) > 1:
        raise ValueError("the shares hold several models or tasks; plot one at a time, e.g. "
                         "rollup_bars(shares[shares.task == 'sst2']).")
    groups = shares["group"].astype(str).tolist()
    share = shares["share"].to_numpy(float)
    err: dict[str, Any] = {}
    if {"share_lo", "share_hi"} <= set(shares.columns):
        err = {"type": "data", "symmetric": False, "visible": True,
               "array": shares["share_hi"].to_numpy(float) - share,
               "arrayminus": share - shares["share_lo"].to_numpy(float)}
    fig = go.Figure([
        go.Bar(y=groups, x=share, orientation="h", name="share of total |effect|",
               error_x=err or None, marker_color="#b2182b",
               hovertemplate="%{y}: %{x:.3f} of |effect|<extra></extra>"),
        go.Bar(y=groups, x=shares["token_share"].to_numpy(float), orientation="h",
               name="share of tokens", marker_color="#999999",
               hovertemplate="%{y}: %{x:.3f} of the tokens<extra></extra>")])
    fig.update_layout(
        barmode="group", template="plotly_white", height=140 + 34 * len(groups),
        title=title or "where the effect sits: share of |effect| beside share of tokens",
        xaxis_title="share (mean over seeds and test examples; bars: 95% interval)",
        yaxis={"title": _GROUP_WORDS.get(by, by), "autorange": "reversed"})
    return fig
