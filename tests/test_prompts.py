"""Tests for icl_tokens.prompts: prompt assembly with recorded spans (paper-spec §1, §2.2.1)."""

from __future__ import annotations

import itertools

import pytest

from icl_tokens.prompts import ROLES, Prompt, build_prompt
from icl_tokens.tasks import PAPER_TASKS, Example, load_task


def ex(task: str, i: str, label: str | None = None, **inputs: str) -> Example:
    spec = load_task(task)
    if not inputs:
        inputs = {f: f"{f} text {i}." for f in spec.input_fields}
    return Example(i, inputs, label if label is not None else next(iter(spec.label_map)))


def assert_covers(p: Prompt) -> None:
    segs = p.segments
    assert segs[0].role == "bos" and (segs[0].start, segs[0].end) == (0, 0)
    assert segs[0].part == "bos" and segs[0].name == "bos"
    real = segs[1:]
    assert real[0].start == 0
    assert real[-1].end == len(p.text)
    for a, b in itertools.pairwise(real):
        assert a.end == b.start        # contiguous, in order
    assert all(s.end > s.start for s in real)   # no empty pieces
    assert "".join(p.text[s.start:s.end] for s in real) == p.text
    assert all(s.role in ROLES for s in segs)


@pytest.mark.parametrize("task", PAPER_TASKS)
@pytest.mark.parametrize("k", [0, 1, 3])
def test_segments_cover_text(task: str, k: int) -> None:
    spec = load_task(task)
    labels = list(spec.label_map)
    demos = [ex(task, f"d{i}", labels[i % len(labels)]) for i in range(k)]
    p = build_prompt(spec, demos, ex(task, "t"))
    assert_covers(p)
    assert p.text.endswith(spec.output_prefix)
    assert not p.text.endswith(" ") and not p.text.endswith("\n")
    assert p.text.startswith(spec.instruction + "\n\n")
    assert p.demos == tuple(demos)
    assert p.task is spec
    assert p.gold == spec.label_word(p.test.label)
    # test_start is where the test example begins
    test_segs = p.spans(part="test")
    assert test_segs[0].start == p.test_start
    assert all(s.part != "test" for s in p.segments if s.end <= p.test_start and s.end > 0)
    assert [s.role for s in test_segs][-1] == "t_out_prefix"
    assert p.text[test_segs[-1].start:] == spec.output_prefix
    # demo segments: per demo, in order, each with exactly one d_out = its label word
    for i, d in enumerate(demos):
        segs = [s for s in p.segments if s.part == "demo" and s.demo == i]
        outs = [s for s in segs if s.role == "d_out"]
        assert len(outs) == 1
        assert p.text[outs[0].start:outs[0].end] == spec.label_word(d.label)
        d_in = [s for s in segs if s.role == "d_in"]
        assert [s.field for s in d_in] == list(spec.input_fields)
        for s in d_in:
            assert p.text[s.start:s.end] == d.inputs[s.field]
    assert len(p.spans(part="demo", role="d_out")) == k


def test_sst2_names_and_text() -> None:
    spec = load_task("sst2")
    demos = [Example("a", {"text": "a great film ."}, "1"), Example("b", {"text": "dull"}, "0")]
    p = build_prompt(spec, demos, Example("t", {"text": "so-so ."}, "0"))
    assert p.text == (
        "Classify the reviews into the categories of Positive and Negative.\n\n"
        "Review: a great film .\nSentiment: Positive\n\n"
        "Review: dull\nSentiment: Negative\n\n"
        "Review: so-so .\nSentiment:"
    )
    named = [(s.name, p.text[s.start:s.end]) for s in p.segments]
    assert named == [
        ("bos", ""),
        ("instruction", spec.instruction + "\n\n"),
        ("demo_1.t_in", "Review: "), ("demo_1.d_in", "a great film ."), ("demo_1.t_in", "\n"),
        ("demo_1.t_out", "Sentiment: "), ("demo_1.d_out", "Positive"), ("demo_1.t_out", "\n\n"),
        ("demo_2.t_in", "Review: "), ("demo_2.d_in", "dull"), ("demo_2.t_in", "\n"),
        ("demo_2.t_out", "Sentiment: "), ("demo_2.d_out", "Negative"), ("demo_2.t_out", "\n\n"),
        ("test.t_in", "Review: "), ("test.x", "so-so ."), ("test.t_in", "\n"),
        ("test.t_out_prefix", "Sentiment:"),
    ]
    parts = [s.part for s in p.segments]
    assert parts == ["bos", "instruction"] + ["demo"] * 12 + ["test"] * 4
    # piece indices: literal template pieces keep their index in the template
    assert [s.piece for s in p.spans(part="demo", role="t_in")][:2] == [0, 2]
    assert [s.piece for s in p.spans(part="demo", role="t_out")][:2] == [0, 2]
    assert [s.demo for s in p.spans(part="demo", role="d_in")] == [0, 1]
    assert p.spans(part="test", role="x")[0].field == "text"
    assert p.spans(part="test", role="x")[0].demo is None
    assert p.gold == "Negative"


