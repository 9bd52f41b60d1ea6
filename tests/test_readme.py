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
def test_readme_python_example_runs(capsys) -> None:
    for block in _python_blocks():
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed and 0.0 <= float(printed[-1]) <= 1.0
