"""`LlasoForConditionalGeneration`: Whisper encoder → projector → any causal LM, transformers style.

The processor has already expanded every `<audio>` into as many placeholder tokens
(`config.audio_token_id`) as this model will produce audio positions; the model encodes the audio windows
(`input_features`, all windows of the batch in order), projects them, trims each window to its count and
scatters the result into the placeholder positions, row by row. It never parses text.

Everything else is the language model's own machinery: `labels` go to its loss, the cache and
`generate()` are transformers' own (audio is encoded once, at the prefill step). Left-padded batches
work because positions come from the attention mask, as in any transformers decoder.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    GenerationMixin,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    WhisperConfig,
)
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from llaso.model.config import (
    DEFAULT_AUDIO_TOKEN,
    LLAMA3_AUDIO_TOKEN,
    LlasoConfig,
)
from llaso.model.processing import LlasoProcessor, make_toy_tokenizer
from llaso.model.projector import AudioProjector

log = logging.getLogger(__name__)


class LlasoPreTrainedModel(PreTrainedModel):
    config_class = LlasoConfig
    base_model_prefix = "llaso"
    main_input_name = "input_ids"
    input_modalities = ["audio", "text"]  # noqa: RUF012 (transformers declares it mutable)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["WhisperEncoderLayer"]  # noqa: RUF012 (transformers declares it mutable)


class LlasoForConditionalGeneration(LlasoPreTrainedModel, GenerationMixin):
    """The LLaSO speech-language model.

    Build it from a `LlasoConfig` (random weights; `with torch.device("meta"):` for no weights at all),
    from a saved folder (`from_pretrained`, after `import llaso.model` registered the Auto classes), from
    an existing Whisper checkpoint and causal LM (`from_pretrained_parts`), or from an original LLaSO
    checkpoint (`llaso.model.convert.convert_original_checkpoint`).

    Sub-modules: `audio_tower` (a `WhisperEncoder`), `projector` (`AudioProjector`), `language_model`
    (what `AutoModelForCausalLM.from_config(config.text_config)` builds, with its own `lm_head`).
    """

    def __init__(
        self,
        config: LlasoConfig,
        audio_tower: WhisperEncoder | None = None,
        language_model: PreTrainedModel | None = None,
    ) -> None:
        super().__init__(config)
        if not isinstance(config.audio_config, WhisperConfig):
            raise TypeError(f"audio_config must be a WhisperConfig, got {type(config.audio_config).__name__}")
        assert isinstance(config.text_config, PretrainedConfig)
        self.audio_tower = audio_tower if audio_tower is not None else WhisperEncoder(config.audio_config)
        self.projector = AudioProjector(
            config.projector_type,
            int(config.audio_config.d_model),
            config.text_hidden_size,
            stack_factor=config.stack_factor,
        )
        self.language_model = (
            language_model
            if language_model is not None
            else AutoModelForCausalLM.from_config(config.text_config)
        )
        # One config object for the text model, so resizing the vocabulary updates both.
        config.text_config = self.language_model.config
        if config.freeze_encoder:
            self.audio_tower.requires_grad_(False)
        self.post_init()

    # ---- embeddings (delegated to the language model) -----------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.language_model.set_output_embeddings(new_embeddings)

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    # ---- audio ---------------------------------------------------------------------------------
    def audio_positions(
        self, input_features: torch.Tensor, input_features_mask: torch.Tensor | None
    ) -> list[int]:
        """LLM positions each window yields, from the feature mask alone (no compute)."""
        n = input_features.shape[0]
        if input_features_mask is None:
            mel = [self.config.window_mel_frames] * n
        else:
            mel = input_features_mask.sum(-1).tolist()
        return [self.config.positions_per_window(int(m)) for m in mel]

    def encode_audio(self, input_features: torch.Tensor) -> torch.Tensor:
        """Encoder frames of every window, from the configured layer: [W, frames, d_model].
        Gradients flow only when the encoder is trainable."""
        if input_features.ndim != 3:
            raise ValueError(
                f"input_features must be [windows, mel_bins, frames], got {tuple(input_features.shape)}"
            )
        trainable = any(p.requires_grad for p in self.audio_tower.parameters())
        enc_dtype = self.audio_tower.conv1.weight.dtype
        grad = torch.enable_grad() if trainable else torch.no_grad()
        with grad if torch.is_grad_enabled() else contextlib.nullcontext():
            want_hidden = self.config.audio_select_layer != -1
            out = self.audio_tower(input_features.to(enc_dtype), output_hidden_states=want_hidden)
            return out.hidden_states[self.config.audio_select_layer] if want_hidden else out.last_hidden_state

    def project_audio(self, frames: torch.Tensor, positions: list[int]) -> torch.Tensor:
        """Project encoder frames [W, T, d_model] and keep each window's first `positions[w]` positions:
        [N_positions, hidden]. `T` may be shorter than a window (frames cached trimmed)."""
        proj_dtype: torch.dtype = self.projector.net[0].weight.dtype  # type: ignore[assignment]
        projected = self.projector(frames.to(proj_dtype))  # [W, P, H]
        keep = (
            torch.arange(projected.shape[1], device=projected.device)[None, :]
            < torch.tensor(positions, device=projected.device)[:, None]
        )
        return projected[keep]

    def get_audio_features(
        self, input_features: torch.Tensor, input_features_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Projected audio of all windows, each trimmed to its count and concatenated: [N_positions, hidden]."""
        lengths = self.audio_positions(input_features, input_features_mask)
        return self.project_audio(self.encode_audio(input_features), lengths)

    def embed_with_audio(self, input_ids: torch.Tensor, audio_embeds: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with the projected audio scattered into the placeholder positions."""
        audio_mask = input_ids == self.config.audio_token_id
        n_slots = int(audio_mask.sum())
        embeds = self.get_input_embeddings()(input_ids.masked_fill(audio_mask, 0) if n_slots else input_ids)
        if audio_embeds is None:
            return embeds
        if audio_embeds.shape[0] != n_slots:
            raise ValueError(f"{audio_embeds.shape[0]} audio positions for {n_slots} placeholder positions")
        return embeds.masked_scatter(
            audio_mask.unsqueeze(-1).to(embeds.device), audio_embeds.to(embeds.dtype)
        )

    # ---- forward -------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        audio_lengths: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Scatter the projected audio into the placeholder positions, then run the language model.

        `input_features` [W, mel_bins, frames] are all audio windows of the batch, in the order of the
        placeholder runs (sample by sample, audio by audio, window by window); `input_features_mask`
        [W, frames] marks the real mel frames (needed in `lean` mode). `audio_lengths` (positions per
        audio) is accepted for `model(**batch)` and not needed. The count check runs before the encoder,
        so a mismatch costs nothing.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            assert input_ids is not None
            n_slots = int((input_ids == self.config.audio_token_id).sum())
            feats = None
            if input_features is not None:
                expected = sum(self.audio_positions(input_features, input_features_mask))
                if expected != n_slots:
                    raise ValueError(
                        f"audio placeholders and audio features do not match: {n_slots} placeholder positions in "
                        f"input_ids but the {input_features.shape[0]} audio window(s) give {expected} positions "
                        f"(audio_token_mode={self.config.audio_token_mode!r}, stack_factor={self.config.stack_factor})"
                    )
                self._check_length(input_ids.shape[1])
                feats = self.get_audio_features(input_features, input_features_mask)
            elif n_slots and input_ids.shape[1] > 1 and _cache_len(cache) == 0:
                raise ValueError(
                    f"input_ids hold {n_slots} audio placeholder positions but no input_features"
                )
            inputs_embeds = self.embed_with_audio(input_ids, feats)

        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2:
            # Left padding: positions count real tokens only (what generate() does too).
            pos = attention_mask.long().cumsum(-1) - 1
            pos = pos.masked_fill(attention_mask == 0, 0)
            position_ids = pos[:, -inputs_embeds.shape[1] :]  # type: ignore[assignment]

        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    def _check_length(self, n: int) -> None:
        limit = self.config.max_sequence_length()
        if limit and n > limit:
            raise ValueError(
                f"sequence of {n} positions is longer than the language model's limit of {limit}"
            )

    # ---- construction from parts ----------------------------------------------------------------
    @classmethod
    def from_pretrained_parts(
        cls,
        encoder: str | os.PathLike[str] | PreTrainedModel,
        language_model: str | os.PathLike[str] | PreTrainedModel,
        tokenizer: Any,
        *,
        dtype: torch.dtype | None = None,
        **config_overrides: Any,
    ) -> LlasoForConditionalGeneration:
        """A LLaSO model from an existing Whisper checkpoint and causal LM (the Stage-1 starting point).

        Args:
            encoder: a local Whisper folder (any `WhisperModel` / `WhisperForConditionalGeneration`
                checkpoint; only the encoder is kept), or a loaded `WhisperEncoder`, `WhisperModel` or
                `WhisperForConditionalGeneration`. The model type comes from its config, never its path.
            language_model: a local causal-LM folder or a loaded causal LM (`LlamaForCausalLM`, ...).
            tokenizer: the language model's tokenizer (object, **modified in place**), or a folder.
            dtype: load both parts in this dtype (default: as saved).
            **config_overrides: any `LlasoConfig` field (`projector_type`, `stack_factor`,
                `audio_token_mode`, `system_prompt`, `prompt_format`, `audio_token`, ...).

        The tokenizer gets LLaSO's tokens in the original order: `<unk>` as pad (only if it has no pad
        token), `<Audio>`, `</Audio>`, `<audio_start>`, `<audio_end>`; then the audio placeholder, unless
        the tokenizer already has one (Llama-3's `<|reserved_special_token_0|>` is reused, so LLaSO-Base
        keeps 128261 ids). The new embedding rows (input, and output when untied) are the mean of the
        existing rows. The projector is freshly initialized. `prompt_format` defaults to `llama3` for
        Llama-3 tokenizers and to the tokenizer's own chat template otherwise; `eot_token` to
        `<|eot_id|>`, `<|im_end|>` or the eos token, whichever the tokenizer has.

        Use `build_llaso(...)` to get the matching `LlasoProcessor` too.
        """
        model, _ = build_llaso(encoder, language_model, tokenizer, dtype=dtype, **config_overrides)
        return model

    # ---- generation ------------------------------------------------------------------------------
    def prepare_inputs_for_generation(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # The base class forwards input_features only at the prefill step; our mask travels with them.
        inputs = super().prepare_inputs_for_generation(*args, **kwargs)
        if inputs.get("input_features") is None:
            inputs.pop("input_features_mask", None)
        return inputs


def _cache_len(cache: Any) -> int:
    if cache is None:
        return 0
    try:
        return int(cache.get_seq_length())
    except (AttributeError, TypeError):
        return 0


# ---- building from parts ------------------------------------------------------------------------
def _load_encoder(
    encoder: str | os.PathLike[str] | PreTrainedModel, dtype: torch.dtype | None
) -> WhisperEncoder:
    if isinstance(encoder, (str, os.PathLike)):
        cfg = AutoConfig.from_pretrained(os.fspath(encoder))
        if cfg.model_type != "whisper":
            raise ValueError(f"{encoder}: expected a Whisper checkpoint, its config says {cfg.model_type!r}")
        whole, info = AutoModel.from_pretrained(os.fspath(encoder), dtype=dtype, output_loading_info=True)
        if not any("encoder." in k for k in info["missing_keys"]):
            return whole.get_encoder()
        # an encoder-only folder (WhisperEncoder.save_pretrained): its keys have no "encoder." prefix
        loaded: Any = WhisperEncoder.from_pretrained(
            os.fspath(encoder), dtype=dtype, output_loading_info=True
        )
        only, info = loaded
        if info["missing_keys"]:
            raise ValueError(
                f"{encoder}: the Whisper encoder weights are incomplete: {info['missing_keys'][:5]}"
            )
        return only
    if isinstance(encoder, WhisperEncoder):
        return encoder
    get_encoder = getattr(encoder, "get_encoder", None)
    if get_encoder is not None and isinstance(enc := get_encoder(), WhisperEncoder):
        return enc
    raise TypeError(f"expected a Whisper checkpoint or model, got {type(encoder).__name__}")


def add_llaso_tokens(tokenizer: Any, config: LlasoConfig) -> dict[str, int]:
    """Add LLaSO's tokens to `tokenizer` (in place, original order) and return {token: id} for all of them."""
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": config.pad_token, "unk_token": config.pad_token})
    tags = [config.audio_tag_open, config.audio_tag_close, config.audio_start_token, config.audio_end_token]
    vocab = tokenizer.get_vocab()
    new = [t for t in tags if t not in vocab]
    if config.audio_token is None:
        config.audio_token = LLAMA3_AUDIO_TOKEN if LLAMA3_AUDIO_TOKEN in vocab else DEFAULT_AUDIO_TOKEN
    if config.audio_token not in vocab:
        new.append(config.audio_token)
    if new:
        tokenizer.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in [*tags, config.audio_token]}
    ids[tokenizer.pad_token] = int(tokenizer.pad_token_id)
    return ids


