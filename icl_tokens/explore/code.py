"""Python source of a knockout: what the explorer's "copy as code" gives.

:func:`knockout_source` writes any :class:`~icl_tokens.ablation.Knockout` as constructor calls
of the public API (each selection's ``repr`` is already its source); executing the source gives
an equal knockout (the tests check the round trip):

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

from ..ablation.knockout import Block, Knockout

__all__ = ["knockout_source"]


def _block_source(b: Block, indent: str) -> str:
    """One block as its constructor call (a selection's ``repr`` is its source)."""
    lines = [f"{indent}Block(", f"{indent}    {b.queries!r},", f"{indent}    {b.keys!r},"]
    if b.layers is not None:
        lines.append(f"{indent}    layers={tuple(b.layers)!r},")
    if b.heads is not None:
        lines.append(f"{indent}    heads={tuple(b.heads)!r},")
    lines.append(f"{indent}),")
    return "\n".join(lines)


def knockout_source(knockout: Knockout | None, *, var: str = "knockout") -> str:
    """Source that assigns an equal knockout to ``var`` (``None`` for no knockout)."""
    if knockout is None:
        return f"{var} = None  # nothing hidden: Standard ICL"
    body = "\n".join(_block_source(b, "    ") for b in knockout.blocks)
    head = "from icl_tokens.ablation import Block, Knockout, Sel"
    if "np.array(" in body:
        head = "import numpy as np\n" + head
    return (f"{head}\n\n{var} = Knockout((\n{body}\n), name={knockout.name!r}, "
            f"mode={knockout.mode!r})")
