"""The per-transaction CPU work: state codec, feature builder and compiled-rule evaluator."""
