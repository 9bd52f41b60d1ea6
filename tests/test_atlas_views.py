"""Views of the per-token atlas: the figures' data equals the atlas table (never pixels), the
explorer's prompt coloured by an atlas (the CSS values, no browser), and notebook 07's
checkers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from icl_tokens.ablation import Block, Knockout, Sel
from icl_tokens.atlas import AtlasConfig, effect_shares, read_atlas, run_atlas
from icl_tokens.atlas.views import (
    EFFECT_WORDS,
    attribution_scatter,
    prompt_figure,
    prompt_grid,
    rollup_bars,
)
from icl_tokens.categorize import categorize
from icl_tokens.exercises import check_effect_shares, check_token_knockout
from icl_tokens.explore import ExplorerState
from icl_tokens.explore.atlas import ATLAS_CLASS, atlas_css, atlas_effects, effect_color
from icl_tokens.models import gpt2_tokenizer
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tiny import tiny_model

DEMOS = (Example("d0", {"text": "a stirring , funny film ."}, "1"),
         Example("d1", {"text": "the plot is a mess ."}, "0"))
TEST = Example("t0", {"text": "a gorgeous , witty film ."}, "1")


@pytest.fixture(scope="module")
def tp():
    return categorize(build_prompt(load_task("sst2"), DEMOS, TEST), gpt2_tokenizer())


def _atlas(tp, seed=0, example_id="t0", task="sst2") -> pd.DataFrame:
    """Atlas-shaped rows of the prompt's demonstration tokens (known values)."""
    rows = []
    for p, t in enumerate(tp.table()):
        if any(r.startswith("demo_") for r in t["roles"]):
            d = float(np.sin(p)) * (2.0 if "label" in t["categories"] else 1.0)
            rows.append({"model": "m", "task": task, "seed": seed, "example_id": example_id,
                         "position": p, "token": t["text"],
                         "categories": "|".join(t["categories"]),
                         "roles": "|".join(t["roles"]), "delta_margin": d,
                         "attribution": 0.8 * d, "attribution_atp": float(np.cos(p))})
    return pd.DataFrame(rows)


def _cells(fig, what):
    """A heatmap's non-padding cells, line by line: ``what`` = 'z' or a customdata index."""
    out = []
    for zl, cl in zip(fig.data[0].z, fig.data[0].customdata):
        for z, c in zip(zl, cl):
            if c[0] is not None:
                out.append(z if what == "z" else c[what])
    return out


def test_prompt_figure_cells_are_the_atlas_rows(tp):
    df = _atlas(tp)
    fig = prompt_figure(df.sample(frac=1.0, random_state=0))  # any row order
    assert _cells(fig, 0) == df["position"].tolist()
    np.testing.assert_allclose(_cells(fig, "z"), df["delta_margin"])
    vmax = df["delta_margin"].abs().max()
    h = fig.data[0]
    assert (h.zmid, h.zmin, h.zmax, h.colorscale[0][1]) == (0.0, -vmax, vmax, "rgb(103,0,31)")
    assert h.colorbar.title.text == EFFECT_WORDS["delta_margin"]
    hover = _cells(fig, 4)
    assert hover[0] == f"exact {df['delta_margin'].iloc[0]:+.4f}"
    assert _cells(fig, 3) == df["roles"].tolist()
    atp = prompt_figure(df, value="attribution_atp")
    np.testing.assert_allclose(_cells(atp, "z"), df["attribution_atp"])


def test_prompt_figure_with_the_whole_prompt(tp):
    df = _atlas(tp)
    fig = prompt_figure(df, seed=0, example_id="t0", tp=tp, width=8)
    assert _cells(fig, 0) == list(range(len(tp)))
    z = dict(zip(_cells(fig, 0), _cells(fig, "z")))
    assert all(z[p] is None for p in range(len(tp)) if p not in set(df["position"]))
    assert [z[p] for p in df["position"]] == pytest.approx(df["delta_margin"].tolist())
    assert max(len(line) for line in fig.data[0].z) == 8
    other = categorize(build_prompt(load_task("sst2"), DEMOS[::-1], TEST), gpt2_tokenizer())
    with pytest.raises(ValueError, match="categorized prompt this atlas example"):
        prompt_figure(df, tp=other)


