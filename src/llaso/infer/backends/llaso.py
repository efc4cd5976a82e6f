"""The llaso backend: a llaso model folder (Whisper encoder + projector + LLM), this project's processor.

Batches go through `LlasoProcessor.from_samples` (which expands each `<audio>` placeholder to the audio's
frames and left-pads) and `generate` greedily. When the processor refuses a batch (a missing or unreadable
audio, a placeholder count that does not match the audio), the samples are prepared one by one: the bad
ones get an `ItemFailure` naming the problem and the others still run together.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from llaso.infer.backends.base import ItemFailure, Result, folder_identity, sha
from llaso.model import LlasoForConditionalGeneration, LlasoProcessor
from llaso.model.processing import LlasoInputError
from llaso.schema import Sample

NAME = "llaso"
# what preparing one item may raise (a bad path, unreadable audio, text the tokenizer refuses): that item's
# failure, never the end of the run
ITEM_ERRORS = (ValueError, OSError, TypeError)


class NotALlasoModel(ValueError):
    pass


def load_model(
    model_dir: str | os.PathLike[str], *, dtype: Any = None, device: str | None = None
) -> tuple[Any, Any]:
    """The model and processor of a `llaso` model folder; anything else gets a clear error."""
    path = Path(model_dir)
    cfg = path / "config.json"
    if not cfg.is_file():
        raise NotALlasoModel(f"{path} is not a model folder (no config.json)")
    model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    if model_type != "llaso":
        raise NotALlasoModel(
            f"{path} holds a {model_type!r} model, not a llaso model (config.json model_type must be 'llaso'); "
            "build one with `llaso weights import` and the training recipe, or convert an original LLaSO "
            "checkpoint (docs/model.md)"
        )
    model = LlasoForConditionalGeneration.from_pretrained(path, dtype=dtype)
    processor = LlasoProcessor.from_pretrained(path)
    if device:
        model.to(device)  # type: ignore[arg-type]  # transformers types .to() as a decorator here
    return model.eval(), processor


def model_identity(model: Any) -> dict[str, str]:
    """What tells this model from another: the folder it was loaded from, or, for a model made in memory,
    its config and the bytes of its parameters."""
    name = str(getattr(model, "name_or_path", "") or "")
    folder = Path(name)
    if name and (folder / "config.json").is_file():
        return folder_identity(folder)
    h = hashlib.sha256()
    for key, t in model.state_dict().items():
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return {"model_config": sha(model.config.to_json_string().encode()), "model_files": h.hexdigest()[:32]}


class LlasoBackend:
    """A loaded llaso model and its processor (see the module docstring)."""

    name = NAME

    def __init__(
        self, model: Any, processor: Any, *, audio_root: str | None = None, batch_size: int = 8
    ) -> None:
        self.model, self.processor = model, processor
        self.audio_root, self.batch_size = audio_root, batch_size
        param = next(model.parameters())
        self.device, self.feat_dtype = param.device, param.dtype

    def settings(self) -> dict[str, Any]:
        dtype = str(self.feat_dtype).removeprefix("torch.")
        return {"backend": NAME, **model_identity(self.model), "dtype": dtype}

    def generate(self, samples: Sequence[Sample], max_new_tokens: int) -> list[Result]:
        failures, good, batch = self._prepare(samples)
        texts = iter(self._generate(batch, max_new_tokens) if good else [])
        return [failures[i] if i in failures else next(texts) for i in range(len(samples))]

    def _generate(self, batch: Any, max_new_tokens: int) -> list[str]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if "input_features" in batch:
            batch["input_features"] = batch["input_features"].to(self.feat_dtype)
        with torch.inference_mode():
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        texts = self.processor.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        return [t.strip() for t in texts]

    def _prepare(self, samples: Sequence[Sample]) -> tuple[dict[int, ItemFailure], list[int], Any]:
        """The processor's batch; when it refuses the batch, the bad samples are found one by one and the
        others still run together. Returns (failures by position, good positions, batch)."""
        try:
            return {}, list(range(len(samples))), self._from_samples(samples)
        except ITEM_ERRORS:
            pass
        failures: dict[int, ItemFailure] = {}
        good = []
        for i, s in enumerate(samples):
            try:
                self._from_samples([s])
                good.append(i)
            except ITEM_ERRORS as e:
                failures[i] = ItemFailure(
                    e.problem if isinstance(e, LlasoInputError) else f"{type(e).__name__}: {e}"
                )
        return failures, good, self._from_samples([samples[i] for i in good]) if good else None

    def _from_samples(self, samples: Sequence[Sample]) -> Any:
        return self.processor.from_samples(
            list(samples), audio_root=self.audio_root, add_generation_prompt=True
        )
