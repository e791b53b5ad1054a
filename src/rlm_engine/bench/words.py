"""Word lists and prose for the generators: small, fixed, and free of any real dataset."""

from __future__ import annotations

import random

ADJECTIVES = (
    "amber",
    "brisk",
    "calm",
    "dusty",
    "eager",
    "faint",
    "gentle",
    "hollow",
    "icy",
    "jolly",
    "keen",
    "lucid",
    "mellow",
    "nimble",
    "odd",
    "proud",
    "quiet",
    "rapid",
    "silent",
    "tidy",
    "upbeat",
    "vivid",
    "wary",
    "young",
    "zesty",
    "bold",
    "crisp",
    "dim",
    "elder",
    "fierce",
)
NOUNS = (
    "anchor",
    "badger",
    "candle",
    "dagger",
    "engine",
    "falcon",
    "garden",
    "harbor",
    "island",
    "jacket",
    "kettle",
    "lantern",
    "meadow",
    "needle",
    "orchid",
    "pepper",
    "quarry",
    "rocket",
    "saddle",
    "tunnel",
    "umbrella",
    "violin",
    "walrus",
    "yarrow",
    "zephyr",
    "bottle",
    "cactus",
    "dolphin",
    "ember",
    "fossil",
)
FIRST_NAMES = (
    "Maren",
    "Tobias",
    "Ines",
    "Kofi",
    "Lena",
    "Arjun",
    "Sofia",
    "Emeka",
    "Hana",
    "Dmitri",
    "Yara",
    "Paulo",
    "Greta",
    "Nadia",
    "Omar",
    "Priya",
    "Rafael",
    "Signe",
    "Tariq",
    "Vera",
    "Wen",
    "Zola",
    "Bruno",
    "Clara",
    "Dario",
    "Elif",
    "Farid",
    "Gwen",
    "Hugo",
    "Ilse",
)
LAST_NAMES = (
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Haddad",
    "Kowalski",
    "Ferreira",
    "Nakamura",
    "Osei",
    "Petrov",
    "Quispe",
    "Rossi",
    "Schmidt",
    "Takahashi",
    "Usman",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zapata",
    "Abbott",
    "Brandt",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fontaine",
    "Galli",
    "Horvat",
    "Ivanova",
    "Jensen",
)
SYLLABLES = (
    "ar",
    "bel",
    "cor",
    "dun",
    "el",
    "fal",
    "gar",
    "hol",
    "ith",
    "jor",
    "kel",
    "lor",
    "mar",
    "nor",
    "ost",
    "pel",
    "quen",
    "ros",
    "sel",
    "tor",
    "ul",
    "ven",
    "wyn",
    "yor",
    "zan",
)
TOPICS = (
    "rivers",
    "markets",
    "bridges",
    "harvests",
    "libraries",
    "railways",
    "festivals",
    "observatories",
    "orchards",
    "lighthouses",
    "glaciers",
    "workshops",
    "archives",
    "ferries",
)
VERBS = (
    "shape",
    "reveal",
    "connect",
    "outlast",
    "reward",
    "challenge",
    "explain",
    "transform",
    "follow",
    "mirror",
    "test",
    "shelter",
    "inspire",
    "divide",
)

NOISE_PASSAGE = (
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
)


def pick(rng: random.Random, words: tuple[str, ...]) -> str:
    """One word, drawn with ``rng``."""
    return words[rng.randrange(len(words))]


def place_name(rng: random.Random) -> str:
    """A made-up place name of two or three syllables."""
    parts = [pick(rng, SYLLABLES) for _ in range(rng.choice((2, 3)))]
    return "".join(parts).capitalize()


def essay_sentence(rng: random.Random) -> str:
    """One sentence of essay-like prose with no digits (so needles stand apart)."""
    forms = (
        "Most people who study {t} find that small habits {v} the work more than talent.",
        "The history of {t} shows how {a} ideas {v} the people who hold them.",
        "If you want to understand {t}, watch how a {a} {n} changes over a long winter.",
        "Nobody plans to {v} {t}, yet every {a} generation ends up doing it anyway.",
        "A {a} {n} is a useful picture of how {t} {v} whatever surrounds them.",
        "Writers keep returning to {t} because the subject refuses to stay {a}.",
    )
    return pick(rng, forms).format(
        t=pick(rng, TOPICS), v=pick(rng, VERBS), a=pick(rng, ADJECTIVES), n=pick(rng, NOUNS)
    )


def essay_paragraph(rng: random.Random, sentences: int = 4) -> str:
    """A paragraph of ``essay_sentence`` on one line."""
    return " ".join(essay_sentence(rng) for _ in range(sentences))
