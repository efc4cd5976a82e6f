"""llaso: an open, reproducible stack for large speech-language models (LLaSO re-implemented)."""

__version__ = "0.1.0"
