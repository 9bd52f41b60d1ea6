"""User plugins: modules or ``.py`` files that register conditions (or anything else) before a
command runs, so a condition defined in Python is usable from the command line too.

    ICL_TOKENS_PLUGINS=my_conditions.py python -m icl_tokens ablate --conditions icl,my-cond ...

``ICL_TOKENS_PLUGINS`` holds comma-separated module names (``mypkg.conditions``) or file paths.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["ENV", "load_plugins"]

ENV = "ICL_TOKENS_PLUGINS"


def _load_file(path: Path) -> ModuleType:
    name = f"icl_tokens_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{ENV}: cannot load {path} as Python; give a .py file or a module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_plugins(spec: str | None = None) -> list[ModuleType]:
    """Import every plugin named in ``spec`` (default: the ``ICL_TOKENS_PLUGINS`` variable).

    Raises:
        ValueError: a plugin that does not exist or fails to import (the message names it).
    """
    spec = os.environ.get(ENV, "") if spec is None else spec
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        path = Path(item)
        try:
            if item.endswith(".py"):
                if not path.is_file():
                    raise FileNotFoundError(f"no such file {path}")
                out.append(_load_file(path))
            else:
                out.append(importlib.import_module(item))
        except ValueError:
            raise
        except Exception as e:  # the plugin's own error, named
            raise ValueError(f"{ENV} plugin {item!r} failed to load: {type(e).__name__}: "
                             f"{e}") from None
    return out
