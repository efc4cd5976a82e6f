"""The LLaSO record as one typed object: the data contract every part of `llaso` shares.

A record on disk is a LLaVA-style dict, as the original release writes them::

    {"id": ..., "voice": ["a/b.wav"], "conversations": [{"from": "human", "value": "...<audio>"},
                                                        {"from": "gpt", "value": "..."}],
     "metadata": {...}, "answer": "..."}

`Sample.from_record` accepts every spelling the published files use (`meta-data`, a string `voice`,
`answer`/`result`/`prediction`) and `Sample.to_record` writes the record back with the same keys, so
reading and re-writing a file loses nothing.
"""

from __future__ import annotations

import enum
import functools
import math
import re
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

AUDIO_PLACEHOLDER = "<audio>"
HUMAN_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant")
PREDICTION_KEYS = ("answer", "result", "prediction")
METADATA_KEYS = ("metadata", "meta-data")
ID_KEYS = ("id", "index")
# Containers inside containers that a record may have. LLaSO records nest four deep (record, conversations,
# turn, a turn's extra fields); far deeper input is damage or an attack, and it would exhaust Python's
# recursion limit in the decoder, the encoder or any code that walks the record.
MAX_DEPTH = 64

# A string decoded from JSON holds a code point in this range only from an unpaired `\uD800`-`\uDFFF`
# escape (a valid pair becomes one character): it is not text, it cannot be written as UTF-8, and the
# tokenizers refuse it.
_SURROGATE = re.compile("[\ud800-\udfff]")
_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlevel = 60, 60, 3


class SampleError(ValueError):
    """A record that does not follow the LLaSO schema."""


class RecordProblem(NamedTuple):
    """A problem of a readable record; `code` is one of `llaso data validate`'s problem codes."""

    code: str
    message: str


class Modality(enum.StrEnum):
    """The three modality configurations of LLaSO: text instruction + audio input, spoken instruction +
    text input, and pure audio (the instruction spoken, or a generic prompt).

    Values are the release's sub-folder names, so a folder name is also a valid modality.
    """

    TEXT_AUDIO = "text_audio"  # (t,a): text instruction + audio input
    AUDIO_TEXT = "audio_text"  # (a,t): spoken instruction + text input
    PURE_AUDIO = "pure_audio"  # (a): instruction and input both in the audio

    @property
    def notation(self) -> str:
        return {"text_audio": "(t,a)", "audio_text": "(a,t)", "pure_audio": "(a)"}[self.value]

    @classmethod
    def parse(cls, value: str) -> Modality:
        """Accept the folder name, the paper notation "(t,a)" or a bare "t,a"."""
        v = value.strip().lower().replace(" ", "")
        aliases = {
            "(t,a)": cls.TEXT_AUDIO,
            "t,a": cls.TEXT_AUDIO,
            "ta": cls.TEXT_AUDIO,
            "(a,t)": cls.AUDIO_TEXT,
            "a,t": cls.AUDIO_TEXT,
            "at": cls.AUDIO_TEXT,
            "(a)": cls.PURE_AUDIO,
            "a": cls.PURE_AUDIO,
            "pure": cls.PURE_AUDIO,
        }
        if v in aliases:
            return aliases[v]
        try:
            return cls(v)
        except ValueError:
            raise SampleError(
                f"unknown modality {value!r}; expected one of text_audio (t,a), audio_text (a,t), pure_audio (a)"
            ) from None


def lone_surrogate(text: str) -> str | None:
    """The first unpaired surrogate of `text`, escaped (`\\udc80`), or None."""
    if text.isascii():  # the common case, answered without a scan
        return None
    m = _SURROGATE.search(text)
    return None if m is None else f"\\u{ord(m.group()):04x}"


