"""Does a piece of evidence say what a sentence says? Lexical matching of words, numbers and names.

The checks are lexical on purpose: fast, explainable, and aimed at what small models get wrong most
often (a detail from nowhere, a number or a name that the cited sentence does not hold). Names are
matched the way people write them: without accents ("Orbán" = "Orban"), as acronyms ("US" = "U.S." =
"United States", "ICC" = "International Criminal Court"), as the country for its adjective
("Estonian" ~ "Estonia") and with a typo's tolerance ("Szijarto" ~ "Szijjarto").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from index.keyword import stemmer as _stemmer

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Words and dotted abbreviations ("U.S."), for finding runs of capitalised words ("New York City").
_TOKEN = re.compile(r"(?:[A-Z]\.){2,}|[\w'’-]+")
_JOINERS = frozenset("of the for de van von al".split())
STOP_WORDS = frozenset("""
a an and are as at be been being but by can could did do does for from had has have he her his how i if in into
is it its of on or our she so such than that the their them then there these they this those to was we were
what when where which who whom whose why will with would you your not no yes also about after before over
said says say told according
""".split())


def fold(text: str) -> str:
    """Lowercase without accents, so "Orbán" matches "Orban"."""
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in text if not unicodedata.combining(c)).replace("’", "'")


def word_list(text: str) -> list[str]:
    """The words of `text` in order, folded (`fold`), without punctuation."""
    return _WORD.findall(fold(text))


def content_words(text: str) -> set[str]:
    """Stemmed words that carry meaning, so "asked" matches "ask" and "sanctions" matches "sanction"."""
    words = [w for w in word_list(text) if w not in STOP_WORDS and not w.isdigit()]
    return set(_stemmer().stemWords(words))


def numbers(text: str) -> set[str]:
    """The numbers `text` states, written without thousands separators ("9,000" and "9000" are one)."""
    out = set()
    for n in _NUMBER.findall(text):
        out.add(re.sub(r"(?<=\d),(?=\d{3}\b)", "", n).rstrip(".,"))
    return out


def _runs(text: str) -> list[tuple[int, list[str]]]:
    """(start, words) of each run of capitalised words, joined by spaces and at most one joining word
    ("Court of Justice"); "said" or a comma ends a run."""
    runs: list[tuple[int, list[str]]] = []
    words: list[str] = []
    start = end = 0
    pending: str | None = None
    for m in _TOKEN.finditer(text):
        word, gap = m.group(), text[end:m.start()]
        capital = word[:1].isupper()
        joined = words and not gap.strip()
        if capital and joined:
            words += [pending, word] if pending else [word]
            pending = None
        elif joined and not pending and word in _JOINERS:
            pending = word
        else:
            if words:
                runs.append((start, words))
            words, pending, start = ([word], None, m.start()) if capital else ([], None, 0)
        end = m.end()
    if words:
        runs.append((start, words))
    return runs


def names(text: str) -> list[str]:
    """The proper names `text` states: runs of capitalised words not at the start of a sentence
    (where every word is capitalised), plus acronyms anywhere ("NATO", "U.S."). A compound ends the
    name at its first lower-case part: "AI-powered glasses" names AI, "a US-brokered plan" the US,
    while "Orbán-Putin" and "Ben-Gvir" stay whole."""
    found = []
    for start, words in _runs(text):
        words = [re.sub(r"['’]s$", "", w).strip("'’-") for w in words]
        cut = next((n for n, w in enumerate(words) if _capitalised_part(w) != w), None)
        if cut is not None:
            words = words[:cut] + [_capitalised_part(words[cut])]
        before = text[:start].rstrip()
        if not before or before[-1] in ".!?:;\"“(\n":  # capitalised perhaps only because it opens a sentence
            head, words = words[0], words[1:]
            if head.isupper() and len(head) > 1 and head.lower() not in STOP_WORDS:
                found.append(head)
            while words and words[0] in _JOINERS:
                words = words[1:]
        name = " ".join(words)
        if name and len(name) > 1 and name.lower() not in STOP_WORDS:
            found.append(name)
    return found


def _capitalised_part(word: str) -> str:
    """`word` up to its first hyphenated part that opens in lower case ("AI-powered" -> "AI")."""
    parts = word.split("-")
    lower = next((n for n, part in enumerate(parts) if n and part[:1].islower()), len(parts))
    return "-".join(parts[:lower])


def _acronym(words: Iterable[str]) -> str:
    return "".join(w[0] for w in words if w.lower() not in _JOINERS and w[:1].isupper())


@functools.lru_cache(maxsize=256)
def _name_index(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The folded words of `text`, and the acronyms its names make or are ("US", "ICC")."""
    words = frozenset(word_list(text))
    acronyms = set()
    for _, parts in _runs(text):
        while parts and parts[0].lower() in STOP_WORDS:  # "The United Nations"
            parts = parts[1:]
        if len(parts) > 1:
            acronyms.add(_acronym(parts).lower())
        for part in parts:
            squeezed = part.replace(".", "")
            if squeezed.isupper() and 1 < len(squeezed) <= 6:
                acronyms.add(squeezed.lower())
    return words, frozenset(acronyms)


