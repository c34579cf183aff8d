"""Seeded five-sentence stories over a small controlled vocabulary.

Each story type fills independent *slots* (a hero with name and gender, a helper,
objects, places, ...) and one boolean outcome ``ok``. Four prompt sentences set the
scene and state the outcome last (sentence 4); the ending follows from it:

    mia lost her red ball at the park / she looked for the red ball under every bench /
    mia asked her dad to help find the ball / her dad found the red ball in the tall grass
    -> mia was happy to have her red ball back

Every sentence names the hero or combines several slots, so that a sentence spoken in
a benchmark can be kept out of the training corpus without banning a whole story shape
(``split.py``).

For the spoken StoryCloze analogue every story also has a wrong ending with the same
characters and topic: mostly the ending of the *opposite outcome* (``kind="outcome"``:
a local contradiction a small LM can learn), sometimes the right ending about a
swapped entity (``kind="entity"``: the object, dish, place... of another story).
Pronouns always refer to the hero, so they agree with the hero's gender. Text is
lower-case without punctuation (SpiritLM's text format).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FEMALE = ("mia", "anna", "lily", "emma", "lucy", "sara", "nina", "ella", "rose", "kate", "amy", "jane")
MALE = ("tom", "sam", "ben", "max", "leo", "jack", "finn", "noah", "paul", "mark", "dan", "luke")
FAMILY = ("mom", "dad", "sister", "brother", "grandma", "grandpa", "aunt", "uncle")
COLORS = ("red", "blue", "green", "yellow", "black", "white", "brown", "pink")
OBJECTS = ("ball", "kite", "hat", "book", "key", "shoe", "doll", "bag", "cup", "coat", "scarf", "watch")
PLACES = ("park", "beach", "school", "market", "library", "garden", "zoo", "playground")
DAYS = ("monday", "friday", "saturday", "sunday")
PRONOUNS = {"female": ("she", "her", "her", "herself"), "male": ("he", "him", "his", "himself")}


@dataclass(frozen=True)
class Character:
    name: str
    gender: str  # "female" | "male"

    @property
    def pronouns(self) -> tuple[str, str, str, str]:
        """(subject, object, possessive, reflexive)."""
        return PRONOUNS[self.gender]


HEROES = tuple(Character(n, "female") for n in FEMALE) + tuple(Character(n, "male") for n in MALE)


@dataclass(frozen=True)
class Story:
    key: str  # "<stream><index>", e.g. "train000012"
    type: str
    hero: Character
    prompt: tuple[str, ...]  # four sentences
    ending: str  # the coherent fifth sentence
    wrong_ending: str  # same characters and topic, contradicts the story
    wrong_kind: str  # "outcome" | "entity"
    ok: bool  # the outcome stated in sentence 4 (the goal reached or not)

    @property
    def sentences(self) -> tuple[str, ...]:
        return self.prompt + (self.ending,)

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@dataclass(frozen=True)
class StoryType:
    name: str
    slots: dict[str, tuple[Any, ...]]  # independent domains; "ok" is the outcome
    entity: str  # the slot a wrong "entity" ending swaps
    prompt: Callable[[dict[str, Any]], list[str]]
    ending: Callable[[dict[str, Any]], str]

    def count(self) -> int:
        """Distinct stories of this type (every slot assignment gives a different text)."""
        return math.prod(len(d) for d in self.slots.values())


def _ctx(values: dict[str, Any]) -> dict[str, Any]:
    """Slot values plus the hero's name and pronouns, for the sentence templates."""
    hero: Character = values["hero"]
    subj, obj, poss, refl = hero.pronouns
    return {**values, "name": hero.name, "subj": subj, "obj": obj, "poss": poss, "refl": refl}


def _lost_prompt(v: dict[str, Any]) -> list[str]:
    c = _ctx(v)
    return [
        f"{c['name']} lost {c['poss']} {c['color']} {c['thing']} at the {c['place']}",
        f"{c['subj']} looked for the {c['color']} {c['thing']} {c['search']}",
        f"{c['name']} asked {c['poss']} {c['helper']} to help find the {c['thing']}",
        f"{c['poss']} {c['helper']} found the {c['color']} {c['thing']} {c['hide']}" if c["ok"]
        else f"they looked {c['hide']} but did not find the {c['color']} {c['thing']}",
    ]


def _lost_ending(v: dict[str, Any]) -> str:
    c = _ctx(v)
    if c["ok"]:
        return f"{c['name']} was happy to have {c['poss']} {c['color']} {c['thing']} back"
    return f"{c['name']} was sad that {c['poss']} {c['color']} {c['thing']} was gone"


