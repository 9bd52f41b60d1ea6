"""Probes: a planted signal is found and a shuffled one is not; folds never split a prompt or a
demonstration text (and splitting by token would leak); the reduced fit equals scikit-learn's
plain pipeline; captures on tiny models (answers, knockouts, the label position); the ``probe``
command is resumable and refuses bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from icl_tokens.ablation import Sel
from icl_tokens.aggregation.block import aggregation_knockout
from icl_tokens.aggregation.probes import (
    PROBE_COLUMNS,
    PROBE_POSITIONS,
    _fit_predict,
    _training_basis,
    collect_probe_data,
    control_labels,
    fit_probe,
    fit_probes,
    group_folds,
    model_answers,
    probe_episodes,
    probe_items,
    probe_table,
    prompt_groups,
)
from icl_tokens.cli import main
from icl_tokens.data import load_task_data
from icl_tokens.engine import LabelSet, capture_activations, resid_names
from icl_tokens.episodes import Episode, sample_episode
from icl_tokens.models import tiny_model
from icl_tokens.plotting import probe_curves
from icl_tokens.tasks import Example, load_task

# ------------------------------------------------------------------ synthetic features


def _planted(n=240, d=64, signal=1.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    direction = rng.normal(size=d)
    X = rng.normal(size=(n, d)) + signal * np.outer(2 * y - 1, direction) / np.sqrt(d) * 3
    groups = np.arange(n) // 4
    return X, y, groups


def test_a_planted_signal_is_found_and_a_shuffled_one_is_not():
    X, y, g = _planted()
    fit = fit_probe(X, y, g)
    assert fit.accuracy > 0.9
    assert 0.35 < fit.majority < 0.65
    shuffled = np.random.default_rng(1).permutation(y)
    assert fit_probe(X, shuffled, g).accuracy < 0.65
    noise = np.random.default_rng(2).normal(size=X.shape)
    assert fit_probe(noise, y, g).accuracy < 0.65


def test_splitting_by_token_would_leak_and_group_folds_do_not():
    # Each text appears 4 times (e.g. one demonstration seen in 4 prompts) with a text-specific
    # feature vector and a random label per text: nothing generalises across texts, but a probe
    # that sees a text in training memorises it.
    rng = np.random.default_rng(0)
    n_texts, reps, d = 60, 4, 128
    proto = rng.normal(size=(n_texts, d))
    text_label = rng.integers(0, 2, n_texts)
    texts = np.repeat(np.arange(n_texts), reps)
    X = proto[texts] + 0.05 * rng.normal(size=(len(texts), d))
    y = text_label[texts]
    by_text = fit_probe(X, y, texts, Cs=(10.0,))
    by_token = fit_probe(X, y, np.arange(len(texts)), Cs=(10.0,))
    assert by_token.accuracy > 0.9  # the leak the grouping prevents
    assert by_text.accuracy < 0.7


def test_group_folds_keep_every_group_on_one_side():
    groups = np.repeat(np.arange(23), np.arange(23) % 4 + 1)
    folds = group_folds(groups, 5, seed=3)
    seen = np.zeros(len(groups), dtype=int)
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
        assert len(tr) + len(te) == len(groups)
        seen[te] += 1
    assert (seen == 1).all()  # every point tested exactly once
    sizes = [len(te) for _, te in folds]
    assert max(sizes) - min(sizes) <= 4
    with pytest.raises(ValueError, match="only 3 independent groups"):
        group_folds(np.array([0, 0, 1, 2]), 5)


def test_control_labels_are_per_text_and_keep_the_distribution():
    texts = ["a", "b", "a", "c", "d", "b", "e", "f"]
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    yc = control_labels(texts, y, seed=4)
    by_text = {}
    for t, v in zip(texts, yc):
        assert by_text.setdefault(t, v) == v
    first = {t: v for t, v in zip(texts, y)}
    assert sorted(by_text.values()) == sorted(first.values())


def test_the_reduced_fit_equals_the_plain_scikit_learn_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, _ = _planted(n=120, d=200, signal=0.4, seed=5)
    tr, te = np.arange(90), np.arange(90, 120)
    Z_tr, Z_te = _training_basis(X[tr], X[te])
    assert Z_tr.shape[1] <= 90
    for C in (1e-3, 1e-1, 1.0):
        ours, _ = _fit_predict(Z_tr, y[tr], Z_te, C)
        plain = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000, tol=1e-8))
        plain.fit(X[tr], y[tr])
        assert (ours == plain.predict(X[te])).mean() >= 0.97


def test_fit_probes_shares_folds_and_handles_one_class():
    X, y, g = _planted(n=80)
    out = fit_probes(X, {"task": y, "one": np.zeros(80, dtype=int)}, g, folds=4)
    assert out["one"].accuracy == 1.0 and out["one"].majority == 1.0
    assert len(out["task"].Cs) == 4
    with pytest.raises(ValueError, match="one row per point"):
        fit_probes(X, {"y": y[:-1]}, g)


# ------------------------------------------------------------------ prompts and groups


def _ex(i, text, label="1"):
    return Example(f"x{i}", {"text": text}, label)


def test_prompts_sharing_any_text_are_one_group():
    a, b, c, d, e = (_ex(i, t) for i, t in enumerate("abcde"))
    eps = [Episode("t", 0, 1, (a,), (b,)),
           Episode("t", 0, 1, (c,), (d,)),
           Episode("t", 1, 1, (e,), (b,)),      # same test text as prompt 0 (another seed)
           Episode("t", 1, 1, (_ex(9, "c"),), (_ex(8, "z"),))]  # same demo text as prompt 1
    g = prompt_groups(eps)
    assert g[0] == g[2] and g[1] == g[3] and g[0] != g[1]


WORDS_POS = ["warm", "funny", "smart", "moving", "tender", "bright", "clever", "lovely", "sharp",
             "witty"]
WORDS_NEG = ["dull", "flat", "tired", "lifeless", "clumsy", "muddled", "bland", "shallow",
             "stale", "inert"]
NOUNS = ["film", "story", "picture", "comedy", "drama", "plot", "script", "cast"]


@pytest.fixture
def probe_data_dir(tmp_path, monkeypatch):
    """An SST-2-format folder with 320 distinct training and 60 test sentences."""
    rng = np.random.default_rng(0)
    seen, lines = set(), []
    while len(lines) < 380:
        pos = bool(rng.integers(0, 2))
        words = WORDS_POS if pos else WORDS_NEG
        s = (f"a {words[rng.integers(10)]} {NOUNS[rng.integers(8)]} , and the "
             f"{words[rng.integers(10)]} {NOUNS[rng.integers(8)]} of {rng.integers(1000)} .")
        if s not in seen:
            seen.add(s)
            lines.append(f"{int(pos)} {s}")
    d = tmp_path / "data" / "sst2"
    d.mkdir(parents=True)
    (d / "stsa.binary.train").write_text("\n".join(lines[:320]) + "\n")
    (d / "stsa.binary.test").write_text("\n".join(lines[320:]) + "\n")
    monkeypatch.setenv("ICL_TOKENS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_no_prompt_or_demonstration_text_is_in_train_and_test(probe_data_dir):
    task = load_task("sst2")
    data = load_task_data(task)
    eps = probe_episodes(data, [0, 1], k=2, n_test=20)
    for s in (0, 1):  # within a seed no demonstration repeats; prompt 0 is the seed's episode
        ids = [d.id for e in eps if e.seed == s for d in e.demos]
        assert len(ids) == len(set(ids)) == 40
        assert [e for e in eps if e.seed == s][0].demos == sample_episode(data, s, k=2).demos
    from icl_tokens.models import gpt2_tokenizer

    tok = gpt2_tokenizer()
    items = probe_items(task, tok, LabelSet.for_task(task, tok), eps)
    groups = np.array([it.meta["group"] for it in items])
    assert 5 <= len(set(groups)) <= 20  # the test texts repeat across the two seeds
    def side(idx):
        return {t for i in idx for t in (*items[i].meta["demo_text"], items[i].meta["test_text"])}

    for tr, te in group_folds(groups, 5):
        assert not side(tr) & side(te)  # no demonstration or test text on both sides
        assert not set(tr) & set(te)  # no prompt on both sides


def test_bad_probe_episode_arguments(probe_data_dir):
    data = load_task_data(load_task("sst2"))
    with pytest.raises(ValueError, match="k >= 1"):
        probe_episodes(data, [0], k=0)
    with pytest.raises(ValueError, match="distinct"):
        probe_episodes(data, [0, 0], k=2)


# ------------------------------------------------------------------ tiny models


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    return tiny_model("llama", tmp_path_factory.mktemp("probe_llama"))


def _items(bridge, n_test=20, seeds=(0,), k=2):
    task = load_task("sst2")
    data = load_task_data(task)
    tok = bridge.tokenizer
    eps = probe_episodes(data, list(seeds), k=k, n_test=n_test)
    return task, tok, probe_items(task, tok, LabelSet.for_task(task, tok), eps)


def test_capture_gives_one_point_per_demonstration_and_the_engines_answers(bridge,
                                                                          probe_data_dir):
    task, tok, items = _items(bridge)
    data = collect_probe_data(bridge, tok, items, batch_size=6)
    assert set(data) == set(PROBE_POSITIONS)
    assert data["t_out.colon"].X.shape == (40, 2, 64)  # 20 prompts x 2 demonstrations
    gold = [task.label_words.index(w) for it in items for w in it.meta["demo_gold"]]
    assert data["t_out.colon"].y.tolist() == gold
    # test.last answers from the capture pass equal the scoring engine's label predictions
    answers = model_answers(bridge, tok, items)
    assert [task.label_words[i] for i in data["test.last"].y] == answers
    # the features are those of a plain capture (skipping the unembedding changes nothing)
    plain = capture_activations(bridge, tok, items[:3], resid_names(2),
                                positions=Sel.role("demo_*.t_out.colon"))
    ref = np.stack([np.stack([c.acts[n].numpy() for n in resid_names(2)], 1) for c in plain])
    np.testing.assert_allclose(data["t_out.colon"].X[:6], ref.reshape(6, 2, 64), atol=1e-5)
    # the label token (its own embedding) carries the label: a positive control
    fit = fit_probe(data["label"].X[:, 0], data["label"].y, data["label"].groups, folds=4)
    assert fit.accuracy >= 0.9


def test_the_knockout_changes_blocked_queries_only(bridge, probe_data_dir):
    _, tok, items = _items(bridge, n_test=6)
    plain = collect_probe_data(bridge, tok, items, positions=["t_in.word", "t_out.colon"])
    agg = collect_probe_data(bridge, tok, items, positions=["t_in.word", "t_out.colon"],
                             knockout=aggregation_knockout())
    # the first demonstration's 'Review' sees no content yet: unchanged
    first = np.arange(0, 12, 2)
    np.testing.assert_allclose(agg["t_in.word"].X[first], plain["t_in.word"].X[first], atol=1e-5)
    # every ':' before a label reads content without the block
    assert np.abs(agg["t_out.colon"].X - plain["t_out.colon"].X).max(axis=(1, 2)).min() > 1e-4


def test_probe_table_rows_and_figure(bridge, probe_data_dir):
    _, tok, items = _items(bridge, n_test=20)
    data = collect_probe_data(bridge, tok, items, positions=["label", "t_out.colon"])
    df = pd.concat([probe_table(d, folds=3, inner_folds=2) for d in data.values()])
    assert list(df.columns) == list(PROBE_COLUMNS)
    assert len(df) == 2 * 2 and (df.seed == -1).all()
    assert ((df.selectivity - (df.accuracy - df.control)).abs() < 1e-12).all()
    # the label token's identity is a planted feature of a tiny random model: found, while its
    # control (labels reassigned per text) is not
    label0 = df[(df.position == "label") & (df.layer == 0)].iloc[0]
    assert label0.accuracy >= 0.9 and label0.control < 0.75 and label0.selectivity > 0.2
    fig = probe_curves(df)
    acc = [t for t in fig.data if t.name == "label icl"][0]
    np.testing.assert_allclose(acc.y, df[df.position == "label"].sort_values("layer").accuracy)
    with pytest.raises(ValueError, match="not in the table"):
        probe_curves(df, positions=["content"])


# ------------------------------------------------------------------ CLI


def _cli(tiny_dir, out, *extra):
    return main(["probe", "--model", str(tiny_dir), "--task", "sst2", "--seeds", "0,1",
                 "--n-test", "8", "--k", "2", "--positions", "label,t_out.colon,test.last",
                 "--folds", "3", "--inner-folds", "2", "--no-progress", "--out", str(out),
                 *extra])


def test_probe_command_writes_resumes_and_refuses_bad_input(tiny_dir, probe_data_dir, tmp_path,
                                                            capsys):
    out = tmp_path / "p.csv"
    assert _cli(tiny_dir, out, "--aggregation") == 0
    df = pd.read_csv(out)
    assert len(df) == 3 * 2 * 2  # positions x layers x (icl, agg)
    assert set(df.knockout) == {"icl", "agg"} and (df.seed == -1).all()
    assert set(df.condition) == {f"{k}|L{la}" for k in ("icl", "agg") for la in (0, 1)}
    side = json.loads(out.with_name("p.csv.meta.json").read_text())
    assert side["identity"]["command"] == "probe"
    printed = capsys.readouterr().out
    assert "t_out.colon" in printed and "control" in printed
    # resume: drop two rows, rerun, they come back identical (deterministic folds and control)
    full = out.read_text().splitlines()
    out.write_text("\n".join(full[:-2]) + "\n")
    assert _cli(tiny_dir, out, "--aggregation") == 0
    again = pd.read_csv(out)
    pd.testing.assert_frame_equal(again.sort_values("condition").reset_index(drop=True)
                                  .sort_values(["example_id", "condition"]).reset_index(drop=True),
                                  df.sort_values(["example_id", "condition"])
                                  .reset_index(drop=True))
    # other arguments: refused, not mixed
    assert _cli(tiny_dir, out, "--folds", "2") == 2
    assert "different arguments" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--positions", "colon"], "unknown probe positions"),
    (["--layers", "5"], "out of range"),
    (["--folds", "1"], "must be >= 2"),
])
def test_probe_command_bad_input_leaves_nothing(tiny_dir, probe_data_dir, tmp_path, capsys,
                                                extra, message):
    out = tmp_path / "bad.csv"
    assert _cli(tiny_dir, out, *extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not out.with_name("bad.csv.meta.json").exists()


# ------------------------------------------------------------------ Gemma-3-270M


@pytest.mark.integration
def test_gemma_answers_and_the_label_token_positive_control():
    """On the default model: the answers read off the capture pass equal the scoring engine's
    label predictions, and the label word's own token carries the label (SST-2, CBU data from
    ICL_TOKENS_DATA_DIR, seed 0, 20 probe prompts)."""
    import torch

    from icl_tokens.models import load_model, load_tokenizer

    torch.set_grad_enabled(False)
    model, tok = load_model(), load_tokenizer()
    task = load_task("sst2")
    items = probe_items(task, tok, LabelSet.for_task(task, tok),
                        probe_episodes(load_task_data(task), [0], k=4, n_test=20))
    data = collect_probe_data(model, tok, items, positions=["label", "test.last"], layers=[0, 9])
    answers = model_answers(model, tok, items)
    assert [task.label_words[i] for i in data["test.last"].y] == answers
    d = data["label"]
    assert fit_probe(d.X[:, 0], d.y, d.groups).accuracy >= 0.95
