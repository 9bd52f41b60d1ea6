"""The scoring engine: items, batches, the prefix cache, scoring and activation capture."""
