"""The knockout explorer as a person sees it: served by Voila, driven by Playwright in Debian's
Chromium (no browser download), with a tiny model and invented SST-2 data.

The browser tests read the rendered DOM: every token's computed colour is its category's (striped
for several), the test example is dashed, the labels are readable, no stray widget or widget
error shows; clicking a token or a control changes the prediction to what the same update gives
in Python, strikes the hidden keys through, and redraws the attention pattern. They print the
click-to-DOM latency, and save a screenshot where ``ICL_TOKENS_SCREENSHOT`` names a file. They
skip, saying why, without Chromium, Playwright or Voila. A few widget checks run without a
browser.
"""

from __future__ import annotations

import importlib.util
import os
import statistics

import numpy as np
import pytest

from icl_tokens.explore import MEAN_HEADS, ExplorerState, Selection, explore, pattern_view
from icl_tokens.explore.browser import (
    CHROMIUM_ARGS,
    app_notebook,
    click_latency,
    find_chromium,
    open_explorer,
    serve_voila,
)
from icl_tokens.explore.static import CATEGORY_COLORS, color_kinds, css_class

INSTALL = "pip install voila==0.5.13 playwright==1.65.3 (the browser is Debian's chromium)"
K, SEED, EXAMPLE = 4, 0, 0


def _rgb(hex_color: str) -> str:
    h = hex_color.lstrip("#")
    return f"rgb({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)})"


