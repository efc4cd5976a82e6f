"""`LlasoProcessor`: `Sample`s → model inputs (Whisper features + token ids with expanded audio placeholders).

The processor owns everything textual and every count:

1. the conversation is rendered with the LLaSO template (the original's `conv_llama32_audio_v1_mmtag`): the Llama-3 format with the
   LLaSO system prompt, byte for byte (`prompt_format="llama3"`), or the tokenizer's own chat template
   (`"chat_template"`, e.g. SmolLM2's ChatML); each `<audio>` is wrapped as
   `<Audio><audio_start><audio><audio_end></Audio>` with the two newline rules;
2. each audio is cut into encoder windows (30 s for Whisper; at most `max_audio_windows`, 20 as the
   original, without its 480 001-sample off-by-one) and turned into log-mel features;
3. each `<audio>` becomes exactly as many placeholder tokens as the encoder + projector will produce for
   its windows (`audio_token_mode`, `stack_factor`); the model only scatters features into them;
4. labels supervise only the assistant answers and their end-of-turn token.

Bad input (placeholder count ≠ number of audios, a missing, empty or silent audio, a sequence longer than
the model's limit) raises `LlasoInputError` (a `ValueError`) naming the sample, before any model compute.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoProcessor, PreTrainedTokenizerFast, WhisperFeatureExtractor
from transformers.processing_utils import ProcessorMixin

from llaso.corpus.audio import SILENCE_DB, AudioError, SignalCheck, load_audio
from llaso.corpus.paths import AudioPathError, resolve_audio_path
from llaso.model.config import (
    LLASO_SYSTEM_PROMPT,
    MEL_HOP_LENGTH,
    PROMPT_FORMATS,
    SAMPLE_RATE,
    LlasoConfig,
    audio_positions,
)
from llaso.schema import AUDIO_PLACEHOLDER, Sample

log = logging.getLogger(__name__)

_AUDIO_MARK = "\ue000"  # private-use character: where an audio goes in the rendered text
IGNORE_INDEX = -100


class LlasoInputError(ValueError):
    """A sample the model cannot take; the message starts with the sample's id."""

    def __init__(self, sample_id: str, problem: str) -> None:
        self.sample_id, self.problem = sample_id, problem
        super().__init__(f"sample {sample_id}: {problem}")


@dataclass
class _Prepared:
    """One sample after audio loading and counting, before padding."""

    input_ids: list[int]
    labels: list[int]
    windows: list[np.ndarray]
    audio_positions: list[int]


