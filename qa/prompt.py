"""What the chat model reads and the shape its reply is held to: evidence first, then the answer.

The retrieved passages are shown as numbered sentences under their article's title (the sentence
ids of IBM's Granite citation format, rather than whole passages). The model first names the
sentences that answer the question, then writes one to three short sentences, each opening with the
ids it rests on:

    Evidence: 4, 9
    [4] Microsoft is cutting about 9,000 jobs.
    [9] The cuts follow a round of 6,000 in May.

or `Evidence: none` when no sentence answers. A llama.cpp grammar lets the model write only ids it
was shown and only this shape, so every citation points at a sentence we can check, and a refusal is
a choice the model makes from the evidence rather than a phrase we have to recognise. Plain lines
rather than JSON: fewer tokens to generate on a 2-core CPU, and nothing to unescape.

The system message never changes, so llama.cpp keeps it in its KV cache between questions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from index import Passage, split_sentences

from . import injection, matching
from .llm import Message

SYSTEM = (
    "You answer questions about news articles using only the numbered sentences you are given. "
    "First write \"Evidence:\" and the numbers of the sentences that answer the question, "
    "or \"Evidence: none\" if no sentence answers it. "
    "Then write the answer in one to three short sentences, each starting with the numbers of the "
    "sentences it is based on in brackets. Give every fact the sentences hold that the question asks for. "
    "If articles report different things, say which article reports what. "
    "Never add anything the sentences do not say.\n\n"
    "Example:\n"
    "Article: Storm cuts power on the coast (2024-05-02)\n"
    "[1] A storm hit the coast on Monday.\n"
    "[2] Officials said 200 homes lost power.\n"
    "Article: Utility restores service\n"
    "[3] Power was back in most homes by Wednesday, the utility said.\n"
    "Question: How many homes lost power, and when did it come back?\n"
    "Evidence: 2, 3\n"
    "[2] About 200 homes lost power.\n"
    "[3] Power was back in most homes by Wednesday."
)

MAX_SENTENCES = 12     # sentences shown to the model (`choose_sentences`)
MAX_CHARS = 1500       # and their characters in all (bench/shown.py)
COVER_SENTENCES = 2    # sentences at most added past those for a name no chosen one holds (`choose_sentences`)
MAX_EVIDENCE = 8       # ids in the evidence line
MAX_LINES = 3          # sentences in the answer
LINE_CHARS = 220       # characters in one answer sentence


@dataclass(frozen=True)
class Sentence:
    """One numbered sentence shown to the model: where it stands in its article and in which passage."""

    id: int                # the number the model sees, from 1
    passage: int           # position of its passage in the shown list
    start: int             # article offsets
    end: int
    text: str              # as shown: one line, with text written to a model blanked out
    score: float | None = None  # how much it is about the question (`rank_sentences`), once ranked
    topic: float | None = None  # how much its article is about the question (`retrieval.topic_shares`), once known


def number_sentences(passages: Sequence[Passage]) -> list[Sentence]:
    """The sentences of `passages`, each once (overlapping passages share sentences), grouped by article
    in the order of each article's best passage and in reading order within an article."""
    articles: dict[str, list[tuple[int, int, int, str]]] = {}
    seen: set[tuple[str, int]] = set()
    for n, p in enumerate(passages):
        shown = injection.blank(p.text)
        for lo, hi in split_sentences(p.text):
            key = (p.doc_id, p.start + lo)
            text = _one_line(shown[lo:hi])
            # Skipped: a lone dateline, a blanked instruction, and the headline (shown above its sentences).
            if key in seen or len(re.findall(r"[^\W\d_]{2,}", text)) < 3 or text == _one_line(p.title):
                continue
            seen.add(key)
            articles.setdefault(p.doc_id, []).append((p.start + lo, p.start + hi, n, text))
    out: list[Sentence] = []
    for rows in articles.values():
        for start, end, n, text in sorted(rows):
            out.append(Sentence(len(out) + 1, n, start, end, text))
    return out


