"""Tests for icl_tokens.data: CBU-format loaders, source resolution, StaICC, a fake HF hub."""

from __future__ import annotations

import collections
import json
import os
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from icl_tokens import data as D
from icl_tokens.data import (
    ENV_DATA_DIR,
    DataFormatError,
    DataUnavailableError,
    TaskData,
    clean_agnews,
    clean_agnews_text,
    clean_trec,
    load_plain_pickle,
    load_task_data,
    loads_plain_pickle,
    staicc_split,
)
from icl_tokens.tasks import TaskSpec, load_task

FIX = Path(__file__).parent / "fixtures" / "data"
# The real files: $ICL_TOKENS_DATA_DIR as set when the tests start (CI: ../shared/data), else the
# shared/ folder next to the checkout.
SHARED = Path(
    os.environ.get(ENV_DATA_DIR) or Path(__file__).resolve().parents[2] / "shared" / "data"
)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without $ICL_TOKENS_DATA_DIR."""
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)


@pytest.fixture
def no_other_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend neither StaICC nor `datasets` is installed."""
    monkeypatch.setitem(sys.modules, "StaICC", None)
    monkeypatch.setitem(sys.modules, "datasets", None)


def texts(examples) -> list[str]:
    return [e.inputs["text"] for e in examples]


def ids(examples) -> list[str]:
    return [e.id for e in examples]


# ------------------------------------------------------------------------------------- cleaning
def test_clean_agnews_cbu_rules_and_order() -> None:
    assert clean_agnews_text("Maker #39;s profit") == "Maker's profit"
    assert clean_agnews_text("they #39;ll go") == "they'll go"
    assert clean_agnews_text("said quot;no quot; today") == 'said"no" today'
    assert clean_agnews_text("a\\b") == "a b"
    # CBU's order: the backslash rule runs after ' #39;s' and before ' #39;ll'.
    assert clean_agnews_text("x\\#39;ll") == "x'll"
    assert clean_agnews_text("x\\#39;s") == "x #39;s"
    # Escapes CBU does not touch stay.
    assert clean_agnews_text("Swift  amp; Co. #36;10") == "Swift  amp; Co. #36;10"
    assert clean_agnews("Title", "Description ") == "Title. Description"
    assert clean_agnews("", "  ") == ""


def test_clean_trec_cbu_rules() -> None:
    assert clean_trec("Who wrote `` The Tin Whistle '' ?\n") == 'Who wrote "The Tin Whistle"?'
    assert clean_trec("What is a spider 's cousin ?") == "What is a spider's cousin?"
    assert clean_trec("What city , besides Paris ?") == "What city, besides Paris?"


# ----------------------------------------------------------------------------- dir: each loader
def test_sst2_fixture() -> None:
    d = load_task_data("sst2", data_dir=FIX)
    assert (d.source, d.task, d.location) == ("dir", "sst2", str(FIX / "sst2"))
    assert ids(d.pool) == ["train:0", "train:1", "train:3", "train:4", "train:5"]  # train:2 empty
    assert [e.label for e in d.pool] == ["1", "0", "0", "1", "0"]
    assert d.pool[0].inputs == {
        "text": "a warm , generous little film that earns every one of its smiles ."
    }
    assert ids(d.eval) == ["test:0", "test:1", "test:2"]
    assert "dropped empty-text rows: 1 pool, 0 eval" in d.notes
    assert "stsa.binary.train" in d.notes and "stsa.binary.test" in d.notes
    assert "\n" not in d.notes


def test_agnews_fixture_cleaning_crlf_and_labels() -> None:
    d = load_task_data("agnews", data_dir=FIX)
    assert ids(d.pool) == [f"val:{i}" for i in range(5)]
    assert ids(d.eval) == [f"test:{i}" for i in range(4)]
    assert texts(d.pool)[0] == (
        "Widget Maker's Profits Jump. ACME Widgets said on Monday its quarterly profit rose "
        "12 percent, helped by  $2 billion in sales."
    )
    assert texts(d.pool)[3] == (
        '"Talks Will Go On" Says Envoy. The envoy said the two sides\'ll meet again next week '
        "in Geneva."
    )
    assert texts(d.eval)[1] == (
        "Search Firm Tests Robot. The company said its robot can sort mail without help."
    )
    assert not any("\r" in t or "\\" in t for t in texts(d.pool + d.eval))
    assert [e.label for e in d.pool] == ["3", "2", "4", "1", "2"]
    spec = load_task("agnews")
    words = [spec.label_word(e.label) for e in d.eval]
    assert words == ["World", "Technology", "Business", "Sports"]


