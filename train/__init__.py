"""corpusloop's training API; methods are plugins found through Python entry points."""
