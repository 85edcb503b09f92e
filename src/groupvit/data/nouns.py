"""Offline noun extraction for the multi-label prompts.

The official GroupViT code POS-tags captions with NLTK. NLTK's tagger data (and spaCy's models) cannot be
installed on the machines this project targets, so the default backend ("lexicon") needs only a packaged word
list: lemminflect's lexicon says which parts of speech a word CAN take, and a few context rules pick one.

Lexicon backend, per lower-cased word of the caption:
- function words, numbers, colour/size adjectives and spatial-relation words ("left", "above", "top") are never
  nouns: as prompts ("a photo of a left.") they only add noise;
- a word the lexicon knows only as a noun is a noun;
- a noun/verb word ("dogs", "ring", "sitting") is a verb after a pronoun, "to", an auxiliary or a modal, or when
  it is an -ing/-ed form that follows a noun ("dog sitting on"), or an -s form between a noun and a function
  word ("the dog runs to"); otherwise a noun;
- a noun/adjective word ("cross", "square") is a noun only at the head of its phrase, i.e. when the next word
  cannot be a noun ("a cross" yes, "a square table" no);
- a word the lexicon does not know is a noun (mostly names and rare nouns, which NLTK tags NNP/NN) unless its
  suffix marks an adverb/adjective/verb form (-ly, -ous, -ful, -ing, -ed, ...).
Nouns come back lemmatised to the singular ("dogs" -> "dog"), unique, in caption order.

Known limits: no real tagger, so garden-path sentences, verbs used as nouns after a subject ("the dog runs" is
handled, "people watch birds" keeps "watch", "dog toys on a table" loses "toy"), and words that are mostly adjectives but listed as nouns can go
wrong; compound nouns give both parts ("tennis ball" -> tennis, ball), as NLTK would. Unlike the official code,
verbs are never returned (its tag list includes VB*). The "nltk" backend (tags NN, NNS, NNP) is opt-in and only
works where NLTK and its tagger data are installed; it is never chosen silently, so results do not depend on
what happens to be installed.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

BACKENDS = ("lexicon", "nltk")

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")

_FUNCTION_WORDS = frozenset(
    """
    a an the this that these those some any each every no all both either neither another other such
    i me my mine you your yours he him his she her hers it its we us our ours they them their theirs
    myself yourself himself herself itself ourselves themselves one ones someone something anything nothing
    who whom whose which what where when why how there here
    and or but nor so yet if then than as because while though although
    of in on at by for with without from to into onto upon over under about against between among through
    during before after across along around off out up down within beside besides toward towards via per
    is are was were be been being am do does did done have has had having
    can could will would shall should may might must not very too also just only even still really quite
    zero two three four five six seven eight nine ten eleven twelve dozen hundred thousand many much
    more most few several lot lots
    """.split()
)

# Spatial relations and positions: the synthetic captions use them and they make no sense as prompts.
_RELATION_WORDS = frozenset(
    """
    left right top bottom middle center centre front back behind above below beneath next near far
    side corner edge upper lower inside outside
    """.split()
)

# Words the lexicon also lists as nouns but that captions use almost only as modifiers.
_MODIFIER_WORDS = frozenset(
    """
    red green blue yellow orange purple pink brown black white grey gray violet cyan magenta gold silver
    dark light bright pale small big large little tiny huge giant tall short long wide narrow thin thick
    old young new good bad best great nice beautiful pretty striped dotted plain textured other same
    """.split()
)

# After these, a noun/verb word reads as a verb.
_VERB_CONTEXT = frozenset(
    """
    to i you he she it we they who that which is are was were be been being am can could will would shall
    should may might must do does did not
    """.split()
)

_NON_NOUN_SUFFIXES = ("ly", "ous", "ful", "ive", "able", "ible", "less", "ish", "ing", "ed")


@lru_cache(maxsize=65536)
def _lexicon_pos(word: str) -> frozenset[str]:
    """Universal POS tags lemminflect's lexicon allows for `word` (empty when the word is unknown)."""
    import lemminflect

    return frozenset(lemminflect.getAllLemmas(word).keys())


@lru_cache(maxsize=65536)
def _singular(word: str) -> str:
    """The noun lemma of `word`: lemminflect for known words, plain English plural rules otherwise."""
    import lemminflect

    lemmas = lemminflect.getAllLemmas(word, upos="NOUN").get("NOUN")
    if lemmas:
        return lemmas[0]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def _can_be_noun(word: str) -> bool:
    if word in _FUNCTION_WORDS or word in _RELATION_WORDS or len(word) < 2:
        return False
    pos = _lexicon_pos(word)
    return "NOUN" in pos or "PROPN" in pos or (not pos and not word.endswith(_NON_NOUN_SUFFIXES))


def _is_noun(words: list[str], i: int) -> bool:
    word = words[i]
    if not _can_be_noun(word) or word in _MODIFIER_WORDS:
        return False
    pos = _lexicon_pos(word) - {"PROPN"}
    if not pos or pos == {"NOUN"}:
        return True
    prev = words[i - 1] if i > 0 else ""
    nxt = words[i + 1] if i + 1 < len(words) else ""
    if "ADJ" in pos and nxt and _can_be_noun(nxt):
        return False  # modifier inside a noun phrase
    if "VERB" in pos:
        if prev in _VERB_CONTEXT:
            return False
        after_noun = bool(prev) and _can_be_noun(prev) and prev not in _MODIFIER_WORDS
        if after_noun and word.endswith(("ing", "ed")):
            return False
        if after_noun and word.endswith("s") and nxt in _FUNCTION_WORDS:
            return False  # "the dog runs to ...": a 3rd-person verb after its subject
    return True


def _words(caption: str) -> list[str]:
    words = []
    for match in _WORD.finditer(caption):
        word = match.group(0).lower().strip("-'")
        if word.endswith("'s"):
            word = word[:-2]
        if word:
            words.append(word)
    return words


def extract_nouns_lexicon(caption: str) -> list[str]:
    """Nouns of `caption` by lexicon lookup and context rules (see the module docstring), singular, unique."""
    words = _words(caption)
    nouns = (_singular(w) for i, w in enumerate(words) if _is_noun(words, i))
    return list(dict.fromkeys(nouns))


def extract_nouns_nltk(caption: str) -> list[str]:
    """Nouns by NLTK's perceptron tagger (NN, NNS, NNP), singular, unique; needs NLTK's tagger data."""
    import nltk

    tagged = nltk.pos_tag(_WORD.findall(caption))
    nouns = (_singular(w.lower()) for w, tag in tagged if tag in ("NN", "NNS", "NNP"))
    return list(dict.fromkeys(n for n in nouns if n not in _RELATION_WORDS))


def get_noun_extractor(backend: str = "lexicon") -> Callable[[str], list[str]]:
    """The extractor for `data.noun_extractor`, checked up front so a missing package fails at build time."""
    if backend == "lexicon":
        try:
            import lemminflect  # noqa: F401
        except ImportError as exc:
            raise ImportError("noun_extractor 'lexicon' needs the lemminflect package (pip install lemminflect)") from exc
        return extract_nouns_lexicon
    if backend == "nltk":
        try:
            import nltk

            nltk.pos_tag(["a", "test"])
        except Exception as exc:  # ImportError or LookupError for the missing tagger data
            raise RuntimeError(
                "noun_extractor 'nltk' needs NLTK and its averaged perceptron tagger data; use 'lexicon' offline"
            ) from exc
        return extract_nouns_nltk
    raise ValueError(f"unknown noun extractor {backend!r}; choose one of {BACKENDS}")
