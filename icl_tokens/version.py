"""The package version (one place; ``icl_tokens.__version__`` and provenance read it)."""

__version__ = "0.2.0"
