"""corpusloop's cleaning toolkit: `corpus clean` and its steps, on datatrove's Document and executors."""

__version__ = "0.1.0"
