"""reprotext: a reproducible NLP training pipeline."""

__version__ = "0.1.0"
