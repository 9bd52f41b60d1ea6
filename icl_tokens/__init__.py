"""icl_tokens."""
