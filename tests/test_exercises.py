"""Every exercise checker passes the notebooks' solution and fails typical wrong solutions."""

from __future__ import annotations

import numpy as np
import pytest

from icl_tokens import exercises as ex
from icl_tokens.ablation import CONDITIONS, Block, Knockout, Sel, knockout_for

KINDS = ["template", "stopword", "content"]


# ---------------------------------------------------------------------- the notebooks' solutions


def demo_counts(tp):
    return {kind: int((tp.has(kind) & (tp.demo >= 0)).sum())
            for kind in ["template", "stopword", "content", "label"]}


def label_colons(tp):
    return np.flatnonzero(tp.has_role("demo_*.t_out.colon")).tolist()


def hidden_keys(tp, hidden):
    has_kind = np.zeros(len(tp), dtype=bool)
    all_hidden = np.ones(len(tp), dtype=bool)
    for kind in KINDS:
        has_kind |= tp.has(kind)
        if kind not in hidden:
            all_hidden &= ~tp.has(kind)
    protected = tp.has("bos") | tp.has("instruction") | tp.has("label") | tp.has("test")
    return has_kind & all_hidden & ~protected


def knockout_mask(tp, condition):
    queries = tp.has("test")
    return queries[:, None] & hidden_keys(tp, CONDITIONS[condition])[None, :]


NO_COLON = knockout_for("+template") | Knockout((Block(Sel.test(),
                                                       Sel.role("demo_*.t_out.colon")),))


def drop_mask(tp, removed):
    has_kind = np.zeros(len(tp), dtype=bool)
    all_removed = np.ones(len(tp), dtype=bool)
    for kind in KINDS:
        has_kind |= tp.has(kind)
        if kind not in removed:
            all_removed &= ~tp.has(kind)
    protected = tp.has("bos") | tp.has("instruction") | tp.has("label")
    return has_kind & all_removed & ~protected


def part_knockout(part, colon, label):
    where = Sel.part("demo") if part == "temp" else Sel.role(f"demo_*.{part}.*")
    visible = Sel.category("template") & where
    if not colon:
        visible = visible & ~Sel.role("demo_*.t_in.colon", "demo_*.t_out.colon")
    if label:
        visible = visible | Sel.category("label")
    return Knockout((Block(Sel.test(), Sel.part("demo") & ~visible),))


def aggregation_mask(tp):
    demo = tp.demo >= 0
    carrier = tp.has("template") | tp.has("stopword") | tp.has("label")
    queries = demo & carrier & ~tp.has("content")
    keys = demo & tp.has("content") & ~carrier
    return queries[:, None] & keys[None, :]


GROUPS = ["bos", "instruction", "template", "stopword", "content", "label", "test"]


def category_mass(pattern, item, queries):
    test = item.has("test")
    rows = pattern[:, :, np.flatnonzero(queries)]  # [layer, head, query, key]
    out = {}
    for group in GROUPS:
        keys = test if group == "test" else item.has(group) & ~test
        out[group] = float(rows[..., keys].sum(-1).mean())
    return out


def randomfixed_prompt(task, demos, test, strings):
    *s_in, s_out = strings

    def t_in(example):
        return "\n ".join(f"{s}: {example.inputs[f]}"
                          for s, f in zip(s_in, task.input_fields)) + "\n"

    text = task.instruction + task.instruction_suffix
    for d in demos:
        text += t_in(d) + f"{s_out}: {task.label_map[d.label]}\n\n"
    return text + t_in(test) + f"{s_out}:"


# ---------------------------------------------------------------------- pass and fail


def test_check_demo_counts():
    assert ex.check_demo_counts(demo_counts)
    with pytest.raises(AssertionError, match="demonstrations"):  # counts the test example too
        ex.check_demo_counts(lambda tp: {k: int(tp.has(k).sum())
                                         for k in ["template", "stopword", "content", "label"]})


def test_check_label_colons():
    assert ex.check_label_colons(label_colons)
    with pytest.raises(AssertionError, match="Not every colon"):  # T_in colons too
        ex.check_label_colons(lambda tp: np.flatnonzero(
            tp.has_role("demo_*.t_*.colon")).tolist())
    with pytest.raises(AssertionError, match="Not every colon"):  # every ':' of a demonstration
        ex.check_label_colons(lambda tp: [i for i in range(len(tp)) if tp.demo[i] >= 0 and
                                          tp.prompt.text[slice(*tp.offsets[i])].strip() == ":"])


