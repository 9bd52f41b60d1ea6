"""A condition as an object: how the ICL item of one test example becomes the scored item.

A :class:`Condition` is data. It names itself (``name``, ``aliases``, its paper cell) and declares
what it does to the ICL prompt of a test example, any combination of:

* **which prompt** — ``template`` (a variant spec such as ``swap`` or ``randomfixed:3``; ``None``:
  the run's template) and ``shots`` (``None``: the episode's k demonstrations; ``0``: the
  zero-shot prompt; ``n``: the first n of them);
* **a token removal** — ``removal`` (kinds whose tokens are dropped from the prompt) and
  ``keep_last`` (keep the final prompt token);
* **a knockout** — ``hidden`` (kinds hidden from the test example by the paper's key rule; the
  run's options add BOS, query scope, layers, heads and mode) and/or an explicit ``knockout``
  (used as written);
* ``meta`` — extra column values its rows carry.

:meth:`Condition.knockout_under` and :meth:`Condition.removal_under` resolve the effects under a
run's :class:`Options`; :meth:`Condition.fingerprint` is what the run identity hashes, so a
results file never resumes under a different intervention that has the same name.

    >>> from icl_tokens.ablation import Block, Sel
    >>> c = Condition("no-demo2-label", knockout=Knockout((Block(Sel.test(),
    ...               Sel.demo(1) & Sel.category("label"), layers=(5, 6)),)))
    >>> c.fingerprint(Options())["knockout"]["blocks"]
    ['(part(test) | generated()) -/-> (demo(1) & category(label)) (layers [5, 6])']
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from .knockout import Block, Knockout
from .selection import Sel, check_kinds

__all__ = ["Condition", "Options", "QUERY_SCOPES", "fingerprint_sha256"]

QUERY_SCOPES = ("test", "last")
REMOVAL_SCOPES = ("all", "demos")


@dataclass(frozen=True)
class Options:
    """A run's options that shape its conditions' effects (from the experiment's config).

    Attributes:
        hide_bos: Also hide BOS in conditions that hide some kind (paper Appendix B).
        query_scope: ``"test"`` (every test token and generated token) or ``"last"``.
        layers, heads: Restrict kind-based knockouts to these layers / query heads.
        mode: ``"scores"`` or ``"pattern"`` for kind-based knockouts.
        scope: Token removal in ``"all"`` (demonstrations and test example) or ``"demos"``.
        restore_in_demos: With ``keep_last``, keep every demonstration's ``T_out`` colon too.
        template: The run's prompt template (a variant spec, or ``None`` for the task's own).
    """

    hide_bos: bool = False
    query_scope: str = "test"
    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    mode: str = "scores"
    scope: str = "all"
    restore_in_demos: bool = False
    template: str | None = None

    def __post_init__(self) -> None:
        if self.query_scope not in QUERY_SCOPES:
            raise ValueError(f"unknown query_scope {self.query_scope!r}; use one of "
                             f"{QUERY_SCOPES}.")
        if self.scope not in REMOVAL_SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}; use one of {REMOVAL_SCOPES}.")

    @property
    def shapes_knockouts(self) -> bool:
        """Whether any option changes a kind-based knockout."""
        return (self.hide_bos or self.query_scope != "test" or self.layers is not None
                or self.heads is not None or self.mode != "scores")


def _queries(query_scope: str) -> Sel:
    return Sel.test() if query_scope == "test" else Sel.last() | Sel.generated()


@dataclass(frozen=True)
class Condition:
    """One condition (see the module doc for the fields)."""

    name: str
    hidden: frozenset[str] | None = None
    knockout: Knockout | None = None
    removal: frozenset[str] | None = None
    keep_last: bool = False
    template: str | None = None
    shots: int | None = None
    meta: tuple[tuple[str, str], ...] = ()
    label: str = ""
    table: int = 0
    spec: str = ""
    aliases: tuple[str, ...] = ()
    doc: str = ""
    parts: tuple["Condition", ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or "," in self.name:
            raise ValueError(f"condition name {self.name!r}: give a non-empty name without "
                             "commas (names are listed comma-separated on the command line).")
        for f in ("hidden", "removal"):
            v = getattr(self, f)
            if v is not None:
                object.__setattr__(self, f, check_kinds(v) if v else frozenset())
        if self.knockout is not None and not isinstance(self.knockout, Knockout):
            raise TypeError(f"condition {self.name!r}: knockout must be a Knockout, got "
                            f"{type(self.knockout).__name__}.")
        if self.shots is not None and (isinstance(self.shots, bool) or int(self.shots) < 0):
            raise ValueError(f"condition {self.name!r}: shots must be >= 0 or None.")
        if self.keep_last and self.removal is None:
            raise ValueError(f"condition {self.name!r}: keep_last needs a removal.")
        if self.shots == 0 and self.removal:
            raise ValueError(f"condition {self.name!r}: a zero-shot prompt has no "
                             "demonstration tokens to remove.")
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "meta", tuple((str(k), str(v)) for k, v in self.meta))

    # ------------------------------------------------------------------ composition
    @classmethod
    def compose(cls, name: str, *conditions: "Condition", **fields: Any) -> "Condition":
        """One condition doing what all of ``conditions`` do: knockouts united, the prompt of
        whichever sets it (two different templates, shot counts or removals are an error)."""
        if not conditions:
            raise ValueError("compose needs at least one condition.")
        for attr in ("template", "shots", "removal"):
            vals = {getattr(c, attr) for c in conditions if getattr(c, attr) is not None}
            if len(vals) > 1:
                raise ValueError(f"cannot compose {[c.name for c in conditions]}: they set "
                                 f"different {attr}s {sorted(map(str, vals))}.")
        return cls(name, parts=tuple(conditions), **fields)

    def _all(self) -> tuple["Condition", ...]:
        return (self,) + tuple(p for c in self.parts for p in c._all())

    def _one(self, attr: str) -> Any:
        vals = [getattr(c, attr) for c in self._all() if getattr(c, attr) is not None]
        return vals[0] if vals else None

    @property
    def prompt_template(self) -> str | None:
        return self._one("template")

    @property
    def prompt_shots(self) -> int | None:
        return self._one("shots")

    @property
    def zero_shot(self) -> bool:
        return self.prompt_shots == 0

    @property
    def row_meta(self) -> dict[str, str]:
        """Column values this condition's rows carry."""
        out: dict[str, str] = {}
        for c in reversed(self._all()):
            out.update(dict(c.meta))
        return out

    # ------------------------------------------------------------------ effects
    def knockout_under(self, options: Options) -> Knockout | None:
        """The knockout this condition applies under a run's options (``None``: none)."""
        out: Knockout | None = None
        for c in self._all():
            for ko in (c._kind_knockout(options), c.knockout):
                if ko is not None and ko.blocks:
                    out = ko if out is None else out | ko
        return None if out is None else replace(out, name=self.name)

    def _kind_knockout(self, o: Options) -> Knockout | None:
        if not self.hidden:
            return None  # nothing hidden (Standard ICL keeps BOS visible too)
        keys = Sel.hidden_kinds(self.hidden, hide_bos=o.hide_bos)
        return Knockout((Block(_queries(o.query_scope), keys, o.layers, o.heads),),
                        name=self.name, mode=o.mode)

    def removal_under(self, options: Options) -> dict[str, Any] | None:
        """``{kinds, keep_last, scope, restore_in_demos}`` of the token removal, or ``None``."""
        c = next((c for c in self._all() if c.removal is not None), None)
        if c is None:
            return None
        return {"kinds": sorted(c.removal or ()), "keep_last": c.keep_last,
                "scope": options.scope,
                "restore_in_demos": bool(options.restore_in_demos and c.keep_last)}

    def fingerprint(self, options: Options) -> dict[str, Any]:
        """What this condition does under ``options``, as JSON-able data (hashed into the run
        identity)."""
        ko = self.knockout_under(options)
        return {
            "name": self.name,
            "knockout": None if ko is None else {
                "mode": ko.mode, "blocks": [b.describe() for b in ko.blocks]},
            "removal": self.removal_under(options),
            "template": self.prompt_template or options.template,
            "shots": self.prompt_shots,
            "meta": self.row_meta,
        }

    def with_name(self, name: str, **fields: Any) -> "Condition":
        """A copy under another name (no aliases or paper cell unless given)."""
        return replace(self, name=name, aliases=fields.pop("aliases", ()),
                       label=fields.pop("label", ""), table=fields.pop("table", 0),
                       spec=fields.pop("spec", ""), **fields)


def fingerprint_sha256(conditions: Iterable[Condition], options: Options) -> str:
    """sha256 of the fingerprints of ``conditions`` under ``options`` (order kept)."""
    blob = json.dumps([c.fingerprint(options) for c in conditions], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
