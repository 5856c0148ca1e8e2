"""corpusloop's evaluation suite (lm-evaluation-harness at its core)."""
