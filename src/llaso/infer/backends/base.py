"""What `llaso infer` needs of a model: one interface, one class per kind of model.

The inference loop (`llaso.infer.run`) owns everything that is the same for every model: reading eval
files, the resumable store keyed by content, batching by generation budget, the progress bar, error
records. A backend only turns a batch of samples into answers:

* `settings()`: what identifies the run's outputs (the backend, the model and its identity, the generation
  settings, how the prompt is rendered). It goes into each output's header and sidecar, so an output made
  with other settings is refused instead of merged, and a published number can be reproduced from it.
* `generate(samples, max_new_tokens)`: one result per sample, in order: the answer text, or an
  `ItemFailure` for a sample that could not be answered (its error record names the problem). A backend
  never raises for one bad sample; it raises only when the whole run cannot go on (`BackendStop`: an
  endpoint that refuses every request the same way).
* `batch_size`: how many samples one `generate` call takes (for an endpoint: the concurrency).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llaso.schema import Sample


@dataclass(frozen=True)
class ItemFailure:
    """Why one sample got no answer (names the problem; the loop adds file and record)."""

    problem: str


class BackendStop(RuntimeError):
    """The run cannot go on (for example: N consecutive identical client errors from an endpoint)."""


Result = str | ItemFailure


class Backend(Protocol):
    name: str  # "llaso", "transformers", "openai"
    batch_size: int

    def settings(self) -> dict[str, Any]: ...

    def generate(self, samples: Sequence[Sample], max_new_tokens: int) -> list[Result]: ...


# the files of a model folder whose sizes and modification times tell one model from another
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".model", ".json", ".txt",
                       ".jinja", ".tiktoken")  # fmt: skip


def sha(data: bytes, n: int = 32) -> str:
    return hashlib.sha256(data).hexdigest()[:n]


def folder_identity(folder: Path) -> dict[str, str]:
    """What tells one model folder from another: its config.json's content, and the names, sizes and
    modification times of its weight, tokenizer and processor files (reading gigabytes of weights to hash
    them would cost more than a run's start-up)."""
    files = sorted(
        (f.name, st.st_size, st.st_mtime_ns)
        for f in folder.iterdir()
        if f.suffix in MODEL_FILE_SUFFIXES and f.name != "config.json" and f.is_file()
        for st in (f.stat(),)
    )
    return {
        "model_config": sha((folder / "config.json").read_bytes()),
        "model_files": sha(json.dumps(files).encode()),
    }
