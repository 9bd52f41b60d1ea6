"""The README's Python example runs as written (on the real default model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_a_python_example() -> None:
    assert _python_blocks(), "README.md lost its Python example"


@pytest.mark.integration
def test_readme_python_example_runs(capsys, tmp_path, monkeypatch) -> None:
    """Each Python block as written: the engine example prints an accuracy; "Write your own
    experiment" runs its condition over 3 seeds into a resumable CSV and compares it."""
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks()
    own = [b for b in blocks if "register_condition" in b]
    assert len(own) == 1, "README lost its 'Write your own experiment' example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
        printed = capsys.readouterr().out.strip().splitlines()
        if "score_items" in block:  # the engine example prints an accuracy
            assert printed and 0.0 <= float(printed[-1]) <= 1.0
        if block is own[0]:  # a reading of the paired comparison, from a 3-seed CSV
            assert printed and printed[-1].strip()
            rows = (tmp_path / "results" / "no-demo2-label.csv").read_text().splitlines()
            assert len(rows) == 1 + 3 * 20 * 2


def _cli_commands() -> list[list[str]]:
    """Every ``python -m icl_tokens ...`` command in the README's bash blocks (continuations
    joined), as argv lists after ``python -m icl_tokens``."""
    import re
    import shlex

    text = README.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("python -m icl_tokens "):
                argv = shlex.split(line)[3:]
                out.append(argv)
    return out


def test_readme_commands_parse() -> None:
    """The README's command lines are accepted by the CLI's parser (no drift between the docs
    and the options)."""
    from icl_tokens.cli import _join_dash_values, build_parser

    cmds = _cli_commands()
    assert len(cmds) >= 10
    parser = build_parser()
    for argv in cmds:
        try:
            parser.parse_args(_join_dash_values(argv))
        except SystemExit as e:  # argparse refuses: the README is out of date
            raise AssertionError(f"README command does not parse: {' '.join(argv)}") from e
