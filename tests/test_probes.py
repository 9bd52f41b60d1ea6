"""Probes: a planted signal is found and a shuffled one is not; folds never split a prompt or a
demonstration text (and splitting by token would leak); the reduced fit equals scikit-learn's
plain pipeline; the permutation null (group shuffles, p-values, the best-layer correction) is
calibrated on noise, finds a planted layer and is deterministic; the control task is reported
only where it can be learnt; captures on tiny models (answers, knockouts, the label position);
the ``probe`` command is resumable and refuses bad input."""

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
    UNLEARNABLE,
    ProbeData,
    _fit_predict,
    _training_basis,
    collect_probe_data,
    control_labels,
    control_seen,
    fit_probe,
    fit_probes,
    group_folds,
    model_answers,
    null_pvalues,
    permute_groups,
    permuted_labels,
    probe_episodes,
    probe_items,
    probe_table,
    prompt_groups,
)
from icl_tokens.cli import main
from icl_tokens.data import load_task_data
from icl_tokens.engine import LabelSet, capture_activations, resid_names
from icl_tokens.episodes import Episode, sample_episode
from icl_tokens.plotting import probe_curves
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tiny import tiny_model

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


def test_the_batched_solver_equals_scikit_learn_target_by_target():
    """Many label vectors solved at once (binary and softmax, a class missing from a training
    side, one training class, the warm-started C path) predict as scikit-learn's
    ``LogisticRegression`` fitted on each alone."""
    import warnings

    from sklearn.linear_model import LogisticRegression

    from icl_tokens.aggregation.probes import _fit_predict_many

    rng = np.random.default_rng(6)
    for K, d in ((2, 40), (3, 150)):
        y = rng.integers(0, K, 400)
        X = rng.normal(size=(400, d)) + rng.normal(size=(K, d))[y] * 0.4
        tr, te = np.arange(300), np.arange(300, 400)
        Z_tr, Z_te = _training_basis(X[tr], X[te])
        codes = np.stack([y, rng.permutation(y), np.where(y == K - 1, 0, y), np.zeros(400, int)])
        W = None
        clfs = [LogisticRegression(max_iter=500, warm_start=True) for _ in codes]
        for C in (1e-3, 1e-2, 1e-1, 1.0):
            pred, W = _fit_predict_many(Z_tr, codes[:, tr], Z_te, np.full(4, C), K, W)
            for j, c in enumerate(codes):
                if len(np.unique(c[tr])) == 1:
                    want = np.full(len(te), c[tr][0])
                else:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        want = clfs[j].set_params(C=C).fit(Z_tr, c[tr]).predict(Z_te)
                assert (pred[j] == want).mean() >= 0.97, (K, C, j)


def test_fit_probes_shares_folds_and_handles_one_class():
    X, y, g = _planted(n=80)
    out = fit_probes(X, {"task": y, "one": np.zeros(80, dtype=int)}, g, folds=4)
    assert out["one"].accuracy == 1.0 and out["one"].majority == 1.0
    assert len(out["task"].Cs) == 4
    with pytest.raises(ValueError, match="one row per point"):
        fit_probes(X, {"y": y[:-1]}, g)


# ------------------------------------------------------------------ permutation null and control

FAST = dict(folds=3, inner_folds=2, Cs=(0.1, 1.0))  # small nested CV: the tests stay fast


