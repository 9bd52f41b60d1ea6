"""Every ``>>>`` example in the package runs and prints what it says (one test per module), so
a docstring can never drift from the code it documents."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "icl_tokens"
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
    for p in PACKAGE.rglob("*.py") if ">>> " in p.read_text(encoding="utf-8")
)


def test_the_package_has_examples() -> None:
    assert len(MODULES) >= 20


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_run(name: str) -> None:
    module = importlib.import_module(name.removesuffix(".__init__"))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=False)
    assert result.attempted > 0, f"{name}: its '>>>' lines are not in any docstring"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples fail " \
                               f"(run python -m doctest -v on it)"
