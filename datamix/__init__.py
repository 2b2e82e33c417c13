"""datamix: build, subsample, inspect and train on LLaVA-1.5-style vision-language data mixtures."""

__version__ = "0.1.0"
