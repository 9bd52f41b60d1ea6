"""The one condition registry: every condition of every experiment, by experiment and name.

Conditions live in *namespaces*, one per kind of experiment, because the paper reuses names
across levels (``icl-content`` hides CONT representations at the representation level and drops
CONT tokens at the token level). Every lookup — command-line names and aliases, ``all``, table
rows, the paper's order — derives from the registry; a user's condition registered with
:func:`register_condition` is found by every command, table and the explorer.

    >>> from icl_tokens.ablation import Block, Sel
    >>> reg = ConditionRegistry()
    >>> _ = reg.register(Condition("icl", hidden=frozenset(), aliases=("standard",)))
    >>> reg.resolve("standard")
    'icl'
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

from .condition import Condition

__all__ = ["ConditionRegistry", "NAMESPACES", "DEFAULT_NAMESPACE"]

#: The experiments' condition namespaces.
NAMESPACES = ("representation", "token", "template-parts")
DEFAULT_NAMESPACE = "representation"
_NOUN = {"representation": "condition", "token": "token-level condition",
         "template-parts": "template-part condition"}


class ConditionRegistry:
    """Conditions by namespace, in registration order; ``default`` ones make up ``all``."""

    def __init__(self) -> None:
        self._by_ns: dict[str, dict[str, Condition]] = {ns: {} for ns in NAMESPACES}
        self._default: dict[str, list[str]] = {ns: [] for ns in NAMESPACES}

    def _ns(self, namespace: str) -> dict[str, Condition]:
        if namespace not in self._by_ns:
            raise ValueError(f"unknown condition namespace {namespace!r}; use one of "
                             f"{list(self._by_ns)}.")
        return self._by_ns[namespace]

    def register(self, condition: Condition, namespace: str = DEFAULT_NAMESPACE, *,
                 default: bool = False, replace: bool = False) -> Condition:
        """Add ``condition`` to ``namespace`` (``default``: part of ``all``).

        Raises:
            ValueError: the name or an alias is taken by another condition (pass
                ``replace=True`` to redefine a condition of the same name).
        """
        if not isinstance(condition, Condition):
            raise TypeError(f"register a Condition, not {type(condition).__name__}.")
        ns = self._ns(namespace)
        if "all" in (condition.name, *condition.aliases):
            raise ValueError("'all' is reserved for every default condition; choose another "
                             "name.")
        taken = self._aliases(namespace)
        for n in (condition.name, *condition.aliases):
            owner = ns[n].name if n in ns else taken.get(n)
            if owner is not None and not (replace and owner == condition.name):
                raise ValueError(f"condition name {n!r} is taken in {namespace!r} by {owner!r}; "
                                 "choose another name (or replace=True to redefine it).")
        ns[condition.name] = condition
        if default and condition.name not in self._default[namespace]:
            self._default[namespace].append(condition.name)
        return condition

    def unregister(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Remove a condition (e.g. a user's, after a test)."""
        ns = self._ns(namespace)
        name = self.resolve(name, namespace)
        del ns[name]
        if name in self._default[namespace]:
            self._default[namespace].remove(name)

    def _aliases(self, namespace: str) -> dict[str, str]:
        return {a: c.name for c in self._ns(namespace).values() for a in c.aliases}

    def aliases(self, namespace: str = DEFAULT_NAMESPACE) -> dict[str, str]:
        """Alias → canonical name."""
        return self._aliases(namespace)

    def names(self, namespace: str = DEFAULT_NAMESPACE) -> tuple[str, ...]:
        """Every canonical name, in registration order."""
        return tuple(self._ns(namespace))

    def defaults(self, namespace: str = DEFAULT_NAMESPACE) -> tuple[str, ...]:
        """The conditions ``all`` stands for, in the paper's order."""
        self._ns(namespace)
        return tuple(self._default[namespace])

    def spellings(self) -> set[str]:
        """Every name and alias of every namespace (and ``all``)."""
        out = {"all"}
        for ns in self._by_ns:
            out |= set(self._by_ns[ns]) | set(self._aliases(ns))
        return out

    def resolve(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> str:
        """Canonical name of ``name`` (or an alias); a clear error if unknown."""
        ns = self._ns(namespace)
        canon = self._aliases(namespace).get(name, name)
        if canon in ns:
            return canon
        raise ValueError(f"unknown {_NOUN[namespace]} {name!r}; choose from "
                         f"{list(ns)} (aliases: {sorted(self._aliases(namespace))}), or "
                         "register your own with icl_tokens.register_condition.")

    def get(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Condition:
        """The condition called ``name`` (or an alias)."""
        return self._ns(namespace)[self.resolve(name, namespace)]

    def parse(self, spec: str | Sequence[str], namespace: str = DEFAULT_NAMESPACE
              ) -> list[str]:
        """``"all"`` or a comma-separated list / sequence of names → canonical, de-duplicated.

        Raises:
            ValueError: no names at all (``""`` or ``","``), or an unknown name.
        """
        items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
        items = [s.strip() for s in items if s.strip()]
        if not items:
            raise ValueError(f"no conditions given ({spec!r}); use 'all' or names such as "
                             f"{','.join(self.defaults(namespace)[:2])}.")
        out: list[str] = []
        for s in items:
            for c in (self.defaults(namespace) if s == "all" else (self.resolve(s, namespace),)):
                if c not in out:
                    out.append(c)
        return out

    def conditions(self, names: Iterable[str], namespace: str = DEFAULT_NAMESPACE
                   ) -> list[Condition]:
        """The condition objects of ``names``."""
        return [self.get(n, namespace) for n in names]

    def __iter__(self) -> Iterator[tuple[str, Condition]]:
        for ns, conds in self._by_ns.items():
            for c in conds.values():
                yield ns, c
