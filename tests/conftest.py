"""Shared test setup: no hub access, and an absolute data directory."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if os.environ.get("ICL_TOKENS_DATA_DIR"):
    # The README command passes a relative path; notebooks execute in another folder.
    os.environ["ICL_TOKENS_DATA_DIR"] = os.path.abspath(os.environ["ICL_TOKENS_DATA_DIR"])
