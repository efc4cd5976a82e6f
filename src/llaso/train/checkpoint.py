"""Checkpoints: transformers folders plus the projector file and the state needed to resume.

`OUT/checkpoint-<step>/` holds

* the model and processor in transformers format (`save_pretrained`; LoRA adapters merged in), so a
  checkpoint loads with `LlasoForConditionalGeneration.from_pretrained` or `llaso infer --model`;
* `mm_audio_aligner.bin`, the projector alone under the original names
  (`model.mm_audio_aligner.projector.{0,2}.{weight,bias}`), and `projector.safetensors` under ours
  (`projector.net.{0,2}.*`): either is what `model.projector=` takes in stage 2;
* `accelerate/`: `Accelerator.save_state` (model, optimizer, scheduler, RNG of every process; sharded
  the engine's own way under FSDP/DeepSpeed);
* `trainer_state.json`: step, epoch, position in the epoch's batch order, counters;
* `manifest.json`: the size and SHA-256 of every other file. Written last.

A checkpoint is built in `OUT/.tmp-checkpoint-<step>/`, every file and folder of it flushed to disk
(fsync), then renamed, and the rename flushed too: a run killed while saving, or a power cut, leaves no
folder named `checkpoint-*` that is not complete; the temporary one is removed at the next start. A
resumed run checks the manifest before loading (`verify_checkpoint`), so a damaged file (truncated,
changed, missing) is found before torch reads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file

from llaso.model.modeling import LlasoForConditionalGeneration

log = logging.getLogger(__name__)

ORIGINAL_PROJECTOR_FILE = "mm_audio_aligner.bin"
PROJECTOR_FILE = "projector.safetensors"
STATE_FILE = "trainer_state.json"
MANIFEST_FILE = "manifest.json"
ACCELERATE_DIR = "accelerate"
_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")
_ORIGINAL_PREFIX = "model.mm_audio_aligner.projector."
_OUR_PREFIX = "projector.net."


# ---- the projector file -----------------------------------------------------------------------------
def projector_state(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The projector's tensors of a full model state dict, under our names (`projector.net.N.*`)."""
    return {k: v for k, v in state_dict.items() if k.startswith(_OUR_PREFIX)}


def to_original_names(projector: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`projector.net.0.weight` → `model.mm_audio_aligner.projector.0.weight` (the original layout)."""
    return {_ORIGINAL_PREFIX + k.removeprefix(_OUR_PREFIX): v for k, v in projector.items()}


def save_projector(folder: str | os.PathLike[str], state_dict: dict[str, torch.Tensor]) -> None:
    proj = {k: v.detach().cpu().contiguous() for k, v in projector_state(state_dict).items()}
    torch.save(to_original_names(proj), Path(folder) / ORIGINAL_PROJECTOR_FILE)
    save_file(proj, str(Path(folder) / PROJECTOR_FILE))


def read_projector(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A projector file as {`net.N.weight|bias`: tensor}; a folder means its projector file.

    Accepts ours (`projector.safetensors`, `projector.net.N.*`) and the original's `mm_audio_aligner.bin`
    (`model.mm_audio_aligner.projector.N.*`, with or without the `model.` prefix).
    """
    p = Path(path)
    if p.is_dir():
        found = [p / n for n in (PROJECTOR_FILE, ORIGINAL_PROJECTOR_FILE) if (p / n).is_file()]
        if not found:
            raise FileNotFoundError(f"{p}: no {PROJECTOR_FILE} or {ORIGINAL_PROJECTOR_FILE} in this folder")
        p = found[0]
    if not p.is_file():
        raise FileNotFoundError(f"projector file not found: {p}")
    if p.suffix == ".safetensors":
        raw = load_file(str(p))
    else:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    out = {}
    for k, v in raw.items():
        for prefix in (_ORIGINAL_PREFIX, "mm_audio_aligner.projector.", _OUR_PREFIX, "net."):
            if k.startswith(prefix):
                out["net." + k.removeprefix(prefix)] = v
                break
        else:
            raise ValueError(f"{p}: unexpected key {k!r} in a projector file")
    if not out:
        raise ValueError(f"{p}: no projector weights in this file")
    return out


def load_projector(model: LlasoForConditionalGeneration, path: str | os.PathLike[str]) -> None:
    """Load a stage-1 projector into `model.projector` (shapes and names must match exactly)."""
    sd = read_projector(path)
    own = model.projector.state_dict()
    if set(sd) != set(own):
        raise ValueError(f"{path}: projector keys {sorted(sd)} do not match the model's {sorted(own)}")
    for k, v in sd.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(
                f"{path}: projector {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)} "
                "(another encoder, LLM, projector_type or stack_factor?)"
            )
    model.projector.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})


# ---- LoRA ------------------------------------------------------------------------------------------
def merge_lora_state_dict(state_dict: dict[str, torch.Tensor], scaling: dict[str, float]) -> dict[str, Any]:
    """A plain (adapter-free) state dict: `W + scaling · B @ A` for every LoRA-wrapped Linear.

    `scaling` maps a wrapped module's name (`language_model.model.layers.0.self_attn.q_proj`) to
    alpha / r. Works on a gathered full state dict, so it is the same under DDP, FSDP and DeepSpeed.
    """
    out: dict[str, Any] = {}
    for k, v in state_dict.items():
        if ".lora_" in k:
            continue
        out[k.replace(".base_layer.", ".")] = v
    for name, s in scaling.items():
        a = state_dict[f"{name}.lora_A.default.weight"]
        b = state_dict[f"{name}.lora_B.default.weight"]
        w = state_dict[f"{name}.base_layer.weight"]
        out[f"{name}.weight"] = (w.float() + s * (b.float() @ a.float())).to(w.dtype)
    return out


