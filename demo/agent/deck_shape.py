"""The shape of the deck a request asks for, and how a saved deck differs from it.

`parse_request` reads the shape with a small parser (slide count, bullets per slide, topic words, whether a
web search was asked, whether it is a deck at all); `ask_model` asks the model the same as JSON and
`extract` merges the two. `problems` compares a deck's (title, bullets) list with a shape and says what
differs in words the model can act on; the agent's final-answer check and the benchmark's judge both use it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from demo.agent.prompts import EXAMPLE_TITLES

NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
           "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a pair of": 2, "a single": 1}
_NUM = r"\b(\d{1,2}|" + "|".join(sorted(NUMBERS, key=len, reverse=True)) + r")"
_DECK = re.compile(r"\b(slides?|slide ?deck|decks?|presentations?|power ?points?|pptx|slideshows?)\b", re.I)
# "three-slide", "5 slides", "two short slides", "a deck of 4 slides", "slides: 4"
_SLIDES = [re.compile(_NUM + r"(?:[\s-]+(?:short|content|simple|brief|main))?[\s-]+slides?\b", re.I),
           re.compile(r"\bslides?\s*[:=]\s*" + _NUM, re.I),
           re.compile(r"\b(?:deck|presentation) (?:of|with) " + _NUM + r"\b(?! bullet| point)", re.I)]
# "3 bullets", "two bullet points", "three short points each", "2-3 bullets" (the lower end counts)
_BULLETS = re.compile(_NUM + r"(?:\s*(?:-|to|or)\s*" + _NUM.replace("(", "(?:", 1) + ")?"
                      r"(?:[\s-]+(?:short|key|main|brief|concise))?[\s-]+"
                      r"(?:bullet(?:[\s-]?points?)?s?|points?|items?|tips?)\b(?! slide)", re.I)
# "search the web", "look up", "do a web search"; a bare "search" only where a sentence starts with it
_SEARCH = re.compile(r"\b(?:web[\s-]?search|search(?:ing)? (?:the web|online|the internet|the net|first)|"
                     r"(?:look|looking) (?:it |them |this |that )?up|look online|internet search|online search|"
                     r"research online|google)\b|(?:^|[.;!?]\s*)search(?:ing)?\b", re.I)
_WORD = re.compile(r"[a-z][a-z0-9+#.-]*[a-z0-9+#]|[a-z]", re.I)
# Words that describe the deck or the request rather than its subject.
_NOT_TOPIC = set("""a an the and or of for on in to with about into by at as from that this these those it its is
are be was were will can should must your you me my our we their them they each per every any all some first
then also please make create build write prepare produce put give present presenting show design draft generate
deck decks slide slides slideshow presentation presentations powerpoint pptx bullet bullets point points item
items tip tips short brief concise simple main key title titles page pages one two three four five six seven
eight nine ten online look up find results result using use based new
introduce introducing introduction intro overview summary summarize summarise explain explaining explains
covering cover covers list listing describe describing outline outlining quick least most exactly just
different distinct separate each whole plus kind sort way ways something things thing some more less what how
why when where which who whom then need needs should have has had do does did get go i let lets like works
work together latest recent news facts fact basics basic few several quick there here""".split())
# Titles a small model copies from a template or from the prompt's example deck instead of writing its own.
PLACEHOLDER_TITLES = ("slide title", "title 1", "title here")
_SUFFIXES = ("ations", "ation", "ings", "ing", "ions", "ion", "ies", "es", "s", "ed", "y")


def _number(text: str) -> int:
    return int(text) if text.isdigit() else NUMBERS[text.lower()]


def stem(word: str) -> str:
    """A crude stem for topic matching: 'comprehensions' and 'comprehension' share 'comprehens'."""
    word = word.lower().strip(".-")
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


@dataclass(frozen=True)
class DeckShape:
    """What a request asks for. None means "not asked": any count passes."""

    deck: bool = True
    slides: int | None = None  # exact number of slides
    bullets: int | None = None  # at least this many bullets on every slide
    topic: tuple[str, ...] = ()  # any one of these (by stem) must appear in the deck
    search: bool = False  # a web search was asked for first
    source: str = "parser"  # parser, model or parser+model

    def requirements(self) -> str:
        """The asked shape as one sentence for the model."""
        parts = [f"exactly {self.slides} slide{'s' if self.slides != 1 else ''}"] if self.slides else []
        parts.append("each slide with its own title")
        if self.bullets:
            parts.append(f"at least {self.bullets} bullet{'s' if self.bullets != 1 else ''} on every slide")
        return "The deck needs " + ", ".join(parts) + "."

    def summary(self) -> str:
        """The shape in a few words, for the trace."""
        if not self.deck:
            return "not a deck: a plain answer"
        parts = [f"{self.slides} slides" if self.slides else "any number of slides",
                 f"at least {self.bullets} bullets each" if self.bullets else "any number of bullets"]
        if self.topic:
            parts.append("topic: " + ", ".join(self.topic[:6]))
        if self.search:
            parts.append("web search first")
        return f"a deck ({self.source}): " + "; ".join(parts)


def topic_words(text: str) -> tuple[str, ...]:
    words = [w.lower() for w in _WORD.findall(text)]
    out = []
    for w in words:
        if w not in _NOT_TOPIC and not w.isdigit() and len(w) >= 3 and w not in out:
            out.append(w)
    return tuple(out)


def parse_request(text: str) -> DeckShape:
    """The shape of the deck in a request, read with regular expressions."""
    deck = bool(_DECK.search(text))
    slides = None
    for pattern in _SLIDES:
        m = pattern.search(text)
        if m:
            slides = _number(m.group(1))
            break
    m = _BULLETS.search(text)
    bullets = _number(m.group(1)) if m else None
    search = bool(_SEARCH.search(text))
    # the topic is what the request names besides the shape (and the search's wording)
    subject = _SEARCH.sub(" ", text)
    for pattern in (*_SLIDES, _BULLETS):
        subject = pattern.sub(" ", subject)
    return DeckShape(deck=deck, slides=slides, bullets=bullets, topic=topic_words(subject), search=search)


# ---------------------------------------------------------------- the model's reading of the request

SHAPE_PROMPT = """Read a request and describe the slide deck it asks for as one JSON object with these keys:
"deck": true if it asks for slides, a deck or a presentation, else false;
"slides": the number of slides asked for, or null if no number is given;
"bullets": the number of bullet points asked for on each slide, or null if no number is given;
"search": true if it asks to search the web first, else false;
"topic": a list of one to four words naming the subject.
Answer with the JSON object only."""


def shape_messages(request: str) -> list:
    from smolagents.models import ChatMessage, MessageRole

    return [ChatMessage(role=MessageRole.SYSTEM, content=[{"type": "text", "text": SHAPE_PROMPT}]),
            ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": request}])]


def parse_model_reply(reply: str) -> DeckShape | None:
    """The shape in a model's JSON reply, or None when the reply holds no usable JSON object."""
    start, end = reply.find("{"), reply.rfind("}")
    if start == -1 or end <= start:
        return None
    try:
        got = json.loads(reply[start: end + 1])
    except ValueError:
        return None
    if not isinstance(got, dict):
        return None

    def count(key, top):
        v = got.get(key)
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        return v if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= top else None

    topic = got.get("topic")
    topic = [topic] if isinstance(topic, str) else topic if isinstance(topic, list) else []
    words = topic_words(" ".join(str(t) for t in topic))
    return DeckShape(deck=got.get("deck") is not False, slides=count("slides", 20), bullets=count("bullets", 10),
                     topic=words, search=got.get("search") is True, source="model")


