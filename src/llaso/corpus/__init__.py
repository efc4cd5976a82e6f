"""Corpus I/O and tools: streaming JSON/JSONL records, audio paths and decoding, and the `llaso data`
merge / validate / stats tools. Builders that make new corpora live in `llaso.builders`."""

from llaso.corpus.jsonio import AtomicWriter, CorpusFormatError, iter_records, iter_samples, write_records
from llaso.corpus.paths import AudioPathError, resolve_audio_path

__all__ = [
    "AtomicWriter",
    "AudioPathError",
    "CorpusFormatError",
    "iter_records",
    "iter_samples",
    "resolve_audio_path",
    "write_records",
]
