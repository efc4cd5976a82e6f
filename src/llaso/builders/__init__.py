"""Corpus builders: LLaSO records from labelled source corpora (`sources/`, `build.py`), the offline
synthetic corpus (`synth.py`, `synthetic/`), the built-in sample (`builtin.py`), and what they share: turning
one labelled item into a record in a modality configuration (`compose.py`) and speech synthesis (`tts.py`)."""