def json_value_problem(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Why `value` (a decoded record) is not plain JSON text that every tool reads alike, or None: containers
    nested deeper than `max_depth`, a string or key holding an unpaired surrogate, a float that is NaN or
    infinite. Walks the value without recursion, so any depth is safe to check."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            bad = lone_surrogate(v)
            if bad is not None:
                return f"a string holds an unpaired surrogate {bad}, which is not text"
        elif isinstance(v, dict | list):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            items = v.values() if isinstance(v, dict) else v
            stack.extend((x, depth + 1) for x in items)
            if isinstance(v, dict):
                stack.extend((k, depth) for k in v if isinstance(k, str))
        elif isinstance(v, float) and not math.isfinite(v):
            return f"{v!r} is not a JSON number"
    return None


def _show(value: Any) -> str:
    """A short repr for messages: bounded in length and depth, whatever the value."""
    return _short.repr(value)


def _text(value: str, what: str, *args: object) -> str:
    """`value`, refused (SampleError) if it holds an unpaired surrogate; `what.format(*args)` names the
    field (formatted only then: this runs for every string of every record)."""
    if not value.isascii():
        bad = lone_surrogate(value)
        if bad is not None:
            raise SampleError(f"{what.format(*args)} holds an unpaired surrogate {bad}, which is not text")
    return value


def infer_modality(human_text: str, generic_prompts: Iterable[str] = ()) -> Modality:
    """The modality configuration implied by where `<audio>` stands in the human turn.

    * `<audio>` first, text after it: (a,t), the audio is the instruction and the text the input;
    * nothing but `<audio>`, or one of the registry's generic pure-audio prompts before it: (a);
    * any other text before `<audio>`: (t,a), a text instruction about an audio input.

    A generic prompt cannot be told from a short text instruction by its words alone ("Identify the command
    in this audio." is (t,a)), so other generic prompts are recognized only through the file's folder or
    suffix (`Registry.modality_hint`) or an explicit `modality` field.
    """
    if AUDIO_PLACEHOLDER not in human_text:
        raise SampleError("the human turn has no <audio> placeholder, so it has no modality configuration")
    before, _, after = human_text.partition(AUDIO_PLACEHOLDER)
    before, rest = before.strip(), after.replace(AUDIO_PLACEHOLDER, "").strip()
    if not before:
        return Modality.AUDIO_TEXT if rest else Modality.PURE_AUDIO
    if not rest and _norm_prompt(before) in _known_prompts(tuple(generic_prompts)):
        return Modality.PURE_AUDIO
    return Modality.TEXT_AUDIO


@functools.lru_cache(maxsize=8)
def _known_prompts(prompts: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_norm_prompt(p) for p in prompts)


def _norm_prompt(text: str) -> str:
    return " ".join(text.replace(AUDIO_PLACEHOLDER, " ").lower().split())


def normalize_audio_path(path: str) -> str:
    """Windows separators in the release (`CremaD/Audio\\1049.wav`) become forward slashes."""
    return path.replace("\\", "/")


@dataclass(slots=True)
class Turn:
    role: str
    value: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_human(self) -> bool:
        return self.role in HUMAN_ROLES

    @property
    def is_assistant(self) -> bool:
        return self.role in ASSISTANT_ROLES

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.role, "value": self.value, **self.extra}