def test_check_key_rule():
    assert ex.check_key_rule(hidden_keys)
    with pytest.raises(AssertionError, match="differ"):  # any hidden kind hides (newlines!)
        ex.check_key_rule(lambda tp, hidden: (tp.demo >= 0) & ~tp.has("label") & np.any(
            [tp.has(k) for k in hidden], axis=0))
    with pytest.raises(AssertionError, match="dtype"):
        ex.check_key_rule(lambda tp, hidden: hidden_keys(tp, hidden).astype(int))


def test_check_knockout_mask():
    assert ex.check_knockout_mask(knockout_mask)
    with pytest.raises(AssertionError, match="pairs differ"):  # transposed
        ex.check_knockout_mask(lambda tp, c: knockout_mask(tp, c).T)
    with pytest.raises(AssertionError, match="pairs differ"):  # every query restricted
        ex.check_knockout_mask(lambda tp, c: np.broadcast_to(
            hidden_keys(tp, CONDITIONS[c])[None, :], (len(tp), len(tp))).copy())
    with pytest.raises(AssertionError, match="shape"):
        ex.check_knockout_mask(lambda tp, c: hidden_keys(tp, CONDITIONS[c]))


def test_check_no_colon_knockout():
    assert ex.check_no_colon_knockout(NO_COLON)
    with pytest.raises(AssertionError, match="pairs differ"):
        ex.check_no_colon_knockout(knockout_for("+template"))
    with pytest.raises(AssertionError, match="pairs differ"):  # generated tokens not restricted
        ex.check_no_colon_knockout(knockout_for("+template") | Knockout((Block(
            Sel.part("test"), Sel.role("demo_*.t_out.colon")),)))
    with pytest.raises(AssertionError, match="Knockout"):
        ex.check_no_colon_knockout("+template")


def _colon_only(colons=("demo_*.t_in.colon", "demo_*.t_out.colon"), queries=None,
                extra=None):
    visible = Sel.role(*colons) | Sel.category("label")
    if extra is not None:
        visible = visible | extra
    return Knockout((Block(queries or Sel.test(), Sel.part("demo") & ~visible),))


def test_check_colon_only_knockout():
    assert ex.check_colon_only_knockout(_colon_only())
    with pytest.raises(AssertionError, match="pairs differ"):  # only the output colons
        ex.check_colon_only_knockout(_colon_only(colons=("demo_*.t_out.colon",)))
    with pytest.raises(AssertionError, match="pairs differ"):  # newlines left visible
        ex.check_colon_only_knockout(_colon_only(extra=Sel.category("stopword")))
    with pytest.raises(AssertionError, match="generated"):  # generated tokens not restricted
        ex.check_colon_only_knockout(_colon_only(queries=Sel.part("test")))
    with pytest.raises(AssertionError, match="Knockout"):
        ex.check_colon_only_knockout("+colon")


def test_check_removal_mask():
    assert ex.check_removal_mask(drop_mask)
    with pytest.raises(AssertionError, match="differ"):  # keeps the test example intact
        ex.check_removal_mask(lambda tp, r: drop_mask(tp, r) & ~tp.has("test"))
    with pytest.raises(AssertionError, match="differ"):  # any removed kind removes
        ex.check_removal_mask(lambda tp, r: np.any([tp.has(k) for k in r], axis=0)
                              & ~tp.has("label") & ~tp.has("instruction"))


def test_check_template_part_knockout():
    assert ex.check_template_part_knockout(part_knockout)
    with pytest.raises(AssertionError, match="differ"):  # colons ignored
        ex.check_template_part_knockout(lambda p, c, lab: part_knockout(p, True, lab))
    with pytest.raises(AssertionError, match="differ"):  # labels ignored
        ex.check_template_part_knockout(lambda p, c, lab: part_knockout(p, c, False))