def test_rte_two_fields_and_premise_space() -> None:
    spec = load_task("rte")
    d = Example("d", {"hypothesis": "H1.", "premise": "P1."}, "entailment")
    t = Example("t", {"premise": "P2.", "hypothesis": "H2."}, "not_entailment")  # order-free
    p = build_prompt(spec, [d], t)
    assert p.text.endswith(
        "Hypothesis: H1.\n Premise: P1.\nAnswer: True\n\nHypothesis: H2.\n Premise: P2.\nAnswer:")
    demo = [(s.name, s.field, p.text[s.start:s.end]) for s in p.segments if s.part == "demo"]
    assert demo == [
        ("demo_1.t_in", None, "Hypothesis: "), ("demo_1.d_in", "hypothesis", "H1."),
        ("demo_1.t_in", None, "\n Premise: "), ("demo_1.d_in", "premise", "P1."),
        ("demo_1.t_in", None, "\n"), ("demo_1.t_out", None, "Answer: "),
        ("demo_1.d_out", None, "True"), ("demo_1.t_out", None, "\n\n"),
    ]
    xs = p.spans(part="test", role="x")
    assert [(s.field, p.text[s.start:s.end]) for s in xs] == [("hypothesis", "H2."),
                                                              ("premise", "P2.")]


def test_zero_shot_prompt() -> None:
    spec = load_task("agnews")
    p = build_prompt(spec, [], ex("agnews", "t", "2"))
    assert not p.spans(part="demo")
    assert [s.name for s in p.segments] == ["bos", "instruction", "test.t_in", "test.x",
                                            "test.t_in", "test.t_out_prefix"]
    assert p.text == spec.instruction + "\n\nArticle: text text t.\nAnswer:"
    assert p.test_start == len(spec.instruction) + 2
    assert p.gold == "Sports"


def test_without_instruction() -> None:
    spec = load_task("trec")
    p = build_prompt(spec, [ex("trec", "d", "NUM")], ex("trec", "t", "LOC"),
                     include_instruction=False)
    assert not p.spans(role="instruction")
    assert p.text.startswith("Question: ")
    assert_covers(p)


def test_demo_label_words_override() -> None:
    spec = load_task("sst2")
    demos = [ex("sst2", "a", "1"), ex("sst2", "b", "1")]
    p = build_prompt(spec, demos, ex("sst2", "t", "0"), demo_label_words=["Negative", "foo"])
    outs = [p.text[s.start:s.end] for s in p.spans(role="d_out")]
    assert outs == ["Negative", "foo"]
    assert p.gold == "Negative"
    with pytest.raises(ValueError, match="1 demo label words for 2 demonstrations"):
        build_prompt(spec, demos, ex("sst2", "t", "0"), demo_label_words=["Positive"])


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
@pytest.mark.parametrize("where", ["demo", "test"])
def test_empty_input_text(bad: str, where: str) -> None:
    spec = load_task("sst2")
    empty = Example("e:1", {"text": bad}, "1")
    good = Example("g", {"text": "fine"}, "1")
    demos, test = ([empty], good) if where == "demo" else ([good], empty)
    with pytest.raises(ValueError, match=r"example 'e:1': input field 'text' is empty"):
        build_prompt(spec, demos, test)


def test_missing_input_field() -> None:
    spec = load_task("rte")
    bad = Example("x:3", {"hypothesis": "h"}, "entailment")
    with pytest.raises(ValueError) as ei:
        build_prompt(spec, [], bad)
    msg = str(ei.value)
    assert "'x:3'" in msg and "'premise'" in msg and "['hypothesis']" in msg


def test_non_string_input() -> None:
    spec = load_task("sst2")
    with pytest.raises(ValueError, match="is empty"):
        build_prompt(spec, [], Example("n", {"text": None}, "1"))  # type: ignore[dict-item]


def test_unknown_demo_label() -> None:
    spec = load_task("sst2")
    with pytest.raises(ValueError, match="not in label_map"):
        build_prompt(spec, [ex("sst2", "a", "7")], ex("sst2", "t", "0"))