def ask_model(model, request: str) -> DeckShape | None:
    """The model's reading of the request (a smolagents Model), or None when its reply is unusable."""
    try:
        reply = model.generate(shape_messages(request), stop_sequences=None)
    except Exception:  # a reading we can do without; the parser's stands
        return None
    return parse_model_reply(reply.content if isinstance(reply.content, str) else str(reply.content))


def merge(parsed: DeckShape, asked: DeckShape | None) -> DeckShape:
    """The parser's explicit numbers win (they were written in the request); the model fills what the parser
    did not find, and its topic words widen the topic."""
    if asked is None:
        return parsed
    return DeckShape(deck=parsed.deck or asked.deck, slides=parsed.slides or asked.slides,
                     bullets=parsed.bullets or asked.bullets,
                     topic=tuple(dict.fromkeys((*parsed.topic, *asked.topic))),
                     search=parsed.search or asked.search, source="parser+model")


def extract(request: str, model=None) -> DeckShape:
    """The shape from the parser, merged with the model's reading when a model is given."""
    parsed = parse_request(request)
    return merge(parsed, ask_model(model, request)) if model is not None else parsed


# ---------------------------------------------------------------- comparing a deck with the shape

def on_topic(shape: DeckShape, text: str) -> bool:
    text = text.lower()
    return not shape.topic or any(stem(w) in text for w in shape.topic)