def test_trec_fixture_detok_and_coarse_labels() -> None:
    d = load_task_data("trec", data_dir=FIX)
    assert texts(d.pool)[:3] == [
        "How many legs does a spider's cousin have?",
        'Who wrote "The Tin Whistle"?',
        "What city, besides Paris, has a river named Seine?",
    ]
    assert [e.label for e in d.pool] == ["NUM", "HUM", "LOC", "DESC", "ENTY", "ABBR"]
    # test.txt has no final newline; the last row is still read.
    assert d.eval[-1].id == "test:2"
    assert d.eval[-1].inputs["text"] == 'What team won the "Harbor Cup" in 1990?'


def test_dbpedia_fixture_one_based_labels_and_no_dev_subsample_pool() -> None:
    d = load_task_data("dbpedia", data_dir=FIX)
    assert [e.label for e in d.pool] == ["1", "14", "5", "2"]
    spec = load_task("dbpedia")
    assert spec.label_word(d.pool[1].label) == "Book"
    assert spec.label_word(d.pool[2].label) == "Politician"
    assert d.pool[1].inputs["text"].startswith("The Tin Whistle") and not d.pool[1].inputs[
        "text"
    ].endswith(" ")
    assert all(e.id.startswith("train:") for e in d.pool)
    assert ids(d.eval) == ["dev_subsample:0", "dev_subsample:1"]  # row 2 has empty text
    assert "0 pool, 1 eval" in d.notes


@pytest.mark.parametrize("task", ["rte", "cb"])
def test_pair_tasks_fixture(task: str) -> None:
    d = load_task_data(task, data_dir=FIX)
    spec = load_task(task)
    for e in d.pool + d.eval:
        assert set(e.inputs) == set(spec.input_fields) == {"hypothesis", "premise"}
        assert all(v == v.strip() and v for v in e.inputs.values())
        spec.label_word(e.label)
    assert ids(d.eval) == ["val:0", "val:1"]
    if task == "rte":
        assert d.pool[1].inputs["hypothesis"] == "Jane Roe has never been to Geneva."
        assert d.pool[1].label == "not_entailment"
    else:
        assert [e.label for e in d.pool] == ["contradiction", "entailment", "neutral"]


def test_generic_jsonl_task_from_taskspec() -> None:
    spec = TaskSpec(
        name="toy", instruction="Say yes or no.", input_template="Input: {text}\n",
        output_template="Answer: {label}\n\n", label_words=("Yes", "No"),
        label_map={"1": "Yes", "0": "No"}, stopwords=("the", "\n"),
    )
    d = load_task_data(spec, data_dir=FIX)
    assert texts(d.pool) == ["yes please", "no thanks", "sure thing"]
    assert [e.label for e in d.pool] == ["1", "0", "1"]  # an int label becomes "0"
    assert texts(d.eval) == ["absolutely", "never"]  # test.jsonl, never dev_subsample.jsonl
    assert ids(d.eval) == ["test:0", "test:1"]


def test_repr_is_short() -> None:
    d = load_task_data("trec", data_dir=FIX)
    assert repr(d).startswith("TaskData(task='trec', pool=6, eval=3")


# ---------------------------------------------------------------------------- dir: bad files
def _copy_task(tmp_path: Path, task: str) -> Path:
    dst = tmp_path / task
    dst.mkdir(parents=True)
    for f in (FIX / task).iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    folder = _copy_task(tmp_path, "sst2")
    (folder / "stsa.binary.test").unlink()
    with pytest.raises(DataFormatError, match=r"binary\.test is missing; expected one example"):
        load_task_data("sst2", data_dir=tmp_path)