def _layers(n_layers=4, planted=(), n=160, d=12, group=4, seed=0, texts=None, groups=None):
    """ProbeData of pure-noise layers, with a label direction added in the ``planted`` ones."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, n_layers, d))
    for layer in planted:
        X[:, layer] += 1.5 * np.outer(2 * y - 1, rng.normal(size=d)) / np.sqrt(d)
    g = np.arange(n) // group if groups is None else groups
    texts = [f"t{i}" for i in range(n)] if texts is None else texts
    return ProbeData("p", X.astype(np.float32), y, ("neg", "pos"), g, texts,
                     np.zeros(n, dtype=int), tuple(range(n_layers)), "gold")


def test_null_pvalues_count_ties_and_take_the_max_over_layers():
    observed = np.array([0.9, 0.5])
    null = np.array([[0.6, 0.55], [0.5, 0.7], [0.95, 0.4]])
    out = null_pvalues(observed, null)
    np.testing.assert_allclose(out["p_perm"], [2 / 4, 3 / 4])  # ties count against
    np.testing.assert_allclose(out["p_max"], [2 / 4, 4 / 4])  # max per shuffle: .6, .7, .95
    np.testing.assert_allclose(out["null_mean"], null.mean(0))
    np.testing.assert_allclose(out["null_q95"], np.quantile(null, 0.95, axis=0))
    np.testing.assert_allclose(out["max_null_q95"], np.quantile([0.6, 0.7, 0.95], 0.95))
    assert all(np.isnan(v).all() for v in null_pvalues(observed, np.empty((0, 2))).values())


def test_permutation_keeps_groups_intact():
    rng = np.random.default_rng(0)
    sizes = [3, 3, 3, 2, 2, 5, 1, 3]  # the size-5 and size-1 groups have no partner
    groups = np.repeat(np.arange(len(sizes)), sizes)
    y = rng.integers(0, 3, len(groups))
    blocks = {g: y[groups == g].tolist() for g in range(len(sizes))}
    changed = False
    for _ in range(20):
        yp = permute_groups(y, groups, rng)
        sources = []
        for g in range(len(sizes)):
            got = yp[groups == g].tolist()
            match = [h for h in range(len(sizes)) if sizes[h] == sizes[g] and blocks[h] == got]
            assert match  # a group's labels are another same-size group's, as a block
            sources.append(match)
            changed |= got != blocks[g]
        assert sorted(yp.tolist()) == sorted(y.tolist())  # the label distribution is kept
        assert yp[groups == 5].tolist() == blocks[5] and yp[groups == 6].tolist() == blocks[6]
    assert changed
    # one label per group (e.g. prompts whose answers agree): every point of a group gets the
    # same permuted label, and the groups' labels are a permutation of the originals
    y1 = np.repeat(np.array([0, 1, 1, 0, 1, 0, 0, 1]), 4)
    g1 = np.repeat(np.arange(8), 4)
    shuffles = permuted_labels(y1, g1, 10, seed=3)
    assert shuffles.shape == (10, 32)
    for yp in shuffles:
        per_group = yp.reshape(8, 4)
        assert (per_group == per_group[:, :1]).all()
        assert sorted(per_group[:, 0]) == sorted(y1[::4])
    assert len({tuple(v) for v in shuffles}) > 1


def test_the_null_is_calibrated_on_features_without_signal():
    # 24 independent noise data sets of 3 layers: p-values roughly uniform, and the best layer
    # clears the corrected null about as often as alpha says (exactly 1 of 24 here)
    df = pd.concat([probe_table(_layers(n_layers=3, n=64, seed=10 + s), permutations=19,
                                **FAST).assign(data=s) for s in range(24)])
    assert (df.permutations == 19).all() and df.p_perm.between(1 / 20, 1).all()
    assert 0.35 < df.p_perm.mean() < 0.7
    assert (df.p_perm <= 0.1).mean() < 0.2
    best = df.sort_values("accuracy").groupby("data").tail(1)
    assert (best.p_max <= 0.05).sum() <= 2
    assert (df.p_max >= df.p_perm).all()  # the correction only raises p
    # one seeded case: the best of 8 noise layers is not a finding once corrected
    df = probe_table(_layers(n_layers=8, seed=1), permutations=19, **FAST)
    best = df.loc[df.accuracy.idxmax()]
    assert best.p_max > 0.05 and best.accuracy <= best.max_null_q95
    assert df.null_mean.between(0.4, 0.6).all() and (df.null_q95 > df.null_mean).all()


def test_a_planted_layer_reaches_the_smallest_corrected_p_and_the_others_do_not():
    n_perm = 19
    df = probe_table(_layers(n_layers=4, planted=(2,), seed=2), permutations=n_perm, **FAST)
    p = df.set_index("layer").p_max
    assert p[2] == 1 / (1 + n_perm)
    assert (p.drop(2) > 0.05).all()
    assert df.set_index("layer").accuracy[2] > df.max_null_q95.iloc[0]
    assert df.max_null_q95.nunique() == 1  # one threshold for the family


def test_selectivity_only_where_the_control_can_be_learnt():
    # group folds (every text in one group): the control cannot be learnt -- no selectivity
    df = probe_table(_layers(n_layers=1, planted=(0,)), permutations=0, **FAST)
    row = df.iloc[0]
    assert np.isnan(row.control) and np.isnan(row.selectivity)
    assert row.control_note == UNLEARNABLE and row.control_seen == 0
    assert row.accuracy > 0.8  # the task itself is still probed
    assert np.isnan(row.p_max) and row.permutations == 0
    # 30 texts seen 4 times each, every point its own group: texts cross the folds
    n = 120
    texts = [f"t{i % 30}" for i in range(n)]
    splits = group_folds(np.arange(n), 3, 0)
    assert control_seen(texts, splits) > 0.9
    assert control_seen(texts, group_folds(np.arange(n) % 30, 3, 0)) == 0.0
    df = probe_table(_layers(n_layers=1, planted=(0,), n=n, texts=texts, groups=np.arange(n)),
                     permutations=0, **FAST)
    row = df.iloc[0]
    assert np.isfinite(row.control) and np.isfinite(row.selectivity)
    assert row.selectivity == pytest.approx(row.accuracy - row.control)
    assert row.control_note.startswith("learnable") and row.control_seen > 0.9


def test_the_null_is_deterministic_for_a_seed():
    data = _layers(n_layers=2, planted=(1,), n=80, seed=3)
    a = probe_table(data, permutations=5, seed=7, **FAST)
    b = probe_table(data, permutations=5, seed=7, **FAST)
    pd.testing.assert_frame_equal(a, b)
    c = probe_table(data, permutations=5, seed=8, **FAST)
    assert not np.allclose(a.null_mean, c.null_mean)
    np.testing.assert_array_equal(permuted_labels(data.y, data.groups, 5, seed=1),
                                  permuted_labels(data.y, data.groups, 5, seed=1))
    # skipped layers still enter the best-layer correction: the kept row is unchanged
    d = probe_table(data, permutations=5, seed=7, skip=lambda s, layer: layer == 0, **FAST)
    assert d.layer.tolist() == [1]
    # the real fit does not depend on how many shuffles are fitted beside it
    e = probe_table(data, permutations=0, seed=7, **FAST)
    np.testing.assert_array_equal(e.accuracy, a.accuracy)
    np.testing.assert_array_equal(e.C_median, a.C_median)
    e = probe_table(data, permutations=0, seed=7, skip=lambda s, layer: layer == 0, **FAST)
    assert e.layer.tolist() == [1]
    pd.testing.assert_frame_equal(d.reset_index(drop=True),
                                  a[a.layer == 1].reset_index(drop=True))


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
    df = pd.concat([probe_table(d, folds=3, inner_folds=2, permutations=9)
                    for d in data.values()])
    assert list(df.columns) == list(PROBE_COLUMNS)
    assert len(df) == 2 * 2 and (df.seed == -1).all()
    # the folds share no demonstration text, so the per-text control cannot be learnt: it and
    # selectivity are not reported (they would be accuracy minus chance)
    assert df.control.isna().all() and df.selectivity.isna().all()
    assert (df.control_note == UNLEARNABLE).all()
    # the label token's identity is a planted feature of a tiny random model: it clears the
    # best-layer-corrected permutation null with the smallest possible p
    label0 = df[(df.position == "label") & (df.layer == 0)].iloc[0]
    assert label0.accuracy >= 0.9 and label0.p_max == 1 / 10
    assert label0.accuracy > label0.max_null_q95
    fig = probe_curves(df)
    acc = [t for t in fig.data if t.name == "label icl"][0]
    np.testing.assert_allclose(acc.y, df[df.position == "label"].sort_values("layer").accuracy)
    names = {t.name for t in fig.data}
    assert {"label icl null band", "label icl null 95%", "label icl best-layer threshold",
            "label icl majority"} <= names
    assert "label icl control" not in names  # nothing to draw
    thr = [t for t in fig.data if t.name == "label icl best-layer threshold"][0]
    np.testing.assert_allclose(thr.y, df[df.position == "label"].max_null_q95)
    assert fig.layout.yaxis.title.text == "held-out accuracy"
    with pytest.raises(ValueError, match="not in the table"):
        probe_curves(df, positions=["content"])


# ------------------------------------------------------------------ CLI


def _cli(tiny_dir, out, *extra):
    return main(["probe", "--model", str(tiny_dir), "--task", "sst2", "--seeds", "0,1",
                 "--n-test", "8", "--k", "2", "--positions", "label,t_out.colon,test.last",
                 "--folds", "3", "--inner-folds", "2", "--permutations", "4", "--no-progress",
                 "--out", str(out), *extra])


def test_probe_command_writes_resumes_and_refuses_bad_input(tiny_dir, probe_data_dir, tmp_path,
                                                            capsys):
    out = tmp_path / "p.csv"
    assert _cli(tiny_dir, out, "--aggregation") == 0
    df = pd.read_csv(out)
    assert len(df) == 3 * 2 * 2  # positions x layers x (icl, agg)
    assert set(df.knockout) == {"icl", "agg"} and (df.seed == -1).all()
    assert set(df.condition) == {f"{k}|{p}|L{la}" for k in ("icl", "agg") for la in (0, 1)
                                 for p in ("label", "t_out.colon", "test.last")}
    assert (df.permutations == 4).all() and df.p_max.between(0.2, 1).all()
    assert (df.control_note == UNLEARNABLE).all() and df.selectivity.isna().all()
    side = json.loads(out.with_name("p.csv.meta.json").read_text())
    assert side["identity"]["level"] == "probe"
    printed = capsys.readouterr().out
    assert "t_out.colon" in printed and "p_max" in printed
    assert f"control n/a: {UNLEARNABLE}" in printed
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


def test_probe_command_refuses_negative_permutations(tiny_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _cli(tiny_dir, tmp_path / "neg.csv", "--permutations", "-1")
    assert "expected an integer >= 0" in capsys.readouterr().err


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
