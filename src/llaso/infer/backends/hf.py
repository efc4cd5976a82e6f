"""The transformers backend: any audio LLM that transformers' auto classes load, on LLaSO eval files.

A model folder qualifies when its `model_type` is one of `supported_model_types()`: the types that
`AutoModelForMultimodalLM` maps (plus the decoder-only audio LMs that transformers files under
`AutoModelForSeq2SeqLM`, such as audioflamingo3) whose processor has a feature extractor or an audio
processor. Anything else (a plain llama, a vision-only model) is refused with `UnsupportedModel` before any
weight is read.

A sample becomes one user message whose content keeps its human turn's text and audio parts in their
order (`<audio>` first, last, several, text between), rendered by the model's own chat template; no
system prompt unless one is given. The audio is decoded and resampled by llaso's loader (the paths
resolved against `audio_root`) at the feature extractor's rate and handed to the processor as arrays, so
every backend reads the same samples and refuses the same files. Decoding is greedy, batched with left
padding; only the new tokens are decoded.

A sample that cannot be prepared (a missing or unreadable audio, a placeholder count that does not match
its audio paths, a prompt the processor refuses) is that sample's `ItemFailure`; the rest of its batch
still runs. A batch whose generation fails is retried one sample at a time.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import torch

from llaso.corpus.audio import AudioError, SignalCheck, load_audio
from llaso.corpus.paths import AudioPathError, resolve_audio_path
from llaso.infer.backends.base import ItemFailure, Result, folder_identity, sha
from llaso.schema import AUDIO_PLACEHOLDER, Sample

log = logging.getLogger(__name__)

NAME = "transformers"
GENERATION = {"do_sample": False, "num_beams": 1}  # greedy: the only decoding this backend does
# the files of a model folder whose names, sizes and modification times tell one model from another
# (config.json is hashed by content on its own)
# what preparing or generating one sample may raise: that sample's failure, never the end of the run
# (a processor refuses with ValueError/TypeError, a template with jinja's TemplateError, a RuntimeError)
_ITEM_ERRORS = (ValueError, TypeError, OSError, RuntimeError, IndexError, KeyError)
_MAX_PROBLEM = 400  # characters of a message kept in an ItemFailure (a processor may print a whole prompt)


class UnsupportedModel(ValueError):
    """A folder this backend cannot run: not a model folder, or a model type that takes no audio."""


# ---- which models ------------------------------------------------------------------------------------
def _takes_audio(processor_class_name: str, model_type: str) -> bool:
    """Whether the processor class has a feature extractor or an audio processor among its parts."""
    import transformers
    from transformers.models.auto.feature_extraction_auto import FEATURE_EXTRACTOR_MAPPING_NAMES

    try:
        parts = getattr(transformers, processor_class_name).get_attributes()
    except ImportError:  # an optional dependency is missing (torchvision, mistral-common): ask the mapping
        return model_type in FEATURE_EXTRACTOR_MAPPING_NAMES
    return any("feature_extractor" in p or "audio_processor" in p for p in parts)


def _decoder_only(model_type: str) -> bool:
    from transformers import CONFIG_MAPPING

    try:
        return not CONFIG_MAPPING[model_type]().is_encoder_decoder
    except (KeyError, ValueError, TypeError, ImportError):
        return False


@functools.cache
def supported_model_types() -> tuple[str, ...]:
    """The model types whose folders this backend loads, computed from the installed transformers."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    )
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    multimodal = set(MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES)
    # transformers files a few decoder-only audio LMs (audioflamingo3) under seq2seq only; a real
    # encoder-decoder there (seamless_m4t's text-to-text model) takes no audio
    candidates = multimodal | {t for t in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES if t not in multimodal}
    found = []
    for model_type in sorted(candidates):
        proc = PROCESSOR_MAPPING_NAMES.get(model_type)
        if not proc or not _takes_audio(proc, model_type):
            continue
        if model_type in multimodal or _decoder_only(model_type):
            found.append(model_type)
    return tuple(found)


