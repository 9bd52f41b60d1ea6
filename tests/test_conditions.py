"""Conditions as objects in one registry, experiments declared as data, one runner: lookups,
composition, the run identity that hashes what a condition does (a resume under another
intervention is refused), a user's condition end to end (the README's example), plugins."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from icl_tokens import (
    AblationConfig,
    Block,
    Condition,
    Knockout,
    Options,
    Sel,
    register_condition,
    run_config,
)
from icl_tokens.ablation.conditions import (
    PAPER_ORDER,
    PART_CONDITIONS,
    REGISTRY,
    TOKEN_CONDITIONS,
    knockout_for,
    parse_conditions,
)
from icl_tokens.ablation.registry import ConditionRegistry
from icl_tokens.experiments.registry import ABLATE_LEVELS, EXPERIMENTS, experiment_for
from icl_tokens.experiments.template_parts import PartsConfig
from icl_tokens.experiments.token_level import TokenAblationConfig
from icl_tokens.plugins import load_plugins
from icl_tokens.results import ResultsMismatchError

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def own_condition():
    """A user's condition, removed from the registry afterwards."""
    names: list[str] = []

    def make(name: str, layers: tuple[int, ...] = (0,)) -> Condition:
        block = Block(Sel.test(), Sel.demo(1) & Sel.category("label"), layers=layers)
        names.append(name)
        return register_condition(Condition(name, knockout=Knockout((block,))), replace=True)

    yield make
    for n in set(names):
        REGISTRY.unregister(n)


def test_every_lookup_derives_from_the_registry() -> None:
    assert PAPER_ORDER == REGISTRY.defaults("representation")
    assert list(TOKEN_CONDITIONS) == list(REGISTRY.defaults("token"))
    assert list(PART_CONDITIONS) == list(REGISTRY.defaults("template-parts"))
    assert parse_conditions("all") == list(PAPER_ORDER)
    assert parse_conditions("-template,cont_stop,icl") == ["icl-template", "icl"]
    assert REGISTRY.parse("-content", "token") == ["icl-content"]
    assert "+colon" in REGISTRY.names() and "+colon" not in PAPER_ORDER
    spellings = REGISTRY.spellings()
    assert {"icl-template+last", "t_out-colon-label", "minus_temp", "all"} <= spellings
    assert set(ABLATE_LEVELS) == {"representation", "token", "template-parts"}
    assert experiment_for(PartsConfig()) is EXPERIMENTS["parts"]


@pytest.mark.parametrize("spec", ["", ",", " , "])
def test_no_names_is_an_error_not_all(spec: str) -> None:
    with pytest.raises(ValueError, match="no conditions given"):
        parse_conditions(spec)


def test_register_refuses_taken_names_and_all() -> None:
    reg = ConditionRegistry()
    reg.register(Condition("a", hidden=frozenset(), aliases=("x",)))
    with pytest.raises(ValueError, match="taken"):
        reg.register(Condition("x", hidden=frozenset()))
    with pytest.raises(ValueError, match="taken"):
        reg.register(Condition("b", hidden=frozenset(), aliases=("a",)))
    with pytest.raises(ValueError, match="reserved"):
        reg.register(Condition("all", hidden=frozenset()))
    reg.register(Condition("a", hidden=frozenset({"content"})), replace=True)
    assert reg.get("a").hidden == {"content"}
    with pytest.raises(ValueError, match="namespace"):
        reg.register(Condition("c"), "tokens")
    with pytest.raises(ValueError, match="without commas"):
        Condition("a,b")


def test_kind_conditions_equal_knockout_for_under_options() -> None:
    opts = Options(hide_bos=True, layers=(1, 2), mode="pattern", query_scope="last")
    for name in ("icl-template", "+stopword", "none"):
        c = REGISTRY.get(name)
        assert c.knockout_under(opts) == knockout_for(name, hide_bos=True, layers=(1, 2),
                                                       mode="pattern", query_scope="last")
    assert REGISTRY.get("icl").knockout_under(opts) is None  # Standard ICL keeps BOS visible
    assert REGISTRY.get("zero_shot").zero_shot


def test_compose_unites_knockouts_and_refuses_conflicts() -> None:
    extra = Condition("x", knockout=Knockout((Block(Sel.part("demo"),
                                                    Sel.category("content")),)))
    both = Condition.compose("+template&x", REGISTRY.get("+template"), extra)
    ko = both.knockout_under(Options())
    assert ko is not None and len(ko.blocks) == 2 and ko.name == "+template&x"
    one_shot = Condition("one", shots=1)
    assert Condition.compose("c", one_shot, extra).prompt_shots == 1
    with pytest.raises(ValueError, match="different shots"):
        Condition.compose("c", one_shot, REGISTRY.get("zero_shot"))


