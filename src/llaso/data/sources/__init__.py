"""Corpus adapters: each reads one labelled corpus in its published layout and yields `Item`s for its tasks
(see `base.Adapter`). `ADAPTERS` maps the name used on the command line (`llaso data build NAME`) and in
output file names to the adapter; `get_adapter` also accepts a few common spellings."""

from __future__ import annotations

from llaso.data.sources.accentdb import AccentDB
from llaso.data.sources.base import Adapter, Issue, IssueLog, Item
from llaso.data.sources.commonvoice import CommonVoice
from llaso.data.sources.cremad import CremaD
from llaso.data.sources.fakeorreal import FakeOrReal
from llaso.data.sources.gigaspeech import GigaSpeech
from llaso.data.sources.librispeech import LibriSpeech
from llaso.data.sources.ljspeech import LJSpeech
from llaso.data.sources.manifest import Manifest
from llaso.data.sources.meld import MELD
from llaso.data.sources.mls import MLSEnglish
from llaso.data.sources.nsynth import NSynth
from llaso.data.sources.slurp import SLURP
from llaso.data.sources.speechcommands import SpeechCommands
from llaso.data.sources.speechocean import SpeechOcean762
from llaso.data.sources.vctk import VCTK
from llaso.data.sources.vocalsound import VocalSound
from llaso.data.sources.voxceleb import VoxCeleb

__all__ = ["ADAPTERS", "Adapter", "Issue", "IssueLog", "Item", "get_adapter"]

ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        LibriSpeech(),
        MLSEnglish(),
        GigaSpeech(),
        VCTK(),
        LJSpeech(),
        CommonVoice(),
        VoxCeleb(),
        VocalSound(),
        AccentDB(),
        FakeOrReal(),
        CremaD(),
        MELD(),
        NSynth(),
        SpeechCommands(),
        SLURP(),
        SpeechOcean762(),
        Manifest(),
    )
}

ALIASES = {
    "mls": "mls_english",
    "mls-english": "mls_english",
    "commonvoice": "common-voice",
    "cv": "common-voice",
    "crema-d": "cremad",
    "fake-or-real": "for",
    "for-norm": "for",
    "speech-commands": "speechcommands",
    "speechcommand": "speechcommands",
    "speechocean": "speechocean762",
    "csv": "manifest",
    "tsv": "manifest",
}


def get_adapter(name: str) -> Adapter:
    key = name.strip().lower().replace(" ", "-")
    key = ALIASES.get(key, key)
    if key not in ADAPTERS:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[key]