class LlasoProcessor(ProcessorMixin):
    """Whisper feature extractor + tokenizer + the LLaSO template and placeholder expansion.

    Build it with `LlasoProcessor.from_model_config(config, tokenizer)` (settings copied from the model
    config, feature extractor derived from the encoder config), or load it with
    `LlasoProcessor.from_pretrained(folder)` / `AutoProcessor.from_pretrained(folder)`.
    """

    def __init__(
        self,
        feature_extractor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        audio_token: str = "<|reserved_special_token_0|>",
        audio_token_mode: str = "llaso-base",
        stack_factor: int = 1,
        max_audio_windows: int = 20,
        system_prompt: str | None = LLASO_SYSTEM_PROMPT,
        prompt_format: str = "llama3",
        eot_token: str | None = "<|eot_id|>",
        use_audio_start_end: bool = True,
        audio_tag_open: str = "<Audio>",
        audio_tag_close: str = "</Audio>",
        audio_start_token: str = "<audio_start>",
        audio_end_token: str = "<audio_end>",
        max_length: int | None = None,
        silence_db: float = SILENCE_DB,
    ) -> None:
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
        self.audio_token = audio_token
        self.audio_token_mode = audio_token_mode
        self.stack_factor = int(stack_factor)
        self.max_audio_windows = int(max_audio_windows)
        self.system_prompt = system_prompt
        self.prompt_format = prompt_format
        self.eot_token = eot_token
        self.use_audio_start_end = use_audio_start_end
        self.audio_tag_open = audio_tag_open
        self.audio_tag_close = audio_tag_close
        self.audio_start_token = audio_start_token
        self.audio_end_token = audio_end_token
        self.max_length = max_length
        self.silence_db = silence_db
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template)
        if tokenizer is not None:
            self._check_tokenizer()

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_model_config(cls, config: LlasoConfig, tokenizer: Any) -> LlasoProcessor:
        """A processor that matches `config`: same tokens, counts, template; features for its encoder."""
        audio_cfg = config.audio_config
        chunk_s = config.window_samples / SAMPLE_RATE
        fe = WhisperFeatureExtractor(
            feature_size=int(audio_cfg.num_mel_bins),  # type: ignore[union-attr]
            sampling_rate=SAMPLE_RATE,
            hop_length=MEL_HOP_LENGTH,
            chunk_length=int(chunk_s) if float(chunk_s).is_integer() else chunk_s,
            return_attention_mask=True,
        )
        if config.audio_token is None:
            raise ValueError(
                "config.audio_token is not set; build the model with from_pretrained_parts first"
            )
        return cls(
            fe,
            tokenizer,
            audio_token=config.audio_token,
            audio_token_mode=config.audio_token_mode,
            stack_factor=config.stack_factor,
            max_audio_windows=config.max_audio_windows,
            system_prompt=config.system_prompt,
            prompt_format=config.prompt_format,
            eot_token=config.eot_token,
            use_audio_start_end=config.use_audio_start_end,
            audio_tag_open=config.audio_tag_open,
            audio_tag_close=config.audio_tag_close,
            audio_start_token=config.audio_start_token,
            audio_end_token=config.audio_end_token,
            max_length=config.max_sequence_length(),
        )

    def _check_tokenizer(self) -> None:
        vocab = self.tokenizer.get_vocab()
        needed = [self.audio_token]
        if self.use_audio_start_end:
            needed += [
                self.audio_tag_open,
                self.audio_tag_close,
                self.audio_start_token,
                self.audio_end_token,
            ]
        missing = [t for t in needed if t not in vocab]
        if missing:
            raise ValueError(
                f"the tokenizer lacks the LLaSO tokens {missing}; add them with add_llaso_tokens()"
            )
        if self.prompt_format == "chat_template" and not getattr(self.tokenizer, "chat_template", None):
            raise ValueError("prompt_format='chat_template' but the tokenizer has no chat template")

    # ---- derived sizes ---------------------------------------------------------------------------
    @property
    def audio_token_id(self) -> int:
        return int(self.tokenizer.convert_tokens_to_ids(self.audio_token))

    @property
    def window_samples(self) -> int:
        return int(self.feature_extractor.n_samples)

    @property
    def window_mel_frames(self) -> int:
        return int(self.feature_extractor.nb_max_frames)

    def positions_for_samples(self, n_samples: int) -> int:
        """LLM positions an audio of `n_samples` (16 kHz) yields: summed over its windows (after the cap)."""
        return sum(self._window_positions(len(w)) for w in self._split(np.zeros(n_samples, np.float32)))

    def _window_positions(self, n_samples: int) -> int:
        mel = -(-n_samples // MEL_HOP_LENGTH)  # what the feature extractor's attention mask counts
        return audio_positions(
            mel,
            window_frames=self.window_mel_frames,
            mode=self.audio_token_mode,
            stack_factor=self.stack_factor,
        )

    # ---- rendering -------------------------------------------------------------------------------
    def wrap_audio(self, user_text: str, marker: str = AUDIO_PLACEHOLDER) -> str:
        """Wrap each `<audio>` of a user message (already stripped) with the tags and newline rules.

        Text before the first `<audio>` → `\\n<Audio><audio_start><audio><audio_end></Audio>\\n\\n`;
        none (the audio is the instruction) → `<Audio><audio_start><audio><audio_end></Audio>\\n`.
        """
        if AUDIO_PLACEHOLDER not in user_text:
            return user_text
        inner = (
            f"{self.audio_start_token}{marker}{self.audio_end_token}" if self.use_audio_start_end else marker
        )
        tagged = f"{self.audio_tag_open}{inner}{self.audio_tag_close}"
        before = user_text.split(AUDIO_PLACEHOLDER, 1)[0]
        wrapped = f"\n{tagged}\n\n" if before.strip() else f"{tagged}\n"
        return user_text.replace(AUDIO_PLACEHOLDER, wrapped)

    def _messages(self, sample: Sample, marker: str, add_generation_prompt: bool) -> list[tuple[str, str]]:
        turns = list(sample.conversations)
        while turns and not turns[0].is_human:  # the original drops a leading non-human turn
            turns.pop(0)
        msgs = []
        for t in turns:
            if t.is_human:
                msgs.append(("user", self.wrap_audio(t.value.strip(), marker)))
            elif t.is_assistant:
                msgs.append(("assistant", t.value.strip()))
        if add_generation_prompt:
            while msgs and msgs[-1][0] == "assistant":
                msgs.pop()
        return msgs

    def _render(self, msgs: Sequence[tuple[str, str]], add_generation_prompt: bool) -> str:
        if self.prompt_format == "llama3":
            out = []
            if self.system_prompt:
                out.append(f"<|start_header_id|>system<|end_header_id|>\n\n{self.system_prompt}<|eot_id|>")
            out += [f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>" for role, text in msgs]
            if add_generation_prompt:
                out.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
            return "".join(out)
        chat = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        chat += [{"role": role, "content": text} for role, text in msgs]
        return str(
            self.tokenizer.apply_chat_template(
                chat, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        )

    def render_prompt(self, sample: Sample, add_generation_prompt: bool = False) -> str:
        """The conversation as text, `<audio>` kept as one placeholder (BOS not included: it is a token)."""
        return self._render(
            self._messages(sample, AUDIO_PLACEHOLDER, add_generation_prompt), add_generation_prompt
        )

    def _segments(self, sample: Sample, add_generation_prompt: bool) -> list[tuple[str, bool]]:
        """The rendered text as (piece, supervised) pairs: answers + their end-of-turn token supervised."""
        msgs = self._messages(sample, _AUDIO_MARK, add_generation_prompt)
        segs: list[tuple[str, bool]] = []
        done = ""
        for k, (role, _) in enumerate(msgs):
            if role != "assistant":
                continue
            prompt = self._render(msgs[:k], True)
            full = self._render(msgs[: k + 1], False)
            if not (prompt.startswith(done) and full.startswith(prompt)):
                raise ValueError("the chat template does not render conversations as growing prefixes")
            answer = full[len(prompt) :]
            cut = (
                answer.find(self.eot_token) + len(self.eot_token)
                if self.eot_token and self.eot_token in answer
                else len(answer)
            )
            segs += [(prompt[len(done) :], False), (answer[:cut], True), (answer[cut:], False)]
            done = full
        final = self._render(msgs, add_generation_prompt) if add_generation_prompt or not segs else done
        segs.append((final[len(done) :], False))
        return [(s, sup) for s, sup in segs if s]

    # ---- audio -----------------------------------------------------------------------------------
    def _split(self, audio: np.ndarray, sample_id: str = "?", index: int = 0) -> list[np.ndarray]:
        w = self.window_samples
        windows = [audio[i : i + w] for i in range(0, len(audio), w)]
        if len(windows) > self.max_audio_windows:
            warnings.warn(
                f"sample {sample_id}: audio {index} is {len(audio) / SAMPLE_RATE:.1f} s, longer than "
                f"{self.max_audio_windows} windows of {w / SAMPLE_RATE:g} s; the rest is dropped",
                stacklevel=3,
            )
            windows = windows[: self.max_audio_windows]
        return windows

    def _load(self, sample: Sample, sid: str, audio_root: str | os.PathLike[str] | None) -> list[np.ndarray]:
        out = []
        for i, path in enumerate(sample.audio_paths):
            try:
                out.append(load_audio(resolve_audio_path(path, audio_root), sr=SAMPLE_RATE))
            except (AudioError, AudioPathError) as e:
                raise LlasoInputError(sid, f"audio {i} ({path}): {e}") from None
        return out

    def _check_audio(self, audio: np.ndarray, sid: str, i: int) -> np.ndarray:
        a = np.asarray(audio, dtype=np.float32)
        if a.ndim != 1:
            raise LlasoInputError(sid, f"audio {i} must be mono 1-D, got shape {a.shape}")
        # the check `llaso data validate` and `stats` make of a file's 16 kHz mono mix, so they agree
        problem = SignalCheck().add(a).problem(self.silence_db)
        if problem is not None:
            raise LlasoInputError(sid, f"audio {i} is {problem[0].value}: {problem[1]}")
        return a

    # ---- one sample ------------------------------------------------------------------------------
    def _prepare(
        self,
        sample: Sample,
        sid: str,
        add_generation_prompt: bool,
        audio_root: str | os.PathLike[str] | None,
        audios: Sequence[np.ndarray] | None,
    ) -> _Prepared:
        n_ph = sample.n_placeholders
        n_audio = len(audios) if audios is not None else len(sample.voice)
        if n_ph != n_audio:
            raise LlasoInputError(sid, f"{n_ph} {AUDIO_PLACEHOLDER} placeholder(s) but {n_audio} audio(s)")
        raw = list(audios) if audios is not None else self._load(sample, sid, audio_root)
        windows: list[np.ndarray] = []
        positions: list[int] = []
        for i, a in enumerate(raw):
            ws = self._split(self._check_audio(a, sid, i), sid, i)
            windows += ws
            positions.append(sum(self._window_positions(len(w)) for w in ws))
        ids, labels = self._tokenize(sample, add_generation_prompt, positions)
        if self.max_length and len(ids) > self.max_length:
            raise LlasoInputError(
                sid,
                f"{len(ids)} positions ({sum(positions)} audio + {len(ids) - sum(positions)} text) exceed the "
                f"language model's limit of {self.max_length}",
            )
        return _Prepared(ids, labels, windows, positions)

    def _tokenize(
        self, sample: Sample, add_generation_prompt: bool, positions: list[int]
    ) -> tuple[list[int], list[int]]:
        tok = self.tokenizer
        ids: list[int] = []
        labels: list[int] = []
        if self.prompt_format == "llama3" and tok.bos_token_id is not None:
            ids.append(int(tok.bos_token_id))
            labels.append(IGNORE_INDEX)
        audio_id = self.audio_token_id
        k = 0
        for text, supervised in self._segments(sample, add_generation_prompt):
            for j, part in enumerate(text.split(_AUDIO_MARK)):
                if j:
                    ids += [audio_id] * positions[k]
                    labels += [IGNORE_INDEX] * positions[k]
                    k += 1
                if part:
                    piece = tok(part, add_special_tokens=False)["input_ids"]
                    ids += piece
                    labels += piece if supervised else [IGNORE_INDEX] * len(piece)
        return ids, labels

    # ---- batches ---------------------------------------------------------------------------------
    def __call__(
        self,
        samples: Sample | Mapping[str, Any] | Iterable[Sample | Mapping[str, Any]],
        *,
        audio_root: str | os.PathLike[str] | None = None,
        audios: Sequence[Sequence[np.ndarray]] | None = None,
        add_generation_prompt: bool = False,
        padding_side: str | None = None,
        return_tensors: str = "pt",
    ) -> dict[str, Any]:
        """Same as `from_samples`; also takes record dicts."""
        if isinstance(samples, (Sample, Mapping)):
            samples = [samples]
        items = [s if isinstance(s, Sample) else Sample.from_record(s) for s in samples]
        return self.from_samples(
            items,
            audio_root=audio_root,
            audios=audios,
            add_generation_prompt=add_generation_prompt,
            padding_side=padding_side,
        )

    def from_samples(
        self,
        samples: Sequence[Sample],
        audio_root: str | os.PathLike[str] | None = None,
        add_generation_prompt: bool = False,
        *,
        audios: Sequence[Sequence[np.ndarray]] | None = None,
        padding_side: str | None = None,
    ) -> dict[str, Any]:
        """A padded batch for `model(**batch)` / `model.generate(**batch)`.

        Args:
            samples: the `Sample`s; their `voice` paths are resolved against `audio_root` and loaded, unless
                `audios` gives the waveforms (16 kHz mono float32), one list per sample.
            add_generation_prompt: drop the final answer and end with the assistant header (inference).
            padding_side: `"left"` (default for generation) or `"right"` (default for training).

        Returns a dict of tensors: `input_ids`, `attention_mask`, `labels` (training only; -100 except the
        answers and their end-of-turn token), `input_features` [windows, mel_bins, frames] (all windows of
        the batch in placeholder order; absent without audio), `input_features_mask` [windows, frames],
        and `audio_lengths` [audios] (LLM positions per audio).
        """
        if audios is not None and len(audios) != len(samples):
            raise ValueError(f"{len(audios)} audio lists for {len(samples)} samples")
        prepared = []
        for n, s in enumerate(samples):
            sid = repr(s.id) if s.id is not None else f"#{n} (no id)"
            prepared.append(
                self._prepare(
                    s, sid, add_generation_prompt, audio_root, None if audios is None else audios[n]
                )
            )
        side = padding_side or ("left" if add_generation_prompt else "right")
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
        width = max(len(p.input_ids) for p in prepared)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has no pad token")
        ids = torch.full((len(prepared), width), int(pad_id), dtype=torch.long)
        mask = torch.zeros((len(prepared), width), dtype=torch.long)
        labels = torch.full((len(prepared), width), IGNORE_INDEX, dtype=torch.long)
        for r, p in enumerate(prepared):
            n = len(p.input_ids)
            sl = slice(width - n, width) if side == "left" else slice(0, n)
            ids[r, sl] = torch.tensor(p.input_ids, dtype=torch.long)
            mask[r, sl] = 1
            labels[r, sl] = torch.tensor(p.labels, dtype=torch.long)
        batch: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if not add_generation_prompt:
            batch["labels"] = labels
        windows = [w for p in prepared for w in p.windows]
        if windows:
            feats = self.feature_extractor(
                windows,
                sampling_rate=SAMPLE_RATE,
                padding="max_length",
                max_length=self.window_samples,
                truncation=True,
                return_attention_mask=True,
                return_tensors="pt",
            )
            batch["input_features"] = feats["input_features"]
            batch["input_features_mask"] = feats["attention_mask"].long()
            batch["audio_lengths"] = torch.tensor(
                [n for p in prepared for n in p.audio_positions], dtype=torch.long
            )
        return batch

    # ---- decoding --------------------------------------------------------------------------------
    def batch_decode(self, sequences: Any, skip_special_tokens: bool = True, **kwargs: Any) -> list[str]:
        """Decode token ids (e.g. `generate()` output sliced after the prompt); audio placeholders dropped."""
        if isinstance(sequences, torch.Tensor):
            sequences = sequences.tolist()
        aid = self.audio_token_id
        cleaned = [[t for t in row if t != aid and t >= 0] for row in sequences]
        return list(self.tokenizer.batch_decode(cleaned, skip_special_tokens=skip_special_tokens, **kwargs))

    def decode(self, sequence: Any, skip_special_tokens: bool = True, **kwargs: Any) -> str:
        return self.batch_decode([sequence], skip_special_tokens=skip_special_tokens, **kwargs)[0]

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "input_features", "input_features_mask"]


# ---- a toy tokenizer for tests and benchmarks ------------------------------------------------------
_TOY_TEXT = (
    "Identify the speaker's gender. Choose from female or male. Transcribe the audio. "
    "What emotion does the speaker express? Listen to the audio and respond accordingly. "
    "The quick brown fox jumps over the lazy dog. On the morning of 6 December 1917, a ship exploded. "
    "Male Female happy sad angry neutral yes no one two three four five six seven eight nine ten. "
    "A chat between a curious user and an artificial intelligence assistant. "
)


def make_toy_tokenizer(style: str = "llama3", vocab_size: int = 400) -> Any:
    """A small byte-level BPE tokenizer trained in memory (no download), for tests and benchmarks.

    `style="llama3"` has Llama-3's special tokens (`<|begin_of_text|>`, `<|start_header_id|>`,
    `<|end_header_id|>`, `<|eot_id|>`, `<|reserved_special_token_0|>`) and no pad token, like the real one;
    `style="chatml"` has SmolLM2's `<|im_start|>`/`<|im_end|>` and its ChatML chat template.
    """
    if style == "llama3":
        specials = [
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|reserved_special_token_0|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
        ]
        names = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    elif style == "chatml":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        names = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>"}
    else:
        raise ValueError(f"unknown toy tokenizer style {style!r}")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([_TOY_TEXT] * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, **names)
    if style == "chatml":
        tok.chat_template = (
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
            "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        )
    return tok


def register_auto_processor() -> None:
    with contextlib.suppress(ValueError):  # already registered
        AutoProcessor.register(LlasoConfig, LlasoProcessor)


register_auto_processor()
