"""Tests for icl_tokens.plotting and icl_tokens.analysis.counts: figure data equals the table, never pixels.

A toy fast tokenizer (word-level, unknown words keep their offsets) is built in memory, so these
tests need no model files and no network.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from icl_tokens import plotting as P
from icl_tokens.ablation.conditions import PAPER_ORDER, condition_knockout
from icl_tokens.analysis import counts as RP
from icl_tokens.categorize import categorize
from icl_tokens.data import TaskData
from icl_tokens.episodes import sample_episode
from icl_tokens.prompts import build_prompt
from icl_tokens.reference import paper_condition_table, paper_values
from icl_tokens.tasks import Example, load_task

# ----------------------------------------------------------------------------- fixtures


def toy_tokenizer(*, bos: bool = True, pattern: str = r" ?\w+| ?[^\w\s]+|\s+"
                  ) -> PreTrainedTokenizerFast:
    """Word-level tokenizer; every piece matched by ``pattern`` is one token (mostly [UNK])."""
    vocab = {"[UNK]": 0, "<s>": 1, "Review": 2, ":": 3, " the": 4, "\n": 5, "\n\n": 6}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", unk_token="[UNK]")


@pytest.fixture(scope="module")
def tp():
    task = load_task("sst2")
    demos = [
        Example("train:0", {"text": "the film's ending .' works"}, "1"),
        Example("train:1", {"text": "a dull , lifeless mess ."}, "0"),
    ]
    test = Example("test:0", {"text": "the best <b> & film ."}, "1")
    return categorize(build_prompt(task, demos, test), toy_tokenizer())


def _span_texts(doc: str) -> list[str]:
    return re.findall(r'<span class="icl-tok[^"]*"[^>]*>([^<]*)</span>', doc)


# ----------------------------------------------------------------------------- imports


def test_no_circuitsvis_or_kaleido_imported() -> None:
    code = (
        "import sys, icl_tokens.plotting, icl_tokens.analysis.counts, icl_tokens.reference\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('circuitsvis', 'kaleido'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert not any(m.split(".")[0] in ("circuitsvis", "kaleido") for m in sys.modules)


def test_plotting_imports_no_transformer_lens() -> None:
    code = "import sys, icl_tokens.plotting; print('transformer_lens' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- imshow


def test_imshow_array_defaults_to_centred_rdbu() -> None:
    z = np.array([[-1.0, 0.5], [2.0, -3.0]])
    fig = P.imshow(z, x=["a", "b"], y=["r1", "r2"], title="t", xaxis_title="keys")
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), z)
    assert list(fig.data[0].x) == ["a", "b"] and list(fig.data[0].y) == ["r1", "r2"]
    assert fig.layout.coloraxis.cmid == 0.0
    assert fig.layout.coloraxis.colorscale[0][1] == "rgb(103,0,31)"  # RdBu starts dark red
    assert fig.layout.title.text == "t"
    assert fig.layout.xaxis.title.text == "keys"


def test_imshow_tensor_bool_and_dataframe() -> None:
    t = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)
    fig = P.imshow(t)
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), t.float().numpy())
    fig = P.imshow(np.array([[True, False]]), color_continuous_midpoint=None)
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), [[1, 0]])
    df = pd.DataFrame([[1.0, 2.0]], index=["row"], columns=["c1", "c2"])
    fig = P.imshow(df)
    assert list(fig.data[0].x) == ["c1", "c2"] and list(fig.data[0].y) == ["row"]


# ----------------------------------------------------------------------------- token HTML


def test_visible_whitespace() -> None:
    assert P.visible_whitespace("a b\n\n\tc") == "a·b⏎⏎⇥c"


def test_token_html_contains_every_token_in_order(tp) -> None:
    doc = P.token_category_html(tp, title="toy")
    texts = _span_texts(doc)
    assert len(texts) == len(tp)
    want = [html.escape(P.visible_whitespace(P.token_text(tp, i))) for i in range(len(tp))]
    assert texts == want
    assert "&lt;" in doc and "&gt;" in doc and "&amp;" in doc  # escaped prompt text
    assert "<b>" not in doc.replace("<br>", "")


def test_token_html_categories_tooltips_and_newlines(tp) -> None:
    doc = P.token_category_html(tp)
    cats = re.findall(r'data-cats="([^"]*)"', doc)
    assert cats == [" ".join(tp.categories(i)) for i in range(len(tp))]
    titles = re.findall(r'title="([^"]*)"', doc)
    assert len(titles) == len(tp)
    assert all(", ".join(tp.categories(i)) in html.unescape(t) for i, t in enumerate(titles))
    assert doc.count("<br>") == tp.prompt.text.count("\n")
    assert "⏎" in doc and "\n" not in re.sub(r"<style>.*?</style>", "", doc)
    for name in ("template", "stopword", "content", "label", "bos", "instruction", "test"):
        assert P.CATEGORY_COLORS[name] in doc  # legend
    assert "linear-gradient" in doc  # the newline: template + stopword
    assert "<script" not in doc


def test_token_html_marks_test_tokens(tp) -> None:
    doc = P.token_category_html(tp)
    classes = re.findall(r'<span class="(icl-tok[^"]*)"', doc)
    assert [("icl-test" in c) for c in classes] == list(tp.is_test)


# ----------------------------------------------------------------------------- mask heatmap


def test_mask_heatmap_is_the_knockout(tp) -> None:
    ko = condition_knockout(tp, "+template")
    fig = P.mask_heatmap(tp, ko)
    dense = ko.dense(len(tp)).numpy().astype(int)
    rows = np.flatnonzero(tp.is_test)
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), dense[rows])
    assert list(fig.data[0].y) == rows.tolist()
    assert list(fig.data[0].x) == list(range(len(tp)))
    labels = list(fig.layout.xaxis.ticktext)
    assert len(labels) == len(tp) and len(set(labels)) == len(tp)
    assert labels[0].startswith("0 ")
    assert np.asarray(fig.data[0].z).sum() == int(ko.key.sum()) * len(rows) > 0


def test_mask_heatmap_options(tp) -> None:
    ko = condition_knockout(tp, "icl-content")
    full = P.mask_heatmap(tp, ko, all_rows=True)
    np.testing.assert_array_equal(np.asarray(full.data[0].z), ko.dense(len(tp)).numpy())
    tail = P.mask_heatmap(tp, ko, max_tokens=10)
    assert list(tail.data[0].x) == list(range(len(tp) - 10, len(tp)))
    np.testing.assert_array_equal(
        np.asarray(tail.data[0].z), ko.dense(len(tp)).numpy()[tp.is_test][:, -10:])
    with pytest.raises(ValueError, match="positions"):
        P.mask_heatmap(tp, condition_knockout(tp, "icl").__class__(blocks=(), n=3))


# ----------------------------------------------------------------------------- accuracy bars


def _results() -> pd.DataFrame:
    rows = []
    for task in ("sst2", "rte"):
        for i, cond in enumerate(["icl", "+template", "zero_shot", "icl-template"]):
            for seed in range(3):
                for metric, off in (("acc_gen", 0.0), ("acc_label", 0.3)):
                    rows.append({"model": "m", "dataset": task, "seed": seed,
                                 "condition": cond, "metric": metric,
                                 "value": 0.1 * i + 0.01 * seed + off})
    return pd.DataFrame(rows)


def test_accuracy_bar_single_task_matches_table() -> None:
    res = _results()
    res = res[res.dataset == "sst2"]
    paper = paper_values(2, "Llama-7B", "sst2")
    fig = P.accuracy_bar(res, paper, scale=100, title="SST-2")
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    order = [c for c in PAPER_ORDER if c in set(res.condition)]
    assert list(fig.data[0].x) == order
    gen = res[res.metric == "acc_gen"].groupby("condition").value
    np.testing.assert_allclose(fig.data[0].y, gen.mean()[order] * 100)
    np.testing.assert_allclose(fig.data[0].error_y.array, gen.std(ddof=1)[order] * 100)
    ref = paper.set_index("condition").value
    want = [ref.get(c, np.nan) for c in order]
    np.testing.assert_allclose(np.asarray(fig.data[1].y, dtype=float), want)  # nan: not in Table 2
    assert fig.layout.barmode == "group" and fig.layout.title.text == "SST-2"


def test_accuracy_bar_several_tasks_and_wide_paper_table() -> None:
    res = _results()
    paper = paper_condition_table("Llama-7B", ["sst2", "rte"])
    fig = P.accuracy_bar(res, paper, metric="acc_label", name="gemma", paper_name="Llama-7B")
    x = [list(level) for level in fig.data[0].x]
    order = [c for c in PAPER_ORDER if c in set(res.condition)]
    assert x == [["sst2"] * 4 + ["rte"] * 4, order * 2]
    lab = res[res.metric == "acc_label"].groupby(["dataset", "condition"]).value.mean()
    np.testing.assert_allclose(fig.data[0].y, [lab[(t, c)] for t, c in zip(*x)])
    np.testing.assert_allclose(fig.data[1].y, [paper.loc[c, t] for t, c in zip(*x)])
    assert (fig.data[0].name, fig.data[1].name) == ("gemma", "Llama-7B")


def test_accuracy_bar_single_seed_and_errors() -> None:
    one = pd.DataFrame({"condition": ["icl", "none"], "value": [80.0, 10.0]})
    fig = P.accuracy_bar(one)
    assert list(fig.data[0].y) == [80.0, 10.0] and list(fig.data[0].error_y.array) == [0.0, 0.0]
    assert len(fig.data) == 1
    two_metrics = _results().drop(columns="metric").assign(metric=lambda d: ["a", "b"] * (len(d) // 2))
    with pytest.raises(ValueError, match="several metrics"):
        P.accuracy_bar(two_metrics)
    with pytest.raises(ValueError, match="value"):
        P.accuracy_bar(pd.DataFrame({"condition": ["icl"], "score": [1.0]}))


# ----------------------------------------------------------------------------- saving


def test_save_figure_writes_offline_html_and_json(tmp_path: Path) -> None:
    fig = P.imshow(np.eye(2))
    paths = P.save_figure(fig, tmp_path / "sub" / "fig.v1")
    assert [p.name for p in paths] == ["fig.v1.html", "fig.v1.json"]
    assert all(p.is_file() for p in paths)
    page = paths[0].read_text(encoding="utf-8")
    # plotly.js is inlined: no external <script src=...> (the bundle itself mentions the CDN).
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert len(page) > 1_000_000
    back = pio.from_json(paths[1].read_text(encoding="utf-8"))
    np.testing.assert_array_equal(np.asarray(back.data[0].z), np.eye(2))
    raw = json.loads(paths[1].read_text(encoding="utf-8"))  # plain lists, not base64
    assert raw["data"][0]["z"] == [[1.0, 0.0], [0.0, 1.0]]


def test_figure_json_nan_and_ints() -> None:
    fig = go.Figure(go.Heatmap(z=np.array([[1, 0]], dtype=np.int64), x=np.arange(2)))
    fig.add_trace(go.Bar(y=np.array([1.5, np.nan])))
    raw = json.loads(P.figure_json(fig))
    assert raw["data"][0]["z"] == [[1, 0]] and raw["data"][0]["x"] == [0, 1]
    assert raw["data"][1]["y"] == [1.5, None]


# ----------------------------------------------------------------------------- report tables


def _episodes() -> dict:
    task = load_task("sst2")
    pool = tuple(Example(f"train:{i}", {"text": t}, str(i % 2)) for i, t in enumerate([
        "the plot works .", "a dull , lifeless mess .", "the cast's charm .' wins", "it bores ."]))
    tests = tuple(Example(f"test:{i}", {"text": t}, "1") for i, t in enumerate(
        ["the best film .", "of the year ."]))
    data = TaskData("sst2", pool, tests, "dir", "-", "")
    return {"sst2": (task, sample_episode(data, seed=0, k=4, n_test=2))}


def test_category_counts_and_table() -> None:
    eps = _episodes()
    toks = {"bos": toy_tokenizer(), "nobos": toy_tokenizer(bos=False),
            "split_nl": toy_tokenizer(pattern=r" ?\w+| ?[^\w\s]+|\n| +")}
    spec, ep = eps["sst2"]
    tp0 = RP.episode_prompts(spec, ep, toks["bos"])[0]
    demo = RP.category_counts(tp0, "demos")
    assert demo["n_tokens"] == int((tp0.demo >= 0).sum())
    assert demo["template"] == int((tp0.has("template") & (tp0.demo >= 0)).sum())
    assert "bos" not in demo
    whole = RP.category_counts(tp0, "prompt")
    assert whole["bos"] == 1 and whole["n_tokens"] == len(tp0)
    with pytest.raises(ValueError, match="scope"):
        RP.category_counts(tp0, "all")
    counts = RP.category_counts_table(eps, toks, scope="prompt")
    assert list(counts.tokenizer) == ["bos", "nobos", "split_nl"]
    assert counts.set_index("tokenizer").loc["nobos", "bos"] == 0
    diff = RP.count_differences(counts, "bos")
    assert diff.loc[("sst2", "bos"), "nobos − bos"] == -1
    # "\n\n" split into two tokens: one more newline token per demonstration
    assert diff.loc[("sst2", "newline"), "split_nl − bos"] == 4
    with pytest.raises(ValueError, match="baseline"):
        RP.count_differences(counts, "gemma")


def test_multi_category_tokens() -> None:
    eps = _episodes()
    spec, ep = eps["sst2"]
    tp0 = RP.episode_prompts(spec, ep, toy_tokenizer())[0]
    multi = RP.multi_category_tokens(tp0)
    assert "·.'" in set(multi.text)  # "." is an SST-2 stopword, "'" is content
    assert set(multi[multi.text == "·.'"].categories) == {"stopword+content"}
    with_ws = RP.multi_category_tokens(tp0, include_whitespace=True)
    assert set(with_ws.text) - set(multi.text) >= {"⏎", "⏎⏎"}
    table = RP.multi_category_table(eps, {"toy": toy_tokenizer()})
    row = table[table.text == "·.'"].iloc[0]
    assert row["count"] == 1  # a demonstration token, shared by both prompts: counted once
    assert "[·.']" in row["example"]


def test_tokenizer_facts() -> None:
    facts = RP.tokenizer_facts({"bos": toy_tokenizer(), "nobos": toy_tokenizer(bos=False)},
                               probes=["a.\n\nReview:"])
    assert facts.adds_bos.tolist() == [True, False]
    assert facts.bos_token.tolist() == ["<s>", ""]
    assert facts["a.⏎⏎Review: tokens"].tolist() == ["a|.|⏎⏎|Review|:"] * 2
    assert facts["a.⏎⏎Review: n"].tolist() == [5, 5]
