"""Names as people write them: the spellings of a query word that the keyword index actually holds.

Questions spell names differently from articles ("Szijjarto" for "Szijjártó", "Zelenskiy" for
"Zelensky"), and BM25 matches exact tokens only, so a query word that the index does not hold, or
that was written as a name (capitalized), is compared with the index's vocabulary: accents folded,
then a normalized edit-distance ratio (rapidfuzz, in C) of at least `MIN_SIMILARITY`. Its close
spellings join the query as extra terms. Short words are left alone: at four letters one edit is a
different word. A handful of abbreviations that BM25 would drop as stopwords or split into letters
("US", "U.S.", "UK", "EU", "UN") are spelled out. What it cannot do: transliterations that share
few letters ("Gulyás" and "Guiyash" are 62% alike), nicknames, or a name that is also a common word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

MIN_SIMILARITY = 84     # rapidfuzz ratio (0-100) between folded spellings; 83 joins "trump" and "trumps"
MIN_LENGTH = 5          # shorter names are not fuzzily matched
MIN_UNKNOWN = 7         # nor shorter words that are not names ("where" is not a misspelled "were")
MAX_SPELLINGS = 3       # close spellings added per query word

# Abbreviations that tokenizing loses ("us" is a stopword, "U.S." becomes letters): their words instead.
ABBREVIATIONS = {
    "US": "United States", "U.S.": "United States", "USA": "United States", "U.S.A.": "United States",
    "UK": "United Kingdom", "U.K.": "United Kingdom", "EU": "European Union", "E.U.": "European Union",
    "UN": "United Nations", "U.N.": "United Nations", "UAE": "United Arab Emirates",
}
_ABBREVIATION = re.compile(r"(?<![\w.])(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len,
                                                                                 reverse=True)) + r")(?![\w])")
_CAPITALIZED = re.compile(r"(?<=[^.!?\s]\s)[A-Z][\w'’-]+")  # after a word (not a sentence end) and a space


def fold(word: str) -> str:
    """Lowercase without accents: "Szijjártó" -> "szijjarto"."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def spell_out(text: str) -> str:
    """`text` with the known abbreviations followed by their words ("US" -> "US United States")."""
    return _ABBREVIATION.sub(lambda m: f"{m[1]} {ABBREVIATIONS[m[1]]}", text)


def written_as_names(text: str) -> list[str]:
    """Words capitalized inside a sentence (not its first word): what the writer meant as names."""
    return _CAPITALIZED.findall(text)


class Vocabulary:
    """The index's terms, folded once, for looking up close spellings of a query term."""

    def __init__(self, terms: Iterable[str]):
        self._terms = [t for t in terms if len(t) >= MIN_LENGTH - 1]
        self._folded = [fold(t) for t in self._terms]

    def spellings(self, term: str) -> list[str]:
        """Index terms spelled like `term` (itself excluded), closest first; none for short terms."""
        from rapidfuzz import fuzz, process

        folded = fold(term)
        if len(folded) < MIN_LENGTH:
            return []
        found = process.extract(folded, self._folded, scorer=fuzz.ratio, score_cutoff=MIN_SIMILARITY,
                                limit=MAX_SPELLINGS + 1)
        return [self._terms[i] for _, _, i in found if self._terms[i] != term][:MAX_SPELLINGS]


def expand(terms: Sequence[str], vocabulary: Vocabulary, fuzzy: set[str]) -> list[str]:
    """`terms` plus the close spellings of those in `fuzzy`, each term once."""
    out = list(dict.fromkeys(terms))
    for term in terms:
        if term in fuzzy:
            out += [s for s in vocabulary.spellings(term) if s not in out]
    return out