def test_prompt_figure_bad_input(tp):
    both = pd.concat([_atlas(tp), _atlas(tp, seed=1)])
    with pytest.raises(ValueError, match="holds 2 examples; pass seed="):
        prompt_figure(both)
    with pytest.raises(ValueError, match="no atlas rows for seed 5"):
        prompt_figure(both, seed=5, example_id="t0")
    tasks = pd.concat([_atlas(tp), _atlas(tp, task="other")])
    with pytest.raises(ValueError, match="several models or tasks"):
        prompt_figure(tasks, seed=0, example_id="t0")
    with pytest.raises(ValueError, match="lacks column"):
        prompt_figure(_atlas(tp).drop(columns=["token"]))
    assert prompt_grid(["a", "b\n", "c", "d", "e"], width=2) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="width must be >= 1"):
        prompt_grid(["a"], width=0)


def test_attribution_scatter_is_the_table(tp):
    df = pd.concat([_atlas(tp), _atlas(tp, seed=1)], ignore_index=True)
    fig = attribution_scatter(df)
    assert [t.name for t in fig.data] == ["gradient (one pass)", "AtP* (one pass)",
                                          "identity (y = x)"]
    for trace, col in zip(fig.data[:2], ("attribution", "attribution_atp")):
        np.testing.assert_allclose(trace.x, df["delta_margin"])
        np.testing.assert_allclose(trace.y, df[col])
    lo = min(df[c].min() for c in ("delta_margin", "attribution", "attribution_atp"))
    hi = max(df[c].max() for c in ("delta_margin", "attribution", "attribution_atp"))
    assert list(fig.data[2].x) == list(fig.data[2].y) == pytest.approx([lo, hi])
    assert fig.layout.xaxis.title.text == EFFECT_WORDS["delta_margin"]
    assert "estimate" in fig.layout.yaxis.title.text
    one = attribution_scatter(df, methods=("attribution",))
    assert len(one.data) == 2
    with pytest.raises(ValueError, match="lacks column"):
        attribution_scatter(df, methods=("attribution_x",))


def test_rollup_bars_are_the_shares(tp):
    df = pd.concat([_atlas(tp), _atlas(tp, seed=1)], ignore_index=True)
    for by in ("categories", "role"):
        sh = effect_shares(df, by, n_boot=50)
        fig = rollup_bars(sh, by=by)
        assert list(fig.data[0].y) == list(fig.data[1].y) == sh["group"].tolist()
        np.testing.assert_allclose(fig.data[0].x, sh["share"])
        np.testing.assert_allclose(fig.data[1].x, sh["token_share"])
        np.testing.assert_allclose(fig.data[0].error_x.array, sh["share_hi"] - sh["share"])
        np.testing.assert_allclose(fig.data[0].error_x.arrayminus, sh["share"] - sh["share_lo"])
        assert fig.layout.yaxis.title.text.startswith("category" if by == "categories"
                                                      else "role")
        assert fig.layout.xaxis.title.text.startswith("share")
    two = effect_shares(pd.concat([_atlas(tp), _atlas(tp, task="other")]), n_boot=20)
    with pytest.raises(ValueError, match="several models or tasks"):
        rollup_bars(two)


# ---------------------------------------------------------------------- the explorer


def test_effect_colours_and_css():
    assert effect_color(0.0, 2.0) == "#ffffff"
    assert effect_color(-2.0, 2.0) == effect_color(-5.0, 2.0) == "#b2182b"
    assert effect_color(1.0, 2.0) == "#90b2d6"  # halfway from white to #2166ac
    assert effect_color(np.nan, 1.0) == effect_color(1.0, 0.0) == "#ffffff"
    css = atlas_css(np.array([np.nan, -1.0, 0.5]))
    assert f".icl-explorer.{ATLAS_CLASS} .icl-pos-1{{background-color:#b2182b !important}}" in css
    assert ".icl-pos-2{background-color:#90b2d6 !important}" in css
    assert ".icl-pos-0{" not in css


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    bridge = tiny_model("llama", tmp_path_factory.mktemp("atlas_views_llama"))
    return ExplorerState.from_examples(bridge, bridge.tokenizer, "sst2", DEMOS, TEST,
                                       meta={"seed": 0, "k": 2})


