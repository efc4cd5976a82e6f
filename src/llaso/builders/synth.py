"""`llaso data synth`: a complete LLaSO-style corpus made offline, with labels true by construction.

Speech comes from the Debian TTS programs (espeak-ng, flite, festival) and notes from additive synthesis, so
each label is a fact about how the clip was made: the text that was spoken, the espeak-ng accent or voice
variant, the MIDI pitch, the gain. 16 of the 20 LLaSO tasks are covered; see `COVERED` for what each one
really measures and `NOT_COVERED` for what cannot be made honestly. Eval items keep texts, voices or notes
apart from training where sharing them would flatter a model.

Layout (as the release)::

    DIR/align/text_audio/ASR_synth_train.json
    DIR/instruct/{text_audio,audio_text,pure_audio}/<TASK>_synth_train.json
    DIR/eval/{text_audio,audio_text,pure_audio}/<TASK>_synth_test.json
    DIR/audio/<TASK>/*.wav   DIR/tts/*.wav   DIR/concat/*.wav
    DIR/README.md (data card)   DIR/synth_report.yaml   DIR/stats/

Deterministic under `--seed`; audio files that exist are reused (their names carry a hash of how they are
made), JSON is written atomically, so an interrupted build is finished by running the same command again.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from llaso.builders.compose import (
    INSTRUCTION_ACCENTS,
    INSTRUCTION_VARIANTS,
    Item,
    TTSChoice,
    choose_modality,
    compose,
)
from llaso.builders.synthetic.content import (
    AQA_INSTRUCTIONS,
    COMMAND_WORDS,
    FACTS,
    FREE_SENTENCES,
    VOCABULARIES,
    arithmetic_question,
    short_sentence,
    slurp_request,
    templated_sentence,
)
from llaso.builders.synthetic.notes import FAMILIES, SAMPLE_RATE, VELOCITIES, render_note
from llaso.builders.synthetic.pronunciation import (
    GAP_FLUENCY,
    WordChange,
    corrupt_word,
    sentence_scores,
    word_scores,
    word_words,
)
from llaso.builders.tts import (
    DEFAULT_BACKEND,
    DEFAULT_RATE,
    ESPEAK_ENGLISH,
    EspeakBackend,
    TTSError,
    Voice,
    get_backend,
    phonemes,
    wav_duration,
    write_wav,
)
from llaso.corpus.jsonio import write_bytes_atomic, write_records
from llaso.corpus.stats import CorpusStats, compute_stats, draw_donut
from llaso.schema import Modality
from llaso.tasks.registry import Registry, load_registry
from llaso.utils.progress import progress_bar


@dataclass(frozen=True)
class SizeSpec:
    train: int  # training items per task
    eval: int  # eval items per task and modality configuration (stratum)
    align: int  # ASR items of the alignment stage


SIZES = {
    "tiny": SizeSpec(train=5, eval=2, align=4),  # tests, smoke runs, configs/train/align-tiny.yaml
    "small": SizeSpec(train=200, eval=16, align=300),
    "medium": SizeSpec(train=1000, eval=40, align=3000),
}


def size_spec(size: str, counts: Mapping[str, int] | None = None) -> SizeSpec:
    """The items of `size`, with any of `train` / `eval` / `align` replaced by `counts`."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    given = dict(counts or {})
    bad = sorted(set(given) - {"train", "eval", "align"})
    if bad:
        raise ValueError(f"unknown item count(s) {', '.join(bad)}: use train, eval or align")
    for k, v in given.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < (1 if k == "eval" else 0):
            raise ValueError(f"{k} items must be a whole number >= {1 if k == 'eval' else 0}, got {v!r}")
    return replace(SIZES[size], **given)


TASKS = (
    "ASR",
    "PR",
    "AQA",
    "SGC",
    "AC",
    "AR",
    "EIE",
    "SV",
    "PP",
    "VC",
    "IC",
    "SCR",
    "IP",
    "EE",
    "PSWL",
    "PSSL",
)
# Modality mix of training items (the release does not publish its sampling ratios): AQA evenly over the
# three configurations, other tasks mostly (t,a) with some pure audio (spoken instruction + input).
TRAIN_RATIOS = {
    "AQA": {Modality.TEXT_AUDIO: 1.0, Modality.AUDIO_TEXT: 1.0, Modality.PURE_AUDIO: 1.0},
    "*": {Modality.TEXT_AUDIO: 0.8, Modality.PURE_AUDIO: 0.2},
}
EVAL_STRATA = {"AQA": tuple(Modality), "*": (Modality.TEXT_AUDIO, Modality.PURE_AUDIO)}
DEFAULT_WORKERS = min(8, 2 * (os.cpu_count() or 1))
MAX_INSTRUCTION_WORDS = 16  # spoken instructions use the shorter templates, to keep (a) clips short
INSTRUCTION_SPEEDS = (1.0, 1.2, 1.4)  # and brisk voices (the release used 0.6-1.2 with a neural TTS)
CORPUS = "llaso-synth"
# Share of the spoken sentences (ASR, PR and the speaker tasks' texts) drawn from the free, open-vocabulary
# pool; the rest come from templates over a closed vocabulary of about 135 words (content.VOCABULARIES:
# `small` has about 55). 0 gives a closed-vocabulary corpus (what `llaso demo` trains on: open-vocabulary ASR does not fit in minutes of CPU; a 6-minute CPU
# run learned templated sentences over about 45 words to 0.6 % WER, 5 minutes on open sentences left it
# above 100 %).
FREE_SHARE = 0.3