def _same_word(a: str, b: str) -> bool:
    """One word of a name written two ways: equal, an adjective of the other (Estonian/Estonia, Hungarian/
    Hungary), or a small misspelling (at most one edit in five letters), once doubled letters are written
    once: transliterations differ most in doubling ("Szijjarto"/"Sijarto", "Gaddafi"/"Gadafi"), while
    a letter added or changed is another name as often as not ("Austria"/"Australia")."""
    if a == b:
        return True
    shorter = min(len(a), len(b))
    prefix = len(_common_prefix(a, b))
    if shorter >= 5 and prefix >= max(5, shorter - 1):
        return True
    from rapidfuzz.distance import Levenshtein

    single_a, single_b = _SINGLE.sub(r"\1", a), _SINGLE.sub(r"\1", b)
    return shorter >= 5 and Levenshtein.distance(single_a, single_b) <= max(1, shorter // 5)


_SINGLE = re.compile(r"(.)\1+")


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def has_name(name: str, text: str) -> bool:
    """Whether `text` mentions the person, place or body called `name`, however it is written."""
    words, acronyms = _name_index(text)
    parts = [w for w in word_list(name) if w not in _JOINERS]
    if not parts:
        return True
    squeezed = name.replace(".", "").replace(" ", "")
    if squeezed.isupper() and squeezed.lower() in acronyms:
        return True
    if len(parts) > 1 and _acronym(name.split()).lower() in acronyms:
        return True
    if all(any(_same_word(p, w) for w in words if w[:1] == p[:1] or len(p) > 6) for p in parts):
        return True
    # A full name stands for a person the text names by surname alone ("Viktor Orban" ~ "Orban").
    return len(parts) > 1 and any(_same_word(parts[-1], w) for w in words)


T = TypeVar("T")


def cover_names(ranked: Sequence[T], chosen: Sequence[T], wanted: Sequence[str], text: Callable[[T], str],
                size: int, most: int) -> list[T]:
    """`chosen` (picked from `ranked`, best first) with every name of `wanted` that none of them mentions
    brought in: the best-ranked item of `ranked` that mentions it is added while `chosen` has fewer than
    `size` items, else it takes the place of the lowest-ranked chosen item whose names others mention
    too. At most `most` items are brought in. Retrieval and the sentences shown both use it: an answer
    must cite a sentence or headline naming each name the question asks about, so a name nothing
    shown holds makes every answer a refusal."""
    kept = list(chosen)
    if not wanted:
        return kept
    holds = {id(item): {n for n in wanted if has_name(n, text(item))} for item in ranked}
    brought = 0
    for name in wanted:
        if brought == most or any(name in holds[id(item)] for item in kept):
            continue
        found = next((item for item in ranked if name in holds[id(item)] and item not in kept), None)
        if found is None:
            continue
        if len(kept) < size:
            kept.append(found)
        else:
            spare = next((i for i in range(len(kept) - 1, -1, -1) if all(
                any(n in holds[id(other)] for other in kept if other is not kept[i]) for n in holds[id(kept[i])])),
                None)
            if spare is None:
                continue
            kept[spare] = found
        brought += 1
    return kept


def missing_names(sentence: str, evidence: str) -> list[str]:
    """The names `sentence` states that `evidence` never mentions."""
    return [n for n in names(sentence) if not has_name(n, evidence)]


def missing_numbers(sentence: str, evidence: str) -> list[str]:
    have = numbers(evidence)
    return [n for n in numbers(sentence) if n not in have]


def coverage(sentence: str, evidence: str, ignore: str = "") -> float:
    """Share of the content words of `sentence` that `evidence` contains, less the words of `ignore` unless
    that leaves none (a sentence that only restates the question must still be found in the evidence)."""
    words = content_words(sentence)
    words = (words - content_words(ignore)) or words
    if not words:
        return 0.0
    return len(words & content_words(evidence)) / len(words)


def relevance(question: str, text: str) -> float:
    """Share of the question's content words that `text` contains: does it speak about what was asked?"""
    asked = content_words(question)
    return len(asked & content_words(text)) / len(asked) if asked else 0.0
