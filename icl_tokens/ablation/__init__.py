"""Knockouts: condition registry, composable blocks, selections and hooks."""
