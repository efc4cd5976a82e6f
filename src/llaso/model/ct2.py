"""Read CTranslate2 `model.bin` files and map Whisper models to transformers' parameter names.

Numpy only (no torch, no ctranslate2). Binary format version 6, little-endian throughout:

    u32 version (6), str spec name, u32 spec revision, u32 n_variables,
    n_variables x [str name, u8 rank, u32 x rank shape, u8 dtype, u32 nbytes, nbytes of data],
    u32 n_aliases, n_aliases x [str alias, str target]

A `str` is a u16 length that counts a trailing NUL, then that many bytes of UTF-8 (NUL included).
Dtype codes: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16 (numpy has no bfloat16: it is
widened to float32, which is exact). Rank-0 variables are scalars such as `encoder/num_heads`.

The Whisper mapping (`whisper_state_dict`) follows CTranslate2's own converter in reverse: fused
q;k;v (self-attention) and k;v (cross-attention) projections are split, the key bias (which
CTranslate2 stores as zeros) is dropped because transformers' Whisper has none, and the aliased output
projection becomes `proj_out.weight`. Dropping a key bias is exact in any case: it adds the same
`q . b` to every score of a query, which the softmax cancels.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

SUPPORTED_VERSION = 6

# dtype code -> (numpy dtype of the stored bytes, item size)
_DTYPES: dict[int, np.dtype[Any]] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16 bits, widened to float32 after reading
}
DTYPE_NAMES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}


class CT2FormatError(ValueError):
    """A model.bin that is not a readable CTranslate2 v6 file (names the file and the byte offset)."""


class _ChainedReader:
    """Reads a sequence of files as one stream (a model.bin split in parts), tracking the offset."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.offset = 0
        self._files: Iterator[IO[bytes]] = (open(p, "rb") for p in paths)  # noqa: SIM115
        self._current: IO[bytes] | None = next(self._files, None)

    def read(self, n: int) -> bytes:
        chunks: list[bytes] = []
        want = n
        while want > 0 and self._current is not None:
            b = self._current.read(want)
            if b:
                chunks.append(b)
                want -= len(b)
            else:
                self._current.close()
                self._current = next(self._files, None)
        data = b"".join(chunks)
        self.offset += len(data)
        return data

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        for f in self._files:
            f.close()


