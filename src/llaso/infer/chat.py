"""One chat request: the sample for a request in its modality configuration, and the model's answer.

The three configurations:
  (t,a) a text instruction about an audio: the audio, and the instruction as text;
  (a,t) a spoken instruction about a text: the instruction as audio, and the text it is about;
  (a)   pure audio: the request is spoken, and the text turn holds a generic prompt from the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from llaso.schema import Sample

DEFAULT_CHAT_MAX_NEW_TOKENS = 256  # the original's budget


@dataclass
class ChatRequest:
    audio: str  # the input audio ((t,a), (a)) or the spoken instruction ((a,t))
    text: str = ""  # the instruction ((t,a)) or the text the spoken instruction is about ((a,t))
    spoken_instruction: bool = False  # True: (a,t)
    max_new_tokens: int = DEFAULT_CHAT_MAX_NEW_TOKENS


def chat_prompt(text: str, *, spoken_instruction: bool, generic_prompts: tuple[str, ...]) -> str:
    """The human turn for a chat request in its modality configuration."""
    if spoken_instruction:
        return "<audio>" + text  # (a,t)
    if text.strip():
        return text.strip() + "<audio>"  # (t,a)
    return (generic_prompts[0] if generic_prompts else "") + "<audio>"  # (a)


def chat_sample(request: ChatRequest, generic_prompts: tuple[str, ...]) -> Sample:
    prompt = chat_prompt(
        request.text, spoken_instruction=request.spoken_instruction, generic_prompts=generic_prompts
    )
    return Sample.from_record(
        {"id": "chat", "voice": [request.audio], "conversations": [{"from": "human", "value": prompt}]}
    )


def generate_answer(model: Any, processor: Any, sample: Sample, max_new_tokens: int) -> str:
    """The model's greedy answer to one sample, without the prompt and special tokens, stripped."""
    batch = processor.from_samples([sample], add_generation_prompt=True)
    param = next(model.parameters())
    batch = {k: v.to(param.device) for k, v in batch.items()}
    if "input_features" in batch:
        batch["input_features"] = batch["input_features"].to(param.dtype)
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    answer = processor.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)[0]
    return str(answer).strip()
