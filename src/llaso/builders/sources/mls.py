"""Multilingual LibriSpeech, English part (openslr 94): ASR and phoneme recognition (PR).

Layout read: `<root>/{train,dev,test}/transcripts.txt` (`<spk>_<book>_<utt>\\t<lower-case text>` per line)
and `<root>/<split>/audio/<spk>/<book>/<spk>_<book>_<utt>.{flac,opus}` (`mls_english` ships FLAC,
`mls_english_opus` Opus; the adapter takes whichever is on disk and names the FLAC path when neither is).
`metainfo.txt` (`SPEAKER | GENDER | PARTITION | MINUTES | BOOK ID | TITLE | CHAPTER`) adds the speaker's
gender when present. `root` may also be a single split folder.

Answers: ASR, the transcript in sentence case ("After his nap timothy lazily ..."); PR, the IPA of the
transcript, one word per space-separated group, stress marks removed (as the release's PR eval file writes
it). The release's IPA matches espeak-ng's en-us output without stress marks, so PR calls `espeak-ng --ipa`
(through `llaso.builders.tts.phonemes`; without espeak-ng PR logs one issue per transcript file and yields
nothing). Uncertain: the release's exact phonemizer options (word separators, language switches);
espeak-ng's output for the same text can differ across versions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, find_files, read_text, rel, sentence_case
from llaso.builders.sources.librispeech import ASR_SOURCE
from llaso.builders.tts import phonemes

PR_SOURCE = "MLS English (IPA)"
_STRESS = re.compile("[ˈˌ]")


def espeak_ipa(texts: list[str], voice: str = "en-us") -> list[str]:
    """IPA for each text with espeak-ng (`llaso.builders.tts.phonemes`), stress marks removed."""
    return [" ".join(_STRESS.sub("", phonemes(t, voice)).split()) for t in texts]


class MLSEnglish(Adapter):
    name = "mls_english"
    title = "MLS English"
    tasks = ("ASR", "PR")
    sources: ClassVar[dict[str, str]] = {"ASR": ASR_SOURCE, "PR": PR_SOURCE}
    layout = "<split>/transcripts.txt + <split>/audio/<spk>/<book>/<id>.flac|opus"

    def __init__(self, phonemize: Callable[[list[str]], list[str]] | None = None) -> None:
        self.phonemize = phonemize or espeak_ipa

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        task = self.check_task(task)
        genders: dict[str, str] = {}
        for p in find_files(root, ["metainfo.txt"])[:1]:
            for line in (read_text(p, log) or "").splitlines()[1:]:
                parts = [x.strip() for x in line.split("|")]
                if len(parts) >= 2 and parts[1] in ("M", "F"):
                    genders[parts[0]] = "Male" if parts[1] == "M" else "Female"
        files = find_files(root, ["transcripts.txt"])
        if not files:
            log.missing(root / "transcripts.txt", "no <split>/transcripts.txt found")
        for tp in files:
            text = read_text(tp, log, what="transcript file")
            if text is None:
                continue
            rows = []
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                uid, _, words = line.partition("\t")
                parts = uid.strip().split("_")
                if len(parts) != 3 or not words.strip():
                    log.malformed(tp, f"line {n}: expected '<spk>_<book>_<utt>\\t<text>'")
                    continue
                rows.append((uid.strip(), parts, words.strip()))
            answers: list[str]
            if task == "PR":
                try:
                    answers = self.phonemize([w for _, _, w in rows])
                except (OSError, RuntimeError) as e:  # TTSError: espeak-ng missing or failing
                    log.add("tool", "espeak-ng", f"cannot phonemize {rel(tp, root)}: {e}")
                    continue
            else:
                answers = [sentence_case(w) for _, _, w in rows]
            adir = tp.parent / "audio"
            for index, ((uid, (spk, book, _utt), _), answer) in enumerate(zip(rows, answers, strict=True)):
                base = adir / spk / book / uid
                audio = next(
                    (base.with_suffix(e) for e in (".flac", ".opus", ".wav") if base.with_suffix(e).exists()),
                    base.with_suffix(".flac"),
                )
                meta: dict[str, object] = {"index": index, "speaker_id": spk, "book_id": book}
                if spk in genders:
                    meta["gender"] = genders[spk]
                yield self.item(task, uid, rel(audio, root), answer, meta, split=tp.parent.name, speaker=spk)
