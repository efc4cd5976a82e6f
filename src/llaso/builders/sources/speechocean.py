"""speechocean762 (Zhang et al., 2021): pronunciation scoring at word (PSWL) and sentence level (PSSL).

Layout read: `<root>/{train,test}/wav.scp` (`<utt> WAVE/SPEAKER<nnnn>/<utt>.WAV`), `{train,test}/text`
(`<utt> TEXT IN CAPITALS`), `{train,test}/utt2spk`, and `<root>/resource/scores.json` (per utterance:
`text, accuracy, completeness, fluency, prosodic, total, words: [{text, accuracy, stress, total, phones,
phones-accuracy, mispronunciations}]`). Audio paths in wav.scp are relative to root.

Answers, as the release writes them: PSSL "Mark is going to see elephant. For the sentence: accuracy is 9,
prosodic is 9, fluency is 9 total score is 9." (sic, no comma before "total"); PSWL the sentence and then
one 'For "mark", accuracy is 10, stress is 10, and total score is 10.' per word (lower case). Metadata:
`words`, the per-word entries of scores.json (the release puts that list itself in `metadata`), and
speaker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, int_or_none, read_text, sentence_case


def _score(v: Any) -> str:
    i = int_or_none(v)
    return str(i) if i is not None else str(v)


def sentence_answer(sentence: str, s: dict[str, Any]) -> str:
    return (
        f"{sentence}. For the sentence: accuracy is {_score(s['accuracy'])}, prosodic is "
        f"{_score(s['prosodic'])}, fluency is {_score(s['fluency'])} total score is {_score(s['total'])}."
    )


def word_answer(sentence: str, words: list[dict[str, Any]]) -> str:
    parts = [f"{sentence}."]
    for w in words:
        parts.append(
            f'For "{str(w["text"]).lower()}", accuracy is {_score(w["accuracy"])}, stress is '
            f"{_score(w['stress'])}, and total score is {_score(w['total'])}."
        )
    return " ".join(parts)


class SpeechOcean762(Adapter):
    name = "speechocean762"
    title = "speechocean762"
    tasks = ("PSWL", "PSSL")
    sources: ClassVar[dict[str, str]] = {"PSWL": "speechocean762", "PSSL": "speechocean762"}
    layout = "{train,test}/{wav.scp,text,utt2spk} + resource/scores.json + WAVE/SPEAKER*/<utt>.WAV"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        task = self.check_task(task)
        spath = root / "resource" / "scores.json"
        text = read_text(spath, log, what="scores file")
        if text is None:
            return
        try:
            scores: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as e:
            log.malformed(spath, f"malformed JSON: {e}")
            return
        for split in ("train", "test"):
            scp = root / split / "wav.scp"
            if not scp.exists():
                log.missing(scp, "wav.scp not found")
                continue
            spk: dict[str, str] = {}
            for line in (read_text(root / split / "utt2spk", log) or "").splitlines():
                a, _, b = line.strip().partition(" ")
                spk[a] = b.strip()
            for n, line in enumerate((read_text(scp, log) or "").splitlines(), 1):
                if not line.strip():
                    continue
                utt, _, wav = line.strip().partition(" ")
                wav = wav.strip()
                if not wav:
                    log.malformed(scp, f"line {n}: expected '<utt> <path>'")
                    continue
                s = scores.get(utt)
                try:
                    words = list(s["words"]) if isinstance(s, dict) else None
                    if s is None or words is None:
                        raise KeyError("no entry")
                    sentence = sentence_case(str(s.get("text") or " ".join(str(w["text"]) for w in words)))
                    answer = word_answer(sentence, words) if task == "PSWL" else sentence_answer(sentence, s)
                except (KeyError, TypeError) as e:
                    log.malformed(spath, f"{utt}: incomplete scores ({e})")
                    continue
                meta = {"words": words, "speaker": spk.get(utt, "")}
                speaker = spk.get(utt) or None
                yield self.item(task, utt, Path(wav).as_posix(), answer, meta, split=split, speaker=speaker)