@pytest.mark.parametrize(
    "task, fname, content, pattern",
    [
        ("sst2", "stsa.binary.train", "positive a fine film\n",
         r"stsa\.binary\.train, line 1.*label digit"),
        ("trec", "train.txt", "What is this ?\n", r"train\.txt, line 1.*<COARSE>:<fine>"),
        ("agnews", "val.csv", "label,text\n1,hello\n",
         r"val\.csv: header.*Class Index,Title,Description"),
        ("agnews", "val.csv", "Class Index,Title,Description\n1,only title\n",
         r"val\.csv, data row 0: 2 fields"),
        ("rte", "val.jsonl", '{"premise": "a", "hypothesis": "b", "label": "entailment"}\n{oops\n',
         r"val\.jsonl, line 2: invalid JSON.*premise"),
        ("rte", "val.jsonl", '{"premise": "a", "label": "entailment"}\n',
         r"val\.jsonl, line 1: no 'hypothesis'"),
        ("dbpedia", "train.jsonl", '{"sentence": "x", "label": "15"}\n',
         r"label '15' is not in task 'dbpedia'"),
        ("sst2", "stsa.binary.test", "7 a film\n", r"label '7' is not in task 'sst2'"),
    ],
)
def test_malformed_files(tmp_path: Path, task: str, fname: str, content: str, pattern: str) -> None:
    folder = _copy_task(tmp_path, task)
    (folder / fname).write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=pattern):
        load_task_data(task, data_dir=tmp_path)


def test_non_utf8_file(tmp_path: Path) -> None:
    folder = _copy_task(tmp_path, "trec")
    (folder / "test.txt").write_bytes(b"NUM:date When \xff ?\n")
    with pytest.raises(DataFormatError, match=r"test\.txt is not UTF-8"):
        load_task_data("trec", data_dir=tmp_path)


# An empty evaluation set or demonstration pool is an error naming the file, never a quiet 0%.
@pytest.mark.parametrize(
    "task, fname, content, role, why",
    [
        ("sst2", "stsa.binary.test", "", "evaluation set", "no rows"),
        ("sst2", "stsa.binary.test", "\n  \n\t\n", "evaluation set", "no rows"),
        ("sst2", "stsa.binary.test", "1 \n0   \n1\n", "evaluation set",
         "all 3 rows have an empty input text"),
        ("trec", "test.txt", "\n", "evaluation set", "no rows"),
        ("agnews", "test.csv", "Class Index,Title,Description\n", "evaluation set", "no rows"),
        ("agnews", "test.csv", 'Class Index,Title,Description\n1," "," "\n', "evaluation set",
         "all 1 rows have an empty input text"),
        ("rte", "val.jsonl", "", "evaluation set", "no rows"),
        ("dbpedia", "dev_subsample.jsonl", '{"sentence": " ", "label": "1"}\n', "evaluation set",
         "all 1 rows"),
        ("sst2", "stsa.binary.train", "", "demonstration pool", "no rows"),
        ("trec", "train.txt", "NUM:count  \n", "demonstration pool", "all 1 rows"),
        ("cb", "train.jsonl", "\n\n", "demonstration pool", "no rows"),
    ],
)
def test_empty_set_is_an_error(
    tmp_path: Path, task: str, fname: str, content: str, role: str, why: str
) -> None:
    folder = _copy_task(tmp_path, task)
    (folder / fname).write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        load_task_data(task, data_dir=tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{folder / fname}: the {role} of task {task!r} would be empty")
    assert why in msg


def test_empty_generic_jsonl_eval_is_an_error(tmp_path: Path) -> None:
    spec = TaskSpec(
        name="toy", instruction="Say yes or no.", input_template="Input: {text}\n",
        output_template="Answer: {label}\n\n", label_words=("Yes", "No"),
        label_map={"1": "Yes", "0": "No"}, stopwords=("the", "\n"),
    )
    folder = _copy_task(tmp_path, "toy")
    (folder / "test.jsonl").write_text('{"text": "", "label": 1}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"test\.jsonl: the evaluation set .* empty"):
        load_task_data(spec, data_dir=tmp_path)


def test_empty_staicc_table_is_an_error(tmp_path: Path) -> None:
    from icl_tokens.data.staicc import load_staicc

    (tmp_path / "trec.dataset").write_bytes(pickle.dumps([]))
    with pytest.raises(DataFormatError, match=r"trec\.dataset: the evaluation set of task 'trec'"):
        load_staicc(load_task("trec"), tmp_path)


def test_input_fields_must_match_loader() -> None:
    spec = load_task("sst2").with_templates(input_template="Review: {sentence}\n")
    with pytest.raises(ValueError, match=r"input_fields \['sentence'\].*provides \['text'\]"):
        load_task_data(spec, data_dir=FIX)


# ------------------------------------------------------------------------------- resolution
def test_unknown_task_and_source() -> None:
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        load_task_data("nope", data_dir=FIX)
    with pytest.raises(ValueError, match="unknown data source 'web'"):
        load_task_data("sst2", source="web")


def test_env_var_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, str(FIX))
    d = load_task_data("trec")
    assert d.source == "dir" and d.location == str(FIX / "trec")


def test_data_dir_argument_beats_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _copy_task(tmp_path, "cb")
    monkeypatch.setenv(ENV_DATA_DIR, str(FIX))
    assert load_task_data("cb", data_dir=tmp_path).location == str(tmp_path / "cb")


def test_explicit_data_dir_without_task_raises(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match=r"has no sst2/ folder[\s\S]*Options"):
        load_task_data("sst2", data_dir=tmp_path)


# A set $ICL_TOKENS_DATA_DIR that cannot serve the task is an error, never a silent switch to
# StaICC or the hub (another evaluation set).
def _env_error(task: str, source: str | None = None) -> str:
    with pytest.raises(DataUnavailableError) as info:
        load_task_data(task, source=source)
    return str(info.value)


@pytest.mark.parametrize("source", [None, "dir"])
@pytest.mark.parametrize("case", ["missing", "file", "no_task_folder"])
def test_bad_env_dir_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, case: str, source: str | None
) -> None:
    value = {"missing": tmp_path / "typo", "file": tmp_path / "a_file",
             "no_task_folder": tmp_path}[case]
    (tmp_path / "a_file").write_text("not a folder\n")
    _copy_task(tmp_path, "sst2")  # another task's folder does not make it valid for trec
    monkeypatch.setenv(ENV_DATA_DIR, str(value))
    msg = _env_error("trec", source)
    problem = {"missing": "does not exist", "file": "is not a directory",
               "no_task_folder": "has no trec/ folder"}[case]
    assert f"${ENV_DATA_DIR}={str(value)!r} {problem}" in msg
    assert "trec/train.txt and trec/test.txt" in msg
    assert f"unset {ENV_DATA_DIR} to use StaICC/HF" in msg and "source='staicc'" in msg
    assert "Fix the path" in msg


