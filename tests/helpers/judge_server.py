"""The chat server of `helpers.chat_server`, answering as a judge: "Score: N" from the prediction."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from helpers.chat_server import ChatServer, Seen, chat_server

__all__ = ["ChatServer", "Seen", "judge_server", "score_from_prediction"]


def score_from_prediction(body: dict[str, Any]) -> str:
    """ "Score: N" where N is the digit after "PRED-" in the model response (else 3)."""
    user = body["messages"][-1]["content"]
    m = re.search(r"PRED-(\d)", user.split("[Model response]")[-1])
    return f"Score: {m.group(1) if m else 3}\nExplanation: fixed."


@contextmanager
def judge_server(**kw: Any) -> Iterator[ChatServer]:
    kw.setdefault("reply", score_from_prediction)
    with chat_server(**kw) as server:
        yield server
