"""Latency of one knockout-explorer update: median over 20 varied selections.

One update = ``ExplorerState.update(selection)``: the selection's knockout, one cached forward of
the test suffix (the demonstration prefix computed once, before the timed updates), greedy
generation of the prediction, label-word probabilities and the attention mass per category.
The widget adds only redrawing on top. Selections vary the hidden kinds, demonstrations,
clicked tokens, layer windows, heads and the query scope; the E9 aggregation block (which needs
its own prefix) is timed separately.

``--browser`` times what a person waits for instead: the explorer served by Voila in headless
Chromium (Playwright, Debian's ``chromium``), from a click on a demonstration token to the
changed DOM (the status line showing the new update), median over ``--n`` clicks.

    ICL_TOKENS_DATA_DIR=../shared/data python benchmarks/bench_explore.py [--model gemma-3-270m]
        [--task sst2] [--k 4] [--example 0] [--scoring generate] [--n 20] [--browser]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from icl_tokens.explore import ExplorerState, Selection
from icl_tokens.models import load_model, load_tokenizer


def selections(state: ExplorerState, n: int) -> list[Selection]:
    """``n`` varied selections that restrict only the test example (the plain prefix serves)."""
    demo_pos = np.flatnonzero(np.asarray(state.item.demo) >= 0)
    k = int(max(t.demo for t in state.tokens)) + 1
    n_layers, n_heads = state.n_layers, state.n_heads
    kinds = [frozenset(), frozenset({"content"}), frozenset({"stopword", "content"}),
             frozenset({"template"}), frozenset({"template", "content"})]
    out = []
    for i in itertools.count():
        if len(out) == n:
            break
        extra: dict = {}
        if i % 3 == 1:
            extra["demos"] = (i % k,)
        if i % 4 == 2:
            extra["tokens"] = tuple(int(p) for p in demo_pos[i: i + 3])
        if i % 5 == 3:
            lo = i % n_layers
            extra["layers"] = tuple(range(lo, min(n_layers, lo + n_layers // 2)))
        if i % 6 == 4:
            extra["heads"] = (i % n_heads,)
        if i % 7 == 5:
            extra["queries"] = "last"
        if i % 8 == 6:
            extra["categories"] = frozenset({"label"})
        out.append(Selection(kinds=kinds[i % len(kinds)], **extra))
    return out


def browser_latency(args: argparse.Namespace) -> None:
    """Serve the explorer with Voila and time ``args.n`` token clicks in headless Chromium."""
    from playwright.sync_api import sync_playwright

    from icl_tokens.explore.browser import (
        CHROMIUM_ARGS,
        app_notebook,
        click_latency,
        find_chromium,
        open_explorer,
        serve_voila,
    )

    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium found: apt-get install -y chromium (or set "
                         "ICL_TOKENS_BROWSER).")
    with tempfile.TemporaryDirectory() as tmp:
        nb = app_notebook(Path(tmp) / "app.ipynb", args.model, args.task, seed=args.seed,
                          k=args.k, example=args.example, scoring=args.scoring)
        with serve_voila(nb) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            first = open_explorer(page, url, timeout=600)
            n_demo = page.eval_on_selector_all(".icl-tok:not(.test)", "els => els.length")
            picks = [f".icl-pos-{1 + (7 * i) % (n_demo - 1)}" for i in range(args.n)]
            times = [click_latency(page, p) for p in picks]
            browser.close()
    print(f"browser (Voila + headless Chromium), model {args.model}, task {args.task}, "
          f"scoring={args.scoring}, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    print(f"first render (kernel start, imports, model loading, first update): {first:.1f} s")
    print(f"{len(times)} token clicks, click to changed DOM: median "
          f"{statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, max "
          f"{max(times) * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--example", type=int, default=0)
    ap.add_argument("--scoring", default="generate", choices=["generate", "label"])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--browser", action="store_true",
                    help="time clicks in the explorer served by Voila, in headless Chromium")
    args = ap.parse_args()
    if args.browser:
        browser_latency(args)
        return
    torch.set_grad_enabled(False)
    model, tok = load_model(args.model), load_tokenizer(args.model)
    state = ExplorerState.from_task(model, tok, args.task, seed=args.seed, k=args.k,
                                    example=args.example, scoring=args.scoring)
    t0 = time.perf_counter()
    state.update(Selection())  # computes the demonstration prefix once
    first = time.perf_counter() - t0
    sels = selections(state, args.n)
    times, hits = [], 0
    for sel in sels:
        up = state.update(sel)
        times.append(up.seconds)
        hits += not up.prefix_computed
    agg = [state.update(Selection(aggregation="all", kinds=frozenset(kinds)))
           for kinds in ({"content"}, {"stopword", "content"}, {"template"})]
    q = np.percentile(times, [25, 75])
    print(f"model {args.model}, task {args.task}, seed {args.seed}, k={args.k}, test example "
          f"{args.example} ({state.item.example_id}): {len(state.item)} tokens, prefix "
          f"{state.item.prefix_len}, suffix {len(state.item) - state.item.prefix_len}; "
          f"scoring={args.scoring}; torch threads {torch.get_num_threads()}")
    print(f"first update (computes the prefix): {first * 1000:.0f} ms")
    print(f"{len(times)} varied updates (kinds, demos, clicked tokens, layer windows, heads, "
          f"query scope; {hits} served by the cached prefix): median "
          f"{statistics.median(times) * 1000:.0f} ms, IQR {q[0] * 1000:.0f}-{q[1] * 1000:.0f} "
          f"ms, min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    print("E9 aggregation block (its own prefix): "
          + ", ".join(f"{u.seconds * 1000:.0f} ms{' (new prefix)' if u.prefix_computed else ''}"
                      for u in agg))


if __name__ == "__main__":
    main()
