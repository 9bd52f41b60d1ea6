"""Prompt building: the paper's prompt format with the character span and role of every piece."""

from .build import ROLES, Prompt, Segment, build_prompt

__all__ = ["ROLES", "Prompt", "Segment", "build_prompt"]