def problems(shape: DeckShape, deck: list[tuple[str, list[str]]]) -> list[str]:
    """What differs between a deck ((title, bullet lines) per slide) and the shape, one sentence each."""
    out = []
    if not deck:
        return ["the deck has no slides: add one slide per (title, bullets) entry"]
    if shape.slides and len(deck) != shape.slides:
        n, fix = len(deck), abs(len(deck) - shape.slides)
        how = (f"add {fix} more (title, bullets) entr{'y' if fix == 1 else 'ies'} on other sides of the topic"
               if n < shape.slides else f"remove the last {fix} entr{'y' if fix == 1 else 'ies'}")
        out.append(f"the deck has {n} slides but the task asks for exactly {shape.slides}: {how}, so the slides "
                   f"list holds {shape.slides} entries")
    untitled = [i for i, (t, _) in enumerate(deck, 1) if not t.strip()]
    if untitled:
        out.append(f"slide {', '.join(map(str, untitled))} has no title: set slide.shapes.title.text")
    seen: dict[str, int] = {}
    for i, (t, _) in enumerate(deck, 1):
        key = " ".join(t.lower().split())
        if key and key in seen:
            out.append(f"slides {seen[key]} and {i} have the same title {t.strip()!r}: give slide {i} a new title "
                       f"and new bullets on another side of the topic")
        seen.setdefault(key, i)
    examples = {e.lower() for e in EXAMPLE_TITLES}
    copied = [(i, t.strip()) for i, (t, _) in enumerate(deck, 1)
              if any(p in t.lower() for p in PLACEHOLDER_TITLES) or t.strip().lower() in examples]
    if copied:
        about = f" about {' '.join(shape.topic[:3])}" if shape.topic else " about the task's topic"
        out.append("the slide titles " + ", ".join(f"{t!r} (slide {i})" for i, t in copied) + " come from the "
                   f"example: write your own title{about} for " + ", ".join(f"slide {i}" for i, _ in copied))
    need = shape.bullets or 1
    thin = [(i, len(b)) for i, (_, b) in enumerate(deck, 1) if len(b) < need]
    if thin:
        which = ", ".join(f"slide {i} has {n}" for i, n in thin)
        out.append(f"every slide needs at least {need} bullet{'s' if need > 1 else ''}, but {which}: add "
                   f"bullets to those entries")
    text = " ".join(f"{t} {' '.join(b)}" for t, b in deck)
    if not on_topic(shape, text):
        out.append(f"the deck does not mention the task's topic ({', '.join(shape.topic[:5])}): write about it")
    return out


def verdict(shape: DeckShape, deck: list[tuple[str, list[str]]]) -> str:
    """One line for the user: whether the deck matches what the request asked for."""
    found = problems(shape, deck)
    asked = ", ".join(p for p in (f"{shape.slides} slides" if shape.slides else "",
                                  f"at least {shape.bullets} bullets each" if shape.bullets else "") if p)
    if not found:
        return f"✅ the deck matches the request ({asked or 'titled, distinct slides with bullets'})"
    return "⚠️ the deck differs from the request: " + "; ".join(found)


def describe(found: list[str]) -> str:
    """The problems as one observation for the model."""
    return ("The saved deck does not match the task yet: " + "; ".join(found) +
            ". Fix the slides list, save the deck again with prs.save('deck.pptx'), then call final_answer.")