def test_bad_env_dir_is_an_error_even_when_staicc_is_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if D._staicc_dir() is None:
        pytest.skip("StaICC not installed")
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "shraed" / "data"))
    assert "does not exist" in _env_error("sst2")


def test_relative_env_dir_error_shows_the_resolved_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_DATA_DIR, "../nowhere/data")
    msg = _env_error("cb")
    resolved = (tmp_path / "../nowhere/data").resolve()
    assert f"${ENV_DATA_DIR}='../nowhere/data' (resolved: {resolved})" in msg
    assert "cb/train.jsonl and cb/val.jsonl" in msg


def test_explicit_source_ignores_a_bad_env_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_hub: list[tuple[Any, ...]]
) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "typo"))
    assert load_task_data("rte", source="hf").source == "hf"
    if D._staicc_dir() is not None:
        assert load_task_data("trec", source="staicc").source == "staicc"


def test_nothing_available_lists_options(no_other_sources: None) -> None:
    with pytest.raises(DataUnavailableError) as info:
        load_task_data("rte")
    msg = str(info.value)
    assert "no data source for task 'rte'" in msg
    assert ENV_DATA_DIR in msg and "rte/train.jsonl and rte/val.jsonl" in msg
    assert "pip install StaICC==0.1.1" in msg and "sst2, agnews and trec only" in msg
    assert "pip install datasets" in msg and "online" in msg and "super_glue/rte" in msg
    assert "StaICC has no rte" in msg and "`datasets` not installed" in msg


def test_forced_sources_unavailable(no_other_sources: None) -> None:
    with pytest.raises(DataUnavailableError, match=r"'dir' needs a data folder[\s\S]*pip install"):
        load_task_data("sst2", source="dir")
    with pytest.raises(DataUnavailableError, match="StaICC is not installed"):
        load_task_data("sst2", source="staicc")
    with pytest.raises(DataUnavailableError, match="`datasets` is not installed"):
        load_task_data("sst2", source="hf")