def _weather_prompt(v: dict[str, Any]) -> list[str]:
    c = _ctx(v)
    dest, activity = c["trip"]
    pair = f"{c['name']} and {c['poss']} {c['helper']}"
    return [
        f"{pair} wanted to go to the {dest} on {c['day']}",
        f"{c['name']} packed {c['food']} for the trip to the {dest}",
        f"on {c['day']} morning {c['name']} saw that {c['sky'][0 if c['ok'] else 1]}",
        f"so {pair} went to the {dest} to {activity}" if c["ok"] else f"so {pair} stayed at home and ate the {c['food']}",
    ]


def _weather_ending(v: dict[str, Any]) -> str:
    c = _ctx(v)
    dest = c["trip"][0]
    if c["ok"]:
        return f"{c['name']} had a great day at the {dest} with {c['poss']} {c['helper']}"
    return f"{c['name']} and {c['poss']} {c['helper']} will go to the {dest} another day"


def _cooking_prompt(v: dict[str, Any]) -> list[str]:
    c = _ctx(v)
    alone = f" all by {c['refl']}" if c["alone"] else ""
    pair = f"{c['name']} and {c['poss']} {c['helper']}"
    return [
        f"{c['name']} wanted to bake a {c['dish']} for {c['poss']} {c['helper']}{alone}",
        f"{c['name']} mixed {c['mix']} for the {c['dish']}",
        f"then {pair} put the {c['dish']} in the oven for {c['minutes']} minutes",
        f"after {c['minutes']} minutes {c['name']} took the {c['dish']} out just in time" if c["ok"]
        else f"{c['name']} forgot the {c['dish']} and after {c['minutes']} minutes it got burnt",
    ]


def _cooking_ending(v: dict[str, Any]) -> str:
    c = _ctx(v)
    if c["ok"]:
        return f"{c['poss']} {c['helper']} told {c['name']} it was the best {c['dish']} ever"
    return f"{c['name']} and {c['poss']} {c['helper']} had to throw the burnt {c['dish']} away"


def _trip_prompt(v: dict[str, Any]) -> list[str]:
    c = _ctx(v)
    dest, sight = c["visit"]
    pair = f"{c['name']} and {c['poss']} {c['helper']}"
    return [
        f"{pair} took the {c['vehicle']} to the {dest}",
        f"on the way {c['name']} looked at the {c['scenery']} from the {c['vehicle']}",
        f"{c['name']} really wanted to show {c['poss']} {c['helper']} the {sight}",
        f"{pair} saw the {sight} at the {dest}" if c["ok"] else f"but the {dest} was closed when {pair} got there",
    ]


def _trip_ending(v: dict[str, Any]) -> str:
    c = _ctx(v)
    sight = c["visit"][1]
    if c["ok"]:
        return f"on the {c['vehicle']} home {c['name']} talked about the {sight}"
    return f"on the {c['vehicle']} home {c['name']} was sad not to see the {sight}"


def _gift_prompt(v: dict[str, Any]) -> list[str]:
    c = _ctx(v)
    return [
        f"{c['name']} knew that {c['poss']} {c['helper']} had a birthday on {c['day']}",
        f"{c['name']} saved coins for {c['weeks']} weeks to buy a gift for {c['poss']} {c['helper']}",
        f"{c['name']} bought a {c['color']} {c['gift']} at the shop",
        f"on {c['day']} {c['poss']} {c['helper']} opened the gift and smiled at {c['name']}" if c["ok"]
        else f"but on {c['day']} {c['name']} left the {c['gift']} on the bus",
    ]


def _gift_ending(v: dict[str, Any]) -> str:
    c = _ctx(v)
    if c["ok"]:
        return f"{c['poss']} {c['helper']} loved the {c['color']} {c['gift']}"
    return f"{c['name']} never saw the {c['color']} {c['gift']} again"


def _garden_prompt(v: dict[str, Any]) -> list[str]:
    c = _ctx(v)
    plant = c["plant"][0]
    pair = f"{c['name']} and {c['poss']} {c['helper']}"
    return [
        f"{pair} planted {plant} seeds in the garden",
        f"every {c['time']} {c['name']} gave the {plant} seeds some water",
        f"one {c['time']} {c['name']} saw a hungry {c['animal']} near the {plant} seeds",
        f"{pair} chased the {c['animal']} away" if c["ok"]
        else f"before {c['name']} could stop it the {c['animal']} ate the {plant} plants",
    ]


def _garden_ending(v: dict[str, Any]) -> str:
    c = _ctx(v)
    plant, plural = c["plant"]
    pair = f"{c['name']} and {c['poss']} {c['helper']}"
    return f"soon {pair} had lots of big {plural}" if c["ok"] else f"{pair} had to plant new {plant} seeds"


OK = (True, False)
SKIES = (("the sky was blue", "it started to rain"), ("the sun was shining", "dark clouds were coming"),
         ("it was warm and sunny", "it was cold and rainy"))