def _auto_model_class(model_type: str) -> Any:
    from transformers import AutoModelForMultimodalLM, AutoModelForSeq2SeqLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES

    return (
        AutoModelForMultimodalLM
        if model_type in MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES
        else AutoModelForSeq2SeqLM
    )


def read_model_type(path: Path) -> str:
    """The `model_type` of a model folder's config.json; `UnsupportedModel` for anything that is not a
    supported audio LLM folder."""
    cfg = path / "config.json"
    if not cfg.is_file():
        raise UnsupportedModel(f"{path} is not a model folder (no config.json)")
    try:
        model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise UnsupportedModel(f"{cfg}: not a readable model config ({e})") from None
    supported = supported_model_types()
    if model_type not in supported:
        raise UnsupportedModel(
            f"{path} holds a {model_type!r} model, which takes no audio in chat messages; the transformers "
            f"backend runs these model types (transformers' multimodal LMs with an audio processor): "
            f"{', '.join(supported)}"
        )
    return str(model_type)


# ---- samples as chat messages ------------------------------------------------------------------------
def sample_content(sample: Sample) -> list[dict[str, str]]:
    """The human turn as chat content parts: its text pieces and one `{"type": "audio"}` per `<audio>`,
    in the order the turn has them (empty text between two audios is dropped; the template decides the
    separators)."""
    pieces = sample.human_text.split(AUDIO_PLACEHOLDER)
    content: list[dict[str, str]] = []
    for i, piece in enumerate(pieces):
        if piece.strip():
            content.append({"type": "text", "text": piece.strip()})
        if i < len(pieces) - 1:
            content.append({"type": "audio"})
    return content


def sample_messages(sample: Sample, system_prompt: str | None = None) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    msgs.append({"role": "user", "content": sample_content(sample)})
    return msgs


def _short(text: str) -> str:
    if len(text) <= _MAX_PROBLEM:
        return text
    half = _MAX_PROBLEM // 2
    return f"{text[:half]} … ({len(text) - 2 * half} characters) … {text[-half:]}"


def _failure(e: BaseException, what: str = "") -> ItemFailure:
    return ItemFailure(_short(f"{what}{type(e).__name__}: {e}"))


@dataclass
class Prepared:
    """One sample ready for the processor: its rendered prompt and its audio arrays, in placeholder order."""

    text: str
    audios: list[np.ndarray]


