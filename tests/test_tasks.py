"""Tests for icl_tokens.tasks: the shipped paper tasks (paper-spec §3, Table 12) and validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import icl_tokens.tasks as tasks_mod
from icl_tokens.categorize import categorize
from icl_tokens.models import gpt2_tokenizer
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import (
    PAPER_TASKS,
    STOPWORD_VARIANTS,
    Example,
    TaskDefinitionError,
    TaskSpec,
    list_tasks,
    load_task,
    parse_template,
    validate_tasks,
)

# ------------------------------------------------------------------ paper-spec §3 / Table 12
SPEC = {
    "agnews": {
        "instruction": "Classify the news articles into the categories of World, Sports, Business, "
        "and Technology.",
        "input_template": "Article: {text}\n", "output_template": "Answer: {label}\n\n",
        "label_words": ("World", "Sports", "Business", "Technology"),
        "label_map": {"1": "World", "2": "Sports", "3": "Business", "4": "Technology"},
        "stopwords": ("the", "into", "of", "and", ",", ".", "\n"),
        "prefix": "Answer:", "fields": ("text",),
    },
    "sst2": {
        "instruction": "Classify the reviews into the categories of Positive and Negative.",
        "input_template": "Review: {text}\n", "output_template": "Sentiment: {label}\n\n",
        "label_words": ("Positive", "Negative"),
        "label_map": {"0": "Negative", "1": "Positive"},
        "stopwords": ("the", "into", "of", "and", ".", "\n"),
        "prefix": "Sentiment:", "fields": ("text",),
    },
    "rte": {
        "instruction": "Classify the entailment of the hypothesis and the premise into the "
        "categories of True and False.",
        "input_template": "Hypothesis: {hypothesis}\n Premise: {premise}\n",
        "output_template": "Answer: {label}\n\n",
        "label_words": ("True", "False"),
        "label_map": {"entailment": "True", "not_entailment": "False"},
        "stopwords": ("the", "of", "into", "and", "into", ".", "\n"),  # `into` printed twice
        "prefix": "Answer:", "fields": ("hypothesis", "premise"),
    },
    "cb": {
        "instruction": "Classify the entailment of the hypothesis and the premise into the "
        "categories of true, neither and false.",
        "input_template": "Hypothesis: {hypothesis}\n Premise: {premise}\n",
        "output_template": "Answer: {label}\n\n",
        "label_words": ("true", "neither", "false"),
        "label_map": {"entailment": "true", "contradiction": "false", "neutral": "neither"},
        "stopwords": ("the", "of", "and", "into", ",", ".", "\n"),
        "prefix": "Answer:", "fields": ("hypothesis", "premise"),
    },
    "trec": {
        "instruction": "Classify the questions based on whether their answer type is a Number, "
        "Location, Person, Description, Entity, or Abbreviation.",
        "input_template": "Question: {text}\n", "output_template": "Answer Type: {label}\n\n",
        "label_words": ("Number", "Location", "Person", "Description", "Entity", "Abbreviation"),
        "label_map": {"NUM": "Number", "LOC": "Location", "HUM": "Person", "DESC": "Description",
                   "ENTY": "Entity", "ABBR": "Abbreviation"},
        "stopwords": ("the", "based", "on", "whether", "their", "is", "a", ",", "or", ".", "\n"),
        "prefix": "Answer Type:", "fields": ("text",),
    },
    "dbpedia": {
        "instruction": "Classify the documents based on whether they are about a Company, School, "
        "Artist, Athlete, Politician, Transportation, Building, Nature, Village, Animal, Plant, "
        "Album, Film, or Book.",
        "input_template": "Article: {text}\n", "output_template": "Answer: {label}\n\n",
        "label_words": ("Company", "School", "Artist", "Athlete", "Politician", "Transportation",
                     "Building", "Nature", "Village", "Animal", "Plant", "Album", "Film", "Book"),
        "label_map": {"1": "Company", "2": "School", "3": "Artist", "4": "Athlete",
                   "5": "Politician", "6": "Transportation", "7": "Building", "8": "Nature",
                   "9": "Village", "10": "Animal", "11": "Plant", "12": "Album", "13": "Film",
                   "14": "Book"},
        "stopwords": ("the", "based", "on", "whether", "they", "are", "about", "a", ",", "or", ".",
                   "\n"),
        "prefix": "Answer:", "fields": ("text",),
    },
}


def test_shipped_tasks_are_the_six_paper_tasks() -> None:
    assert sorted(PAPER_TASKS) == list_tasks() == sorted(SPEC)
    assert STOPWORD_VARIANTS == ("paper", "nltk")
    assert [t.name for t in validate_tasks()] == list_tasks()


@pytest.mark.parametrize("name", sorted(SPEC))
def test_task_matches_paper_spec(name: str) -> None:
    t = load_task(name)
    want = SPEC[name]
    assert t.name == name
    assert t.instruction == want["instruction"]
    assert t.instruction_suffix == "\n\n"
    assert t.input_template == want["input_template"]
    assert t.output_template == want["output_template"]
    assert t.label_words == want["label_words"]
    assert dict(t.label_map) == want["label_map"]
    assert t.stopwords == want["stopwords"]          # exact order and repeats (Table 12)
    assert t.input_fields == want["fields"]
    assert t.output_prefix == want["prefix"]
    assert not t.output_prefix.endswith(" ")
    assert t.label_separator == " "
    assert t.output_suffix == "\n\n"
    assert t.input_template.endswith("\n")
    assert "\n" in t.stopwords
    # the instruction names every label word (paper: label words exactly as in the instruction)
    for w in t.label_words:
        assert w in t.instruction


def test_rte_cb_premise_space_and_into_twice() -> None:
    for name in ("rte", "cb"):
        assert "\n Premise: " in load_task(name).input_template
    assert load_task("rte").stopwords.count("into") == 2
    assert all(w == w.lower() for w in load_task("cb").label_words)
    assert load_task("dbpedia").label_word("1") == "Company"
    assert load_task("dbpedia").label_word("14") == "Book"
    assert "0" not in load_task("dbpedia").label_map


def test_label_word_unknown_label() -> None:
    with pytest.raises(ValueError, match=r"dataset label '5' is not in label_map"):
        load_task("sst2").label_word("5")
    assert load_task("sst2").label_word(1) == "Positive"  # type: ignore[arg-type]


def test_unknown_task_lists_known() -> None:
    with pytest.raises(ValueError) as ei:
        load_task("sst3")
    msg = str(ei.value)
    assert "unknown task 'sst3'" in msg
    for name in PAPER_TASKS:
        assert name in msg


def test_load_task_from_json_path(tmp_path: Path) -> None:
    d = load_task("sst2").to_dict()
    d["name"] = "mysst"
    d["label_words"] = ["Good", "Bad"]
    d["label_map"] = {"1": "Good", "0": "Bad"}
    d["custom_key"] = 42
    path = tmp_path / "mysst.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    for arg in (path, str(path)):
        t = load_task(arg)
        assert t.name == "mysst" and t.label_words == ("Good", "Bad")
        assert t.extra == {"custom_key": 42}
    # a TaskSpec passes through
    assert load_task(t) is t
    # round trip
    assert TaskSpec.from_dict(load_task("rte").to_dict()) == load_task("rte")
    # a shipped file's extra keys are kept
    assert "source" in load_task("rte").extra


def test_from_dict_missing_keys() -> None:
    with pytest.raises(TaskDefinitionError, match=r"lacks the keys \['label_map', 'stopwords'\]"):
        TaskSpec.from_dict({"name": "x", "instruction": "i", "input_template": "{text}\n",
                            "output_template": "A: {label}", "label_words": ["a"]})


def test_with_templates_rte_without_space() -> None:
    rte = load_task("rte")
    t = rte.with_templates(input_template="Hypothesis: {hypothesis}\nPremise: {premise}\n")
    assert t.input_template == "Hypothesis: {hypothesis}\nPremise: {premise}\n"
    assert t.input_fields == ("hypothesis", "premise")
    assert t.output_template == rte.output_template
    assert t.stopwords == rte.stopwords and t.label_map == rte.label_map
    assert rte.input_template.endswith("\n Premise: {premise}\n")  # original unchanged
    ex = Example("e", {"hypothesis": "A.", "premise": "B."}, "entailment")
    p = build_prompt(t, [ex], ex)
    assert "A.\nPremise: B.\nAnswer: True\n\n" in p.text
    tp = categorize(p, gpt2_tokenizer())
    table = [(r["text"], r["categories"]) for r in tp.table()]
    # the template piece "\nPremise: " tokenises as "\n", "Prem", "ise", ":" - all template
    i = table.index(("Prem", ["template"]))
    assert table[i - 1] == ("\n", ["template", "stopword"])
    assert table[i + 1] == ("ise", ["template"])
    # other changes, and a new field name
    t2 = rte.with_templates(output_template="Label: {label}\n\n")
    assert t2.output_prefix == "Label:" and t2.input_template == rte.input_template
    t3 = load_task("sst2").with_templates(input_template="Text: {sentence}\n")
    assert t3.input_fields == ("sentence",)
    with pytest.raises(TaskDefinitionError):
        rte.with_templates(input_template="Hypothesis only\n")


def test_user_defined_task_end_to_end() -> None:
    spec = TaskSpec(
        name="toy", instruction="Classify the sentences into Yes and No.",
        input_template="Sentence: {text}\n", output_template="Answer: {label}\n\n",
        label_words=("Yes", "No"), label_map={1: "Yes", 0: "No"},  # int keys become strings
        stopwords=("the", ".", "\n"))
    assert spec.output_prefix == "Answer:"
    assert spec.input_fields == ("text",)
    assert spec.label_map == {"1": "Yes", "0": "No"}
    demos = [Example("a", {"text": "The sky is blue."}, "1"), Example("b", {"text": "No way"}, "0")]
    p = build_prompt(spec, demos, Example("t", {"text": "the end."}, "1"))
    assert p.text == ("Classify the sentences into Yes and No.\n\n"
                      "Sentence: The sky is blue.\nAnswer: Yes\n\n"
                      "Sentence: No way\nAnswer: No\n\n"
                      "Sentence: the end.\nAnswer:")
    assert p.gold == "Yes"
    tp = categorize(p, gpt2_tokenizer())
    cats = {r["text"]: r["categories"] for r in tp.table()[:40]}
    assert cats[" The"] == ["stopword"]
    assert cats[" sky"] == ["content"]
    assert cats[" Yes"] == ["label"]
    rows = tp.table()
    # " No" in the instruction, as the demo input's first word, and as the label
    assert [r["categories"] for r in rows if r["text"] == " No"] == [
        ["instruction"], ["content"], ["label"]]
    assert [r["categories"] for r in rows if r["text"] == " the"][-1] == ["stopword", "test"]
    assert rows[-1]["text"] == ":" and rows[-1]["categories"] == ["template", "test"]
    assert tp.counts()["label"] == 2


# --------------------------------------------------------------------------- invalid definitions
BASE = {"name": "t", "instruction": "Do it.", "input_template": "In: {text}\n",
            "output_template": "Out: {label}\n\n", "label_words": ("A", "B"),
            "label_map": {"a": "A", "b": "B"}, "stopwords": ("the", "\n")}


def make(**kw) -> TaskSpec:
    return TaskSpec(**{**BASE, **kw})


def test_base_definition_is_valid() -> None:
    assert make().output_prefix == "Out:"


@pytest.mark.parametrize(
    "kw,pattern",
    [
        ({"input_template": "In: text\n"}, r"input_template .* has no placeholder"),
        ({"input_template": "{a} {a}\n"}, r"repeats a placeholder"),
        ({"input_template": "{text} {label}\n"}, r"may not use \{label\}"),
        ({"output_template": "Out: A\n\n"}, r"exactly one placeholder, \{label\} \(found \[\]\)"),
        ({"output_template": "Out: {answer}\n\n"}, r"exactly one placeholder.*'answer'"),
        ({"output_template": "Out: {label} {label}\n\n"}, r"exactly one placeholder"),
        ({"output_template": "Out: {label} {x}\n\n"}, r"exactly one placeholder"),
        ({"output_template": "{label}\n\n"}, r"must have text before \{label\}"),
        ({"output_template": " {label}\n\n"}, r"must have text before \{label\}"),
        ({"label_words": ("A", "A"), "label_map": {"a": "A"}}, r"duplicate label words \['A'\]"),
        ({"label_words": ()}, r"label_words is empty"),
        ({"label_words": ("A", "B C"), "label_map": {"a": "A", "b": "B C"}},
         r"single words without whitespace"),
        ({"label_words": (" A", "B"), "label_map": {"a": " A", "b": "B"}},
         r"single words without whitespace"),
        ({"label_map": {"a": "A", "b": "C"}}, r"maps to \['C'\], which are not in label_words"),
        ({"label_map": {"a": "A"}}, r"label words \['B'\] have no dataset label"),
        ({"stopwords": ()}, r"stopwords is empty"),
        ({"stopwords": ("the", "of it")}, r"stopword 'of it' is not a single word"),
        ({"stopwords": ("the", "")}, r"is not a single word"),
        ({"input_template": "In: {text}\n}"}, r"brace that is not a placeholder"),
        ({"input_template": "In: { text}\n"}, r"brace that is not a placeholder"),
        ({"output_template": "Out: {label}\n\n{"}, r"brace that is not a placeholder"),
        ({"name": "has space"}, r"name must be"),
        ({"name": ""}, r"name must be"),
        ({"input_fields": ("other",)}, r"input_fields .* do not match"),
    ],
)
def test_invalid_definitions(kw, pattern) -> None:
    with pytest.raises(TaskDefinitionError, match=pattern) as ei:
        make(**kw)
    assert isinstance(ei.value, ValueError)
    if "name" not in kw:
        assert "task 't'" in str(ei.value) or "template" in str(ei.value)


def test_parse_template() -> None:
    pieces = parse_template("Hypothesis: {hypothesis}\n Premise: {premise}\n")
    assert [(p.kind, p.value) for p in pieces] == [
        ("literal", "Hypothesis: "), ("field", "hypothesis"), ("literal", "\n Premise: "),
        ("field", "premise"), ("literal", "\n")]
    assert [(p.kind, p.value) for p in parse_template("{text}")] == [("field", "text")]


# ------------------------------------------------------------------------------- data_root order
REPO = Path(__file__).resolve().parents[1]


def _fake_data(root: Path) -> Path:
    (root / "tasks").mkdir(parents=True)
    (root / "tasks" / "only.json").write_text(json.dumps(BASE | {"name": "only"}))
    return root


def test_data_root_is_the_checkout_data_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tasks_mod.ENV_TASKS_DIR, raising=False)
    assert tasks_mod.data_root() == REPO / "data"
    assert not (REPO / "icl_tokens" / "_data").exists(), "the packaged copy is build-only"


def test_tasks_dir_env_var_comes_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(tasks_mod.ENV_TASKS_DIR, str(_fake_data(tmp_path / "mine")))
    assert tasks_mod.data_root() == tmp_path / "mine"
    assert list_tasks() == ["only"]


def test_tasks_dir_env_var_without_tasks_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(tasks_mod.ENV_TASKS_DIR, str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match=r"\$ICL_TOKENS_TASKS_DIR='.*typo' has no tasks/"):
        tasks_mod.data_root()


def test_checkout_and_packaged_lookups(tmp_path: Path) -> None:
    """The checkout's data/ needs pyproject.toml beside it; the packaged copy is <pkg>/_data."""
    pkg = tmp_path / "site" / "icl_tokens"
    pkg.mkdir(parents=True)
    assert tasks_mod._checkout_data(pkg) is None and tasks_mod._packaged_data(pkg) is None
    _fake_data(tmp_path / "site" / "data")  # a stray data/ in site-packages is not a checkout
    assert tasks_mod._checkout_data(pkg) is None
    (tmp_path / "site" / "pyproject.toml").write_text("")
    assert tasks_mod._checkout_data(pkg) == tmp_path / "site" / "data"
    _fake_data(pkg / "_data")
    assert tasks_mod._packaged_data(pkg) == pkg / "_data"