def _rows(model: PreTrainedModel) -> int:
    """Rows of the input embedding matrix."""
    weight = model.get_input_embeddings().weight
    assert isinstance(weight, torch.Tensor)
    return int(weight.shape[0])


def _mean_init_rows(model: PreTrainedModel, new_ids: list[int], old_rows: int) -> None:
    """Resize the embeddings to cover `new_ids` and set those rows to the mean of the first `old_rows`."""
    need = max([*new_ids, -1]) + 1
    if need > _rows(model):
        model.resize_token_embeddings(need, mean_resizing=False)
    with torch.no_grad():
        for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
            if layer is None:
                continue
            w = layer.weight
            assert isinstance(w, torch.Tensor)
            mean = w[:old_rows].float().mean(0).to(w.dtype)
            for i in new_ids:
                w[i] = mean


def build_llaso(
    encoder: str | os.PathLike[str] | PreTrainedModel,
    language_model: str | os.PathLike[str] | PreTrainedModel,
    tokenizer: Any,
    *,
    dtype: torch.dtype | None = None,
    **config_overrides: Any,
) -> tuple[LlasoForConditionalGeneration, LlasoProcessor]:
    """`LlasoForConditionalGeneration.from_pretrained_parts` plus the matching `LlasoProcessor`.

    See that method for the arguments. The processor's feature extractor is built from the encoder config
    (mel bins, window length), so it matches the model by construction.
    """
    enc = _load_encoder(encoder, dtype)
    lm: PreTrainedModel = (
        AutoModelForCausalLM.from_pretrained(os.fspath(language_model), dtype=dtype)
        if isinstance(language_model, (str, os.PathLike))
        else language_model
    )
    tok = (
        AutoTokenizer.from_pretrained(os.fspath(tokenizer))
        if isinstance(tokenizer, (str, os.PathLike))
        else tokenizer
    )

    overrides = dict(config_overrides)
    vocab = tok.get_vocab()
    if "prompt_format" not in overrides:
        overrides["prompt_format"] = "llama3" if "<|start_header_id|>" in vocab else "chat_template"
    if "eot_token" not in overrides:
        overrides["eot_token"] = next(
            (t for t in ("<|eot_id|>", "<|im_end|>") if t in vocab), tok.eos_token if tok.eos_token else None
        )
    if overrides["prompt_format"] == "chat_template" and not getattr(tok, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; pass prompt_format='llama3' or give it one")
    config = LlasoConfig(
        audio_config=copy.deepcopy(enc.config), text_config=copy.deepcopy(lm.config), **overrides
    )
    old_rows = _rows(lm)
    n_before = len(tok)
    ids = add_llaso_tokens(tok, config)
    added = sorted(i for i in ids.values() if i >= n_before)
    _mean_init_rows(lm, added, old_rows)
    config.text_config = lm.config
    config.token_ids = ids
    config.audio_token_id = ids[str(config.audio_token)]
    model = LlasoForConditionalGeneration(config, audio_tower=enc, language_model=lm)
    if dtype is not None:
        model.projector.to(dtype)
    model.generation_config = _generation_config(lm, tok, config)
    processor = LlasoProcessor.from_model_config(config, tok)
    return model, processor


def _generation_config(lm: PreTrainedModel, tok: Any, config: LlasoConfig) -> GenerationConfig:
    gen = (
        copy.deepcopy(lm.generation_config) if getattr(lm, "generation_config", None) else GenerationConfig()
    )
    eos = gen.eos_token_id if gen.eos_token_id is not None else tok.eos_token_id
    eos_list = list(eos) if isinstance(eos, (list, tuple)) else ([] if eos is None else [eos])
    if config.eot_token and config.eot_token in tok.get_vocab():
        eot = int(tok.convert_tokens_to_ids(config.eot_token))
        if eot not in eos_list:
            eos_list.append(eot)
    gen.eos_token_id = eos_list or None
    gen.pad_token_id = tok.pad_token_id
    if tok.bos_token_id is not None:
        gen.bos_token_id = tok.bos_token_id
    return gen


def register_auto_classes() -> None:
    """Register LLaSO with AutoModelForCausalLM / AutoModel (idempotent; AutoConfig is done by config.py)."""
    with contextlib.suppress(ValueError):
        AutoModelForCausalLM.register(LlasoConfig, LlasoForConditionalGeneration)
    with contextlib.suppress(ValueError):
        AutoModel.register(LlasoConfig, LlasoForConditionalGeneration)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters of each part and the total, tied weights counted once (works on the meta device)."""
    out: dict[str, int] = {}
    for name in ("audio_tower", "projector", "language_model"):
        part = getattr(model, name)
        out[name] = sum(p.numel() for p in part.parameters())
    out["total"] = sum(p.numel() for p in model.parameters())
    return out


register_auto_classes()


def build_tiny_llaso(
    *,
    window_seconds: int = 10,
    d_model: int = 32,
    hidden_size: int = 32,
    layers: int = 2,
    encoder_layers: int = 1,
    tokenizer_style: str = "llama3",
    seed: int = 0,
    **config_overrides: Any,
) -> tuple[LlasoForConditionalGeneration, LlasoProcessor]:
    """A tiny random LLaSO model and its processor (toy tokenizer), built in memory for tests/benchmarks.

    Whisper-shaped encoder (80 mel bins, `window_seconds` windows via `max_source_positions`) +
    Llama-shaped LM; `config_overrides` as in `from_pretrained_parts` (`audio_token_mode`, `stack_factor`...).
    """
    torch.manual_seed(seed)
    heads = max(2, d_model // 64)  # Whisper uses 64-dim heads
    wc = WhisperConfig(
        d_model=d_model,
        encoder_layers=encoder_layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=2 * d_model,
        decoder_layers=1,
        decoder_attention_heads=heads,
        decoder_ffn_dim=2 * d_model,
        num_mel_bins=80,
        max_source_positions=window_seconds * 50,
    )
    tok = make_toy_tokenizer(tokenizer_style)
    lc = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        max_position_embeddings=8192,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return build_llaso(WhisperEncoder(wc), LlamaForCausalLM(lc), tok, **config_overrides)
