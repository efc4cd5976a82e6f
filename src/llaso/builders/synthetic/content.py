"""Texts for the synthetic corpus: templated and free sentences, SLURP-style requests with intents and slots,
spoken arithmetic and fact questions. Everything is drawn from a `random.Random`, so a seed fixes it."""

from __future__ import annotations

import random
from dataclasses import dataclass

# ---- sentences ------------------------------------------------------------------------------------------

_NAMES = (
    "Anna", "Ben", "Clara", "David", "Emma", "Frank", "Grace", "Henry", "Iris", "Jack", "Laura", "Martin",
    "Nora", "Oscar", "Paula", "Ruth", "Simon", "Tina", "Victor", "Wendy",
)  # fmt: skip
_ADJ = (
    "old", "small", "green", "heavy", "quiet", "bright", "wooden", "broken", "warm", "empty", "famous", "yellow",
    "narrow", "clean", "strange", "golden",
)  # fmt: skip
_NOUNS = (
    "box", "lamp", "chair", "letter", "garden", "bottle", "window", "basket", "ticket", "coat", "river", "bridge",
    "kettle", "blanket", "mirror", "bicycle", "camera", "pencil", "carpet", "wagon",
)  # fmt: skip
_VERBS = (
    "found", "carried", "painted", "cleaned", "opened", "sold", "moved", "fixed", "washed", "borrowed",
    "dropped", "measured", "watched", "followed", "lifted",
)  # fmt: skip
_LOCATIONS = (
    "in the kitchen", "near the station", "by the river", "at the market", "behind the house", "on the hill",
    "in the garage", "at the school", "under the table", "next to the door",
)  # fmt: skip
_PLACES = (*_LOCATIONS, "after lunch", "before dinner", "last winter", "every morning", "on sunday")
_IMPERATIVES = ("bring", "open", "close", "check", "move", "clean", "paint", "find", "count", "wrap")
_NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve")
_PLURALS = ("apples", "chairs", "letters", "boxes", "candles", "books", "plates", "stones", "shirts", "keys")

_TEMPLATES = (
    "{name} {verb} the {adj} {noun} {place}.",
    "The {adj} {noun} was {loc}.",
    "Please {imp} the {adj} {noun} {place}.",
    "{name} and {name2} {verb} {num} {plural} {place}.",
    "We {verb} the {noun} and the {noun2} {place}.",
    "Did {name} {imp} the {adj} {noun}?",
    "{name} saw {num} {adj} {plural} {place}.",
    "The {noun} is {adj} but the {noun2} is {adj2}.",
)

FREE_SENTENCES = (
    "The sun came out after a long grey week.",
    "A cold wind blew across the open field.",
    "She keeps her keys in a small blue tin.",
    "The bus was late again this morning.",
    "He poured the tea and sat down by the fire.",
    "Nobody noticed the door was still open.",
    "The children laughed at the clever puppet.",
    "Fresh bread smells best early in the day.",
    "The old clock in the hall stopped at noon.",
    "They walked home slowly under the stars.",
    "Rain tapped softly on the kitchen window.",
    "The map showed a path along the coast.",
    "Our neighbour grows tomatoes on the roof.",
    "The library closes at six on Fridays.",
    "A yellow kite got stuck in the tall tree.",
    "He forgot his umbrella on the train.",
    "The soup needs a little more salt.",
    "Every spring the birds return to the lake.",
    "The paint on the fence is almost dry.",
    "She wrote the number on the back of her hand.",
    "The ship left the harbour before dawn.",
    "A quiet street is good for a long walk.",
    "The baker sold out of rolls by ten.",
    "We heard thunder far away in the hills.",
    "The cat slept all afternoon in the sun.",
    "His new shoes were a size too small.",
    "The river rose after three days of rain.",
    "They planted apple trees along the wall.",
    "The museum is free on the first Sunday.",
    "A small boat drifted toward the shore.",
    "The lights went out during the storm.",
    "Please speak a little louder next time.",
    "The orange juice was cold and sweet.",
    "My brother fixed the radio with a spoon.",
    "The meeting ended earlier than expected.",
    "The snow melted by the end of the week.",
    "She painted the door a bright shade of red.",
    "The dog waited patiently by the gate.",
    "The farmer counted the sheep twice.",
    "A long queue formed outside the cinema.",
    "The coffee shop opens at half past seven.",
    "The letter arrived three days too late.",
    "He learned to swim when he was six.",
    "The garden looks lovely in the evening.",
    "The train stopped in the middle of a field.",
    "We cooked dinner for twelve people.",
    "The wooden bridge creaked under our feet.",
    "The teacher wrote a question on the board.",
    "Two owls called to each other at night.",
    "The picnic was moved indoors because of rain.",
    "A strong smell of smoke filled the room.",
    "The pilot waved from the small plane.",
    "The market sells fish on Tuesday mornings.",
    "She found a coin under the sofa.",
    "The music was too loud to talk over.",
    "The road to the village is very narrow.",
    "He counted the stairs on the way up.",
    "The milk went sour in the summer heat.",
    "Leaves covered the path to the front door.",
    "The clock tower can be seen from the bay.",
)


