"""One model for a sequence of runs (``reproduce``): loaded here once, or held by the workers
of a remote executor (each loads it once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pandas as pd

__all__ = ["ModelScorer"]


def _load(model: str, device: str | None, dtype: str) -> tuple[Any, Any]:
    import torch

    from ..models import load_model, load_tokenizer

    bridge = load_model(model, device=device, dtype=getattr(torch, dtype))
    tok = load_tokenizer(model)
    torch.set_grad_enabled(False)
    return bridge, tok


class ModelScorer:
    """Where ``reproduce`` scores: the model loaded here once, or a remote executor's workers
    (which load it once each)."""

    def __init__(self, common: dict[str, Any], executor: Any = None) -> None:
        self.executor = executor
        if executor is None:
            self.bridge, self.tok = _load(common["model"], common["device"], common["dtype"])
            self.facts = {"device": str(next(self.bridge.parameters()).device)}
        else:
            from ..executors.worker import ModelSpec

            self.bridge = self.tok = None
            self.facts = executor.start(ModelSpec(common["model"], common["device"],
                                                  common["dtype"]))

    def device(self, cfg: Any) -> str:
        """The device in a run's identity (as the runner resolves it)."""
        from ..models import check_device

        return check_device(cfg.device) if self.executor is None else self.facts["device"]

    def run(self, cfg: Any, path: Path, progress: bool, log: Callable[[str], None]) -> None:
        from ..experiments.runner import run_config

        run_config(cfg, model=self.bridge, tokenizer=self.tok, out=path, progress=progress,
                   log=log, executor=self.executor)

    def content_free(self, cfg: Any) -> pd.DataFrame:
        from ..analysis.calibration import content_free_rows

        if self.executor is None:
            return content_free_rows(cfg, model=self.bridge, tokenizer=self.tok)
        return self.executor.call(_content_free_remote, cfg)

    def model_info(self) -> dict[str, Any]:
        from ..models import model_info

        return model_info(self.bridge) if self.executor is None else self.facts["model_info"]


def _content_free_remote(model: Any, tokenizer: Any, cfg: Any) -> pd.DataFrame:
    from ..analysis.calibration import content_free_rows

    return content_free_rows(cfg, model=model, tokenizer=tokenizer)
