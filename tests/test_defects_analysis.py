"""The analysis package's structure and its errors on bad results folders: imports go one way
(no cycle, lazy imports included), one copy of the paper's task list, modules and functions of a
readable size, and one-line errors naming the file and the fix for a torn tidy CSV, a malformed
``provenance.json`` or ``timing.json``."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pytest

from icl_tokens.analysis.folder import load_results
from icl_tokens.analysis.report import md_to_html
from icl_tokens.cli import main
from icl_tokens.reference import paper_condition_table
from icl_tokens.tasks import PAPER_TASKS

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS = ROOT / "icl_tokens" / "analysis"
SMOKE = ROOT / "docs" / "results" / "smoke-gemma-3-270m"
OURS = sorted(ANALYSIS.glob("*.py")) + [ROOT / "icl_tokens" / "reference.py"]


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imported(path: Path) -> set[str]:
    """Every module named by an import statement of ``path``, at module level or inside a
    function, resolved to its dotted name."""
    package = _module(path).split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module → modules it imports), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_analysis_imports_go_one_way():
    """No import cycle among the analysis modules, counting imports inside functions."""
    mods = {_module(p): p for p in OURS if p.name != "__init__.py"}
    graph = {m: _imported(p) & set(mods) - {m} for m, p in mods.items()}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_one_copy_of_the_paper_task_list():
    """The six paper tasks are spelled out in icl_tokens.tasks only."""
    six = set(PAPER_TASKS)
    for path in OURS:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                words = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                assert words != six, f"{path.name}:{node.lineno} repeats the paper's task list"
    assert list(paper_condition_table("Llama-7B").columns) == list(PAPER_TASKS)


def test_modules_and_functions_stay_readable():
    for path in OURS:
        text = path.read_text(encoding="utf-8")
        assert text.count("\n") <= 400, f"{path.name} has {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                assert n <= 60, f"{path.name}:{node.name} has {n} lines"


def test_no_comment_cites_an_issue_number():
    for path in OURS:
        hits = re.findall(r"(?i)\bissues?\s*#?\d+", path.read_text(encoding="utf-8"))
        assert not hits, f"{path.name} cites {hits}"


def test_markdown_renders_tables_and_escapes_html():
    html = md_to_html("| a | b |\n|---|---|\n| 1 | <b>2</b> |\n")
    assert "<table>" in html and "<td>1</td>" in html
    assert "<b>2</b>" not in html and "&lt;b&gt;" in html


# --- bad results folders --------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the committed smoke folder (its provenance and tidy rows only)."""
    if not SMOKE.is_dir():
        pytest.skip(f"{SMOKE} is not in this checkout")
    out = tmp_path / "smoke"
    shutil.copytree(SMOKE, out, ignore=shutil.ignore_patterns("runs", "report.html",
                                                              "timing.json"))
    return out


def _report_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["report", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def _edit_provenance(folder: Path, **changes: object) -> None:
    path = folder / "provenance.json"
    prov = json.loads(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            del prov[key]
        else:
            prov[key] = value
    path.write_text(json.dumps(prov), encoding="utf-8")


@pytest.mark.parametrize("changes, problem", [
    ({"tables": None}, "no key 'tables'"),
    ({"budget": "smoke"}, "budget is str, not an object"),
    ({"experiments": "representation"}, "experiments is str, not a list"),
    ({"budget": {"name": "smoke", "seeds": [0], "k": 4}}, "no key budget.'n_test'"),
    ({"data": {"sst2": {"files": {}}}}, "data['sst2'] has no 'source'"),
])
def test_malformed_provenance_is_one_line(folder, capsys, changes, problem):
    _edit_provenance(folder, **changes)
    err = _report_error(capsys, str(folder))
    assert str(folder / "provenance.json") in err and problem in err
    assert "rerun the reproduce command" in err
    with pytest.raises(ValueError, match=re.escape(problem)):
        load_results(folder)


def test_provenance_that_is_not_json_is_one_line(folder, capsys):
    (folder / "provenance.json").write_text('{"command": "x",', encoding="utf-8")
    err = _report_error(capsys, str(folder))
    assert "provenance.json: not a valid provenance file (not JSON" in err


def test_torn_tidy_csv_is_one_line(folder, capsys):
    path = folder / "tidy" / "representation.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:text.index('"', text.index("\n")) + 3], encoding="utf-8")
    err = _report_error(capsys, str(folder))
    assert str(path) in err and "rerun the command that wrote it" in err


def test_malformed_timing_is_one_line(folder, capsys, tmp_path):
    _edit_provenance(folder, experiments=["representation"], tables=[2, 3, 15])
    (folder / "timing.json").write_text('{"invocations": 2}', encoding="utf-8")
    err = _report_error(capsys, str(folder), "--doc", str(tmp_path / "page.md"))
    assert str(folder / "timing.json") in err and "not a valid timing file" in err