# The closed vocabularies of the templated sentences: `full` uses every word of the lists above (about 135
# words), `small` the first few of each list (about 55 words). A smaller vocabulary gives each word more
# training examples: on 2 CPU cores an ASR stage of 40 steps of 8 reached loss 1.5 on `small` against 2.5 on
# `full` (BENCHMARKS.md, Demo).
VOCABULARIES = ("full", "small")
_SMALL = {"name": 5, "adj": 5, "noun": 5, "verb": 5, "loc": 3, "imp": 5, "num": 5, "plural": 5}


def _slots(vocabulary: str) -> dict[str, tuple[str, ...]]:
    lists = {
        "name": _NAMES,
        "adj": _ADJ,
        "noun": _NOUNS,
        "verb": _VERBS,
        "loc": _LOCATIONS,
        "imp": _IMPERATIVES,
        "num": _NUMBERS,
        "plural": _PLURALS,
    }
    if vocabulary == "small":
        lists = {k: v[: _SMALL[k]] for k, v in lists.items()}
    lists["place"] = _PLACES if vocabulary == "full" else (*lists["loc"], "after lunch", "before dinner")
    return lists


_VOCABULARY_SLOTS = {v: _slots(v) for v in VOCABULARIES}  # built once: a corpus draws thousands of sentences


def templated_sentence(rng: random.Random, vocabulary: str = "full") -> str:
    """A sentence from one of the templates, its slots drawn from the `vocabulary`'s word lists."""
    w = _VOCABULARY_SLOTS.get(vocabulary)
    if w is None:
        raise ValueError(f"unknown vocabulary {vocabulary!r}; choose one of {', '.join(VOCABULARIES)}")
    tpl = rng.choice(_TEMPLATES)
    name, name2 = rng.sample(w["name"], 2)
    noun, noun2 = rng.sample(w["noun"], 2)
    adj, adj2 = rng.sample(w["adj"], 2)
    text = tpl.format(
        name=name,
        name2=name2,
        noun=noun,
        noun2=noun2,
        adj=adj,
        adj2=adj2,
        verb=rng.choice(w["verb"]),
        place=rng.choice(w["place"]),
        loc=rng.choice(w["loc"]),
        imp=rng.choice(w["imp"]),
        num=rng.choice(w["num"]),
        plural=rng.choice(w["plural"]),
    )
    return text[0].upper() + text[1:]


def short_sentence(rng: random.Random, vocabulary: str = "full") -> str:
    """A templated sentence of at most 6 words (pronunciation scoring: few words, few scores)."""
    while True:
        s = templated_sentence(rng, vocabulary)
        if len(s.split()) <= 6:
            return s