def test_explorer_coloured_by_the_atlas(state):
    from icl_tokens.explore.widget import Explorer

    tp = categorize(build_prompt(load_task("sst2"), DEMOS, TEST), state.tokenizer)
    df = _atlas(tp)
    effects = state.set_atlas(df)
    want = np.full(len(state.tokens), np.nan)
    want[df["position"]] = df["delta_margin"]
    np.testing.assert_array_equal(effects, want)
    ex = Explorer(state, live=False)
    css = ex.widget.children[0].value
    vmax = df["delta_margin"].abs().max()
    for p, v in zip(df["position"], df["delta_margin"]):
        assert f".icl-pos-{p}{{background-color:{effect_color(v, vmax)} !important}}" in css
    assert ATLAS_CLASS in ex.widget._dom_classes
    p0, v0 = int(df["position"].iloc[0]), float(df["delta_margin"].iloc[0])
    assert f"atlas effect {v0:+.4f}" in ex.token_buttons[p0].tooltip
    calls = []
    state.update = lambda sel: calls.append(sel)
    try:
        ex.atlas_toggle.value = False
        assert ATLAS_CLASS not in ex.widget._dom_classes
        ex.atlas_toggle.value = True
        assert ATLAS_CLASS in ex.widget._dom_classes
    finally:
        del state.update
    assert calls == []  # colouring runs no forward
    state.atlas = None
    assert Explorer(state, live=False).atlas_toggle is None


def test_explorer_atlas_bad_input(state, tmp_path):
    tp = categorize(build_prompt(load_task("sst2"), DEMOS, TEST), state.tokenizer)
    with pytest.raises(ValueError, match="no rows for seed 0, example 't0'"):
        atlas_effects(_atlas(tp, seed=3), state.tokens, seed=0, example_id="t0")
    wrong = _atlas(tp)
    wrong.loc[0, "token"] = "zzz"
    with pytest.raises(ValueError, match="computed on another prompt"):
        state.set_atlas(wrong)
    with pytest.raises(ValueError, match="several atlases"):
        state.set_atlas(pd.concat([_atlas(tp), _atlas(tp, task="other")]))
    with pytest.raises(TypeError, match="DataFrame or a CSV path"):
        state.set_atlas([1, 2])
    with pytest.raises(FileNotFoundError, match="no such atlas file"):
        state.set_atlas(tmp_path / "none.csv")
    plain = ExplorerState(state.model, state.tokenizer, dataclasses.replace(state.item, meta={}))
    with pytest.raises(ValueError, match="from_task"):
        plain.set_atlas(_atlas(tp))


def test_explore_reads_an_atlas_csv_of_the_same_episode(data_dir, tmp_path):
    from icl_tokens import explore

    model = tiny_model("llama", tmp_path / "llama")
    out = tmp_path / "atlas.csv"
    run_atlas(AtlasConfig(model="tiny", task="sst2", seeds=(0,), k=2, n_test=2, groups=()),
              model=model, tokenizer=model.tokenizer, out=out, progress=False,
              log=lambda s: None)
    df = read_atlas(out)
    ex = explore(model, model.tokenizer, "sst2", seed=0, k=2, example=1, scoring="label",
                 atlas=out)
    rows = df[df["example_id"] == ex.state.item.example_id]
    assert len(rows) and rows["example_id"].nunique() == 1
    np.testing.assert_allclose(ex.state.atlas[rows["position"]], rows["delta_margin"])
    assert np.isnan(np.delete(ex.state.atlas, rows["position"])).all()


# ---------------------------------------------------------------------- notebook 07 checkers


def test_check_token_knockout(capsys):
    assert check_token_knockout(lambda i: Knockout((Block(Sel.test(), Sel.positions([i])),)))
    assert "✓ check_token_knockout" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="generated tokens"):
        check_token_knockout(lambda i: Knockout((Block(Sel.test(generated=False),
                                                       Sel.positions([i])),)))
    with pytest.raises(AssertionError, match="pairs differ"):
        check_token_knockout(lambda i: Knockout((Block(Sel.test(), Sel.positions([i + 1])),)))
    with pytest.raises(AssertionError, match="some layers"):
        check_token_knockout(lambda i: Knockout((Block(Sel.test(), Sel.positions([i]),
                                                       layers=(0,)),)))
    with pytest.raises(AssertionError, match="return a Knockout"):
        check_token_knockout(lambda i: i)


def test_check_effect_shares():
    def shares(rows):
        mag = rows["delta_margin"].abs()
        return (mag.groupby(rows["categories"]).sum() / mag.sum()).to_dict()

    assert check_effect_shares(shares)
    with pytest.raises(AssertionError, match="yours"):
        check_effect_shares(lambda r: (r["delta_margin"].groupby(r["categories"]).sum()
                                       / r["delta_margin"].sum()).to_dict())
    with pytest.raises(AssertionError, match="no share for"):
        check_effect_shares(lambda r: {})