def lora_scaling(model: torch.nn.Module) -> dict[str, float]:
    """alpha / r of every LoRA-wrapped module, by module name (empty without adapters)."""
    return {
        name: float(mod.scaling["default"])
        for name, mod in model.named_modules()
        if isinstance(mod, LoraLayer) and "default" in mod.scaling
    }


# ---- tied weights ----------------------------------------------------------------------------------
def drop_tied_copies(state_dict: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """`state_dict` without the names of parameters tied to an earlier one (an LM head tied to the input
    embeddings), as `save_pretrained` writes them.

    `save_pretrained` finds tied weights by shared storage. Under FSDP the gathered full state dict holds
    a separate copy for every name, so the head would be written a second time; the model still ties the
    two parameters (the same object before and after sharding), which is what is read here.
    """
    first: dict[int, str] = {}
    tied = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first:
            tied.add(name)
        else:
            first[id(param)] = name
    return {k: v for k, v in state_dict.items() if k not in tied}


# ---- finding and rotating checkpoints --------------------------------------------------------------
def checkpoint_step(path: Path) -> int | None:
    m = _CKPT_RE.match(path.name)
    return int(m.group(1)) if m else None


def list_checkpoints(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoints (with their state file), oldest first."""
    root = Path(out_dir)
    if not root.is_dir():
        return []
    found = [
        (step, p)
        for p in root.iterdir()
        if p.is_dir() and (step := checkpoint_step(p)) is not None and (p / STATE_FILE).is_file()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: str | os.PathLike[str]) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def read_state(checkpoint: Path) -> dict[str, Any]:
    return dict(json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8")))


def rotate(out_dir: str | os.PathLike[str], keep: int | None, upto: int | None = None) -> list[Path]:
    """Delete all but the newest `keep` checkpoints; returns the deleted ones.

    With `upto` (the step just saved), only checkpoints up to that step count and can go: newer ones are
    left by an earlier run that a resume passed over (damaged, or not loadable), the steps this run is
    redoing; counting them would delete the good checkpoints just written.
    """
    if not keep or keep < 1:
        return []
    found = [p for p in list_checkpoints(out_dir) if upto is None or (checkpoint_step(p) or 0) <= upto]
    gone = found[:-keep]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def remove_partial(out_dir: str | os.PathLike[str]) -> None:
    """Remove temporary folders left by a run killed while saving."""
    root = Path(out_dir)
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith(".tmp-"):
                log.info("removing an incomplete save: %s", p)
                shutil.rmtree(p, ignore_errors=True)


def write_state(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, folder / STATE_FILE)


# ---- the manifest ----------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path) -> list[str]:
    """Every file under `folder` but the manifest, as sorted '/'-separated relative paths."""
    found = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(f for f in found if f != MANIFEST_FILE)


def write_manifest(folder: Path) -> None:
    """manifest.json: {"files": {relative path: {"size", "sha256"}}} of every file in `folder`."""
    files = {}
    for rel in _files(folder):
        path = folder / rel
        files[rel] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    text = json.dumps({"files": files}, indent=1, sort_keys=True)
    (folder / MANIFEST_FILE).write_text(text, encoding="utf-8")


def verify_checkpoint(folder: Path) -> str | None:
    """None when every file the manifest lists is there with its size and checksum; else why not.

    Sizes first (a truncated file costs no reading), then the checksums.
    """
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        entries = {str(rel): (int(v["size"]), str(v["sha256"])) for rel, v in manifest["files"].items()}
    except FileNotFoundError:
        return f"no {MANIFEST_FILE} (written before checksums were kept, or not complete)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"{MANIFEST_FILE} is unreadable ({type(e).__name__}: {e})"
    if STATE_FILE not in entries:
        return f"{MANIFEST_FILE} does not list {STATE_FILE}"
    for rel, (size, _) in entries.items():
        path = folder / rel
        if not path.is_file():
            return f"{rel} is missing"
        have = path.stat().st_size
        if have != size:
            return f"{rel} has {have} bytes, the manifest says {size} (truncated or changed)"
    for rel, (_, digest) in entries.items():
        if file_sha256(folder / rel) != digest:
            return f"{rel} does not match its checksum (changed or damaged on disk)"
    return None


# ---- durable writes ---------------------------------------------------------------------------------
def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk (folders only where the OS can open them: POSIX)."""
    if path.is_dir() and os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under `root`, then every folder, deepest first, `root` last."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))


def publish(tmp: Path, final: Path) -> None:
    """Flush a finished temporary folder to disk and rename it into place (replacing an older folder of
    the same name); the parent folder is flushed after the rename, so the new name is durable too."""
    fsync_tree(tmp)
    if final.exists():
        old = final.with_name(f".tmp-old-{final.name}")
        os.replace(final, old)
        os.replace(tmp, final)
        fsync_path(final.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
        fsync_path(final.parent)
