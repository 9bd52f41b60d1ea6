"""The items of one test example's atlas: the unablated prompt, one single-key knockout per
demonstration token, and the category knockouts its roll-ups compare against.

Every knockout here restricts the same queries as the representation-level conditions
(:meth:`~icl_tokens.ablation.selection.Sel.test`: the test example's tokens and every generated
or teacher-forced token), so no prefix row is touched and the cached engine computes the
demonstration prefix once for all of them.

    >>> from icl_tokens.atlas.items import pos_condition, position_of
    >>> pos_condition(17), position_of("pos=17")
    ('pos=17', 17)
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..ablation.condition import Options
from ..ablation.conditions import REGISTRY
from ..ablation.knockout import Block, Knockout
from ..ablation.selection import Sel
from ..engine.items import Item

__all__ = ["BASE", "GROUP_PREFIX", "DEFAULT_GROUPS", "atlas_queries", "demo_positions",
           "pos_condition", "position_of", "group_condition", "token_knockout",
           "group_knockout", "atlas_items", "group_keys", "check_groups"]

#: The condition name of the unablated prompt.
BASE = "icl"
#: Condition-name prefix of a category knockout measured beside the atlas.
GROUP_PREFIX = "group="
#: The category knockouts measured by default (paper Table 3's rows).
DEFAULT_GROUPS: tuple[str, ...] = ("icl-template", "icl-stopword", "icl-content")
_POS = re.compile(r"pos=(\d+)\Z")


def atlas_queries() -> Sel:
    """The queries every atlas knockout restricts: the test example and generated tokens."""
    return Sel.test()


def demo_positions(item: Item) -> np.ndarray:
    """Positions of every demonstration token (template pieces, input text, label word)."""
    return np.flatnonzero(np.asarray(item.demo) >= 0)


def pos_condition(position: int) -> str:
    """The condition name of the knockout of one key: ``pos=<position>``."""
    return f"pos={int(position)}"


def position_of(condition: str) -> int:
    """The key position of a ``pos=<i>`` condition name."""
    m = _POS.match(condition)
    if m is None:
        raise ValueError(f"{condition!r} is not an atlas token condition; they look like "
                         "'pos=17'.")
    return int(m.group(1))


def group_condition(name: str) -> str:
    """The condition name of a measured category knockout, e.g. ``group=icl-template``."""
    return GROUP_PREFIX + name


def token_knockout(position: int, layers: Sequence[int] | None = None) -> Knockout:
    """The test queries may not attend to the key at ``position`` (in ``layers``; all: None)."""
    block = Block(atlas_queries(), Sel.positions([int(position)]),
                  None if layers is None else tuple(layers))
    return Knockout((block,), name=pos_condition(position))


def group_knockout(name: str, layers: Sequence[int] | None = None) -> Knockout:
    """A representation-level condition's knockout (e.g. ``icl-template``) in ``layers``."""
    options = Options(layers=None if layers is None else tuple(layers))
    ko = REGISTRY.get(name, "representation").knockout_under(options)
    if ko is None:
        raise ValueError(f"condition {name!r} hides nothing; atlas groups are knockout "
                         "conditions such as icl-template, icl-stopword, icl-content.")
    return ko.with_name(group_condition(name))


def check_groups(names: Sequence[str]) -> tuple[str, ...]:
    """Canonical names of representation-level knockout conditions whose blocks restrict the
    atlas queries only (so their single-token effects can be summed)."""
    out = []
    for name in names:
        canon = REGISTRY.resolve(name, "representation")
        ko = group_knockout(canon)
        bad = [b for b in ko.blocks if b.queries != atlas_queries()]
        if bad:
            raise ValueError(f"condition {canon!r} restricts the queries "
                             f"{bad[0].queries.describe()}; atlas groups must restrict the test "
                             "example and generated tokens only (e.g. icl-template).")
        if canon in out:
            raise ValueError(f"atlas group {canon!r} is given twice; give each once.")
        out.append(canon)
    return tuple(out)


def group_keys(item: Item, name: str) -> np.ndarray:
    """Bool ``[pos]``: the keys the category knockout ``name`` hides on ``item`` (all of them
    demonstration tokens, else a ValueError)."""
    ko = group_knockout(name).resolve(item)
    keys = ko.key
    outside = np.flatnonzero(keys & (np.asarray(item.demo) < 0))
    if outside.size:
        raise ValueError(f"condition {name!r} hides position {int(outside[0])}, which is not a "
                         "demonstration token; atlas groups hide demonstration keys only.")
    return keys


def atlas_items(item: Item, layers: Sequence[int] | None = None,
                groups: Sequence[str] = ()) -> list[Item]:
    """``[unablated, pos=<i> for every demonstration token i, group=<name> for each group]``,
    all the same prompt (``meta`` kept)."""
    if item.knockout is not None:
        raise ValueError(f"item {item.example_id!r} already has a knockout; the atlas starts "
                         "from the unablated prompt (pass the plain item).")
    positions = demo_positions(item)
    if positions.size == 0:
        raise ValueError(f"item {item.example_id!r} has no demonstration tokens; the atlas "
                         "needs k >= 1.")
    out = [item.with_knockout(None, BASE)]
    out += [item.with_knockout(token_knockout(int(p), layers)) for p in positions]
    out += [item.with_knockout(group_knockout(g, layers)) for g in groups]
    return out
