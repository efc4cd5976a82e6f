"""One batch of chat requests through a llaso model: the processor's left-padded batch, one greedy
`generate`, each answer cut at its own budget, end-of-sequence token and stop strings.

A batch may mix budgets: it is generated to the largest, and each row is cut to its own `max_tokens`.
Greedy decoding makes the first N tokens of a longer generation the N tokens a generation of N gives, so
an answer does not depend on the requests it was batched with (in float64 exactly; in lower precisions
padding can move a logit by a rounding error, as for `llaso infer`'s batches). When the processor refuses
the batch (silent audio, a prompt beyond the model's length), the requests are prepared one by one: the
bad ones get their error, the others still run together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from llaso.model.processing import LlasoInputError
from llaso.serve.parsing import ApiError, ChatRequest

# what preparing one request may raise: that request's 400, never the batch's
ITEM_ERRORS = (ValueError, OSError, TypeError)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (end of sequence or a stop string) or "length"
    prompt_tokens: int  # text and audio positions
    completion_tokens: int  # generated tokens, the end-of-sequence token included


Outcome = Completion | ApiError


class Engine:
    """A loaded llaso model and its processor; `run` is called by one thread only (the batcher's)."""

    def __init__(self, model: Any, processor: Any) -> None:
        self.model, self.processor = model, processor
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        eos = model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])

    def run(self, requests: Sequence[ChatRequest]) -> list[Outcome]:
        """One outcome per request, in order."""
        outcomes: dict[int, Outcome] = {}
        good, batch = self._prepare(requests, outcomes)
        if good:
            rows, prompt_lengths = self._generate(batch, max(requests[i].max_tokens for i in good))
            for i, row, n in zip(good, rows, prompt_lengths, strict=True):
                outcomes[i] = self._completion(requests[i], row, n)
        return [outcomes[i] for i in range(len(requests))]

    def _batch(self, requests: Sequence[ChatRequest]) -> Any:
        return self.processor.from_samples(
            [r.sample for r in requests], audios=[r.audios for r in requests], add_generation_prompt=True
        )

    def _prepare(
        self, requests: Sequence[ChatRequest], outcomes: dict[int, Outcome]
    ) -> tuple[list[int], Any]:
        """The positions the processor takes and their batch; the others' outcomes set to their error."""
        try:
            return list(range(len(requests))), self._batch(requests)
        except ITEM_ERRORS:
            pass
        good = []
        for i, r in enumerate(requests):
            try:
                self._batch([r])
                good.append(i)
            except ITEM_ERRORS as e:
                problem = e.problem if isinstance(e, LlasoInputError) else f"{type(e).__name__}: {e}"
                outcomes[i] = ApiError(400, f"the model cannot take this request: {problem}",
                                       param="messages", code="invalid_input")  # fmt: skip
        return good, self._batch([requests[i] for i in good]) if good else None

    def _generate(self, batch: Any, max_new_tokens: int) -> tuple[list[list[int]], list[int]]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if "input_features" in batch:
            batch["input_features"] = batch["input_features"].to(self.dtype)
        with torch.inference_mode():
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        width = batch["input_ids"].shape[1]
        return out[:, width:].tolist(), batch["attention_mask"].sum(dim=1).tolist()

    def _completion(self, request: ChatRequest, row: list[int], prompt_tokens: int) -> Completion:
        row = row[: request.max_tokens]
        end = next((k for k, t in enumerate(row) if t in self.eos_ids), None)
        tokens = row if end is None else row[:end]
        text = self.processor.batch_decode([tokens], skip_special_tokens=True)[0].strip()
        finish = "length" if end is None else "stop"
        cut = min((k for k in (text.find(s) for s in request.stop) if k >= 0), default=None)
        if cut is not None:
            text, finish = text[:cut].strip(), "stop"
        used = len(tokens) + (end is not None)
        return Completion(
            text=text, finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=used
        )
