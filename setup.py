"""Build hook: ship a copy of the repository's ``data/`` inside the package as ``icl_tokens/_data``.

The top-level ``data/`` (task definitions, stopword lists, reference tables, ...) is the single
source of truth. A non-editable build (``pip install .``, ``pip wheel .``, a wheel built from the
sdist) copies every data file of it into ``<build_lib>/icl_tokens/_data/`` - only in the build
directory, never into the source tree - so an installed package finds it through
:func:`icl_tokens.tasks.data_root`. An editable install (``pip install -e .``) copies nothing:
``data_root()`` reads the checkout's ``data/`` directly.

All metadata lives in ``pyproject.toml``; this file only adds the ``build_py`` step.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
#: Where the copy goes, relative to the build directory.
PACKAGED = Path("icl_tokens", "_data")
#: Names that are not data: caches, editor and OS droppings.
_JUNK_DIRS = {"__pycache__", ".ipynb_checkpoints"}
_JUNK_SUFFIXES = (".pyc", ".pyo", "~", ".swp", ".tmp")


def is_data_file(rel: Path) -> bool:
    """Whether ``rel`` (relative to ``data/``) is shipped: no hidden part, cache or backup file."""
    if any(part.startswith(".") or part in _JUNK_DIRS for part in rel.parts):
        return False
    return not rel.name.endswith(_JUNK_SUFFIXES)


def data_files(root: Path = DATA) -> list[Path]:
    """The files of ``root`` to ship, relative to it, sorted."""
    return sorted(
        p.relative_to(root) for p in root.rglob("*")
        if p.is_file() and is_data_file(p.relative_to(root))
    )


class BuildPyWithData(build_py):
    """``build_py`` that also copies ``data/`` into ``icl_tokens/_data`` of the build directory."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self._copy_data()

    def _copy_data(self) -> None:
        if not (DATA / "tasks").is_dir():
            raise FileNotFoundError(
                f"{DATA / 'tasks'} not found; build icl_tokens from its source checkout or from a "
                "complete sdist (MANIFEST.in grafts data/)."
            )
        dest = Path(self.build_lib) / PACKAGED
        if dest.exists():  # a previous build may hold files that data/ no longer has
            shutil.rmtree(dest)
        for rel in data_files():
            self.mkpath(str((dest / rel).parent))
            self.copy_file(str(DATA / rel), str(dest / rel))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not self.editable_mode and DATA.is_dir():
            dest = Path(self.build_lib) / PACKAGED
            outputs += [str(dest / rel) for rel in data_files()]
        return outputs


if __name__ == "__main__":
    setup(cmdclass={"build_py": BuildPyWithData})
