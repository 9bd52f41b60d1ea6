"""Test helpers: tiny randomly initialised models and tokenizers, built offline."""