COVERED = {
    "ASR": "transcript of the text that was spoken (templated and free sentences; espeak-ng, flite, festival voices)",
    "PR": "espeak-ng's own IPA (--ipa, en-us) for the text the same en-us voice speaks",
    "AQA": "spoken arithmetic and fact questions with their answers, in (t,a), (a,t) and (a)",
    "SGC": "male/female espeak-ng voice variants (m1-m7 / f1-f5) and flite voices: formant-synthesis gender",
    "AC": "PROXY: espeak-ng voice-age variants (grandma/grandpa, slow) vs high-pitched fast vs mid voices, "
    "labelled Seventies / Teens / Twenties; no real ages",
    "AR": "espeak-ng English accents: American (en-us, en-us-nyc), British (en-gb, RP, Lancaster, "
    "West Midlands), Scottish (en-gb-scotland)",
    "EIE": "PROXY: loudness level only (RMS about -40 / -31 / -22 dBFS for Low / Medium / High), not emotion",
    "SV": "which of 6 fixed synthetic speakers (espeak-ng accent + variant + pitch + rate), named with MELD's labels",
    "PP": "MIDI pitch of an additively synthesized note (fundamental exactly at the MIDI frequency)",
    "VC": "velocity 25/50/75/100/127 as note loudness (RMS proportional to velocity); not timbre",
    "IC": "synthetic timbre families (Brass, Flute, Guitar, Mallet, Organ, Reed, Synth lead): caricatures "
    "of the NSynth families by partials and envelopes",
    "SCR": "command word spoken alone (10 Speech Commands keywords: Yes No Up Down Left Right On Off Stop Go)",
    "IP": "intent of a SLURP-style request made from templates (21 of the registry's intents)",
    "EE": "the same kind of requests with their [slot : value] spans, by construction",
    "PSWL": "PROXY: per-word scores computed from how many phonemes were replaced in espeak-ng phoneme input "
    "and whether the stress was moved (not human ratings)",
    "PSSL": "PROXY: sentence scores from the number of phoneme substitutions (accuracy), moved stresses "
    "(prosodic) and the word gap (fluency) (not human ratings)",
}
NOT_COVERED = {
    "SSD": "every clip here is synthetic: there is no real speech to contrast with fake speech",
    "ER": "espeak-ng, flite and festival cannot act emotions; pitch/rate changes would be a caricature",
    "VSC": "laughter, sighs, coughs, throat clearing, sneezes and sniffs cannot be synthesized convincingly",
    "ISC": "acoustic vs electronic vs synthetic sources: every note here is synthetic",
}

