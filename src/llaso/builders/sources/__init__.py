"""Corpus adapters: each reads one labelled corpus in its published layout and yields `Item`s for its tasks
(see `base.Adapter`). `ADAPTERS` maps the name used on the command line (`llaso data build NAME`) and in
output file names to the adapter; `get_adapter` also accepts a few common spellings."""

from __future__ import annotations

from llaso.builders.sources.accentdb import AccentDB
from llaso.builders.sources.base import Adapter, Issue, IssueLog, Item
from llaso.builders.sources.commonvoice import CommonVoice
from llaso.builders.sources.cremad import CremaD
from llaso.builders.sources.fakeorreal import FakeOrReal
from llaso.builders.sources.gigaspeech import GigaSpeech
from llaso.builders.sources.librispeech import LibriSpeech
from llaso.builders.sources.ljspeech import LJSpeech
from llaso.builders.sources.manifest import Manifest
from llaso.builders.sources.meld import MELD
from llaso.builders.sources.mls import MLSEnglish
from llaso.builders.sources.nsynth import NSynth
from llaso.builders.sources.slurp import SLURP
from llaso.builders.sources.speechcommands import SpeechCommands
from llaso.builders.sources.speechocean import SpeechOcean762
from llaso.builders.sources.vctk import VCTK
from llaso.builders.sources.vocalsound import VocalSound
from llaso.builders.sources.voxceleb import VoxCeleb

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
