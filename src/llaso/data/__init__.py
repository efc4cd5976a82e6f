"""Corpus data: the sample schema, streaming I/O, audio paths and the `llaso data` tools."""

from llaso.data.jsonio import AtomicWriter, CorpusFormatError, iter_records, iter_samples, write_records
from llaso.data.paths import AudioPathError, resolve_audio_path
from llaso.data.sample import Modality, Sample, SampleError, Turn, infer_modality

__all__ = [
    "AtomicWriter",
    "AudioPathError",
    "CorpusFormatError",
    "Modality",
    "Sample",
    "SampleError",
    "Turn",
    "infer_modality",
    "iter_records",
    "iter_samples",
    "resolve_audio_path",
    "write_records",
]