# Voices ------------------------------------------------------------------------------------------------
MALE_TRAIN, MALE_EVAL = ("m1", "m2", "m3", "m4", "m5"), ("m6", "m7")
FEMALE_TRAIN, FEMALE_EVAL = ("f1", "f2", "f3", "f4"), ("f5",)
GENERAL_ACCENTS = ("en-us", "en-us-nyc", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-029")
FLITE_SPLIT = {"train": ("slt", "awb", "kal16"), "eval": ("rms",)}
FESTIVAL_SPLIT = {"train": ("kal_diphone", "cmu_us_slt_arctic_hts"), "eval": ("ked_diphone",)}
FLITE_GENDER = {"slt": "Female", "awb": "Male", "kal16": "Male", "rms": "Male", "kal": "Male"}
AR_ACCENTS = {
    "American": ("en-us", "en-us-nyc"),
    "British": ("en-gb", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd"),
    "Scottish": ("en-gb-scotland",),
}
# six fixed synthetic speakers for SV, named after MELD's labels (genders match); jitter is small
SV_SPEAKERS = {
    "Joey": ("en-us", "m3", 38, 165),
    "Ross": ("en-us", "m1", 62, 185),
    "Chandler": ("en-gb-x-rp", "m7", 50, 200),
    "Rachel": ("en-us", "f2", 58, 175),
    "Monica": ("en-gb", "f4", 40, 155),
    "Phoebe": ("en-us-nyc", "f1", 80, 190),
}
EIE_LEVELS = {"Low": -40.0, "Medium": -31.0, "High": -22.0}  # RMS dBFS, +-1.5 dB jitter
EIE_JITTER = 1.5


def _eval_midi(midi: int) -> bool:
    """Notes held out for eval: every pitch with midi % 7 == 3 (about one in seven)."""
    return midi % 7 == 3


# Plan ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioJob:
    """How to make one input clip. `kind`: speech (text), phonemes (espeak-ng mnemonics) or note."""

    kind: str
    text: str = ""
    voice: Voice | None = None
    rms_db: float | None = None  # scale speech to this RMS level (EIE)
    note: tuple[str, int, int, float, int] | None = None  # family, midi, velocity, seconds, seed

    def digest(self) -> str:
        return hashlib.sha1(repr(self).encode("utf-8")).hexdigest()[:10]


@dataclass
class Planned:
    item: Item
    job: AudioJob
    modality: Modality
    section: str  # align / instruct / eval


@dataclass
class Context:
    seed: int
    size: SizeSpec
    tts: str  # backend for generic speech
    extra_backends: tuple[str, ...]  # flite/festival when installed (variety in ASR/SGC/SCR)
    eval_texts: set[str] = field(default_factory=set)
    free_share: float = FREE_SHARE  # share of free (open-vocabulary) sentences among spoken texts
    vocabulary: str = "full"  # the templated sentences' closed vocabulary (content.VOCABULARIES)
    free_eval: tuple[str, ...] = ()
    free_train: tuple[str, ...] = ()
    facts_eval: tuple[tuple[str, str], ...] = ()
    facts_train: tuple[tuple[str, str], ...] = ()

    def rng(self, *parts: object) -> random.Random:
        return random.Random("/".join(map(str, (self.seed, *parts))))

    # -- texts --
    def fresh(self, split: str, draw: Callable[[], str], tries: int = 200) -> str:
        """A text from `draw`; eval texts are recorded, training texts avoid them."""
        for _ in range(tries):
            text = draw()
            if split == "eval":
                self.eval_texts.add(text)
                return text
            if text not in self.eval_texts:
                return text
        raise RuntimeError("could not draw a text unseen in eval")

    def sentence(self, rng: random.Random, split: str) -> str:
        pool = self.free_eval if split == "eval" else self.free_train
        if rng.random() < self.free_share:
            return rng.choice(pool)  # the free-sentence pools are disjoint by construction
        return self.fresh(split, lambda: templated_sentence(rng, self.vocabulary))

    # -- voices --
    def variant(self, rng: random.Random, split: str, gender: str | None = None) -> tuple[str, str]:
        g = gender or rng.choice(("Male", "Female"))
        pool = {
            ("Male", "train"): MALE_TRAIN,
            ("Male", "eval"): MALE_EVAL,
            ("Female", "train"): FEMALE_TRAIN,
            ("Female", "eval"): FEMALE_EVAL,
        }[g, split]
        return rng.choice(pool), g

    def espeak_voice(self, rng: random.Random, split: str, *, accent: str | None = None) -> Voice:
        name = accent or rng.choice(GENERAL_ACCENTS)
        variant, _ = self.variant(rng, split)
        return Voice(
            "espeak-ng",
            name,
            variant=variant,
            accent=ESPEAK_ENGLISH.get(name),
            pitch=rng.randint(30, 70),
            rate=rng.randint(145, 195),
        )

    def speech_voice(self, rng: random.Random, split: str, *, mix: float = 0.0) -> Voice:
        """A voice for generic speech: the --tts backend; with espeak-ng, a `mix` share of flite/festival."""
        backend = self.tts
        if backend == "espeak-ng" and mix and self.extra_backends:
            x = rng.random()
            if x < mix * 0.9 and "flite" in self.extra_backends:  # festival is ~50x slower than espeak-ng
                backend = "flite"
            elif x < mix and "festival" in self.extra_backends:
                backend = "festival"
        if backend == "flite":
            name = rng.choice(FLITE_SPLIT[split])
            return Voice("flite", name, accent="American", rate=rng.randint(150, 195))
        if backend == "festival":
            name = rng.choice(FESTIVAL_SPLIT[split])
            return Voice("festival", name, accent="American", rate=rng.randint(150, 190))
        return self.espeak_voice(rng, split)

    def instruction_voice(self) -> TTSChoice:
        if self.tts == "espeak-ng":

            def espeak(rng: random.Random) -> Voice:
                name = rng.choice(INSTRUCTION_ACCENTS)
                variant = rng.choice(INSTRUCTION_VARIANTS)
                rate = round(DEFAULT_RATE * rng.choice(INSTRUCTION_SPEEDS))
                return Voice("espeak-ng", name, variant=variant, accent=ESPEAK_ENGLISH.get(name), rate=rate)

            return espeak
        names = FLITE_SPLIT["train"] if self.tts == "flite" else FESTIVAL_SPLIT["train"]
        backend = self.tts

        def pick(rng: random.Random) -> Voice:
            return Voice(backend, rng.choice(names), rate=round(175 * rng.choice(INSTRUCTION_SPEEDS)))

        return pick


def _label(text: str) -> str:
    """Word labels are written like the release's targets ("Male."); numeric ones stay bare ("75")."""
    return text if text.isdigit() else f"{text}."


def _cap(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


# One planner per task: (ctx, split, index, rng) -> (item fields, job). `split` is "train" or "eval".
PlanFn = Callable[[Context, str, int, random.Random], tuple[dict[str, Any], AudioJob]]


def _plan_asr(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    text = ctx.sentence(rng, split)
    voice = ctx.speech_voice(rng, split, mix=0.2)
    return {"source": None, "answer": text, "metadata": {"text": text}}, AudioJob("speech", text, voice)


def _en_us_voice(
    ctx: Context, rng: random.Random, split: str, rates: tuple[int, int], gap: int | None = None
) -> Voice:
    """The en-us espeak-ng voice whose phonemes PR and the pronunciation tasks are written in, with a
    variant of the split and a drawn pitch and rate."""
    variant, _ = ctx.variant(rng, split)
    return Voice(
        "espeak-ng",
        "en-us",
        variant=variant,
        accent="American",
        pitch=rng.randint(35, 65),
        rate=rng.randint(*rates),
        gap=gap,
    )


def _plan_pr(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    text = ctx.sentence(rng, split)
    voice = _en_us_voice(ctx, rng, split, (140, 185))
    ipa = phonemes(text, "en-us")
    return {"source": None, "answer": ipa, "metadata": {"text": text, "ipa_voice": "en-us"}}, AudioJob(
        "speech", text, voice
    )


def _plan_sgc(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    gender = ("Male", "Female")[i % 2]
    text = ctx.sentence(rng, split)
    flite = [v for v in FLITE_SPLIT[split] if FLITE_GENDER[v] == gender]
    if "flite" in ctx.extra_backends and flite and rng.random() < 0.15:
        voice = Voice("flite", rng.choice(flite), accent="American", rate=rng.randint(150, 195))
    else:
        variant, _ = ctx.variant(rng, split, gender)
        name = rng.choice(GENERAL_ACCENTS)
        voice = Voice(
            "espeak-ng",
            name,
            variant=variant,
            accent=ESPEAK_ENGLISH.get(name),
            pitch=rng.randint(35, 65),
            rate=rng.randint(145, 195),
        )
    fields = {
        "source": "VCTK",
        "answer": _label(gender),
        "labels": ("Male", "Female"),
        "metadata": {"text": text, "gender": gender},
    }
    return fields, AudioJob("speech", text, voice)


def _plan_ac(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    label = ("Teens", "Twenties", "Seventies")[i % 3]
    text = ctx.sentence(rng, split)
    name = rng.choice(("en-us", "en-gb", "en-gb-x-rp", "en-us-nyc"))
    if label == "Seventies":
        variant, pitch, rate = rng.choice(("grandma", "grandpa")), rng.randint(25, 45), rng.randint(120, 145)
    elif label == "Teens":
        variant, pitch, rate = ctx.variant(rng, split)[0], rng.randint(78, 95), rng.randint(185, 210)
    else:
        variant, pitch, rate = ctx.variant(rng, split)[0], rng.randint(40, 58), rng.randint(160, 180)
    voice = Voice("espeak-ng", name, variant=variant, pitch=pitch, rate=rate)
    fields = {
        "source": "Common Voice",
        "answer": _label(label),
        "labels": ("Teens", "Twenties", "Seventies"),
        "metadata": {"text": text, "age_proxy": label},
    }
    return fields, AudioJob("speech", text, voice)


def _plan_ar(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    label = tuple(AR_ACCENTS)[i % len(AR_ACCENTS)]
    name = rng.choice(AR_ACCENTS[label])
    text = ctx.sentence(rng, split)
    variant, _ = ctx.variant(rng, split)
    voice = Voice(
        "espeak-ng",
        name,
        variant=variant,
        accent=label,
        pitch=rng.randint(35, 65),
        rate=rng.randint(150, 190),
    )
    fields = {
        "source": "VCTK",
        "answer": _label(label),
        "labels": tuple(AR_ACCENTS),
        "metadata": {"text": text, "accent": label, "espeak_voice": name},
    }
    return fields, AudioJob("speech", text, voice)


def _plan_eie(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    label = tuple(EIE_LEVELS)[i % len(EIE_LEVELS)]
    level = round(EIE_LEVELS[label] + rng.uniform(-EIE_JITTER, EIE_JITTER), 2)
    text = ctx.sentence(rng, split)
    voice = ctx.speech_voice(rng, split)
    fields = {
        "source": "CREMA-D",
        "answer": _label(label),
        "labels": tuple(EIE_LEVELS),
        "metadata": {"text": text, "rms_dbfs": level, "level": label},
    }
    return fields, AudioJob("speech", text, voice, rms_db=level)


def _plan_sv(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    label = tuple(SV_SPEAKERS)[i % len(SV_SPEAKERS)]
    name, variant, pitch, rate = SV_SPEAKERS[label]
    text = ctx.sentence(rng, split)
    voice = Voice(
        "espeak-ng", name, variant=variant, pitch=pitch + rng.randint(-3, 3), rate=rate + rng.randint(-8, 8)
    )
    fields = {"source": "MELD", "answer": _label(label), "metadata": {"text": text, "speaker": label}}
    return fields, AudioJob("speech", text, voice)


def _note(
    ctx: Context, split: str, rng: random.Random, family: str | None = None, velocity: int | None = None
) -> tuple[AudioJob, dict[str, Any]]:
    fam = family or rng.choice(tuple(FAMILIES))
    lo, hi = FAMILIES[fam]
    choices = [m for m in range(lo, hi + 1) if _eval_midi(m) == (split == "eval")]
    midi = rng.choice(choices)
    vel = velocity or rng.choice(VELOCITIES)
    seconds = round(rng.uniform(1.0, 2.0), 2)
    job = AudioJob("note", note=(fam, midi, vel, seconds, rng.randrange(2**31)))
    return job, {"family": fam, "midi": midi, "velocity": vel, "note_seconds": seconds}


def _plan_pp(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    job, meta = _note(ctx, split, rng)
    return {"source": "NSynth", "answer": str(meta["midi"]), "metadata": meta}, job


def _plan_vc(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    job, meta = _note(ctx, split, rng, velocity=VELOCITIES[i % len(VELOCITIES)])
    return {"source": "NSynth", "answer": str(meta["velocity"]), "metadata": meta}, job


def _plan_ic(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    fams = tuple(FAMILIES)
    job, meta = _note(ctx, split, rng, family=fams[i % len(fams)])
    fields = {"source": "NSynth", "answer": _label(meta["family"]), "labels": fams, "metadata": meta}
    return fields, job


def _plan_scr(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    word = COMMAND_WORDS[i % len(COMMAND_WORDS)]
    voice = ctx.speech_voice(rng, split, mix=0.25)
    fields = {
        "source": "Speech Commands v2",
        "answer": _label(word),
        "labels": COMMAND_WORDS,
        "metadata": {"text": word.lower()},
    }
    return fields, AudioJob("speech", word.lower(), voice)


def _plan_slurp(task: str) -> PlanFn:
    def plan(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
        holder: dict[str, Any] = {}

        def draw() -> str:
            holder["req"] = slurp_request(rng)
            return str(holder["req"].text)

        text = ctx.fresh(split, draw)
        req = holder["req"]
        voice = ctx.speech_voice(rng, split)
        answer = req.intent if task == "IP" else req.annotated
        meta = {"text": text, "intent": req.intent, "annotated": req.annotated}
        return {"source": "SLURP", "answer": answer, "metadata": meta}, AudioJob("speech", text, voice)

    return plan


def _plan_aqa(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
    if rng.random() < 0.6:
        holder: dict[str, Any] = {}

        def draw() -> str:
            holder["q"] = arithmetic_question(rng)
            return "arith:" + str(holder["q"].key)

        ctx.fresh(split, draw)
        q = holder["q"]
        text, answer, kind = q.text, q.answer, "arithmetic"
    else:
        text, answer = rng.choice(ctx.facts_eval if split == "eval" else ctx.facts_train)
        kind = "fact"
    voice = ctx.speech_voice(rng, split)
    fields = {
        "source": None,
        "answer": answer,
        "text_input": text,
        "instruction": rng.choice(AQA_INSTRUCTIONS),
        "metadata": {"text": text, "question_kind": kind},
    }
    return fields, AudioJob("speech", text, voice)


def _mispronunciations(task: str, n: int, rng: random.Random) -> tuple[list[int], list[bool], int]:
    """For each of `n` words, the phonemes to replace and whether its stress moves; and the word gap in
    10 ms units. Word level (PSWL) draws errors word by word, sentence level (PSSL) spreads a drawn total
    over the sentence and slows it with a gap (its fluency score)."""
    if task == "PSWL":
        subs = [rng.choice((0, 0, 1, 2)) for _ in range(n)]
        moves = [rng.random() < 0.2 for _ in range(n)]
        return subs, moves, 0
    total_subs = rng.randint(0, 4)
    subs = [0] * n
    for _ in range(total_subs):
        subs[rng.randrange(n)] += 1
    n_moves = rng.randint(0, min(3, n))
    move_at = set(rng.sample(range(n), n_moves))
    moves = [k in move_at for k in range(n)]
    gap = rng.choice(tuple(GAP_FLUENCY))
    return subs, moves, gap


def _ps_answer(task: str, text: str, changes: Sequence[WordChange], gap: int) -> tuple[str, dict[str, Any]]:
    """The target as the release writes it (the transcript, then the scores), and the metadata of what the
    sentence-level scores were computed from."""
    if task == "PSWL":
        parts = []
        for c in changes:
            a, s, t = word_scores(c)
            parts.append(f'For "{c.word}", accuracy is {a}, stress is {s}, and total score is {t}.')
        return f"{text} " + " ".join(parts), {}
    n_subs = sum(c.substitutions for c in changes)
    n_moved = sum(c.stress_moved for c in changes)
    a, p, f, t = sentence_scores(n_subs, n_moved, gap)
    answer = f"{text} For the sentence: accuracy is {a}, prosodic is {p}, fluency is {f}, total score is {t}."
    return answer, {"substitutions": n_subs, "stress_moves": n_moved, "word_gap": gap}


def _plan_ps(task: str) -> PlanFn:
    def plan(ctx: Context, split: str, i: int, rng: random.Random) -> tuple[dict[str, Any], AudioJob]:
        espeak = EspeakBackend()
        text = ctx.fresh(split, lambda: short_sentence(rng, ctx.vocabulary))
        words = word_words(text)
        subs, moves, gap = _mispronunciations(task, len(words), rng)
        changes = [
            corrupt_word(w, espeak.mnemonics(w), s, m, rng)
            for w, s, m in zip(words, subs, moves, strict=True)
        ]
        voice = _en_us_voice(ctx, rng, split, (150, 185), gap=gap or None)
        spoken = " ".join(c.spoken for c in changes)
        answer, score_causes = _ps_answer(task, text, changes, gap)
        meta: dict[str, Any] = {
            "text": text,
            "phonemes_spoken": spoken,
            "phonemes_reference": " ".join(c.original for c in changes),
            "words": [
                {"word": c.word, "substitutions": c.substitutions, "stress_moved": c.stress_moved}
                for c in changes
            ],
            **score_causes,
        }
        fields = {"source": "speechocean762", "answer": answer, "metadata": meta}
        return fields, AudioJob("phonemes", spoken, voice)

    return plan


PLANNERS: dict[str, PlanFn] = {
    "ASR": _plan_asr,
    "PR": _plan_pr,
    "AQA": _plan_aqa,
    "SGC": _plan_sgc,
    "AC": _plan_ac,
    "AR": _plan_ar,
    "EIE": _plan_eie,
    "SV": _plan_sv,
    "PP": _plan_pp,
    "VC": _plan_vc,
    "IC": _plan_ic,
    "SCR": _plan_scr,
    "IP": _plan_slurp("IP"),
    "EE": _plan_slurp("EE"),
    "PSWL": _plan_ps("PSWL"),
    "PSSL": _plan_ps("PSSL"),
}


def _split_pool(
    items: Sequence[Any], rng: random.Random, eval_share: float
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    pool = list(items)
    rng.shuffle(pool)
    k = max(1, round(len(pool) * eval_share))
    return tuple(pool[:k]), tuple(pool[k:])


def plan_corpus(ctx: Context, tasks: Sequence[str] = TASKS) -> list[Planned]:
    """Every item of the corpus, eval first (so that training can avoid eval texts), in a fixed order."""
    ctx.free_eval, ctx.free_train = _split_pool(FREE_SENTENCES, ctx.rng("free"), 0.2)
    ctx.facts_eval, ctx.facts_train = _split_pool(FACTS, ctx.rng("facts"), 0.25)
    ctx.eval_texts.update(ctx.free_eval)
    ctx.eval_texts.update(q for q, _ in ctx.facts_eval)
    out: list[Planned] = []
    for task in tasks:
        strata = EVAL_STRATA.get(task, EVAL_STRATA["*"])
        rng = ctx.rng(task, "eval")
        for i in range(ctx.size.eval * len(strata)):
            # labels cycle within each stratum, so every configuration gets a balanced label mix
            fields, job = PLANNERS[task](ctx, "eval", i // len(strata), rng)
            item = _make_item(task, "eval", i, fields, job)
            out.append(Planned(item, job, strata[i % len(strata)], "eval"))
    for task in tasks:
        rng = ctx.rng(task, "train")
        ratios = TRAIN_RATIOS.get(task, TRAIN_RATIOS["*"])
        for i in range(ctx.size.train):
            fields, job = PLANNERS[task](ctx, "train", i, rng)
            item = _make_item(task, "train", i, fields, job)
            out.append(Planned(item, job, choose_modality(item, rng, ratios), "instruct"))
    if "ASR" in tasks:
        rng = ctx.rng("ASR", "align")
        for i in range(ctx.size.align):
            fields, job = PLANNERS["ASR"](ctx, "train", i, rng)
            item = _make_item("ASR", "align", i, fields, job)
            out.append(Planned(item, job, Modality.TEXT_AUDIO, "align"))
    return out


def _make_item(task: str, split: str, i: int, fields: dict[str, Any], job: AudioJob) -> Item:
    item_id = f"{task}-{split}-{i:05d}"
    meta = {"source": CORPUS, **fields.pop("metadata")}
    if fields.get("source"):
        meta["label_set"] = fields["source"]  # whose label set (and templates) the item uses
    if job.voice is not None:
        meta["speaker_voice"] = job.voice.to_metadata()
    return Item(
        id=item_id,
        task=task,
        audio=f"audio/{task}/{item_id}-{job.digest()}.wav",
        split="test" if split == "eval" else "train",
        metadata=meta,
        **fields,
    )


# Audio ------------------------------------------------------------------------------------------------------


def render_job(root: Path, rel: str, job: AudioJob) -> float:
    """Make one input clip unless it exists; returns its duration in seconds."""
    path = root / rel
    if path.exists():
        return wav_duration(path)
    if job.kind == "note":
        assert job.note is not None
        samples = render_note(*job.note)
        write_wav(path, samples, SAMPLE_RATE)
        return len(samples) / SAMPLE_RATE
    assert job.voice is not None
    backend = get_backend(job.voice.backend)
    text = f"[[{job.text}]]" if job.kind == "phonemes" else job.text
    samples = backend.render(text, job.voice)
    if job.rms_db is not None:
        rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
        samples = np.clip(samples * (10 ** (job.rms_db / 20) / max(rms, 1e-9)), -1.0, 1.0).astype(np.float32)
    write_wav(path, samples)
    return len(samples) / 16000


def _parallel(
    fn: Callable[[Any], Any], items: Sequence[Any], workers: int, desc: str, progress: bool
) -> list[Any]:
    """fn over items in a thread pool (the work is in subprocesses and numpy), results in input order;
    an exception is returned in place of its result."""
    results: list[Any] = [None] * len(items)

    def safe(i: int) -> tuple[int, Any]:
        try:
            return i, fn(items[i])
        except Exception as e:  # reported per item by the caller
            return i, e

    with progress_bar(desc=desc, unit="clip", total=len(items), disable=not progress) as bar:
        if workers <= 1:
            for i in range(len(items)):
                results[i] = safe(i)[1]
                bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for fut in as_completed([pool.submit(safe, i) for i in range(len(items))]):
                    i, res = fut.result()
                    results[i] = res
                    bar.update(1)
    return results


# Build ------------------------------------------------------------------------------------------------------


@dataclass
class SynthReport:
    out: str
    size: str
    seed: int
    tts: str
    free_share: float = FREE_SHARE
    records: dict[str, dict[str, dict[str, int]]] = field(
        default_factory=dict
    )  # section -> task -> modality -> n
    skipped: dict[str, int] = field(default_factory=dict)  # task -> items dropped
    skip_reasons: list[str] = field(default_factory=list)
    clips_made: int = 0
    clips_reused: int = 0
    audio_seconds_made: float = 0.0
    input_audio_seconds: float = 0.0
    files: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)  # plan / audio / compose / write / stats
    missing_backends: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    counts: dict[str, int] = field(default_factory=dict)  # the SizeSpec used (train / eval / align items)
    vocabulary: str = "full"

    @property
    def total_records(self) -> int:
        return sum(n for sec in self.records.values() for mods in sec.values() for n in mods.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "size": self.size,
            "seed": self.seed,
            "tts": self.tts,
            "free_share": self.free_share,
            "tasks": self.tasks,
            "counts": self.counts,
            "vocabulary": self.vocabulary,
            "total_records": self.total_records,
            "records": self.records,
            "skipped": self.skipped,
            "skip_reasons": self.skip_reasons[:50],
            "clips_made": self.clips_made,
            "clips_reused": self.clips_reused,
            "audio_seconds_made": round(self.audio_seconds_made, 2),
            "input_audio_seconds": round(self.input_audio_seconds, 2),
            "wall_seconds": round(self.wall_seconds, 2),
            "phase_seconds": {k: round(v, 2) for k, v in self.phase_seconds.items()},
            "missing_backends": self.missing_backends,
            "files": self.files,
        }


def build_synthetic_corpus(
    out: str | Path,
    *,
    size: str = "small",
    seed: int = 0,
    free_share: float = FREE_SHARE,
    workers: int = 2,
    tts: str = DEFAULT_BACKEND,
    tasks: Sequence[str] = TASKS,
    counts: Mapping[str, int] | None = None,
    vocabulary: str = "full",
    progress: bool = True,
    stats: bool = True,
    registry: Registry | None = None,
    log: Callable[[str], None] | None = None,
) -> SynthReport:
    """Build (or finish) the corpus under `out`; see the module docstring. `counts` overrides the size's
    items (`train`, `eval`, `align`: see `SizeSpec`). Raises `TTSError` when espeak-ng or the `tts` backend
    is not installed (the message names the Debian package)."""
    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    spec = size_spec(size, counts)
    unknown = [t for t in tasks if t not in PLANNERS]
    if unknown:
        raise ValueError(f"tasks not synthesizable: {', '.join(unknown)} (see NOT_COVERED)")
    if not tasks:
        raise ValueError("no tasks to synthesize")
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"unknown vocabulary {vocabulary!r}; choose one of {', '.join(VOCABULARIES)}")
    tts, extra, missing = _check_backends(tts, say)
    reg = registry or load_registry()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    report = SynthReport(
        str(root), size, seed, tts, free_share=free_share, missing_backends=missing, tasks=list(tasks)
    )
    report.counts = asdict(spec)
    report.vocabulary = vocabulary
    if not 0.0 <= free_share <= 1.0:
        raise ValueError(f"free_share must be between 0 and 1, got {free_share}")
    ctx = Context(
        seed=seed,
        size=spec,
        tts=tts,
        extra_backends=tuple(extra),
        free_share=free_share,
        vocabulary=vocabulary,
    )
    plan = plan_corpus(ctx, tasks)
    report.phase_seconds["plan"] = time.perf_counter() - t0
    say(f"planned {len(plan):,} items over {len(tasks)} tasks")

    t_audio = time.perf_counter()
    durations, failed = _render_inputs(root, plan, workers, progress, report)
    report.phase_seconds["audio"] = time.perf_counter() - t_audio
    t_compose = time.perf_counter()
    usable = _drop_failed(plan, durations, failed, report)
    records = _compose_records(usable, root, ctx, reg, workers, progress, report)
    report.phase_seconds["compose"] = time.perf_counter() - t_compose
    audio_wall = time.perf_counter() - t_audio
    _write_sections(root, _group_records(usable, records, report), report)
    report.wall_seconds = time.perf_counter() - t0
    say(
        f"wrote {report.total_records:,} records in {len(report.files)} files; "
        f"{report.clips_made:,} clips made ({report.audio_seconds_made:,.0f} s of input audio), "
        f"{report.clips_reused:,} reused; {sum(report.skipped.values())} items skipped; audio {audio_wall:.1f} s"
    )

    corpus_stats = None
    if stats:
        t_stats = time.perf_counter()
        corpus_stats = _write_stats(root, workers)
        report.phase_seconds["stats"] = time.perf_counter() - t_stats
    _write_card(root, report, ctx, corpus_stats)
    report.wall_seconds = time.perf_counter() - t0
    _write_report(root, report)
    return report


def _check_backends(tts: str, say: Callable[[str], None]) -> tuple[str, list[str], list[str]]:
    """(the `tts` backend's name, the extra backends installed, those missing). espeak-ng and `tts` must be
    installed (`TTSError` otherwise); flite and festival only add voices, so a missing one is a warning."""
    main = get_backend(tts)
    get_backend("espeak-ng").check()  # phonemes, accents and voice variants need it whatever --tts says
    main.check()
    extra, missing = [], []
    for name in ("flite", "festival"):
        be = get_backend(name)
        if be.available():
            extra.append(name)
        else:
            missing.append(name)
            say(
                f"warning: {be.program} not found, its voices are left out (sudo apt-get install {be.package})"
            )
    return main.name, extra, missing


def _render_inputs(
    root: Path, plan: Sequence[Planned], workers: int, progress: bool, report: SynthReport
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every distinct input clip made (or reused) in parallel: (seconds per clip path, or the exception it
    raised; {path: error} for the clips that failed)."""
    jobs: dict[str, AudioJob] = {}
    for p in plan:
        jobs.setdefault(p.item.audio, p.job)
    rels = list(jobs)
    existed = {r for r in rels if (root / r).exists()}
    durations = _parallel(
        lambda r: render_job(root, r, jobs[r]), rels, workers, "synthesizing audio", progress
    )
    failed: dict[str, str] = {}
    for r, d in zip(rels, durations, strict=True):
        if isinstance(d, Exception):
            failed[r] = f"{type(d).__name__}: {d}"
        elif r not in existed:
            report.clips_made += 1
            report.audio_seconds_made += d
        else:
            report.clips_reused += 1
    return dict(zip(rels, durations, strict=True)), failed


def _skip(report: SynthReport, item: Item, reason: str) -> None:
    report.skipped[item.task] = report.skipped.get(item.task, 0) + 1
    report.skip_reasons.append(f"{item.id}: {reason}")


def _drop_failed(
    plan: Sequence[Planned], durations: dict[str, Any], failed: dict[str, str], report: SynthReport
) -> list[Planned]:
    """The planned items whose clip was made, each with its duration in the metadata; the others skipped."""
    usable = []
    for p in plan:
        if p.item.audio in failed:
            _skip(report, p.item, failed[p.item.audio])
            continue
        p.item.metadata["duration"] = round(float(durations[p.item.audio]), 3)
        report.input_audio_seconds += float(durations[p.item.audio])
        usable.append(p)
    return usable


def _compose_records(
    usable: Sequence[Planned],
    root: Path,
    ctx: Context,
    reg: Registry,
    workers: int,
    progress: bool,
    report: SynthReport,
) -> list[Any]:
    """Each item's record in its configuration (spoken instructions and (a) clips made as needed), in
    parallel; a record that failed is its exception."""
    instruction_voice = ctx.instruction_voice()
    before = _count_files(root, ("tts", "concat"))

    def make(p: Planned) -> dict[str, Any]:
        return compose(
            p.item,
            p.modality,
            root=root,
            rng=ctx.rng("compose", p.item.id),
            registry=reg,
            tts=instruction_voice,
            max_instruction_words=MAX_INSTRUCTION_WORDS,
        )

    records = _parallel(make, usable, workers, "composing records", progress)
    report.clips_made += _count_files(root, ("tts", "concat")) - before
    return records


RecordGroups = dict[tuple[str, str, str], list[dict[str, Any]]]  # (section, configuration, task) -> records


def _group_records(usable: Sequence[Planned], records: Sequence[Any], report: SynthReport) -> RecordGroups:
    """Records by output file. An item whose TTS failed is skipped; any other exception is a bug: raised."""
    groups: RecordGroups = defaultdict(list)
    for p, rec in zip(usable, records, strict=True):
        if isinstance(rec, Exception):
            if not isinstance(rec, TTSError):
                raise rec
            _skip(report, p.item, f"{type(rec).__name__}: {rec}")
            continue
        groups[p.section, rec["modality"], p.item.task].append(rec)
    return groups


def _write_sections(root: Path, groups: RecordGroups, report: SynthReport) -> None:
    """`<section>/<configuration>/<TASK>_synth_{train,test}.json`, counted in the report."""
    for (section, mod, task), recs in sorted(groups.items()):
        suffix = "test" if section == "eval" else "train"
        path = root / section / mod / f"{task}_synth_{suffix}.json"
        write_records(path, recs)
        report.files.append(str(path.relative_to(root)))
        report.records.setdefault(section, {}).setdefault(task, {})[mod] = len(recs)


def _count_files(root: Path, dirs: Sequence[str]) -> int:
    return sum(1 for d in dirs if (root / d).is_dir() for _ in (root / d).glob("*.wav"))


def _write_stats(root: Path, workers: int) -> CorpusStats:
    parts = [root / s for s in ("align", "instruct", "eval") if (root / s).is_dir()]
    st = compute_stats(parts, audio_root=root, durations=True, workers=workers, progress=False)
    st.files = [str(Path(f).relative_to(root)) for f in st.files]
    (root / "stats").mkdir(exist_ok=True)
    write_bytes_atomic(
        root / "stats" / "stats.yaml", yaml.safe_dump(st.to_dict(), sort_keys=False, allow_unicode=True)
    )
    write_bytes_atomic(root / "stats" / "stats.txt", st.table() + "\n")
    try:
        draw_donut(st, root / "stats" / "donut.png", title="llaso synthetic corpus")
    except Exception as e:  # matplotlib missing or failing must not lose the corpus
        write_bytes_atomic(root / "stats" / "donut.txt", f"donut not drawn: {e}\n")
    return st


def _write_report(root: Path, report: SynthReport) -> None:
    write_bytes_atomic(
        root / "synth_report.yaml", yaml.safe_dump(report.to_dict(), sort_keys=False, allow_unicode=True)
    )


def _write_card(root: Path, report: SynthReport, ctx: Context, st: CorpusStats | None) -> None:
    """README.md: how the corpus was made, what each task's label really is, how train and eval are kept
    apart, and the counts."""
    lines = [*_card_intro(report, ctx), *_card_tasks(report), *_CARD_METHOD]
    if report.skipped:
        lines += ["## Skipped items", ""]
        lines += [
            f"* {t}: {n} item(s) (the TTS program failed on the text)"
            for t, n in sorted(report.skipped.items())
        ]
        lines.append("")
    if st is not None:
        lines += ["## Counts", "", "```", st.table(), "```", "", "![donut](stats/donut.png)", ""]
    write_bytes_atomic(root / "README.md", "\n".join(lines))


def synth_command(report: SynthReport) -> str:
    """The `llaso data synth` command line that makes this corpus (the output folder left out)."""
    cmd = f"llaso data synth --size {report.size} --seed {report.seed} --tts {report.tts}"
    cmd += f" --free-share {report.free_share}"
    if report.vocabulary != "full":
        cmd += f" --vocabulary {report.vocabulary}"
    if list(report.tasks) != list(TASKS):
        cmd += f" --tasks {','.join(report.tasks)}"
    base = asdict(SIZES[report.size])
    for k in ("train", "eval", "align"):
        if k in report.counts and report.counts[k] != base[k]:
            cmd += f" --{k}-items {report.counts[k]}"
    return cmd


def _card_intro(report: SynthReport, ctx: Context) -> list[str]:
    n_train = sum(
        n
        for sec in ("instruct", "align")
        for mods in report.records.get(sec, {}).values()
        for n in mods.values()
    )
    n_eval = sum(n for mods in report.records.get("eval", {}).values() for n in mods.values())
    return [
        "# llaso synthetic corpus",
        "",
        f"Made offline by `{synth_command(report)}`. "
        "Every clip is synthetic: speech from espeak-ng"
        + (", flite and festival" if ctx.extra_backends else "")
        + ", notes from additive synthesis. Every label is a fact about how its clip was made, so it is true by "
        "construction; where a label is only a proxy for what the task name promises, the table says so.",
        "",
        f"* records: {report.total_records:,} ({n_train:,} training, {n_eval:,} eval)",
        f"* input audio: {report.input_audio_seconds / 3600:.2f} h over the records' items; clips are 16 kHz mono PCM16",
        "* layout: `align/text_audio/` (ASR, stage 1), `instruct/{text_audio,audio_text,pure_audio}/` (stage 2), "
        "`eval/...` (test files), `audio/<TASK>/`, `tts/` (spoken instructions, named "
        "`{id}-{hash}_{accent}_{speed}_{k}.wav` as in the release), `concat/` (spoken instruction + 0.3 s + input)",
        "* record metadata: the text spoken, the speaker voice (backend, voice, variant, pitch, rate, gap), the "
        "instruction TTS voice, the note's family/MIDI/velocity, the scores' causes",
        "",
    ]


def _card_tasks(report: SynthReport) -> list[str]:
    lines = [
        "## Tasks covered",
        "",
        "| task | what the label really is | train | eval |",
        "|---|---|---|---|",
    ]
    for task in TASKS:
        tr = sum(report.records.get("instruct", {}).get(task, {}).values()) + sum(
            report.records.get("align", {}).get(task, {}).values()
        )
        ev = report.records.get("eval", {}).get(task, {})
        ev_s = ", ".join(f"{Modality(m).notation} {n}" for m, n in sorted(ev.items())) or "0"
        lines.append(f"| {task} | {COVERED[task]} | {tr:,} | {ev_s} |")
    return lines


_CARD_METHOD = [
    "",
    "## Not covered, and why",
    "",
    *[f"* **{t}**: {why}." for t, why in NOT_COVERED.items()],
    "",
    "## Train/eval separation",
    "",
    "* eval is stratified by task x modality configuration (same count in every stratum), seeded;",
    "* texts: no eval sentence, request or question appears in training (free sentences and facts are split "
    "as pools, templated texts are rejected from training when drawn for eval);",
    "* voices: espeak-ng variants m6, m7 and f5, flite `rms` and festival `ked_diphone` speak only eval items "
    "(SV speakers and AR accents are the labels, so they are shared; AC's grandma/grandpa too);",
    "* notes: MIDI pitches with midi % 7 == 3 are eval-only (PP, VC, IC).",
    "",
    "## Configurations",
    "",
    "Non-AQA tasks: 80% (t,a) text instruction + audio, 20% (a) spoken instruction joined to the input behind a "
    "generic prompt. AQA: a third each of (t,a), (a,t) (spoken instruction + question as text) and (a).",
    "",
]


# typed options ----------------------------------------------------------------------------------------------


@dataclass
class SynthOptions:
    """The settings of `build_synthetic_corpus` as one typed object (`llaso data synth` builds it)."""

    size: str = "small"  # a key of SIZES
    seed: int = 0
    free_share: float = FREE_SHARE
    workers: int = 2
    tts: str = DEFAULT_BACKEND
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    train_items: int | None = None  # training items per task (None: the size's)
    eval_items: int | None = None  # eval items per task and configuration (None: the size's)
    align_items: int | None = None  # stage-1 ASR items (None: the size's)
    vocabulary: str = "full"  # closed vocabulary of the templated sentences (content.VOCABULARIES)
    progress: bool = True
    stats: bool = True

    def counts(self) -> dict[str, int]:
        """The item counts given (None: the size's), as `size_spec` takes them."""
        given = {"train": self.train_items, "eval": self.eval_items, "align": self.align_items}
        return {k: v for k, v in given.items() if v is not None}


def synthesize(out: str | Path, opts: SynthOptions, log: Callable[[str], None] | None = None) -> SynthReport:
    """`build_synthetic_corpus` with its settings from `opts`."""
    return build_synthetic_corpus(
        out,
        size=opts.size,
        seed=opts.seed,
        free_share=opts.free_share,
        workers=opts.workers,
        tts=opts.tts,
        tasks=tuple(opts.tasks),
        counts=opts.counts(),
        vocabulary=opts.vocabulary,
        progress=opts.progress,
        stats=opts.stats,
        log=log,
    )
