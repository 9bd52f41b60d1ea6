"""Python source of a knockout: what the explorer's "copy as code" gives.

:func:`knockout_source` writes any :class:`~icl_tokens.ablation.Knockout` as constructor calls
of the public API; executing the source gives an equal knockout (the tests check the round trip):

    >>> from icl_tokens.ablation import knockout_for
    >>> print(knockout_source(knockout_for("+template", layers=[0, 1])))
    from icl_tokens.ablation import Block, Knockout, Sel
    <BLANKLINE>
    knockout = Knockout((
        Block(
            (Sel.part('test') | Sel.generated()),
            Sel.hidden_kinds(['content', 'stopword']),
            layers=(0, 1),
        ),
    ), name='+template', mode='scores')
"""

from __future__ import annotations

import numpy as np

from ..ablation.knockout import Block, Knockout
from ..ablation.selection import Sel

__all__ = ["knockout_source", "sel_source"]


def sel_source(sel: Sel) -> str:
    """A :class:`~icl_tokens.ablation.Sel` as the expression that builds it."""
    op, a = sel.op, sel.args
    simple = {"all": "Sel.everything()", "none": "Sel.nothing()", "gen": "Sel.generated()",
              "last": "Sel.last()"}
    if op in simple:
        return simple[op]
    if op == "cat":
        return f"Sel.category({', '.join(repr(c) for c in a[0])})"
    if op == "role":
        return f"Sel.role({', '.join(repr(r) for r in a[0])})"
    if op == "demo":
        return f"Sel.demo({', '.join(str(int(d)) for d in a[0])})"
    if op == "part":
        return f"Sel.part({a[0]!r})"
    if op == "hidden":
        bos = ", hide_bos=True" if a[1] else ""
        return f"Sel.hidden_kinds({list(a[0])!r}{bos})"
    if op == "pos":
        arr = np.frombuffer(a[0], dtype=np.dtype(a[1])).reshape(a[2])
        if arr.dtype == bool:
            return f"Sel.positions(np.array({arr.tolist()!r}, dtype=bool))"
        return f"Sel.positions({[int(x) for x in arr.tolist()]!r})"
    if op in ("and", "or"):
        sym = "&" if op == "and" else "|"
        return f"({sel_source(a[0])} {sym} {sel_source(a[1])})"
    if op == "not":
        return f"~{sel_source(a[0])}"
    raise ValueError(f"cannot write selection op {op!r} as code.")


def _block_source(b: Block, indent: str) -> str:
    lines = [f"{indent}Block(", f"{indent}    {sel_source(b.queries)},",
             f"{indent}    {sel_source(b.keys)},"]
    if b.layers is not None:
        lines.append(f"{indent}    layers={tuple(b.layers)!r},")
    if b.heads is not None:
        lines.append(f"{indent}    heads={tuple(b.heads)!r},")
    lines.append(f"{indent}),")
    return "\n".join(lines)


def _uses_numpy(sel: Sel) -> bool:
    if sel.op == "pos":
        return np.dtype(sel.args[1]) == bool
    return any(_uses_numpy(x) for x in sel.args if isinstance(x, Sel))


def knockout_source(knockout: Knockout | None, *, var: str = "knockout") -> str:
    """Source that assigns an equal knockout to ``var`` (``None`` for no knockout)."""
    if knockout is None:
        return f"{var} = None  # nothing hidden: Standard ICL"
    head = "from icl_tokens.ablation import Block, Knockout, Sel"
    if any(_uses_numpy(b.queries) or _uses_numpy(b.keys) for b in knockout.blocks):
        head = "import numpy as np\n" + head
    body = "\n".join(_block_source(b, "    ") for b in knockout.blocks)
    return (f"{head}\n\n{var} = Knockout((\n{body}\n), name={knockout.name!r}, "
            f"mode={knockout.mode!r})")