def test_staicc_only_has_three_tasks() -> None:
    if D._staicc_dir() is None:
        pytest.skip("StaICC not installed")
    with pytest.raises(DataUnavailableError, match=r"StaICC has no 'cb'"):
        load_task_data("cb", source="staicc")


# ------------------------------------------------------------------------------ safe unpickler
class _Evil:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.getcwd, ())  # harmless, but a global all the same


@pytest.mark.parametrize("obj", [os.getcwd, collections.OrderedDict(a=1), _Evil(), {1, 2}])
def test_plain_pickle_refuses_globals(obj: Any, tmp_path: Path) -> None:
    blob = pickle.dumps(obj, protocol=2)  # protocol 2 pickles sets through a global (builtins.set)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        loads_plain_pickle(blob)
    (tmp_path / "x.dataset").write_bytes(blob)
    with pytest.raises(pickle.UnpicklingError):
        load_plain_pickle(tmp_path / "x.dataset")


def test_plain_pickle_loads_plain_data() -> None:
    obj = [(["a text"], 1), {"k": [1.5, None, True]}, ("t",)]
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        assert loads_plain_pickle(pickle.dumps(obj, protocol=protocol)) == obj


def test_staicc_table_structure_checked(tmp_path: Path) -> None:
    path = tmp_path / "sst2.dataset"
    path.write_bytes(pickle.dumps([("not a list", 0)]))
    with pytest.raises(DataFormatError, match=r"unexpected structure; expected a list of \("):
        D._staicc_table(path)
    path.write_bytes(pickle.dumps(collections.OrderedDict()))
    with pytest.raises(DataFormatError, match="not a plain-data pickle"):
        D._staicc_table(path)


def test_staicc_split_rule() -> None:
    texts_ = ["a", "b", "c", "a", "d", "e", "b", "f"]
    ev, pool, removed = staicc_split(texts_, n_eval=3, seed=7)
    assert len(ev) == 3 and ev == sorted(ev)
    assert not {texts_[i] for i in ev} & {texts_[i] for i in pool}
    assert len(pool) + removed == len(texts_) - 3
    assert staicc_split(texts_, n_eval=3, seed=7) == (ev, pool, removed)


# ----------------------------------------------------------------------------- StaICC (real)
STAICC_SANITY = {
    # text (after cleaning) -> expected raw label; read off the pickles, see data.py's comment.
    "sst2": {"a very good viewing alternative": "1", ", painful , obnoxious": "0",
             "woven together skilfully": "1", "a deficit": "0"},
    "agnews": {
        "Hamm sets sights on golden finale ATHENS: Mia Hamm is primed to end her illustrious "
        "career with an Olympic gold medal when the powerful US team take on Brazil in the "
        "womens final on Thursday (today).": "2",
    },
    "trec": {"Who was Red Grange?": "HUM", "What is RAM in the computer?": "ABBR",
             "How many bends are there in a standard paper clip?": "NUM"},
}


@pytest.mark.parametrize("task", ["sst2", "agnews", "trec"])
def test_staicc_real_package(task: str) -> None:
    if D._staicc_dir() is None:
        pytest.skip("StaICC not installed")
    d = load_task_data(task, source="staicc")
    spec = load_task(task)
    assert d.source == "staicc" and d.location.endswith(f"{task}.dataset")
    assert len(d.eval) == D.STAICC_EVAL_SIZE
    assert not set(texts(d.eval)) & set(texts(d.pool)), "eval texts leak into the pool"
    assert len(set(ids(d.pool + d.eval))) == len(d.pool) + len(d.eval)
    assert {e.label for e in d.pool} == set(spec.label_map)
    by_text = {e.inputs["text"]: e.label for e in d.pool + d.eval}
    for text, label in STAICC_SANITY[task].items():
        assert by_text[text] == label, text
    assert str(D.STAICC_SPLIT_SEED) in d.notes and "equals an eval text" in d.notes
    if task == "trec":  # the split is deterministic (loading is cheap for trec)
        again = load_task_data(task, source="staicc")
        assert ids(again.eval) == ids(d.eval) and ids(again.pool) == ids(d.pool)


def test_staicc_is_second_in_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    if D._staicc_dir() is None:
        pytest.skip("StaICC not installed")
    d = load_task_data("sst2")
    assert d.source == "staicc"
    assert "no data folder" in d.notes


