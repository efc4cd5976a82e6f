"""Tiny random audio LLMs of three transformers families, saved as model folders, for the transformers
backend's tests and benchmark: qwen2_audio, voxtral and audioflamingo3 (granite_speech needs torchaudio,
gemma3n timm, phi4_multimodal torchvision, none of which the project installs).

Each folder is what `save_pretrained` writes for a real checkpoint of the family, at toy sizes: the model
(hidden 32, 2 text layers, a 1-layer audio encoder on 16 mel bins and 2-s windows), a byte-level BPE
tokenizer trained here on a few hundred sentences with the special tokens the family's processor needs,
and a chat template written for the family that puts the family's audio marker where each audio goes
(the processor, or the backend for voxtral, expands it to the audio's token count). The weights are
scaled up so that the greedy answers depend on the input, and comparisons of answers are not vacuous.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

_WORDS = (  # the words of the sentences the tokenizer is trained on
    "the a speaker audio voice sound music noise says said female male woman man happy sad angry neutral "
    "calm loud quiet fast slow yes no one two three four five six seven eight nine ten what which who is "
    "are was identify transcribe choose from listen respond answer question emotion gender age accent "
    "language english speech clip second first last between before after dog bird car rain wind door"
)
SR = 16000
HIDDEN = 32
MEL_BINS = 16
WINDOW_S = 2  # the feature extractor's window: 200 mel frames, 100 encoder positions
SCALE = 4.0  # weights times this: a random model that is not this sharp answers every prompt alike


def _sentences(n: int = 300, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(_WORDS.split(), int(rng.integers(4, 12)))) for _ in range(n)]


def train_tokenizer(specials: list[str], template: str, *, add_bos: bool = False, **names: str) -> Any:
    """A byte-level BPE tokenizer (specials first, at ids 0..k-1) with `template` as its chat template;
    `names` are the tokenizer's eos/pad/bos token names; `add_bos`: encoding text puts the BOS token first,
    as Llama's and Mistral's tokenizers do."""
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=len(specials) + 400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_sentences(), trainer)
    if add_bos:
        bos = names["bos_token"]
        bpe.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, bpe.token_to_id(bos))]
        )
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, **names)
    tok.chat_template = template
    return tok


def _text_config(tok: Any, model_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "model_type": model_type,
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": HIDDEN // 2,
        "vocab_size": len(tok),
        "max_position_embeddings": 1024,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "tie_word_embeddings": False,
        **extra,
    }


def _whisper_features() -> Any:
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=MEL_BINS, sampling_rate=SR, chunk_length=WINDOW_S)


def _save(model: Any, processor: Any, folder: Path) -> Path:
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(SCALE)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _user_content(audio_mark: str) -> str:
    """The part of a chat template that writes a user message's content parts in order."""
    return (
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}"
        f"{{% if part['type'] == 'audio' %}}{audio_mark}"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
        "{% endfor %}{% endif %}"
    )


