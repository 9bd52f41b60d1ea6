"""Prompt assembly that records the character span and role of every piece.

``prompt = I + Σ_i [T_in(D_in_i) + T_out(D_out_i)] + T_in(x_test) + prefix(T_out)``
(paper-spec §1). Positions are never found by re-tokenising: every piece's span is written down
while the string is built, and :mod:`icl_tokens.categorize` maps them onto tokens through the
fast tokenizer's offset mapping.

    >>> from icl_tokens.tasks import load_task, Example
    >>> task = load_task("sst2")
    >>> demo = Example("train:0", {"text": "a great film ."}, "1")
    >>> test = Example("test:0", {"text": "dull ."}, "0")
    >>> p = build_prompt(task, [demo], test)
    >>> p.text.endswith("Review: dull .\\nSentiment:")
    True
    >>> [s.name for s in p.segments if s.part == "test"]
    ['test.t_in', 'test.x', 'test.t_in', 'test.t_out_prefix']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..tasks import Example, TaskSpec

__all__ = ["Segment", "Prompt", "build_prompt", "ROLES"]

ROLES: tuple[str, ...] = ("bos", "instruction", "t_in", "d_in", "t_out", "d_out", "t_out_prefix",
                          "x", "generated")


@dataclass(frozen=True)
class Segment:
    """A character span of the prompt and what it is.

    Attributes:
        start, end: Character span ``[start, end)`` in :attr:`Prompt.text` (BOS: ``(0, 0)``).
        role: ``bos``, ``instruction``, ``t_in``, ``d_in``, ``t_out``, ``d_out`` (demonstrations),
            ``t_in``, ``x``, ``t_out_prefix`` (test example).
        part: ``"bos"``, ``"instruction"``, ``"demo"`` or ``"test"``.
        demo: 0-based demonstration index for ``part == "demo"``, else ``None``.
        field: Input field for ``d_in``/``x`` (``"text"``, ``"hypothesis"``, ...), else ``None``.
        piece: Index of the literal template piece within its template, else ``None``.
    """

    start: int
    end: int
    role: str
    part: str
    demo: int | None = None
    field: str | None = None
    piece: int | None = None

    @property
    def name(self) -> str:
        """Paper-spec §2.2 style name, e.g. ``demo_1.t_in`` (1-based) or ``test.x``."""
        if self.part == "demo":
            return f"demo_{self.demo + 1}.{self.role}"  # type: ignore[operator]
        if self.part == "test":
            return f"test.{self.role}"
        return self.role


@dataclass(frozen=True)
class Prompt:
    """An assembled ICL prompt with its segments.

    Attributes:
        text: The prompt string (without any BOS token: the tokenizer adds it).
        segments: Every span, in order; together they cover ``text`` exactly.
        task: The task specification used.
        demos: The demonstrations, in prompt order.
        test: The test example.
        gold: The gold label word of the test example.
        test_start: Character offset where the test example begins (end of the demo prefix).
    """

    text: str
    segments: tuple[Segment, ...]
    task: TaskSpec
    demos: tuple[Example, ...]
    test: Example
    gold: str
    test_start: int

    def spans(self, part: str | None = None, role: str | None = None) -> list[Segment]:
        """Segments filtered by part and/or role."""
        return [
            s for s in self.segments
            if (part is None or s.part == part) and (role is None or s.role == role)
        ]


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.segments: list[Segment] = []
        self.pos = 0

    def add(self, text: str, role: str, part: str, **kw: int | str | None) -> None:
        if not text:
            return
        self.segments.append(Segment(self.pos, self.pos + len(text), role, part, **kw))  # type: ignore[arg-type]
        self.parts.append(text)
        self.pos += len(text)


def _input_text(example: Example, field: str, task: TaskSpec) -> str:
    if field not in example.inputs:
        raise ValueError(
            f"example {example.id!r} has no input field {field!r} (fields: "
            f"{sorted(example.inputs)}); task {task.name!r} needs {list(task.input_fields)}."
        )
    text = example.inputs[field]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            f"example {example.id!r}: input field {field!r} is empty; remove the row or give it "
            "text (empty inputs would leave a template slot with nothing to categorise)."
        )
    return text


def _add_input(b: _Builder, task: TaskSpec, example: Example, part: str, demo: int | None) -> None:
    d_role = "d_in" if part == "demo" else "x"
    for i, piece in enumerate(task.input_pieces):
        if piece.kind == "literal":
            b.add(piece.value, "t_in", part, demo=demo, piece=i)
        else:
            b.add(_input_text(example, piece.value, task), d_role, part, demo=demo,
                  field=piece.value)


def _demo_formats(task: TaskSpec, demos: Sequence[Example],
                  demo_tasks: Sequence[TaskSpec] | None) -> list[TaskSpec]:
    """The task whose templates format each demonstration (``task`` unless given)."""
    if demo_tasks is None:
        return [task] * len(demos)
    if len(demo_tasks) != len(demos):
        raise ValueError(f"{len(demo_tasks)} demo_tasks for {len(demos)} demonstrations; give "
                         "one per demonstration.")
    for i, t in enumerate(demo_tasks):
        if tuple(t.input_fields) != tuple(task.input_fields):
            raise ValueError(f"demo_tasks[{i}] has input fields {list(t.input_fields)}, but "
                             f"task {task.name!r} has {list(task.input_fields)}.")
    return list(demo_tasks)


def build_prompt(
    task: TaskSpec,
    demos: Sequence[Example],
    test: Example,
    *,
    include_instruction: bool = True,
    demo_label_words: Iterable[str] | None = None,
    demo_tasks: Sequence[TaskSpec] | None = None,
) -> Prompt:
    """Assemble the ICL prompt for one test example.

    Args:
        task: Task specification (templates, instruction, label map).
        demos: Demonstrations in order (empty for the zero-shot prompt).
        test: The test example.
        include_instruction: Keep the instruction ``I`` (the paper always does).
        demo_label_words: Override the demonstrations' label words (e.g. random labels); by
            default each demo's raw label goes through ``task.label_map``.
        demo_tasks: One task per demonstration whose ``T_in``/``T_out`` format it (per-
            demonstration templates, e.g. the ``randomnonfixed`` variant of
            :mod:`icl_tokens.prompts.variants`); by default ``task`` formats every one. Their
            input fields must be ``task``'s; instruction, labels and the test prompt come from
            ``task``.

    Returns:
        The :class:`Prompt`, ending with ``prefix(T_out)`` (no trailing space).
    """
    b = _Builder()
    b.segments.append(Segment(0, 0, "bos", "bos"))
    if include_instruction and task.instruction:
        b.add(task.instruction + task.instruction_suffix, "instruction", "instruction")
    labels = (
        list(demo_label_words) if demo_label_words is not None
        else [task.label_word(d.label) for d in demos]
    )
    if len(labels) != len(demos):
        raise ValueError(f"{len(labels)} demo label words for {len(demos)} demonstrations.")
    formats = _demo_formats(task, demos, demo_tasks)
    for i, (demo, label, fmt) in enumerate(zip(demos, labels, formats)):
        _add_input(b, fmt, demo, "demo", i)
        for j, piece in enumerate(fmt.output_pieces):
            if piece.kind == "literal":
                b.add(piece.value, "t_out", "demo", demo=i, piece=j)
            else:
                b.add(label, "d_out", "demo", demo=i)
    test_start = b.pos
    _add_input(b, task, test, "test", None)
    b.add(task.output_prefix, "t_out_prefix", "test", piece=0)
    return Prompt(
        text="".join(b.parts),
        segments=tuple(b.segments),
        task=task,
        demos=tuple(demos),
        test=test,
        gold=task.label_word(test.label),
        test_start=test_start,
    )
