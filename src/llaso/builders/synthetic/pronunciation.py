"""Controlled mispronunciations for pronunciation scoring (PSWL, PSSL).

espeak-ng writes a word's phonemes as ASCII mnemonics (`-x`: "kitchen" -> `k'ItS@n`) and speaks them back
from phoneme input (`[[k'ItS@n]]`). Here a word's mnemonics are cut into phonemes, some phonemes are replaced
by a confusable one (a consonant or vowel a learner might use instead: `T`->`s`, `I`->`i:`, ...), and the
primary stress can be moved to another vowel. The scores are a fixed function of how many such changes were
made, so they are true by construction, but they are not human ratings: see `word_scores`/`sentence_scores`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# espeak-ng English phoneme names of more than one character, longest first
_MULTI = (
    "aI@", "aU@", "i@3", "eI", "aI", "aU", "oU", "OI", "i@", "e@", "U@", "A@", "O@", "3:", "i:", "u:", "A:",
    "O:", "tS", "dZ", "@L", "@2", "@5", "I2", "I#", "a#", "0#", "aa", "r-",
)  # fmt: skip
VOWELS = frozenset(
    ("aI@", "aU@", "i@3", "eI", "aI", "aU", "oU", "OI", "i@", "e@", "U@", "A@", "O@", "3:", "i:", "u:", "A:",
     "O:", "@L", "@2", "@5", "I2", "I#", "a#", "0#", "aa", "@", "3", "I", "E", "a", "V", "0", "U", "i", "u", "O", "A")
)  # fmt: skip
# phoneme -> a confusable replacement (all are English phonemes of espeak-ng)
SUBSTITUTIONS = {
    "s": "S", "S": "s", "T": "s", "D": "d", "r": "l", "l": "r", "v": "b", "b": "v", "w": "v", "z": "s",
    "p": "b", "t": "d", "d": "t", "k": "g", "g": "k", "f": "p", "n": "m", "m": "n", "N": "n", "tS": "S",
    "dZ": "Z", "I": "i:", "i:": "I", "E": "a", "a": "E", "V": "0", "0": "V", "U": "u:", "u:": "U", "eI": "E",
    "aI": "eI", "oU": "O:", "3:": "A:", "A:": "V", "i": "I",
}  # fmt: skip
STRESS = ("'", ",")


def tokenize(mnemonics: str) -> list[str]:
    """A word's mnemonics as phonemes and stress marks: `k'ItS@n` -> [k, ', I, tS, @, n]."""
    out, i = [], 0
    while i < len(mnemonics):
        for m in _MULTI:
            if mnemonics.startswith(m, i):
                out.append(m)
                i += len(m)
                break
        else:
            out.append(mnemonics[i])
            i += 1
    return out


@dataclass(frozen=True)
class WordChange:
    word: str
    original: str  # espeak-ng mnemonics
    spoken: str  # what is spoken
    substitutions: int
    stress_moved: bool


def corrupt_word(word: str, mnemonics: str, n_subs: int, move_stress: bool, rng: random.Random) -> WordChange:
    """Replace up to `n_subs` phonemes (distinct positions) and optionally move the primary stress."""
    toks = tokenize(mnemonics)
    positions = [i for i, t in enumerate(toks) if t in SUBSTITUTIONS]
    chosen = sorted(rng.sample(positions, min(n_subs, len(positions))))
    for i in chosen:
        toks[i] = SUBSTITUTIONS[toks[i]]
    moved = False
    if move_stress:
        vowels = [i for i, t in enumerate(toks) if t in VOWELS]
        if "'" in toks and len(vowels) >= 2:
            stressed = toks.index("'")
            was = next((k for k, v in enumerate(vowels) if v > stressed), 0)  # which vowel carried it
            target = rng.choice([k for k in range(len(vowels)) if k != was])
            toks = [t for t in toks if t not in STRESS]
            toks.insert([i for i, t in enumerate(toks) if t in VOWELS][target], "'")
            moved = True
    return WordChange(word, mnemonics, "".join(toks), len(chosen), moved)


def word_scores(change: WordChange) -> tuple[int, int, int]:
    """(accuracy, stress, total) of one word: accuracy 10/7/4 for 0/1/2 substituted phonemes, stress 10, or 4
    when the primary stress was moved, total = round((2 * accuracy + stress) / 3)."""
    accuracy = max(1, 10 - 3 * change.substitutions)
    stress = 4 if change.stress_moved else 10
    return accuracy, stress, round((2 * accuracy + stress) / 3)


# fluency from the extra pause between words (espeak-ng -g, 10 ms units): halting speech scores lower
GAP_FLUENCY = {0: 10, 10: 8, 20: 6, 35: 4}


def sentence_scores(substitutions: int, stress_moves: int, gap: int) -> tuple[int, int, int, int]:
    """(accuracy, prosodic, fluency, total) of a sentence: accuracy 10 - 2 per substituted phoneme, prosodic
    10 - 2 per word whose stress was moved, fluency from the word gap, total = their rounded mean (min 1)."""
    accuracy = max(1, 10 - 2 * substitutions)
    prosodic = max(1, 10 - 2 * stress_moves)
    fluency = GAP_FLUENCY[gap]
    return accuracy, prosodic, fluency, round((accuracy + prosodic + fluency) / 3)


def word_words(sentence: str) -> list[str]:
    """The words of a sentence as the scores name them: lower case, punctuation stripped."""
    return [w.strip(".,?!;:").lower() for w in sentence.split() if w.strip(".,?!;:")]