STORY_TYPES: dict[str, StoryType] = {t.name: t for t in [
    StoryType("lost", {
        "hero": HEROES, "thing": OBJECTS, "color": COLORS, "place": PLACES, "helper": FAMILY,
        "search": ("everywhere", "for a long time", "under every bench", "behind every tree"),
        "hide": ("under a big rock", "behind the old gate", "in the tall grass", "next to the fence"), "ok": OK,
    }, "thing", _lost_prompt, _lost_ending),
    StoryType("weather", {
        "hero": HEROES, "helper": FAMILY,
        "trip": (("beach", "swim in the sea"), ("lake", "catch some fish"), ("hills", "fly a kite"),
                 ("farm", "feed the horses"), ("park", "play ball"), ("forest", "pick berries")),
        "day": DAYS, "food": ("sandwiches", "apples", "cookies", "cheese"), "sky": SKIES, "ok": OK,
    }, "trip", _weather_prompt, _weather_ending),
    StoryType("cooking", {
        "hero": HEROES, "helper": FAMILY, "dish": ("cake", "pie", "pizza", "tart", "muffin"),
        "mix": ("flour and sugar", "eggs and milk", "butter and honey", "apples and cream", "nuts and flour", "milk and flour"),
        "minutes": ("ten", "twenty", "thirty", "forty"), "alone": (False, True), "ok": OK,
    }, "dish", _cooking_prompt, _cooking_ending),
    StoryType("trip", {
        "hero": HEROES, "helper": FAMILY, "vehicle": ("bus", "train", "boat", "tram"),
        "visit": (("zoo", "lions"), ("museum", "dinosaurs"), ("aquarium", "sharks"), ("circus", "clowns"),
                  ("farm", "horses"), ("harbor", "ships")),
        "scenery": ("hills", "fields", "river", "houses", "trees"), "ok": OK,
    }, "visit", _trip_prompt, _trip_ending),
    StoryType("gift", {
        "hero": HEROES, "helper": FAMILY, "gift": OBJECTS, "color": COLORS, "day": DAYS,
        "weeks": ("two", "three", "four", "five", "six"), "ok": OK,
    }, "gift", _gift_prompt, _gift_ending),
    StoryType("garden", {
        "hero": HEROES, "helper": FAMILY,
        "plant": (("tomato", "tomatoes"), ("bean", "beans"), ("carrot", "carrots"), ("pumpkin", "pumpkins"),
                  ("flower", "flowers"), ("pea", "peas")),
        "time": ("morning", "evening", "afternoon", "night"), "animal": ("rabbit", "goat", "deer", "crow"), "ok": OK,
    }, "plant", _garden_prompt, _garden_ending),
]}


def count_stories() -> int:
    """How many distinct stories the generator can tell (all types)."""
    return sum(t.count() for t in STORY_TYPES.values())


def make_story(kind: StoryType, values: dict[str, Any], key: str, wrong_kind: str, swap: Any = None) -> Story:
    """Render one story; ``swap`` is the entity value used by a wrong ``entity`` ending."""
    if wrong_kind == "outcome":
        wrong = kind.ending({**values, "ok": not values["ok"]})
    elif wrong_kind == "entity":
        if swap is None or swap == values[kind.entity]:
            raise ValueError(f"an entity ending needs another {kind.entity} than {values[kind.entity]!r}")
        wrong = kind.ending({**values, kind.entity: swap})
    else:
        raise ValueError(f"wrong_kind={wrong_kind!r}; use 'outcome' or 'entity'")
    prompt = tuple(kind.prompt(values))
    return Story(key, kind.name, values["hero"], prompt, kind.ending(values), wrong, wrong_kind, bool(values["ok"]))


# entity_share: entity swaps stayed at chance in calibration; docs/DISTILLATION.md, "How the demo was sized"
def story_at(seed: int, stream: str, index: int, entity_share: float = 0.25) -> Story:
    """The ``index``-th story of a named stream (e.g. "train", "bench"), a pure function of its arguments."""
    rng = random.Random(f"tinywave-story/{seed}/{stream}/{index}")
    kind = STORY_TYPES[rng.choice(sorted(STORY_TYPES))]
    values = {slot: rng.choice(domain) for slot, domain in kind.slots.items()}
    wrong_kind = "entity" if rng.random() < entity_share else "outcome"
    others = [x for x in kind.slots[kind.entity] if x != values[kind.entity]]
    return make_story(kind, values, f"{stream}{index:06d}", wrong_kind, rng.choice(others))


def vocabulary() -> set[str]:
    """Every word any story can use (prompts, endings, wrong endings)."""
    words: set[str] = set()
    for kind in STORY_TYPES.values():
        for slot, domain in kind.slots.items():
            for value in domain:
                for hero in (HEROES[0], HEROES[-1]):  # both genders: pronouns differ
                    for ok in OK:
                        values = {s: d[0] for s, d in kind.slots.items()}
                        values.update({"hero": hero, slot: value, "ok": ok})
                        for sentence in (*kind.prompt(values), kind.ending(values)):
                            words.update(sentence.split())
    return words