def test_identity_hashes_what_each_condition_does(own_condition) -> None:
    own_condition("mine", layers=(0,))
    a = AblationConfig(conditions=("icl", "mine")).identity()
    own_condition("mine", layers=(1,))
    b = AblationConfig(conditions=("icl", "mine")).identity()
    assert a["conditions"] == b["conditions"]
    assert a["conditions_sha256"] != b["conditions_sha256"]
    # options change the effects of kind-based conditions, so the hash too
    assert (AblationConfig(layers=(0,)).identity()["conditions_sha256"]
            != AblationConfig().identity()["conditions_sha256"])
    assert (TokenAblationConfig(scope="demos").identity()["conditions_sha256"]
            != TokenAblationConfig().identity()["conditions_sha256"])


def test_explicit_knockouts_refuse_run_options(own_condition) -> None:
    own_condition("mine")
    with pytest.raises(ValueError, match="carry their own knockout"):
        AblationConfig(conditions=("icl", "mine"), layers=(0,))


def test_a_file_never_resumes_under_another_knockout(own_condition, tiny_dir, data_dir,
                                                       tmp_path) -> None:
    own_condition("mine", layers=(0,))
    cfg = AblationConfig(model=str(tiny_dir), seeds=(0,), n_test=2, k=2, scoring="label",
                         conditions=("icl", "mine"))
    out = tmp_path / "own.csv"
    df = run_config(cfg, out=out, progress=False, log=lambda s: None)
    assert sorted(set(df.condition)) == ["icl", "mine"] and len(df) == 4
    own_condition("mine", layers=(1,))  # same name, another intervention
    cfg2 = AblationConfig(model=str(tiny_dir), seeds=(0,), n_test=2, k=2, scoring="label",
                          conditions=("icl", "mine"))
    with pytest.raises(ResultsMismatchError, match="conditions_sha256"):
        run_config(cfg2, out=out, progress=False, log=lambda s: None)
    own_condition("mine", layers=(7,))  # out of range: refused before any output
    with pytest.raises(ValueError, match="condition 'mine': layer 7 is out of range"):
        run_config(AblationConfig(model=str(tiny_dir), seeds=(0,), n_test=2, k=2,
                                  conditions=("icl", "mine")), out=tmp_path / "x" / "y.csv",
                   progress=False, log=lambda s: None)
    assert not (tmp_path / "x").exists()


def _own_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Write your own experiment", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_readme_own_experiment_is_short_and_runs(tiny_dir, data_dir, tmp_path, monkeypatch,
                                                 capsys) -> None:
    """The README's example, on the tiny model and invented SST-2 data (its integration test
    runs it as written on the default model)."""
    block = _own_block()
    assert len(block.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    code = block.replace("AblationConfig(task=", f"AblationConfig(model={str(tiny_dir)!r}, task=")
    code = code.replace("range(5, 11)", "range(1, 2)")  # the tiny model has 2 layers
    try:
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    finally:
        REGISTRY.unregister("no-demo2-label")
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed and ("[" in printed[-1] or "no interval" in printed[-1])
    side = json.loads((tmp_path / "results/no-demo2-label.csv.meta.json").read_text())
    assert side["identity"]["conditions"] == ["icl", "no-demo2-label"]
    assert side["identity"]["seeds"] == [0, 1, 2]


def test_plugins_register_conditions_and_name_failures(tmp_path) -> None:
    plugin = tmp_path / "my_conditions.py"
    plugin.write_text(
        "from icl_tokens import Block, Condition, Knockout, Sel, register_condition\n"
        "register_condition(Condition('plugged', knockout=Knockout((Block(Sel.test(), "
        "Sel.demo(0)),))), replace=True)\n")
    try:
        load_plugins(str(plugin))
        assert REGISTRY.resolve("plugged") == "plugged"
    finally:
        REGISTRY.unregister("plugged")
    with pytest.raises(ValueError, match="no such file"):
        load_plugins(str(tmp_path / "missing.py"))
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ValueError, match="broken.py.*boom"):
        load_plugins(str(broken))


def test_the_explorer_offers_a_registered_kind_condition() -> None:
    from icl_tokens.explore.widget import kind_presets

    assert list(kind_presets()) == [c for c in PAPER_ORDER if c != "zero_shot"]
    register_condition(Condition("hide-content-and-stop", hidden=frozenset({"content",
                                                                             "stopword"})))
    try:
        assert kind_presets()["hide-content-and-stop"] == {"content", "stopword"}
    finally:
        REGISTRY.unregister("hide-content-and-stop")
