"""The fields every experiment config shares, their validation and the run identity.

Each experiment's config (:class:`~icl_tokens.experiments.representation.AblationConfig`,
:class:`~icl_tokens.experiments.token_level.TokenAblationConfig`,
:class:`~icl_tokens.experiments.template_parts.PartsConfig`) extends :class:`RunConfig` with its
own fields; :meth:`RunConfig.identity` is what a resumed run must match (the engine and batching
are left out: they give the same answers).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from ..ablation.condition import Condition, Options, fingerprint_sha256
from ..ablation.conditions import REGISTRY
from ..engine.scoring import ENGINES, SCORINGS
from ..tasks import STOPWORD_VARIANTS

__all__ = ["RunConfig", "DTYPES", "check_common"]

DTYPES = ("float32", "bfloat16", "float16")
#: Fields that do not change the rows (left out of the identity).
NOT_IN_IDENTITY = ("batch_size", "chunk_examples", "device", "engine")
#: Fields added after results were written: left out of the identity while at their default,
#: so the files of older runs still resume.
OMIT_AT_DEFAULT: dict[str, Any] = {"template": "original"}


def check_common(cfg: Any) -> None:
    """Validate the fields every experiment config shares (clear errors, nothing guessed)."""
    seeds = tuple(int(s) for s in cfg.seeds)
    if not seeds:
        raise ValueError("give at least one seed.")
    dup = sorted({s for s in seeds if seeds.count(s) > 1})
    if dup:
        raise ValueError(f"seeds {dup} are given more than once; each seed is one episode.")
    if min(seeds) < 0:
        raise ValueError(f"seeds must be >= 0, got {list(seeds)}.")
    cfg.seeds = seeds
    if isinstance(cfg.k, bool) or int(cfg.k) < 0:
        raise ValueError(f"k must be a non-negative integer, got {cfg.k!r}.")
    if cfg.n_test is not None and int(cfg.n_test) < 1:
        raise ValueError(f"n_test must be >= 1 (or None for all), got {cfg.n_test}.")
    if cfg.scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {cfg.scoring!r}; use one of {SCORINGS}.")
    if cfg.engine not in ENGINES:
        raise ValueError(f"unknown engine {cfg.engine!r}; use one of {ENGINES}.")
    auto = cfg.batch_size == "auto"  # the engine starts large and halves on out-of-memory
    if (not auto and int(cfg.batch_size) < 1) or cfg.chunk_examples < 1:
        raise ValueError("batch_size and chunk_examples must be >= 1.")
    if cfg.dtype not in DTYPES:
        raise ValueError(f"unknown dtype {cfg.dtype!r}; use one of {DTYPES}.")
    if getattr(cfg, "device_map", None) is not None and cfg.device is not None:
        raise ValueError(f"give either a device ({cfg.device!r}) or a device map "
                         f"({cfg.device_map!r}), not both.")
    if getattr(cfg, "shard", None) is not None:
        from ..results.shard import parse_shard

        cfg.shard = str(parse_shard(cfg.shard))
    if cfg.stopword_variant not in STOPWORD_VARIANTS:
        raise ValueError(f"unknown stopword variant {cfg.stopword_variant!r}; use one of "
                         f"{STOPWORD_VARIANTS}.")


@dataclass
class RunConfig:
    """Arguments every experiment has: model, task, episodes, scoring and how to run."""

    model: str = "gemma-3-270m"
    task: str = "sst2"
    seeds: tuple[int, ...] = (0,)
    k: int = 4
    n_test: int | None = None
    scoring: str = "generate"
    engine: str = "cached"
    stopword_variant: str = "paper"
    data_source: str | None = None
    batch_size: int = 16
    chunk_examples: int = 8
    dtype: str = "float32"
    device: str | None = None
    #: ``"K/N"``: score only shard K of N of the run's work units (:mod:`icl_tokens.results.shard`).
    shard: str | None = None
    #: ``"auto"`` (etc.): spread a model larger than one GPU over the visible GPUs.
    device_map: str | None = None

    #: The experiment's name in the identity (``ablate --level``).
    level: ClassVar[str] = "representation"
    #: The registry namespace of the config's ``conditions`` (``None``: it has none).
    namespace: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        check_common(self)

    def one_run_over_demonstrations(self, what: str, why: str = "") -> None:
        """Refuse ``k = 0`` and ``--shard`` for a run that reads demonstration tokens and runs
        as one process (``what``: e.g. ``"an atlas run"``; ``why``: a reason to add)."""
        if self.k < 1:
            raise ValueError(f"{what} reads demonstration tokens: use --k >= 1.")
        if self.shard is not None:
            raise ValueError(f"{what} cannot be sharded{why}; drop --shard (use --executor ray "
                             "to spread its units over workers).")

    def identity(self) -> dict[str, Any]:
        """The arguments that determine the rows (tuples as lists, the level added)."""
        d = {k: list(v) if isinstance(v, tuple) else v
             for k, v in dataclasses.asdict(self).items() if k not in NOT_IN_IDENTITY
             and not (k in OMIT_AT_DEFAULT and v == OMIT_AT_DEFAULT[k])}
        d["level"] = self.level
        d.pop("device_map", None)  # where the layers sit does not change the rows
        d.pop("shard", None)  # unsharded: the identity of older runs
        if self.shard is not None:  # the shards of one run share chunk_examples (their units)
            d["shard"] = self.shard
            d["shard_unit_examples"] = self.chunk_examples
        if self.namespace is not None:  # what each condition does, not only its name
            d["conditions_sha256"] = fingerprint_sha256(self.condition_objects(),
                                                        self.options())
        return d

    def options(self) -> Options:
        """The run options that shape its conditions' effects."""
        return Options()

    def condition_names(self) -> list[str]:
        """The ``condition`` value of every row a test example gets."""
        return list(getattr(self, "conditions"))

    def condition_objects(self) -> list[Condition]:
        """The registered conditions of ``self.conditions`` (in the config's namespace)."""
        if self.namespace is None:
            raise ValueError(f"{type(self).__name__} has no registered conditions.")
        return REGISTRY.conditions(getattr(self, "conditions"), self.namespace)

    def build_items(self, ctx: Any, episode: Any) -> list[Any]:
        """The items of one episode (chunk): one per test example and condition, in that order
        (:func:`~icl_tokens.experiments.items.condition_items`)."""
        from .items import condition_items

        return condition_items(ctx.task, ctx.tokenizer, ctx.labels, episode,
                               self.condition_objects(), self.options(),
                               stopword_variant=self.stopword_variant)

    def extra_columns(self) -> tuple[str, ...]:
        """Columns the rows add beyond the common ones (from each item's ``meta``)."""
        return ()

    def check_model(self, model: Any) -> None:
        """Checks against the loaded model, run before any output exists (none by default)."""

    def prepare(self) -> None:
        """Checks that need the task or data files, run before any output exists."""

    def sidecar_meta(self) -> dict[str, Any]:
        """Extra provenance for the results file's sidecar."""
        return {}

    def parse_conditions(self) -> None:
        """``self.conditions`` → canonical registered names (``all`` expanded), validated."""
        assert self.namespace is not None
        self.conditions = tuple(REGISTRY.parse(list(getattr(self, "conditions")),
                                               self.namespace))