def test_check_aggregation_mask():
    assert ex.check_aggregation_mask(aggregation_mask)
    assert ex.check_aggregation_mask(lambda tp: np.tril(aggregation_mask(tp), -1))
    with pytest.raises(AssertionError, match="pairs differ"):  # the E1 queries instead
        ex.check_aggregation_mask(lambda tp: tp.has("test")[:, None] & (
            (tp.demo >= 0) & tp.has("content"))[None, :])
    with pytest.raises(AssertionError, match="pairs differ"):  # content+carrier tokens as keys
        ex.check_aggregation_mask(lambda tp: ((tp.demo >= 0) & ~tp.has("content"))[:, None]
                                  & ((tp.demo >= 0) & tp.has("content"))[None, :])


def test_check_category_mass():
    assert ex.check_category_mass(category_mass)
    with pytest.raises(AssertionError, match="group"):  # test keys counted in the demo kinds
        ex.check_category_mass(lambda p, it, q: {
            g: float(p[:, :, np.flatnonzero(q)][..., it.has(g)].sum(-1).mean()) for g in GROUPS})
    with pytest.raises(AssertionError, match="no value"):
        ex.check_category_mass(lambda p, it, q: {"template": 0.0})


def test_check_randomfixed_prompt():
    assert ex.check_randomfixed_prompt(randomfixed_prompt)
    with pytest.raises(AssertionError, match="differ"):  # the test example keeps the template

        def wrong(task, demos, test, strings):
            from icl_tokens.prompts import build_prompt

            good = randomfixed_prompt(task, demos, test, strings)
            original = build_prompt(task, [], test).text
            head = good.rsplit(strings[0] + ":", 1)[0]
            return head + original[len(task.instruction + task.instruction_suffix):]

        ex.check_randomfixed_prompt(wrong)
    with pytest.raises(AssertionError, match="differ"):  # no space after the colon
        ex.check_randomfixed_prompt(
            lambda t, d, x, s: randomfixed_prompt(t, d, x, s).replace(": ", ":"))


def test_exercise_prompts_cover_the_tricky_tokens():
    prompts = ex.exercise_prompts()
    assert {name.split(" / ")[1] for name, _ in prompts} >= {"gpt2", "cl100k-style"}
    multi = sum(int(((tp.has("template") | tp.has("stopword")) & tp.has("content")
                     & (tp.demo >= 0)).sum()) for _, tp in prompts)
    merged = sum(int((tp.has("template") & tp.has("stopword") & ~tp.has("test")
                      & (tp.demo >= 0)).sum()) for _, tp in prompts)
    assert multi > 0 and merged > 0


def _folded_and_run_solutions(text: str) -> tuple[list[str], list[str]]:
    """The ```python blocks of the notebook's <details> solutions, and the bodies of its
    ``if SOLUTIONS:`` cells (dedented), in order."""
    import textwrap

    lines = text.split("\n")
    folded, run, i = [], [], 0
    while i < len(lines):
        if lines[i].startswith("# <details><summary>Solution"):
            j = next(k for k in range(i, len(lines)) if lines[k] == "# ```python")
            end = next(k for k in range(j + 1, len(lines)) if lines[k] == "# ```")
            folded.append("\n".join(x[2:] if x.startswith("# ") else "" for x in
                                    lines[j + 1:end]))
            i = end
        elif lines[i].startswith("if SOLUTIONS:"):
            body = []
            for x in lines[i + 1:]:
                if x and not x.startswith(" "):
                    break
                body.append(x)
            run.append(textwrap.dedent("\n".join(body)).strip("\n"))
        i += 1
    return folded, run


@pytest.mark.parametrize("name", ["01_token_categorization", "02_representation_ablation",
                                  "03_token_ablation", "04_information_aggregation",
                                  "05_lexical_repetition_structure", "07_token_atlas"])
def test_notebook_runs_the_solutions_it_shows(name):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "notebooks" / f"{name}.py").read_text()
    folded, run = _folded_and_run_solutions(text)
    assert len(folded) >= 2, f"{name} should have at least two exercises with solutions"
    assert folded == run, f"{name}: a folded solution differs from the one the CI runs"
    assert 'SOLUTIONS = SMOKE' in text and text.count("check_") >= 2 * len(folded)


def test_an_unwritten_exercise_is_reported_not_raised(capsys):
    def stub(tp):
        raise NotImplementedError("write demo_counts")

    assert ex.check_demo_counts(stub) is False
    assert "not written yet" in capsys.readouterr().out
    with pytest.raises(ZeroDivisionError):  # any other error of the reader's code propagates
        ex.check_demo_counts(lambda tp: 1 / 0)
