"""How the catalog's search reads a query: synonyms and abbreviations, whole-word abbreviations, fuzz.

People type "电镜" for 电子显微镜, "XRD" for X射线衍射仪, "核磁" for 核磁共振波谱仪, and make the odd
homophone slip ("核磁共震"). Three rules, all expressed as ORM lookups so that SQLite and PostgreSQL
answer alike:

1. **Synonyms** are data (``data/search_synonyms.json``, beside the category table): each group
   names one thing; a query word containing any term of a group is also tried with each other term
   of that group in its place ("透射电镜" -> "透射电子显微镜", "TEM").
2. **Short Latin abbreviations** (SEM, TEM, IC, TG …) match as whole words only, so "TEM" does not
   find every "sysTEM" and "IC" not every "mICroscope".
3. **Fuzz**, only when the exact search finds nothing: a Chinese word of four or more characters
   matches where at least 60 % of its character pairs (bigrams) occur, which forgives one wrong or
   missing character ("扫描显微镜", "核磁共震").
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path

from django.db.models import Case, IntegerField, Q, Value, When
from django.db.models.functions import Coalesce

SYNONYMS_FILE = Path(__file__).with_name("data") / "search_synonyms.json"
MAX_WORDS = 8
MAX_WORD_LENGTH = 60
FUZZ_SHARE = 0.6
FUZZ_MIN_LENGTH = 4

_ABBREVIATION = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,5}")
_CJK = re.compile(r"[\u3400-\u9fff]")


@cache
def synonym_groups() -> tuple[tuple[str, ...], ...]:
    """The synonym groups from the data file, each term once, longest terms first within a group."""
    data = json.loads(SYNONYMS_FILE.read_text(encoding="utf-8"))
    return tuple(tuple(dict.fromkeys(term.strip() for term in group if term.strip())) for group in data["groups"])


def is_abbreviation(term: str) -> bool:
    """A short Latin token (SEM, ICP-MS, qPCR): matched as a whole word, never inside another."""
    return bool(_ABBREVIATION.fullmatch(term))


@cache
def known_abbreviations() -> frozenset[str]:
    """The short Latin terms of the synonym groups, case-folded: these match whole words only."""
    return frozenset(term.casefold() for group in synonym_groups() for term in group if is_abbreviation(term))


def words(text: str) -> list[str]:
    """The query's words: at most eight, each cut to a sane length."""
    return [word[:MAX_WORD_LENGTH] for word in text.split()[:MAX_WORDS]]


def _places(folded_word: str, term: str) -> list[int]:
    """Where a group's term stands in the word: anywhere, or between word boundaries for an abbreviation."""
    folded_term = term.casefold()
    if folded_term in known_abbreviations():
        pattern = rf"(?<![a-z0-9]){re.escape(folded_term)}(?![a-z0-9])"
        return [found.start() for found in re.finditer(pattern, folded_word)]
    at = folded_word.find(folded_term)
    return [] if at < 0 else [at]


def alternatives(word: str) -> list[str]:
    """The word and every spelling the synonym groups allow for it, the word itself first."""
    found = [word]
    folded = word.casefold()
    if len(folded) != len(word):  # a letter that folds to two (ß): positions would not line up
        folded = word
    for group in synonym_groups():
        for term in group:
            for at in _places(folded, term):
                found.extend(word[:at] + other + word[at + len(term):] for other in group if other != term)
    return list(dict.fromkeys(found))


def term_lookup(field: str, term: str) -> Q:
    """One field contains one term: a whole word for a known abbreviation, else anywhere."""
    if term.casefold() in known_abbreviations():
        return Q(**{f"{field}__iregex": rf"(^|[^a-z0-9]){re.escape(term.casefold())}([^a-z0-9]|$)"})
    return Q(**{f"{field}__icontains": term})


def word_match(word: str, fields: tuple[str, ...]) -> Q:
    """Any field contains the word or one of its synonyms."""
    match = Q()
    for term in alternatives(word):
        for field in fields:
            match |= term_lookup(field, term)
    return match


def bigrams(word: str) -> list[str]:
    return list(dict.fromkeys(word[i:i + 2] for i in range(len(word) - 1)))


def fuzzable(word: str) -> bool:
    """Chinese words long enough for one slip to leave most of their bigrams intact."""
    return len(word) >= FUZZ_MIN_LENGTH and bool(_CJK.search(word))


def fuzzy_score(word: str, fields: tuple[str, ...]):
    """How many of the word's bigrams occur in any field (an expression to annotate), and the bar."""
    pairs = bigrams(word)
    score = Value(0)
    for pair in pairs:
        anywhere = Q()
        for field in fields:
            anywhere |= Q(**{f"{field}__icontains": pair})
        score = score + Case(When(anywhere, then=Value(1)), default=Value(0), output_field=IntegerField())
    return Coalesce(score, Value(0)), math.ceil(FUZZ_SHARE * len(pairs))