@dataclass(slots=True)
class Sample:
    """One LLaSO record. Unknown fields are kept in `extra` and written back unchanged."""

    conversations: list[Turn]
    voice: list[str] = field(default_factory=list)
    id: str | int | None = None
    metadata: dict[str, Any] | list[Any] | None = None
    task: str | None = None
    modality: Modality | None = None  # explicit field only; see `effective_modality`
    prediction: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # How the record spelled things, so that `to_record` writes it back the same way.
    _keys: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _order: list[str] = field(default_factory=list, repr=False, compare=False)
    # A prediction that was not a string (a number, a list), written back as it was while unchanged.
    _raw_prediction: Any = field(default=None, repr=False, compare=False)

    # ---- reading -------------------------------------------------------------------------------
    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Sample:
        # Written for speed as well as clarity: `llaso data merge/validate` call this once per record.
        if type(rec) is not dict and not isinstance(rec, Mapping):  # the exact-type test is the fast path
            raise SampleError(f"a record must be a JSON object, got {type(rec).__name__}")
        keys: dict[str, str] = {}
        rest = dict(rec)
        pop = rest.pop

        if "conversations" not in rest:
            raise SampleError("missing 'conversations'")
        convs = _parse_conversations(pop("conversations"))

        voice_raw = pop("voice", None)
        if voice_raw is None:
            voice: list[str] = []
            if "voice" in rec:
                keys["voice_form"] = "null"
        elif type(voice_raw) is list and all(type(v) is str for v in voice_raw):
            voice = voice_raw
            for i, v in enumerate(voice):
                _text(v, "voice[{}]", i)
        elif isinstance(voice_raw, str):
            voice, keys["voice_form"] = [_text(voice_raw, "'voice'")], "str"
        else:
            raise SampleError(f"'voice' must be a path or a list of paths, got {_show(voice_raw)}")

        sid = None
        k = "id" if "id" in rest else "index" if "index" in rest else None
        if k is not None:
            keys["id"] = k
            sid = pop(k)
            if type(sid) is str:
                _text(sid, "'{}'", k)
            elif type(sid) is not int:  # bool is not an id
                raise SampleError(f"'{k}' must be a string or an integer, got {_show(sid)}")

        meta = None
        k = "metadata" if "metadata" in rest else "meta-data" if "meta-data" in rest else None
        if k is not None:
            keys["metadata"] = k
            meta = pop(k)

        pred = raw_pred = None
        k = next((k for k in PREDICTION_KEYS if k in rest), None) if len(rest) else None
        if k is not None:
            keys["prediction"] = k
            pred = pop(k)
            if pred is not None and not isinstance(pred, str):
                raw_pred = pred
                pred = _scalar_text(pred, k)
            if pred is not None:
                _text(pred, "'{}'", k)

        task = pop("task", None)
        if task is not None and not isinstance(task, str):
            raise SampleError(f"'task' must be a string, got {_show(task)}")
        modality = None
        mod_raw = pop("modality", None)
        if mod_raw is not None:
            if not isinstance(mod_raw, str):
                raise SampleError(f"'modality' must be a string, got {_show(mod_raw)}")
            modality = Modality.parse(mod_raw)
            keys["modality_raw"] = mod_raw

        return cls(
            conversations=convs,
            voice=voice,
            id=sid,
            metadata=meta,
            task=task,
            modality=modality,
            prediction=pred,
            extra=rest,
            _keys=keys,
            _order=list(rec),
            _raw_prediction=raw_pred,
        )

    # ---- writing -------------------------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        """The record as a dict, with the field names and forms it was read with."""
        k = self._keys
        values: dict[str, Any] = dict(self.extra)
        values["conversations"] = [t.to_dict() for t in self.conversations]
        if self.voice or "voice" in self._order:
            form = k.get("voice_form")
            if form == "str" and len(self.voice) == 1:
                values["voice"] = self.voice[0]
            else:
                values["voice"] = None if form == "null" and not self.voice else self.voice
        if self.id is not None:
            values[k.get("id", "id")] = self.id
        if self.metadata is not None or k.get("metadata"):
            values[k.get("metadata", "metadata")] = self.metadata
        if self.prediction is not None or k.get("prediction"):
            raw_pred = self._raw_prediction
            unchanged = raw_pred is not None and self.prediction == str(raw_pred)
            values[k.get("prediction", "answer")] = raw_pred if unchanged else self.prediction
        if self.task is not None or "task" in self._order:  # an explicit null stays
            values["task"] = self.task
        if self.modality is not None:
            raw = k.get("modality_raw")
            same = raw is not None and Modality.parse(raw) == self.modality
            values["modality"] = raw if same else self.modality.value
        elif "modality" in self._order:
            values["modality"] = None
        # original key order first, then anything new
        out = {key: values[key] for key in self._order if key in values}
        out.update((key, v) for key, v in values.items() if key not in out)
        return out

    # ---- views ---------------------------------------------------------------------------------
    @property
    def human_text(self) -> str:
        for t in self.conversations:
            if t.is_human:
                return t.value
        raise SampleError("no human turn")

    @property
    def reference(self) -> str | None:
        """The first assistant turn: the ground truth of a single-turn sample."""
        for t in self.conversations:
            if t.is_assistant:
                return t.value
        return None

    @property
    def n_placeholders(self) -> int:
        return sum(t.value.count(AUDIO_PLACEHOLDER) for t in self.conversations if t.role in HUMAN_ROLES)

    @property
    def audio_paths(self) -> list[str]:
        return [normalize_audio_path(v) for v in self.voice]

    def effective_modality(
        self, hint: Modality | None = None, generic_prompts: Iterable[str] = ()
    ) -> Modality:
        """The explicit `modality` field wins, then a hint (the file's folder or name), then the text."""
        if self.modality is not None:
            return self.modality
        if hint is not None:
            return hint
        return infer_modality(self.human_text, generic_prompts)

    def problems(self) -> list[RecordProblem]:
        """Schema problems that do not stop the record from being read (see `llaso data validate`)."""
        out = []
        roles = {t.role for t in self.conversations}
        if roles.isdisjoint(HUMAN_ROLES):
            out.append(RecordProblem("no-human-turn", "no human turn"))
        if roles.isdisjoint(ASSISTANT_ROLES):
            out.append(RecordProblem("no-gpt-turn", "no assistant (gpt) turn"))
        n = self.n_placeholders
        if n != len(self.voice):
            out.append(
                RecordProblem(
                    "placeholder-mismatch", f"{n} <audio> placeholder(s) but {len(self.voice)} voice path(s)"
                )
            )
        if not all(v.strip() for v in self.voice):
            out.append(RecordProblem("empty-voice-path", "empty voice path"))
        return out


def _scalar_text(value: Any, key: str) -> str:
    """A non-string prediction as text: a number or a bool as Python writes it, a list or an object as
    its repr, as far as that is bounded (a prediction nested too deep to print is refused)."""
    try:
        return str(value)
    except RecursionError:
        raise SampleError(f"'{key}' is nested too deep to read as text") from None


def _parse_conversations(raw: Any) -> list[Turn]:
    if not isinstance(raw, list) or not raw:
        raise SampleError("'conversations' must be a non-empty list of turns")
    turns = []
    for i, t in enumerate(raw):
        if type(t) is not dict and not isinstance(t, Mapping):
            raise SampleError(f"conversations[{i}] must be an object with 'from' and 'value'")
        role, value = t.get("from"), t.get("value")
        if type(role) is not str:
            raise SampleError(f"conversations[{i}] has no 'from' role")
        if type(value) is not str:
            raise SampleError(f"conversations[{i}] ('{role}') has no string 'value'")
        _text(role, "conversations[{}] 'from'", i)
        _text(value, "conversations[{}] ('{}') 'value'", i, role)
        extra = {k: v for k, v in t.items() if k != "from" and k != "value"} if len(t) > 2 else {}
        turns.append(Turn(role, value, extra))
    return turns