@dataclass
class CT2Model:
    """The variables of a CTranslate2 model: name -> numpy array, plus name aliases."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)  # stored dtype name of every variable
    version: int = SUPPORTED_VERSION

    def resolve(self, name: str) -> str:
        seen = set()
        while name in self.aliases and name not in self.variables:
            if name in seen:
                raise KeyError(f"alias cycle at {name!r}")
            seen.add(name)
            name = self.aliases[name]
        return name

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[self.resolve(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.resolve(name) in self.variables

    def names(self) -> list[str]:
        return sorted(self.variables)

    def scalar(self, name: str, default: int | float | None = None) -> Any:
        if name not in self:
            if default is None:
                raise KeyError(name)
            return default
        return self[name].reshape(()).item()


def read_ct2_model(path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> CT2Model:
    """Parse a CTranslate2 v6 `model.bin`. `path` may also be a list of parts to be read as one file
    (in order), as in a model split across packages."""
    paths = [Path(path)] if isinstance(path, str | os.PathLike) else [Path(p) for p in path]
    if not paths:
        raise ValueError("no model.bin given")
    where = paths[0] if len(paths) == 1 else Path("+".join(str(p) for p in paths))
    total = sum(p.stat().st_size for p in paths)
    reader = _ChainedReader(paths)
    try:
        return _parse(reader, where, total)
    finally:
        reader.close()


def _parse(r: _ChainedReader, where: Path, total: int) -> CT2Model:
    def fail(msg: str) -> CT2FormatError:
        return CT2FormatError(f"{where}: byte {r.offset}: {msg}")

    def take(n: int, what: str) -> bytes:
        b = r.read(n)
        if len(b) != n:
            raise fail(f"file ends inside {what} (wanted {n} bytes, got {len(b)})")
        return b

    def u8(what: str) -> int:
        return int(take(1, what)[0])

    def u16(what: str) -> int:
        return int(struct.unpack("<H", take(2, what))[0])

    def u32(what: str) -> int:
        return int(struct.unpack("<I", take(4, what))[0])

    def string(what: str) -> str:
        n = u16(f"{what} length")
        raw = take(n, what)
        if n == 0 or raw[-1] != 0:
            raise fail(f"{what} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as e:
            raise fail(f"{what} is not UTF-8: {e}") from None

    version = u32("version")
    if version != SUPPORTED_VERSION:
        raise fail(
            f"binary version {version}; only CTranslate2 format version {SUPPORTED_VERSION} is supported"
            + (" (is this a model.bin?)" if version > 1000 else "")
        )
    spec = string("spec name")
    revision = u32("spec revision")
    n_vars = u32("variable count")
    variables: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for i in range(n_vars):
        name = string(f"name of variable {i}")
        rank = u8(f"rank of {name}")
        shape = tuple(u32(f"shape of {name}") for _ in range(rank))
        code = u8(f"dtype of {name}")
        if code not in _DTYPES:
            raise fail(f"variable {name!r} has unknown dtype code {code}")
        nbytes = u32(f"size of {name}")
        dt = _DTYPES[code]
        expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if nbytes != expected:
            raise fail(f"variable {name!r}: {nbytes} bytes for shape {shape} {DTYPE_NAMES[code]}")
        if r.offset + nbytes > total:
            raise fail(f"file ends inside the data of {name!r} (truncated download or missing part?)")
        arr = np.frombuffer(take(nbytes, f"data of {name}"), dtype=dt).reshape(shape)
        if code == 5:
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        if name in variables:
            raise fail(f"variable {name!r} appears twice")
        variables[name] = arr
        dtypes[name] = DTYPE_NAMES[code]
    aliases: dict[str, str] = {}
    n_aliases = u32("alias count")
    for i in range(n_aliases):
        alias = string(f"alias {i}")
        aliases[alias] = string(f"target of alias {alias!r}")
    if r.offset != total:
        raise fail(f"{total - r.offset} unexpected bytes after the alias table")
    for alias, target in aliases.items():
        if target not in variables and target not in aliases:
            raise fail(f"alias {alias!r} points to missing variable {target!r}")
    return CT2Model(
        spec=spec, revision=revision, variables=variables, aliases=aliases, dtypes=dtypes, version=version
    )


# ---------------------------------------------------------------------------------------------------------
# Whisper: CTranslate2 WhisperSpec -> transformers WhisperForConditionalGeneration

# CTranslate2 ActivationType codes; Whisper uses exact GELU.
_CT2_GELU = 3
# Scalars CTranslate2 keeps for its own runtime; they carry no weights.
_WHISPER_FLAGS = {
    "activation",
    "alibi",
    "alignment_heads",
    "alignment_layer",
    "num_heads",
    "pre_norm",
    "scale_embeddings",
    "start_from_zero_embedding",
    "scale_outputs",
    "layernorm_embedding",
    "multi_query",
    "rotary_dim",
    "rotary_interleave",
    "rms_norm",
}
_LAYER = re.compile(r"^(encoder|decoder)/layer_(\d+)/")


def _weight(m: CT2Model, prefix: str) -> np.ndarray:
    """`prefix/weight` as float32, dequantized when stored as int8/int16 with a `weight_scale`."""
    w = m[f"{prefix}/weight"]
    scale_name = f"{prefix}/weight_scale"
    if w.dtype.kind in "iu":
        if scale_name not in m:
            raise CT2FormatError(f"{prefix}/weight is {w.dtype} without a weight_scale")
        scale = np.asarray(m[scale_name], dtype=np.float32)
        scale = scale.reshape(-1, *([1] * (w.ndim - 1))) if scale.ndim else scale
        return w.astype(np.float32) / scale
    return np.asarray(w, dtype=np.float32)


def _f32(a: np.ndarray) -> np.ndarray:
    """A writable float32 copy (arrays read from the file are read-only views of its bytes)."""
    return np.array(a, dtype=np.float32, order="C")


def whisper_config(m: CT2Model) -> dict[str, Any]:
    """The `WhisperConfig` hyper-parameters of a CTranslate2 Whisper model, read from its tensor shapes
    and scalars (special-token ids are not in the model: they come from the tokenizer)."""
    if m.spec != "WhisperSpec":
        raise CT2FormatError(f"not a Whisper model: spec {m.spec!r}")
    layers: dict[str, set[int]] = {"encoder": set(), "decoder": set()}
    for name in m.variables:
        mo = _LAYER.match(name)
        if mo:
            layers[mo.group(1)].add(int(mo.group(2)))
    for side, idx in layers.items():
        if idx != set(range(len(idx))):
            raise CT2FormatError(f"{side} layers are not numbered 0..n-1: {sorted(idx)}")
    emb = m["decoder/embeddings/weight"]
    d_model = int(emb.shape[1])
    for side in ("encoder", "decoder"):
        act = m.scalar(f"{side}/activation", _CT2_GELU)
        if act != _CT2_GELU:
            raise CT2FormatError(f"{side}/activation is {act}, expected GELU ({_CT2_GELU})")
        if m.scalar(f"{side}/scale_embeddings", 0):
            raise CT2FormatError(f"{side}/scale_embeddings is set; Whisper does not scale embeddings")
        if not m.scalar(f"{side}/pre_norm", 1):
            raise CT2FormatError(f"{side}/pre_norm is off; Whisper is pre-norm")
    return {
        "vocab_size": int(emb.shape[0]),
        "num_mel_bins": int(m["encoder/conv1/weight"].shape[1]),
        "d_model": d_model,
        "encoder_layers": len(layers["encoder"]),
        "decoder_layers": len(layers["decoder"]),
        "encoder_attention_heads": int(m.scalar("encoder/num_heads", d_model // 64)),
        "decoder_attention_heads": int(m.scalar("decoder/num_heads", d_model // 64)),
        "encoder_ffn_dim": int(m["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(m["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(m["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(m["decoder/position_encodings/encodings"].shape[0]),
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
    }


def whisper_state_dict(m: CT2Model) -> dict[str, np.ndarray]:
    """transformers `WhisperForConditionalGeneration` state dict (float32 numpy arrays) of a CTranslate2
    Whisper model. Every weight variable must be used: an unmapped one raises `CT2FormatError`."""
    cfg = whisper_config(m)
    d = cfg["d_model"]
    used: set[str] = set()
    out: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        used.add(m.resolve(name))
        return m[name]

    def linear(src: str, dst: str, bias: bool = True) -> None:
        used.add(m.resolve(f"{src}/weight"))
        if f"{src}/weight_scale" in m:
            used.add(m.resolve(f"{src}/weight_scale"))
        out[f"{dst}.weight"] = _f32(_weight(m, src))
        if bias:
            out[f"{dst}.bias"] = _f32(get(f"{src}/bias"))

    def norm(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = _f32(get(f"{src}/gamma"))
        out[f"{dst}.bias"] = _f32(get(f"{src}/beta"))

    def fused(src: str, dsts: list[str]) -> None:
        """Split a fused projection into len(dsts) equal parts; the k part (named *k_proj) has no bias."""
        used.add(m.resolve(f"{src}/weight"))
        if f"{src}/weight_scale" in m:
            used.add(m.resolve(f"{src}/weight_scale"))
        w = _weight(m, src)
        b = get(f"{src}/bias")
        if w.shape != (len(dsts) * d, d) or b.shape != (len(dsts) * d,):
            raise CT2FormatError(f"{src}: shape {w.shape}/{b.shape}, expected ({len(dsts) * d}, {d})")
        for i, dst in enumerate(dsts):
            out[f"{dst}.weight"] = _f32(w[i * d : (i + 1) * d])
            if not dst.endswith("k_proj"):
                out[f"{dst}.bias"] = _f32(b[i * d : (i + 1) * d])

    for side in ("encoder", "decoder"):
        hf = f"model.{side}"
        out[f"{hf}.embed_positions.weight"] = _f32(get(f"{side}/position_encodings/encodings"))
        norm(f"{side}/layer_norm", f"{hf}.layer_norm")
        n_layers = cfg[f"{side}_layers"]
        for i in range(n_layers):
            src, dst = f"{side}/layer_{i}", f"{hf}.layers.{i}"
            sa = f"{dst}.self_attn"
            fused(f"{src}/self_attention/linear_0", [f"{sa}.q_proj", f"{sa}.k_proj", f"{sa}.v_proj"])
            linear(f"{src}/self_attention/linear_1", f"{sa}.out_proj")
            norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
            if side == "decoder":
                ca = f"{dst}.encoder_attn"
                linear(f"{src}/attention/linear_0", f"{ca}.q_proj")
                fused(f"{src}/attention/linear_1", [f"{ca}.k_proj", f"{ca}.v_proj"])
                linear(f"{src}/attention/linear_2", f"{ca}.out_proj")
                norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
            linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
            linear(f"{src}/ffn/linear_1", f"{dst}.fc2")
            norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
    linear("encoder/conv1", "model.encoder.conv1")
    linear("encoder/conv2", "model.encoder.conv2")
    out["model.decoder.embed_tokens.weight"] = _f32(get("decoder/embeddings/weight"))
    if "decoder/projection/weight" in m:
        proj = _f32(get("decoder/projection/weight"))
        if "decoder/projection/bias" in m:
            raise CT2FormatError("decoder/projection has a bias; transformers' Whisper has none")
    else:
        proj = out["model.decoder.embed_tokens.weight"]
    out["proj_out.weight"] = proj

    unused = [
        n
        for n in m.variables
        if n not in used and n.split("/")[-1] not in _WHISPER_FLAGS and m.variables[n].ndim > 0
    ]
    if unused:
        raise CT2FormatError(f"variables not mapped to transformers names: {sorted(unused)[:10]}")
    return out


def read_whisper(
    path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(WhisperConfig kwargs, transformers state dict) of a CTranslate2 Whisper model.bin (or its parts)."""
    m = read_ct2_model(path)
    return whisper_config(m), whisper_state_dict(m)
