"""The records an answer is made of. Frozen, so an answer can be shared between threads and cached."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from index import Passage


@dataclass(frozen=True)
class Citation:
    """One numbered source of an answer: the passage, and the span of it that supports the claim."""

    n: int                 # the number used in the answer's [n] markers, from 1, in order of first use
    passage_id: str
    doc_id: str
    source: str            # the article's file
    title: str
    date: str | None
    text: str              # the whole cited passage
    start: int             # passage offsets in the article's text
    end: int
    quote_start: int       # the supporting words (highlighted in the UI), also article offsets
    quote_end: int
    score: float           # retrieval score of the passage


@dataclass(frozen=True)
class Timings:
    """Seconds spent, measured from the moment the question arrived."""

    retrieval: float = 0.0
    prompt: float = 0.0        # fitting the passages to the context window (token counting included)
    first_token: float = 0.0   # the first token the model produced (its reply starts with the evidence ids)
    first_text: float = 0.0    # the first thing a reader sees of the answer: its evidence, or its text
    evidence: float = 0.0      # the model had picked its evidence
    llm: float = 0.0           # inside the model call, prompt processing included
    check: float = 0.0         # checking the reply against the passages
    total: float = 0.0
    prompt_tokens: int = 0


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of an answer and the numbers of the citations it rests on."""

    text: str
    citations: tuple[int, ...]
    quoted: bool = False     # the words of the cited sentence itself


@dataclass(frozen=True)
class Quote:
    """A sentence of an article, as shown while an answer is being written."""

    title: str
    source: str
    date: str | None
    text: str


@dataclass(frozen=True)
class Searched:
    """Streamed first: the articles being read for the answer."""

    titles: tuple[str, ...]


@dataclass(frozen=True)
class Evidence:
    """Streamed when the model has picked the sentences it will answer from (none: the articles don't say)."""

    quotes: tuple[Quote, ...]


@dataclass(frozen=True)
class Answer:
    question: str
    text: str                              # the sentences with [n] markers; on a refusal, a statement saying so
    citations: tuple[Citation, ...] = ()
    sentences: tuple[AnswerSentence, ...] = ()   # the answer as structured sentences (empty on a refusal)
    refused: bool = False
    passages: tuple[Passage, ...] = ()     # what was shown to the model: "what was searched"
    timings: Timings = field(default_factory=Timings)
    notes: tuple[str, ...] = ()            # e.g. passages dropped to fit the context window

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        """The answer with its numbered sources, for export. Article and model text is made inert (see `inert`)."""
        lines = [inert(self.text), ""]
        for c in self.citations:
            quote = " ".join((c.text if not (c.quote_end > c.quote_start) else _span(c)).split())
            when = f", {c.date}" if c.date else ""
            lines.append(f"[{c.n}] {inert(c.title)}{when} ({inert(c.source)}): “{inert(quote)}”")
        return "\n".join(lines).rstrip()


_INERT = str.maketrans({"<": "\\<", ">": "\\>", "`": "\\`"})


def inert(text: str) -> str:
    """`text` for a Markdown file that cannot become a link, an image, HTML or code when it is rendered.

    An article's words (and a quote of them in an answer) may hold `![](http://…)` or `<img src=…>`, which
    a Markdown viewer would fetch or run. Escaped: `<`, `>` and backquotes, and the bracket joins that make
    a link or image (`](`, `][`, `]:`); our own `[n]` markers stay as they are.
    """
    text = text.translate(_INERT)
    return text.replace("](", "]\\(").replace("][", "]\\[").replace("]:", "]\\:")


def _span(c: Citation) -> str:
    lo, hi = c.quote_start - c.start, c.quote_end - c.start
    return c.text[max(lo, 0):max(hi, 0)] or c.text