def choose_sentences(question: str, sentences: Sequence[Sentence], embed: Callable[[list[str]], np.ndarray],
                     keep: int = MAX_SENTENCES, budget: int = MAX_CHARS,
                     context: str | None = None) -> list[Sentence]:
    """The sentences most about the question (`rank_sentences`, with the conversation's `context`), at
    most `keep` of them and `budget` characters in all, renumbered, in the order they were in.

    A small model picks its evidence better from a dozen sentences than from every sentence of the
    passages: the passages are ranked as wholes, and most of their sentences say something else. The
    budget holds the prompt, and so the wait before the first word, to about the same length however
    many passages were retrieved.

    A name the question asks about (of the context, for a follow-up that names none) that no chosen
    sentence holds brings in the best-ranked sentence that does, past the budget, in place of the
    lowest-ranked one whose names others hold too (at most `COVER_SENTENCES`): an answer must cite a
    sentence or headline naming each (`grounding.about_the_question`), and "Estonian" may be in one
    short sentence that ranks under long ones about Orban and Putin.
    """
    ranked = rank_sentences(question, sentences, embed, context)
    chosen: dict[int, Sentence] = {}
    used = 0
    for s in ranked:
        if len(chosen) == keep:
            break
        if not chosen or used + len(s.text) <= budget:
            chosen[s.id] = s
            used += len(s.text)
    names = matching.names(question) or (matching.names(context) if context else [])
    chosen = {s.id: s for s in matching.cover_names(ranked, list(chosen.values()), names, lambda s: s.text,
                                                    size=keep, most=COVER_SENTENCES)}
    return [replace(chosen[s.id], id=n) for n, s in enumerate((s for s in sentences if s.id in chosen), 1)]


def rank_sentences(question: str, sentences: Sequence[Sentence],
                   embed: Callable[[list[str]], np.ndarray], context: str | None = None) -> list[Sentence]:
    """`sentences` from the most to the least about the question, each with its `score`: its cosine with
    the question (the index's embedder: paraphrases count) plus half the share of the question's content
    words it holds (names and rare words count).

    `context` is the question as the conversation means it (`retrieval.standalone_query`: the previous
    turn with a follow-up that leans on it). A sentence then scores the better of the two: "What did
    she say about it?" shares nothing with any sentence, the question it follows does.
    """
    if not sentences:
        return []
    queries = [question] + ([context] if context and context != question else [])
    vectors = np.asarray(embed([*queries, *(s.text for s in sentences)]), dtype=np.float32)
    texts = vectors[len(queries):]
    scored = [replace(s, score=max(float(texts[i] @ vectors[j]) + 0.5 * matching.relevance(query, s.text)
                                   for j, query in enumerate(queries)))
              for i, s in enumerate(sentences)]
    return sorted(scored, key=lambda s: -s.score)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def build_messages(question: str, passages: Sequence[Passage], sentences: Sequence[Sentence],
                   history: Sequence[tuple[str, str]] = ()) -> list[Message]:
    lines: list[str] = []
    article = None
    for s in sentences:
        p = passages[s.passage]
        if p.doc_id != article:
            article = p.doc_id
            when = f" ({p.date})" if p.date else ""
            lines.append(f"Article: {_one_line(injection.blank(p.title))}{when}")
        lines.append(f"[{s.id}] {s.text}")
    earlier = ""
    if history:
        last_q, last_a = history[-1]
        earlier = f"Earlier question: {_one_line(last_q)}\nEarlier answer: {_one_line(_MARKERS.sub('', last_a))}\n"
    user = "\n".join(lines) + f"\n{earlier}Question: {_one_line(question)}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


_MARKERS = re.compile(r"\s*\[\d+(?:,\s*\d+)*\]")


