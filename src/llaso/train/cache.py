"""The frozen-encoder feature cache: encoder outputs computed once, reused across epochs and runs.

Layout: `CACHE_DIR/<encoder fingerprint>/<k[:2]>/<k>.pt`, one file per sample, holding the sample's
token ids and labels and the encoder frames of each of its windows (trimmed to what the projector uses).

* The fingerprint hashes the encoder's weights and config, the layer that feeds the projector and the
  autocast dtype the frames were computed in, so another encoder (or the same one after training) never
  reads these files.
* The sample key hashes the record itself, the processor settings, and each audio file's resolved path,
  size and modification time, so an edited record or a touched/replaced audio is a miss.
* Entries are written to a temporary file in the same folder and renamed, so a killed run leaves no
  half-written entry; an unreadable entry is treated as a miss and rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from llaso.corpus.paths import AudioPathError, resolve_audio_path
from llaso.model.modeling import LlasoForConditionalGeneration
from llaso.schema import Sample

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def encoder_fingerprint(model: LlasoForConditionalGeneration, autocast: str = "no") -> str:
    """A hash of everything that decides the encoder's output for a given input."""
    h = hashlib.blake2b(digest_size=16)
    meta = {
        "format": CACHE_FORMAT,
        "audio_config": model.config.audio_config.to_dict(),
        "select_layer": model.config.audio_select_layer,
        "autocast": autocast,
    }
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for name, t in sorted(model.audio_tower.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class FeatureCache:
    """Per-sample cache entries of one encoder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.dir = Path(root) / fingerprint
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def sample_key(self, sample: Sample, audio_root: str | None, settings: str) -> str | None:
        """The entry key of `sample`, or None when one of its audios cannot be stat'ed (not cacheable)."""
        h = hashlib.blake2b(digest_size=20)
        h.update(settings.encode())
        h.update(json.dumps(sample.to_record(), sort_keys=True, default=str).encode())
        for p in sample.audio_paths:
            try:
                path = resolve_audio_path(p, audio_root)
                st = path.stat()
            except (OSError, AudioPathError):
                return None
            h.update(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.pt"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
                raise ValueError("unexpected content")
        except Exception as e:  # a truncated or foreign file: recompute and overwrite it
            log.warning("feature cache: ignoring unreadable entry %s (%s)", path, e)
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(
        self,
        key: str,
        *,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        frames: list[torch.Tensor],
        positions: list[int],
    ) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "format": CACHE_FORMAT,
            "input_ids": input_ids.cpu(),
            "labels": labels.cpu(),
            "frames": [f.detach().cpu().clone() for f in frames],  # clone: a slice would save the whole batch
            "positions": [int(p) for p in positions],
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(entry, f)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.writes += 1


def frames_needed(positions: int, stack_factor: int, total: int) -> int:
    """Encoder frames the projector reads to make `positions` positions (the rest can be dropped)."""
    return min(total, positions * stack_factor)


def encode_windows(
    model: LlasoForConditionalGeneration, input_features: torch.Tensor, positions: list[int]
) -> list[torch.Tensor]:
    """The frozen encoder's frames of each window, trimmed to what the projector reads: [T_w, D] each."""
    with torch.no_grad():
        frames = model.encode_audio(input_features)
    k = int(model.config.stack_factor)
    return [frames[w, : frames_needed(p, k, frames.shape[1])] for w, p in enumerate(positions)]


def project_frames(
    model: LlasoForConditionalGeneration, frames: list[torch.Tensor], positions: list[int]
) -> torch.Tensor:
    """Projected audio of all windows, trimmed and concatenated: [N_positions, hidden] (as the model)."""
    width = max(f.shape[0] for f in frames)
    padded = frames[0].new_zeros((len(frames), width, frames[0].shape[1]))
    for w, f in enumerate(frames):
        padded[w, : f.shape[0]] = f
    return model.project_audio(padded, positions)