# ------------------------------------------------------------------------------- fake HF hub
class _FakeDataset:
    def __init__(self, columns: dict[str, list[Any]], names: dict[str, list[str]]):
        self._columns = columns
        self.features = {k: types.SimpleNamespace(names=v) for k, v in names.items()}

    def __getitem__(self, column: str) -> list[Any]:
        return self._columns[column]

    def __len__(self) -> int:
        return len(next(iter(self._columns.values())))


TREC_NAMES = ["ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"]
_HUB: dict[tuple[str, str | None, str], _FakeDataset] = {
    ("stanfordnlp/sst2", None, "train"): _FakeDataset(
        {"sentence": ["a lovely film ", "a dull mess"], "label": [1, 0], "idx": [0, 1]},
        {"label": ["negative", "positive"]}),
    ("stanfordnlp/sst2", None, "validation"): _FakeDataset(
        {"sentence": ["pure joy", ""], "label": [1, 0]}, {"label": ["negative", "positive"]}),
    ("fancyzhx/ag_news", None, "train"): _FakeDataset(
        {"text": ["Team #39;s big win Sports desk said they #39;ll party.", "Fed moves\\rates"],
         "label": [1, 2]}, {"label": ["World", "Sports", "Business", "Sci/Tech"]}),
    ("fancyzhx/ag_news", None, "test"): _FakeDataset(
        {"text": ["New phone out", "Summit ends"], "label": [3, 0]},
        {"label": ["World", "Sports", "Business", "Sci/Tech"]}),
    ("CogComp/trec", None, "train"): _FakeDataset(
        {"text": ["How far is it to the lake ?", "Who wrote `` Tin '' ?"],
         "coarse_label": [5, 3], "fine_label": [0, 0]}, {"coarse_label": TREC_NAMES}),
    ("CogComp/trec", None, "test"): _FakeDataset(
        {"text": ["What does ACME mean ?"], "coarse_label": [0], "fine_label": [0]},
        {"coarse_label": TREC_NAMES}),
    ("fancyzhx/dbpedia_14", None, "train"): _FakeDataset(
        {"title": ["Acme", "Tin"], "content": [" Acme is a firm.", "Tin is a book."],
         "label": [0, 13]}, {"label": ["Company"] + ["x"] * 13}),
    ("fancyzhx/dbpedia_14", None, "test"): _FakeDataset(
        {"title": ["Roe"], "content": ["Roe is a politician."], "label": [4]}, {"label": []}),
    ("super_glue", "rte", "train"): _FakeDataset(
        {"premise": ["p1 ", "p2"], "hypothesis": ["h1", " h2"], "label": [1, 0], "idx": [0, 1]},
        {"label": ["entailment", "not_entailment"]}),
    ("super_glue", "rte", "validation"): _FakeDataset(
        {"premise": ["p3"], "hypothesis": ["h3"], "label": [0], "idx": [0]},
        {"label": ["entailment", "not_entailment"]}),
    ("super_glue", "cb", "train"): _FakeDataset(
        {"premise": ["p"], "hypothesis": ["h"], "label": [2], "idx": [0]},
        {"label": ["entailment", "contradiction", "neutral"]}),
    ("super_glue", "cb", "validation"): _FakeDataset(
        {"premise": ["q"], "hypothesis": ["g"], "label": [1], "idx": [0]},
        {"label": ["entailment", "contradiction", "neutral"]}),
}


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """A fake `datasets` module serving the in-memory _HUB; records the calls."""
    calls: list[tuple[Any, ...]] = []

    def load_dataset(path: str, name: str | None = None, *, split: str) -> _FakeDataset:
        calls.append((path, name, split))
        return _HUB[(path, name, split)]

    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def test_hf_mapping(fake_hub: list[tuple[Any, ...]]) -> None:
    sst2 = load_task_data("sst2", source="hf")
    assert (sst2.source, sst2.location) == ("hf", "stanfordnlp/sst2")
    assert [(e.id, e.inputs["text"], e.label) for e in sst2.pool] == [
        ("train:0", "a lovely film", "1"), ("train:1", "a dull mess", "0")]
    assert ids(sst2.eval) == ["validation:0"] and "0 pool, 1 eval" in sst2.notes

    ag = load_task_data("agnews", source="hf")
    assert texts(ag.pool) == ["Team's big win Sports desk said they'll party.", "Fed moves rates"]
    assert [e.label for e in ag.pool + ag.eval] == ["2", "3", "4", "1"]

    trec = load_task_data("trec", source="hf")
    assert [e.label for e in trec.pool + trec.eval] == ["NUM", "HUM", "ABBR"]
    assert texts(trec.pool) == ["How far is it to the lake?", 'Who wrote "Tin"?']

    db = load_task_data("dbpedia", source="hf")
    assert [(e.inputs["text"], e.label) for e in db.pool + db.eval] == [
        ("Acme is a firm.", "1"), ("Tin is a book.", "14"), ("Roe is a politician.", "5")]

    rte = load_task_data("rte", source="hf")
    assert rte.location == "super_glue/rte"
    assert [(e.inputs, e.label) for e in rte.pool] == [
        ({"hypothesis": "h1", "premise": "p1"}, "not_entailment"),
        ({"hypothesis": "h2", "premise": "p2"}, "entailment")]
    cb = load_task_data("cb", source="hf")
    assert [e.label for e in cb.pool + cb.eval] == ["neutral", "contradiction"]
    assert ("super_glue", "cb", "validation") in fake_hub