@pytest.fixture(scope="module")
def setting(tmp_path_factory) -> dict:
    """A tiny Llama folder and invented SST-2 data (the environment the app runs in)."""
    from conftest import _write_sst2

    from icl_tokens.testing.tiny import build_tiny_model_dir

    root = tmp_path_factory.mktemp("explorer_browser")
    data = _write_sst2(root / "data")
    model_dir = build_tiny_model_dir("llama", root / "llama")
    env = {"ICL_TOKENS_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return {"root": root, "model": str(model_dir), "env": env}


@pytest.fixture(scope="module")
def reference(setting) -> ExplorerState:
    """The same prompt in this process, for the predictions the browser should show."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ICL_TOKENS_DATA_DIR", setting["env"]["ICL_TOKENS_DATA_DIR"])
    try:
        return explore(setting["model"], task="sst2", seed=SEED, k=K, example=EXAMPLE).state
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def page(setting):
    """The explorer served by Voila and opened in headless Chromium."""
    browser = find_chromium()
    if browser is None:
        pytest.skip("no Chromium found (apt-get install -y chromium, or set ICL_TOKENS_BROWSER)")
    for module in ("playwright", "voila"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: {INSTALL}")
    from playwright.sync_api import sync_playwright

    nb = app_notebook(setting["root"] / "app.ipynb", setting["model"], "sst2", seed=SEED, k=K,
                      example=EXAMPLE)
    with serve_voila(nb, env=setting["env"]) as url, sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=browser, args=CHROMIUM_ARGS)
        pg = chromium.new_page(viewport={"width": 1400, "height": 1500})
        seconds = open_explorer(pg, url)
        print(f"\nfirst render (kernel, imports, model, first update): {seconds:.1f} s")
        yield pg
        chromium.close()


def _status(pg) -> dict:
    return pg.eval_on_selector(".icl-explorer .icl-status", "e => ({...e.dataset})")


# ---------------------------------------------------------------------- in the browser


def test_tokens_are_coloured_by_category(page, reference):
    toks = page.eval_on_selector_all(".icl-explorer .icl-tok", """els => els.map(e => {
        const s = getComputedStyle(e);
        return {cls: e.className, bg: s.backgroundColor, img: s.backgroundImage,
                border: s.borderTopStyle, opacity: s.opacity, w: e.getBoundingClientRect().width};
    })""")
    assert len(toks) == len(reference.tokens)
    multi = 0
    for t, info in zip(toks, reference.tokens):
        kinds = color_kinds(info.categories)
        where = f"token {info.position} {info.text!r} {kinds}"
        assert f"icl-pos-{info.position}" in t["cls"].split(), where
        assert css_class(kinds) in t["cls"].split(), where
        if kinds != ("unknown",):
            assert t["bg"] == _rgb(CATEGORY_COLORS[kinds[0]]), (where, t["bg"])
        if len(kinds) > 1:
            multi += 1
            assert all(_rgb(CATEGORY_COLORS[k]) in t["img"] for k in kinds), (where, t["img"])
        assert (t["border"] == "dashed") == info.is_test, where
        assert float(t["opacity"]) == 1.0 and t["w"] > 0, where
    assert multi > 0, "the prompt should have a striped token (a newline)"


def test_labels_are_readable_and_nothing_stray_shows(page):
    body = page.inner_text("body")
    for bad in ("Error displaying widget", "Loading weights", "model not found", "Traceback"):
        assert bad not in body, f"the page shows {bad!r}"
    cut = page.eval_on_selector_all(
        ".icl-explorer .widget-label, .icl-explorer .icl-ctl-clear",
        "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)")
    assert cut == [], f"labels cut off: {cut}"
    e9 = page.eval_on_selector(".icl-ctl-aggregation select",
                               "e => e.options[e.selectedIndex].textContent")
    assert e9 == "off"
    legend = page.inner_text(".icl-explorer")
    assert "hidden from the test example" in legend and "test example (dashed)" in legend


def test_clicks_change_the_prediction_and_strike_hidden_keys(page, reference):
    base = reference.update(Selection())
    want = reference.update(Selection(kinds=frozenset({"template"})))
    assert want.prediction != base.prediction, "pick a selection that flips the tiny model"
    assert _status(page)["pred"] == base.prediction
    click_latency(page, ".icl-ctl-kinds select", value="template")
    assert _status(page)["pred"] == want.prediction
    hidden = page.eval_on_selector_all(
        ".icl-explorer .icl-tok.hidden", "els => els.map(e => [e.className, "
        "getComputedStyle(e).textDecorationLine, getComputedStyle(e).opacity])")
    assert len(hidden) == int(want.hidden.sum()) > 0
    assert all("line-through" in deco and float(op) < 1 for _, deco, op in hidden)
    item = reference.item
    demo = int(np.flatnonzero((np.asarray(item.demo) >= 0) & ~want.hidden
                              & ~item.has("content"))[0])
    click_latency(page, f".icl-pos-{demo}")
    both = reference.update(Selection(kinds=frozenset({"template"}), tokens=(demo,)))
    assert _status(page)["pred"] == both.prediction
    assert "hidden" in page.get_attribute(f".icl-pos-{demo}", "class").split()
    assert f"Sel.positions([{demo}])" in page.input_value(".icl-explorer textarea")
    click_latency(page, ".icl-ctl-clear")
    click_latency(page, ".icl-ctl-kinds select", value="content")
    assert "hidden" not in page.get_attribute(f".icl-pos-{demo}", "class").split()


def test_attention_pattern_view_follows_layer_and_head(page, reference):
    svg = ".icl-explorer svg.icl-pattern"
    cells = page.eval_on_selector_all(f"{svg} rect.c", "els => els.length")
    assert cells == len(reference.queries) * len(reference.tokens)
    assert page.get_attribute(svg, "data-head") == str(MEAN_HEADS)
    page.select_option(".icl-ctl-pattern-head select", label="head 1")
    page.wait_for_selector(f"{svg}[data-head='1']", timeout=30_000)
    width = page.eval_on_selector(f"{svg} rect.c", "e => e.getBoundingClientRect().width")
    assert width > 0


def test_click_latency_is_measured(page, reference):
    demos = np.flatnonzero(np.asarray(reference.item.demo) >= 0)[:6]
    times = [click_latency(page, f".icl-pos-{int(p)}") for p in list(demos) + list(demos)]
    median = statistics.median(times)
    print(f"\nclick to changed DOM, tiny model, {len(times)} token clicks: median "
          f"{median * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} "
          f"ms (load average {os.getloadavg()[0]:.1f})")
    assert median < 10, f"an update took {median:.1f} s (median) in the browser"
    shot = os.environ.get("ICL_TOKENS_SCREENSHOT")
    if shot:
        click_latency(page, ".icl-ctl-preset select", value="+template")
        page.screenshot(path=shot, full_page=True)


# ---------------------------------------------------------------------- without a browser


def test_widget_css_and_controls(reference):
    from icl_tokens.explore.widget import AGGREGATION_OFF, Explorer, explorer_css

    ex = Explorer(reference)
    agg = ex.controls["aggregation"]
    assert agg.value == AGGREGATION_OFF and agg.label == "off"
    assert ex.selection_from_controls().aggregation is None
    agg.value = "all"
    assert ex.last.selection.aggregation == "all"
    assert all(c.style.description_width == "initial" for c in ex.controls.values())
    css = explorer_css(reference)
    for info, b in zip(reference.tokens, ex.token_buttons):
        kinds = color_kinds(info.categories)
        assert {"icl-tok", css_class(kinds)} <= set(b._dom_classes)
        assert f".{css_class(kinds)}{{background-color:{CATEGORY_COLORS.get(kinds[0], '')}" \
               f" !important" in css or kinds == ("unknown",)


def test_explore_by_name_loads_without_progress_bars(setting, capfd, monkeypatch):
    monkeypatch.setenv("ICL_TOKENS_DATA_DIR", setting["env"]["ICL_TOKENS_DATA_DIR"])
    ex = explore(setting["model"], task="sst2", k=K)
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err, err[-500:]
    assert ex.last is not None
    with pytest.raises(TypeError, match="model name alone"):
        explore(setting["model"], ex.state.tokenizer)


def test_pattern_view_checks_its_input(reference):
    up = reference.update(Selection(kinds=frozenset({"content"})))
    page = pattern_view(reference.tokens, up.pattern, reference.queries, layer=0, head=1,
                        hidden=up.hidden)
    assert page.count('class="c"') == up.pattern.shape[2] * up.pattern.shape[3]
    assert page.count('class="hid"') == int(up.hidden.sum())
    with pytest.raises(ValueError, match="out of range"):
        pattern_view(reference.tokens, up.pattern, reference.queries, layer=99)
    with pytest.raises(ValueError, match="Update.pattern"):
        pattern_view(reference.tokens, up.pattern[:, :, :1], reference.queries, layer=0)