# ---- numbers --------------------------------------------------------------------------------------------

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    """English words for 0 <= n < 1000 ("forty-two", "three hundred and five")."""
    if not 0 <= n < 1000:
        raise ValueError(n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        t, o = divmod(n, 10)
        return _TENS[t] + (f"-{_ONES[o]}" if o else "")
    h, rest = divmod(n, 100)
    return f"{_ONES[h]} hundred" + (f" and {number_words(rest)}" if rest else "")


# ---- spoken questions (AQA) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    kind: str  # "arithmetic" or "fact"
    key: str  # identity used to keep eval questions out of training


def arithmetic_question(rng: random.Random) -> Question:
    op = rng.choice(("plus", "minus", "times"))
    if op == "plus":
        a, b = rng.randint(0, 50), rng.randint(0, 50)
        c = a + b
    elif op == "minus":
        a = rng.randint(1, 60)
        b = rng.randint(0, a)
        c = a - b
    else:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        c = a * b
    wa, wb, wc = number_words(a), number_words(b), number_words(c)
    text = rng.choice(
        ("What is {a} {op} {b}?", "How much is {a} {op} {b}?", "Can you tell me what {a} {op} {b} is?")
    )
    answer = f"{wa.capitalize()} {op} {wb} is {wc}."
    return Question(text.format(a=wa, op=op, b=wb), answer, "arithmetic", f"{a} {op} {b}")


# Facts that do not change (checked by hand); question, answer.
FACTS = (
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("What is the capital of Spain?", "The capital of Spain is Madrid."),
    ("What is the capital of Egypt?", "The capital of Egypt is Cairo."),
    ("What is the capital of Canada?", "The capital of Canada is Ottawa."),
    ("What is the capital of Germany?", "The capital of Germany is Berlin."),
    ("What is the capital of Kenya?", "The capital of Kenya is Nairobi."),
    ("What is the capital of Norway?", "The capital of Norway is Oslo."),
    ("What is the capital of Greece?", "The capital of Greece is Athens."),
    ("How many days are there in a week?", "There are seven days in a week."),
    ("How many months are there in a year?", "There are twelve months in a year."),
    ("How many hours are there in a day?", "There are twenty-four hours in a day."),
    ("How many minutes are there in an hour?", "There are sixty minutes in an hour."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("How many legs does an insect have?", "An insect has six legs."),
    ("How many sides does a triangle have?", "A triangle has three sides."),
    ("How many sides does a hexagon have?", "A hexagon has six sides."),
    ("How many continents are there?", "There are seven continents."),
    ("What is the largest planet in the solar system?", "Jupiter is the largest planet in the solar system."),
    ("Which planet is closest to the sun?", "Mercury is the planet closest to the sun."),
    ("Which planet is known as the red planet?", "Mars is known as the red planet."),
    ("What do bees make?", "Bees make honey."),
    ("What is frozen water called?", "Frozen water is called ice."),
    (
        "At what temperature does water boil at sea level in Celsius?",
        "Water boils at one hundred degrees Celsius at sea level.",
    ),
    ("At what temperature does water freeze in Celsius?", "Water freezes at zero degrees Celsius."),
    ("What colour do you get by mixing blue and yellow?", "Mixing blue and yellow gives green."),
    ("What colour do you get by mixing red and white?", "Mixing red and white gives pink."),
    ("What gas do plants take in from the air?", "Plants take in carbon dioxide from the air."),
    ("What is the largest ocean on Earth?", "The Pacific is the largest ocean on Earth."),
    ("Which animal is known as the king of the jungle?", "The lion is known as the king of the jungle."),
    ("What is the opposite of hot?", "The opposite of hot is cold."),
    ("What is the opposite of early?", "The opposite of early is late."),
    ("What is the plural of mouse?", "The plural of mouse is mice."),
    ("What is the plural of child?", "The plural of child is children."),
    ("Which month comes after March?", "April comes after March."),
    ("Which day comes after Friday?", "Saturday comes after Friday."),
    ("Which month has the fewest days?", "February has the fewest days."),
    ("What do caterpillars turn into?", "Caterpillars turn into butterflies or moths."),
    ("What is the main language spoken in Brazil?", "The main language spoken in Brazil is Portuguese."),
    (
        "How many players are on a football team on the field?",
        "A football team has eleven players on the field.",
    ),
    ("What instrument has black and white keys?", "The piano has black and white keys."),
    ("What is the chemical formula of water?", "The chemical formula of water is H two O."),
    ("How many wheels does a bicycle have?", "A bicycle has two wheels."),
    ("What is the tallest animal in the world?", "The giraffe is the tallest animal in the world."),
    ("Which season comes after winter?", "Spring comes after winter."),
    ("How many strings does a standard guitar have?", "A standard guitar has six strings."),
    ("What is the freezing point of water in Fahrenheit?", "Water freezes at thirty-two degrees Fahrenheit."),
)

AQA_INSTRUCTIONS = (
    "Answer the question.",
    "Please answer this question.",
    "Give a short answer to the question.",
    "Answer the following question in one sentence.",
    "Reply to this question.",
    "Tell me the answer.",
)


# ---- SLURP-style requests (IP, EE) ---------------------------------------------------------------------

_SLOTS: dict[str, tuple[str, ...]] = {
    "time": (
        "seven am",
        "six thirty",
        "noon",
        "nine pm",
        "eight o'clock",
        "five fifteen",
        "ten am",
        "midnight",
    ),
    "date": (
        "tomorrow",
        "today",
        "on monday",
        "this friday",
        "next week",
        "on saturday",
        "tonight",
        "this weekend",
    ),
    "place_name": (
        "london",
        "paris",
        "boston",
        "the airport",
        "madrid",
        "tokyo",
        "the city centre",
        "berlin",
    ),
    "person": ("john", "sarah", "my mother", "peter", "alice", "the doctor", "tom", "my boss"),
    "event_name": ("meeting", "dentist appointment", "birthday party", "lunch", "team call", "yoga class"),
    "house_place": ("kitchen", "bedroom", "living room", "bathroom", "hallway", "office"),
    "coffee_type": ("latte", "cappuccino", "espresso", "flat white", "black coffee"),
    "food_type": ("pizza", "pasta", "sushi", "curry", "pancakes", "burger"),
    "music_genre": ("jazz", "rock", "classical", "pop", "blues", "country"),
    "news_topic": ("sports", "business", "science", "weather", "technology"),
    "list_name": ("shopping", "to do", "grocery", "packing"),
    "color_type": ("blue", "red", "green", "warm white", "purple"),
}

# intent (as the registry spells it) -> templates; slots as {type}
SLURP_TEMPLATES: dict[str, tuple[str, ...]] = {
    "Alarm set": (
        "wake me up at {time} {date}",
        "set an alarm for {time}",
        "please set an alarm {date} at {time}",
    ),
    "Alarm query": ("what alarms do i have {date}", "is there an alarm set for {time}"),
    "Alarm remove": ("cancel my {time} alarm", "remove the alarm for {date}"),
    "Weather query": (
        "what is the weather like in {place_name} {date}",
        "will it rain {date}",
        "how cold is it in {place_name}",
    ),
    "Calendar set": (
        "remind me about the {event_name} with {person} {date}",
        "schedule a {event_name} {date} at {time}",
    ),
    "Calendar query": ("what is on my calendar {date}", "when is my {event_name}"),
    "Play music": ("play some {music_genre} music", "put on {music_genre} in the {house_place}"),
    "Audio volume up": ("turn the volume up", "make it louder please"),
    "Audio volume mute": ("mute the speakers", "be quiet for a while"),
    "Iot hue lightoff": ("turn off the lights in the {house_place}", "switch the {house_place} lights off"),
    "Iot hue lightchange": (
        "make the lights {color_type}",
        "change the {house_place} lights to {color_type}",
    ),
    "Iot coffee": ("make me a {coffee_type}", "i would like a {coffee_type} please"),
    "Transport taxi": ("book a taxi to {place_name} at {time}", "get me a cab to {place_name}"),
    "Transport ticket": ("buy a train ticket to {place_name} for {date}", "book me a ticket to {place_name}"),
    "Datetime query": ("what time is it in {place_name}", "what is the date {date}"),
    "Email sendemail": ("send an email to {person} about the {event_name}", "email {person} that i am late"),
    "Takeaway order": ("order a {food_type} for delivery", "i want to order {food_type} {date}"),
    "News query": ("what is the latest {news_topic} news", "tell me the {news_topic} headlines"),
    "Lists createoradd": ("add milk to my {list_name} list", "create a new {list_name} list"),
    "Cooking recipe": ("how do i make {food_type}", "give me a recipe for {food_type}"),
    "General joke": ("tell me a joke", "say something funny"),
}


@dataclass(frozen=True)
class Request:
    text: str  # the utterance, lower case as in SLURP
    intent: str
    annotated: str  # the utterance with [slot : value] spans (the EE answer)


def slurp_request(rng: random.Random) -> Request:
    intent = rng.choice(sorted(SLURP_TEMPLATES))
    tpl = rng.choice(SLURP_TEMPLATES[intent])
    words, annotated = [], []
    for part in tpl.split():
        if part.startswith("{") and part.endswith("}"):
            slot = part[1:-1]
            value = rng.choice(_SLOTS[slot])
            words.append(value)
            annotated.append(f"[{slot} : {value}]")
        else:
            words.append(part)
            annotated.append(part)
    return Request(" ".join(words), intent, " ".join(annotated))


# Speech Commands v2 core keywords (a subset of the registry's 35 labels: short prompts, distinct words)
COMMAND_WORDS = ("Yes", "No", "Up", "Down", "Left", "Right", "On", "Off", "Stop", "Go")