# ---- how a family's processor takes text and audio ---------------------------------------------------
class ProcessorInputs:
    """The common way: the processor's chat template renders the messages (one audio marker per audio),
    and `processor(text=..., audio=...)` expands each marker to the audio's token count and extracts the
    features."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer

    @property
    def template(self) -> str:
        t = getattr(self.processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None)
        if isinstance(t, dict):  # several named templates: all of them identify the rendering
            return json.dumps(t, sort_keys=True)
        return str(t or "")

    def render(self, messages: list[dict[str, Any]]) -> str:
        return str(self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    def _text_kwargs(self, texts: Sequence[str]) -> dict[str, Any]:
        # a template that writes the BOS token itself must not get a second one from the tokenizer
        bos = self.tokenizer.bos_token
        return {"add_special_tokens": not (bos and all(t.startswith(bos) for t in texts))}

    def batch(self, items: Sequence[Prepared], sampling_rate: int) -> dict[str, Any]:
        texts = [p.text for p in items]
        audios = [a for p in items for a in p.audios]
        # per modality: a flat `padding=True` would reach the feature extractor too, and one that pads to
        # the longest audio instead of whole windows gives features the encoder refuses
        kwargs: dict[str, Any] = {"text_kwargs": {"padding": True, **self._text_kwargs(texts)}}
        if audios:
            kwargs.update(audio=audios, audio_kwargs={"sampling_rate": sampling_rate})
        return dict(self.processor(text=texts, return_tensors="pt", **kwargs))


class ExpandedAudioInputs(ProcessorInputs):
    """Voxtral with a `tokenizers` tokenizer: its processor expands audio only through mistral-common's
    chat encoding, so here the tokenizer's chat template writes one audio token per audio, and that token
    becomes as many as the encoder + projector give for the audio's chunks (the feature extractor's
    window, 30 s for Voxtral: 375 tokens each)."""

    def __init__(self, processor: Any, config: Any) -> None:
        super().__init__(processor)
        fe = processor.feature_extractor
        audio_cfg = config.audio_config
        self.chunk_samples, self.chunk_frames = int(fe.n_samples), int(fe.nb_max_frames)
        if self.chunk_frames != 2 * audio_cfg.max_source_positions:
            raise UnsupportedModel(
                f"the feature extractor's {self.chunk_frames} frames per chunk do not fit the audio encoder "
                f"({2 * audio_cfg.max_source_positions} frames)"
            )
        positions = audio_cfg.max_source_positions * audio_cfg.hidden_size
        self.tokens_per_chunk = positions // audio_cfg.intermediate_size
        self.audio_token = self.tokenizer.convert_ids_to_tokens(int(config.audio_token_id))

    def render(self, messages: list[dict[str, Any]]) -> str:
        return str(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    def _expand(self, text: str, audios: Sequence[np.ndarray]) -> str:
        parts = text.split(self.audio_token)
        if len(parts) != len(audios) + 1:
            raise ValueError(
                f"the prompt has {len(parts) - 1} {self.audio_token} tokens for {len(audios)} audios"
            )
        out = [parts[0]]
        for audio, rest in zip(audios, parts[1:], strict=True):
            chunks = -(-len(audio) // self.chunk_samples)
            out += [self.audio_token * (chunks * self.tokens_per_chunk), rest]
        return "".join(out)

    def _features(self, audio: np.ndarray, sampling_rate: int) -> torch.Tensor:
        """[chunks, mel bins, frames per chunk]: the audio zero-padded to whole chunks, cut into them."""
        chunks = -(-len(audio) // self.chunk_samples)
        padded = np.zeros(chunks * self.chunk_samples, dtype=np.float32)
        padded[: len(audio)] = audio
        fe = self.processor.feature_extractor
        feats = fe(padded, sampling_rate=sampling_rate, padding=False, truncation=False, return_tensors="pt")
        mel = feats["input_features"][0]  # [mel bins, chunks * frames per chunk]
        return mel.reshape(mel.shape[0], chunks, self.chunk_frames).transpose(0, 1)

    def batch(self, items: Sequence[Prepared], sampling_rate: int) -> dict[str, Any]:
        texts = [self._expand(p.text, p.audios) for p in items]
        out = dict(self.tokenizer(texts, padding=True, return_tensors="pt", **self._text_kwargs(texts)))
        audios = [a for p in items for a in p.audios]
        if audios:
            out["input_features"] = torch.cat([self._features(a, sampling_rate) for a in audios])
        return out


def _inputs_for(model_type: str, processor: Any, config: Any) -> ProcessorInputs:
    if model_type == "voxtral":
        if type(processor.tokenizer).__name__ == "MistralCommonBackend":
            raise UnsupportedModel(
                "a voxtral folder read with mistral-common's tokenizer (tekken.json) is not supported yet: the "
                "transformers backend renders prompts with a chat template (tokenizer.json + chat template)"
            )
        return ExpandedAudioInputs(processor, config)
    return ProcessorInputs(processor)


# ---- the backend -------------------------------------------------------------------------------------
def _dtype(value: str | torch.dtype) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    aliases = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}
    dtype = getattr(torch, aliases.get(value, value), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {value!r}; expected float32, bfloat16 or float16")
    return dtype


def _audio_sampling_rate(processor: Any, path: Path) -> int:
    """The rate the processor's feature extractor (or audio processor) expects; `UnsupportedModel` when
    the processor has neither."""
    part = getattr(processor, "audio_processor", None) or getattr(processor, "feature_extractor", None)
    rate = getattr(part, "sampling_rate", None)
    if not isinstance(rate, int) or rate <= 0:
        raise UnsupportedModel(
            f"{path}: the processor ({type(processor).__name__}) has no audio feature extractor"
        )
    return rate


def _check_processor(processor: Any, model_type: str, config: Any, path: Path) -> tuple[int, ProcessorInputs]:
    """The audio sampling rate and the inputs builder of a processor that can run LLaSO samples;
    `UnsupportedModel` otherwise."""
    rate = _audio_sampling_rate(processor, path)
    try:
        inputs = _inputs_for(model_type, processor, config)
    except UnsupportedModel as e:
        raise UnsupportedModel(f"{path}: {e}") from None
    if not inputs.template:
        raise UnsupportedModel(f"{path}: the processor has no chat template to render a sample with")
    return rate, inputs


class TransformersBackend:
    """A transformers audio LLM as a `Backend` (see the module docstring)."""

    name = NAME

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        path: str | os.PathLike[str],
        model_type: str,
        audio_root: str | os.PathLike[str] | None = None,
        batch_size: int = 8,
        system_prompt: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model, self.processor = model, processor
        self.path, self.model_type = Path(path), model_type
        self.audio_root, self.batch_size, self.system_prompt = audio_root, batch_size, system_prompt
        self.sampling_rate, self.inputs = _check_processor(processor, model_type, model.config, self.path)
        tok = processor.tokenizer
        tok.padding_side = "left"  # greedy output must not depend on a row's padding
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self._identity = folder_identity(self.path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device | None = None,
        audio_root: str | os.PathLike[str] | None = None,
        batch_size: int = 8,
        system_prompt: str | None = None,
    ) -> TransformersBackend:
        """The model and processor of a local folder; `UnsupportedModel` (before any weight is read) for a
        folder whose model type takes no audio."""
        from transformers import AutoConfig, AutoProcessor

        folder = Path(path)
        model_type = read_model_type(folder)
        processor = AutoProcessor.from_pretrained(folder)
        # refused here, before the weights are read, as far as the processor and the config tell
        _check_processor(processor, model_type, AutoConfig.from_pretrained(folder), folder)
        model = _auto_model_class(model_type).from_pretrained(folder, dtype=_dtype(dtype))
        if device is not None:
            model.to(device)
        return cls(
            model.eval(), processor, path=folder, model_type=model_type, audio_root=audio_root,
            batch_size=batch_size, system_prompt=system_prompt,
        )  # fmt: skip

    def settings(self) -> dict[str, Any]:
        template = self.inputs.template
        return {
            "backend": NAME,
            "model": str(self.path.resolve()),
            "model_type": self.model_type,
            **self._identity,
            "dtype": str(self.dtype).removeprefix("torch."),
            "prompt": {
                "template": "chat_template",  # the model's own, as `template_hash` pins it
                "template_hash": sha(template.encode(), 16),
                "system_prompt": self.system_prompt,
            },
            "generation": dict(GENERATION),
        }

    # ---- one sample ------------------------------------------------------------------------------------
    def render(self, sample: Sample) -> str:
        """The sample's prompt as the chat template renders it (one audio marker per audio)."""
        return self.inputs.render(sample_messages(sample, self.system_prompt))

    def _load_audio(self, sample: Sample) -> list[np.ndarray]:
        out = []
        for i, path in enumerate(sample.voice):
            try:
                audio = load_audio(resolve_audio_path(path, self.audio_root), sr=self.sampling_rate)
            except (AudioError, AudioPathError) as e:
                raise ValueError(f"audio {i} ({path}): {e}") from None
            # the check the llaso processor and `llaso data validate` make, so that every backend refuses
            # the same samples
            problem = SignalCheck().add(audio).problem()
            if problem is not None:
                raise ValueError(f"audio {i} ({path}) is {problem[0].value}: {problem[1]}")
            out.append(audio)
        return out

    def prepare(self, sample: Sample) -> Prepared | ItemFailure:
        """The sample's prompt and audio, or why it has none."""
        try:
            n_ph = sample.human_text.count(AUDIO_PLACEHOLDER)
            if n_ph != len(sample.voice):
                return ItemFailure(
                    f"{n_ph} {AUDIO_PLACEHOLDER} placeholder(s) but {len(sample.voice)} audio path(s)"
                )
            audios = self._load_audio(sample)
            return Prepared(self.render(sample), audios)
        except ValueError as e:  # SampleError (no human turn), a bad audio
            return ItemFailure(_short(str(e)))
        except (jinja2.TemplateError, TypeError, KeyError) as e:  # `raise_exception` in a template
            return _failure(e, "the chat template refused the sample: ")

    # ---- a batch ---------------------------------------------------------------------------------------
    def _batch(self, items: Sequence[Prepared]) -> dict[str, Any]:
        batch = self.inputs.batch(items, self.sampling_rate)
        return {
            k: v.to(self.device, self.dtype) if torch.is_floating_point(v) else v.to(self.device)
            for k, v in batch.items()
            if isinstance(v, torch.Tensor)
        }

    def _generate(self, batch: dict[str, Any], max_new_tokens: int) -> list[str]:
        tok = self.processor.tokenizer
        with torch.inference_mode():
            out = self.model.generate(
                **batch, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, **GENERATION
            )
        if isinstance(out, tuple):  # a model that also speaks (qwen2.5-omni) returns (text ids, audio)
            out = out[0]
        if not getattr(self.model.config, "is_encoder_decoder", False):
            out = out[:, batch["input_ids"].shape[1] :]  # the prompt comes back first: keep the new tokens
        return [t.strip() for t in tok.batch_decode(out, skip_special_tokens=True)]

    def _run(self, items: Sequence[Prepared], max_new_tokens: int) -> list[Result]:
        """Answers for prepared samples, as one batch where the processor and the model take them so."""
        try:
            batch = self._batch(items)
        except _ITEM_ERRORS as e:
            return [_failure(e)] if len(items) == 1 else self._without_refused(items, max_new_tokens)
        try:
            return list(self._generate(batch, max_new_tokens))
        except _ITEM_ERRORS as e:  # a prompt too long for the model, a count the model disagrees with
            if len(items) == 1:
                return [_failure(e)]
            log.debug("a batch of %d failed in generate (%s); running its samples one by one", len(items), e)
            return [r for p in items for r in self._run([p], max_new_tokens)]

    def _refusal(self, item: Prepared) -> ItemFailure | None:
        try:
            self._batch([item])
        except _ITEM_ERRORS as e:
            return _failure(e)
        return None

    def _without_refused(self, items: Sequence[Prepared], max_new_tokens: int) -> list[Result]:
        """The processor refused the batch: the samples it refuses alone get failures (named by its
        message), and the others still run together."""
        refused = [self._refusal(p) for p in items]
        good = [p for p, r in zip(items, refused, strict=True) if r is None]
        if len(good) == len(items):  # each alone is taken, together they are not: one at a time
            return [r for p in items for r in self._run([p], max_new_tokens)]
        answers = iter(self._run(good, max_new_tokens) if good else [])
        return [r if r is not None else next(answers) for r in refused]

    def generate(self, samples: Sequence[Sample], max_new_tokens: int) -> list[Result]:
        """One result per sample, in order: the answer, or the `ItemFailure` that says why there is none."""
        results: list[Result] = []
        for start in range(0, len(samples), self.batch_size):
            prepared = [self.prepare(s) for s in samples[start : start + self.batch_size]]
            good = [p for p in prepared if isinstance(p, Prepared)]
            answers = iter(self._run(good, max_new_tokens) if good else [])
            results += [next(answers) if isinstance(p, Prepared) else p for p in prepared]
        return results