def grammar(shown: int, characters: str = "", after: int | None = None) -> str:
    """GBNF for the reply, with ids limited to 1..shown, and the answer's text to printable ASCII and the
    other characters of `characters` (the shown sentences: their accents, quotation marks and dashes).
    Without that limit the 1.5B model, trained on much Chinese, slips into it mid-sentence. With
    `after`, the rest of a reply that holds `after` answer lines, the last perhaps unfinished
    (`copy_ahead`)."""
    ids = " | ".join(f'"{n}"' for n in range(1, shown + 1))
    extra = "".join(sorted({c for c in characters if ord(c) > 126 and c.isprintable()}))
    root = ('root ::= "Evidence: " ( "none" | ids "\\n" line ( "\\n" line ){0,' f"{MAX_LINES - 1}" "} )\n"
            if after is None else 'root ::= [ -Z\\\\^-~' f"{extra}]{{0,{LINE_CHARS}}}" ' ( "\\n" line ){0,'
            f"{max(0, MAX_LINES - after)}" "}\n")
    return (
        root +
        'ids ::= id ( ", " id ){0,' f"{MAX_EVIDENCE - 1}" "}\n"
        'line ::= "[" id ( ", " id ){0,3} "] " text\n'
        f'text ::= [ -Z\\\\^-~{extra}]{{4,{LINE_CHARS}}}\n'
        f"id ::= {ids}\n"
    )


def grammar_for(sentences: Sequence[Sentence], after: int | None = None) -> str:
    """`grammar` for these shown sentences."""
    return grammar(len(sentences), "".join(s.text for s in sentences), after)


def last_line(raw: str) -> str:
    """The answer line a reply is writing ("": still the evidence line)."""
    return raw.rsplit("\n", 1)[-1] if "\n" in raw else ""


COPY_WORDS = 6   # words of a shown sentence an answer line must have copied before the rest is copied for it


def copy_ahead(raw: str, sentences: Sequence[Sentence]) -> str | None:
    """The rest of the shown sentence that the reply's last line is copying word for word, if it is.

    Small models often answer with a sentence of the article, and write it a token at a time (about 10
    a second here), while reading the same text as a prompt runs 5 times faster. Once a line has
    copied COPY_WORDS words of one shown sentence and no other (from its start, or from a word inside
    it: "Days earlier, the minister said …" is often answered from "the minister"), the rest of it but
    its last word can be given rather than generated; the checks turn such a line into that sentence,
    quoted, in any case (`grounding.draft`). None: the line is not a copy, or not yet a certain one.
    """
    last = last_line(raw)
    m = re.match(r"\[[\d,\s]*\] (.+)$", last)
    if not m or len(m.group(1).split()) < COPY_WORDS or m.group(1).endswith(" "):
        return None
    text = m.group(1)
    copies = {rest for s in sentences for rest in _after_copies(s.text, text)}
    if len(copies) != 1:
        return None
    # The sentence's last word is left to the model: it ends a line with a token it would write itself
    # (".\n" is one token to it; a given "." and then a newline is a text it has rarely seen, and stops).
    rest = next(iter(copies)).rstrip()
    rest = rest[:rest.rfind(" ")] if " " in rest else ""
    return rest if rest.strip() else None


def _after_copies(sentence: str, copied: str) -> list[str]:
    """What follows each place where `sentence` holds `copied`, starting at a word (whose first letter
    the copy may have capitalised: "However, researchers could …" copied as "Researchers could …")."""
    first = re.escape(copied[0]) if copied[0].lower() == copied[0].upper() else f"[{copied[0].lower()}{copied[0].upper()}]"
    return [sentence[m.end():] for m in re.finditer(r"(?<!\w)" + first + re.escape(copied[1:]), sentence)]


LOOP_WORDS = 3   # words a run must have for its repeat, right after it, to be a loop (`unlooped`)