def test_hf_uses_the_features_names_not_a_fixed_order(
    fake_hub: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    shuffled = ["NUM", "LOC", "HUM", "DESC", "ENTY", "ABBR"]
    for split in ("train", "test"):
        ds = _HUB[("CogComp/trec", None, split)]
        monkeypatch.setattr(ds, "features", {"coarse_label": types.SimpleNamespace(names=shuffled)})
    trec = load_task_data("trec", source="hf")
    assert [e.label for e in trec.pool + trec.eval] == ["ABBR", "DESC", "NUM"]


def test_hf_empty_split_is_an_error(
    fake_hub: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ("stanfordnlp/sst2", None, "validation")
    monkeypatch.setitem(_HUB, key, _FakeDataset({"sentence": [" ", ""], "label": [1, 0]},
                                                {"label": ["negative", "positive"]}))
    with pytest.raises(DataFormatError,
                       match=r"stanfordnlp/sst2\[validation\]: the evaluation set .* all 2 rows"):
        load_task_data("sst2", source="hf")


def test_hf_is_last_in_line(fake_hub: list[tuple[Any, ...]]) -> None:
    d = load_task_data("rte")  # no data folder configured; StaICC has no rte
    assert d.source == "hf"
    assert "no data folder" in d.notes and "StaICC has no rte" in d.notes


def test_hf_failure_lists_options(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("offline")

    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)
    with pytest.raises(DataUnavailableError, match=r"ConnectionError: offline[\s\S]*DATA_DIR"):
        load_task_data("cb", source="hf")


# ----------------------------------------------------------------------- real shared data
EXPECTED_COUNTS = {
    "agnews": (6001, 7600), "sst2": (6920, 1821), "trec": (5452, 500),
    "dbpedia": (64, 256), "rte": (2490, 277), "cb": (250, 56),
}


@pytest.mark.skipif(not (SHARED / "sst2").is_dir(), reason="shared/data not present")
@pytest.mark.parametrize("task", sorted(EXPECTED_COUNTS))
def test_real_shared_data(task: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, str(SHARED))
    d = load_task_data(task)
    spec = load_task(task)
    assert d.source == "dir"
    assert (len(d.pool), len(d.eval)) == EXPECTED_COUNTS[task]
    assert "dropped empty-text rows: 0 pool, 0 eval" in d.notes
    for e in d.pool + d.eval:
        spec.label_word(e.label)
        assert set(e.inputs) == set(spec.input_fields)
        assert all(v and v == v.strip() and "\r" not in v for v in e.inputs.values())
    assert len(set(ids(d.pool + d.eval))) == len(d.pool) + len(d.eval)
    assert set(e.label for e in d.eval) == set(spec.label_map)
    if task == "agnews":
        assert not any("\\" in t or " #39;s" in t for t in texts(d.pool + d.eval))
    json.dumps([e.inputs for e in d.eval])  # plain strings only


def test_taskdata_is_frozen() -> None:
    d = TaskData("t", (), (), "dir", "-", "")
    with pytest.raises(AttributeError):
        d.task = "u"  # type: ignore[misc]