# ChatML, as the Qwen2 family writes it; the audio marker is the family's
def _chatml(audio_mark: str) -> str:
    return (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        + _user_content(audio_mark)
        + "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


# ---- the families ------------------------------------------------------------------------------------
def build_qwen2_audio(folder: Path, seed: int = 0) -> Path:
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
    # the released template's audio part: "Audio N: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    template = _chatml("<|audio_bos|><|AUDIO|><|audio_eos|>\n")
    tok = train_tokenizer(specials, template, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    processor = Qwen2AudioProcessor(_whisper_features(), tok, chat_template=template)
    config = Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            "d_model": HIDDEN,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 2 * HIDDEN,
            "num_mel_bins": MEL_BINS,
            "max_source_positions": WINDOW_S * 50,
        },
        text_config=_text_config(tok, "qwen2"),
        audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(seed)
    return _save(Qwen2AudioForConditionalGeneration(config), processor, folder)


VOXTRAL_AUDIO_ID = 24  # VoxtralProcessor takes the audio token to be id 24, as in Mistral's tekken vocabulary


def build_voxtral(folder: Path, seed: int = 0) -> Path:
    """Voxtral read with a `tokenizers` tokenizer (no mistral-common): `[INST]...[/INST]` with
    `[BEGIN_AUDIO][AUDIO]` where each audio goes, `[AUDIO]` at id 24."""
    from transformers import VoxtralConfig, VoxtralForConditionalGeneration, VoxtralProcessor

    specials = ["<unk>", "<s>", "</s>", "<pad>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"]
    specials += [f"<SPECIAL_{i}>" for i in range(len(specials), VOXTRAL_AUDIO_ID)]
    specials += ["[AUDIO]", "[BEGIN_AUDIO]"]
    template = (
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'system' %}[SYSTEM_PROMPT]{{ message['content'] }}[/SYSTEM_PROMPT]"
        "{% elif message['role'] == 'user' %}[INST]" + _user_content("[BEGIN_AUDIO][AUDIO]") + "[/INST]"
        "{% else %}{{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    )
    tok = train_tokenizer(
        specials, template, add_bos=True, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    assert tok.convert_ids_to_tokens(VOXTRAL_AUDIO_ID) == "[AUDIO]"
    processor = VoxtralProcessor(_whisper_features(), tok)
    config = VoxtralConfig(
        audio_config={
            "model_type": "voxtral_encoder",
            "hidden_size": HIDDEN,
            "intermediate_size": 4 * HIDDEN,  # also the projector's input: 4 encoder positions a token
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_mel_bins": MEL_BINS,
            "max_source_positions": WINDOW_S * 50,
        },
        text_config=_text_config(tok, "llama"),
        audio_token_id=VOXTRAL_AUDIO_ID,
    )
    torch.manual_seed(seed)
    return _save(VoxtralForConditionalGeneration(config), processor, folder)


def build_audioflamingo3(folder: Path, seed: int = 0) -> Path:
    from transformers import (
        AudioFlamingo3Config,
        AudioFlamingo3ForConditionalGeneration,
        AudioFlamingo3Processor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>"]
    template = _chatml("<sound>")
    tok = train_tokenizer(specials, template, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    processor = AudioFlamingo3Processor(_whisper_features(), tok, chat_template=template, max_audio_len=30)
    config = AudioFlamingo3Config(
        audio_config={
            "model_type": "audioflamingo3_encoder",
            "hidden_size": HIDDEN,
            "intermediate_size": 2 * HIDDEN,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_mel_bins": MEL_BINS,
            "max_source_positions": WINDOW_S * 50,
        },
        text_config=_text_config(tok, "qwen2"),
        audio_token_id=tok.convert_tokens_to_ids("<sound>"),
    )
    torch.manual_seed(seed)
    return _save(AudioFlamingo3ForConditionalGeneration(config), processor, folder)


def build_llama(folder: Path, seed: int = 0) -> Path:
    """A plain text llama with its tokenizer: a model folder the transformers backend refuses."""
    from transformers import LlamaConfig, LlamaForCausalLM

    template = _chatml("")
    tok = train_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], template, eos_token="<|im_end|>")
    cfg = {k: v for k, v in _text_config(tok, "llama").items() if k != "model_type"}
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(LlamaConfig(**cfg)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@dataclass(frozen=True)
class Family:
    """A tiny family: how to build it, and what its template writes for one audio (before expansion)."""

    model_type: str
    build: Callable[[Path, int], Path]
    audio_mark: str
    multi_audio: bool = True  # whether its processor takes several audios in one prompt


FAMILIES = {
    "qwen2_audio": Family("qwen2_audio", build_qwen2_audio, "<|audio_bos|><|AUDIO|><|audio_eos|>"),
    "voxtral": Family("voxtral", build_voxtral, "[BEGIN_AUDIO][AUDIO]"),
    # AudioFlamingo3Processor takes exactly one audio per prompt ("they must match 1:1")
    "audioflamingo3": Family("audioflamingo3", build_audioflamingo3, "<sound>", multi_audio=False),
}