def unlooped(line: str) -> str:
    """`line` up to where it starts repeating itself: a run of LOOP_WORDS or more words written again right
    after itself ("… photo via AP) (Grigory Sysoyev, … photo via AP) (Grigory Sysoyev, …").

    Copying sentences, as it is asked to, a small model sometimes goes on copying the end of one (a
    photo credit, a list) again and again until the length limit; prose almost never repeats three
    words in a row, while one repeated word ("no, no") is left alone.
    """
    words = list(re.finditer(r"\S+", line))
    texts = [w.group() for w in words]
    for end in range(2 * LOOP_WORDS, len(words) + 1):  # the first loop to be complete, as it is streamed
        for n in range(LOOP_WORDS, end // 2 + 1):
            if texts[end - n:end] == texts[end - 2 * n:end - n]:
                return line[:words[end - n].start()].rstrip()
    return line


def shown_in(grammar_text: str) -> int | None:
    """How many sentence ids a grammar made by `grammar` allows (None: not one of ours)."""
    m = re.search(r'^id ::= ((?:"\d+"(?: \| )?)+)$', grammar_text, re.MULTILINE)
    return len(re.findall(r'"\d+"', m.group(1))) if m and grammar_text.startswith('root ::= "Evidence: "') else None


@dataclass(frozen=True)
class Reply:
    """The model's reply: the evidence ids (empty for "none") and the answer's lines with their ids."""

    evidence: tuple[int, ...] = ()
    lines: tuple[tuple[tuple[int, ...], str], ...] = ()


_EVIDENCE = re.compile(r"^\s*Evidence:\s*([^\n]*)", re.IGNORECASE)
_LINE = re.compile(r"^\s*\[([\d,\s]*)\]\s*(.+?)\s*$")


def _ids(text: str) -> tuple[int, ...]:
    return tuple(dict.fromkeys(int(n) for n in re.findall(r"\d+", text)))


def reply_schema(shown: int) -> dict:
    """The JSON schema twin of `grammar(shown)`, for servers that hold replies to a schema, not a grammar."""
    def ids(most: int) -> dict:
        return {"type": "array", "items": {"type": "integer", "enum": list(range(1, shown + 1))}, "maxItems": most}

    line = {"type": "object", "properties": {"ids": ids(4), "text": {"type": "string", "minLength": 4,
                                                                      "maxLength": LINE_CHARS}},
            "required": ["ids", "text"], "additionalProperties": False}
    return {"type": "object",
            "properties": {"evidence": ids(MAX_EVIDENCE), "answer": {"type": "array", "items": line,
                                                                     "maxItems": MAX_LINES}},
            "required": ["evidence", "answer"], "additionalProperties": False}


def _from_json(raw: str) -> Reply | None:
    try:
        data = json.loads(raw)
        return Reply(_ids(" ".join(map(str, data.get("evidence") or []))),
                     tuple((_ids(" ".join(map(str, a.get("ids") or []))), str(a.get("text") or ""))
                           for a in data.get("answer") or [] if isinstance(a, dict)))
    except (ValueError, TypeError, AttributeError):
        return None


def parse_reply(raw: str) -> Reply:
    """Read the reply, tolerating one cut short or from a server that ignored the grammar; a reply held to
    `reply_schema` (JSON) is read too."""
    if raw.lstrip().startswith("{") and (reply := _from_json(raw)) is not None:
        return reply
    evidence: tuple[int, ...] = ()
    lines = []
    for row in raw.splitlines():
        if m := _EVIDENCE.match(row):
            evidence = _ids(m.group(1))
        elif m := _LINE.match(row):
            lines.append((_ids(m.group(1)), m.group(2)))
        elif row.strip() and lines:  # a line without ids continues the answer
            lines.append(((), row.strip()))
    return Reply(evidence, tuple(lines))


class ReplyStream:
    """Follows the reply as it streams: the evidence ids once their line is complete, then the answer's
    text without the id brackets, for display."""

    def __init__(self) -> None:
        self.raw = ""
        self.evidence: tuple[int, ...] | None = None
        self._shown = ""

    def feed(self, piece: str) -> tuple[tuple[int, ...] | None, str]:
        """(the evidence ids if they became known with this piece, else None; new answer text to show)."""
        self.raw += piece
        found = None
        if self.evidence is None:
            if "\n" not in self.raw:
                return None, ""
            self.evidence = found = parse_reply(self.raw.split("\n", 1)[0]).evidence
        text = _display(self.raw)
        new, self._shown = text[len(self._shown):], text
        return found, new


def _display(raw: str) -> str:
    """The answer's sentences as a reader sees them so far: no evidence line, no id brackets, and nothing
    of a line whose bracket is still arriving. Growing `raw` only ever extends it."""
    parts = []
    for line in raw.split("\n")[1:]:
        if m := re.match(r"\s*\[[\d,\s]*\]\s*", line):
            parts.append(line[m.end():])
        elif not line.lstrip().startswith("["):
            parts.append(line.lstrip())
    return " ".join(p for p in parts if p)
