"""Answers, sources and the article list as HTML for the browser: pure functions, no Gradio.

Everything that comes from an article, a question or the model is escaped here and nowhere else, so a
`<script>` in an article or a Markdown image in an answer is shown as text, never run or fetched. The
only markup in the output is our own: citation links (`<a href="#src-<turn>-<n>">`), `<mark>` around
the words that support a claim, and a few classes for `style.css`. Markdown punctuation is encoded as
well, so the output stays inert even where a Markdown renderer runs over it.

Offsets are those of `qa.Citation`: article offsets for the passage (`start`, `end`) and for the
supporting words (`quote_start`, `quote_end`); a cited passage is shown inside a margin of its article.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

from qa import Answer, Citation, Quote

if TYPE_CHECKING:  # records of the index that qa hands through without re-exporting them
    from index import DocumentInfo, IngestReport, Passage

CONTEXT_CHARS = 240    # article text shown on each side of a cited passage
SEARCHING = "Searching the articles…"
WRITING = "Writing the answer…"

# One pass over the text: HTML's five, then what Markdown reads as links, images, emphasis, code or escapes.
_ENTITIES = {ord(c): f"&#{ord(c)};" for c in "[]()!*_`~\\:"}
_ENTITIES.update({ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord('"'): "&quot;", ord("'"): "&#39;"})
_MARKER = re.compile(r"\[(\d+)\]")


def escape(text: str) -> str:
    """`text` as inert HTML text: no tags, no entities of its own, no Markdown syntax."""
    return str(text).translate(_ENTITIES)


def source_id(turn: int, n: int) -> str:
    """The element id of source `n` of the answer in `turn`; unique on the page while turns are."""
    return f"src-{turn}-{n}"


def file_name(source: str) -> str:
    if _is_web(source):
        return source
    return PurePath(source).name or source


def _is_web(source: str) -> bool:
    return source.lower().startswith(("http://", "https://")) and not any(c.isspace() for c in source)


def where_html(source: str) -> str:
    """A file's name, or a link to a web article (opened in a new tab, telling it nothing of this page)."""
    if not _is_web(source):
        return escape(file_name(source))
    shown = source.split("://", 1)[1]
    shown = shown if len(shown) <= 60 else shown[:57] + "…"
    return (f'<a class="qa-source-link" href="{escape(source)}" target="_blank" '
            f'rel="noopener noreferrer nofollow">{escape(shown)}</a>')


def _meta(date: str | None, source: str) -> str:
    """When and where from, for a source line: "2024-03-02 · pipeline.txt", a web article linked."""
    parts = ([escape(date)] if date else []) + [where_html(source)]
    return f'<span class="qa-source-meta">{" · ".join(parts)}</span>'


def question_html(question: str) -> str:
    return f'<div class="qa-question">{escape(question)}</div>'


def pending_html(status: str, partial: str = "", evidence: Sequence[Quote] = ()) -> str:
    """An answer still being made: the state it is in, the sentences it will rest on, and its text so far."""
    text = f'<div class="qa-answer qa-streaming">{escape(partial)}</div>' if partial else ""
    return (f'<div class="qa-status" role="status"><span class="qa-spinner"></span>{escape(status)}</div>'
            f'{evidence_html(evidence)}{text}')


def evidence_html(quotes: Sequence[Quote]) -> str:
    """The sentences the model picked, shown while it writes: where the answer will come from."""
    if not quotes:
        return ""
    items = "".join(f'<li><span class="qa-source-title">{escape(q.title)}</span> {_meta(q.date, q.source)}'
                    f'<div class="qa-evidence-text">“{escape(q.text)}”</div></li>' for q in quotes)
    return f'<details class="qa-evidence" open><summary>Answering from</summary><ul>{items}</ul></details>'


def reading_status(titles: Sequence[str]) -> str:
    shown = "; ".join(titles[:3]) + (f" and {len(titles) - 3} more" if len(titles) > 3 else "")
    return f"Reading {len(titles)} article{'s' if len(titles) != 1 else ''}: {shown}"


def stopped_html(partial: str) -> str:
    text = f'<div class="qa-answer qa-partial">{escape(partial)}</div>' if partial else ""
    return f'{text}<div class="qa-status qa-stopped" role="status">Stopped: this answer was not finished.</div>'


def error_html(message: str) -> str:
    return f'<div class="qa-error" role="alert"><strong>Could not answer:</strong> {escape(message)}</div>'


def answer_html(answer: Answer, turn: int, articles: Mapping[str, str] | None = None) -> str:
    """A finished answer: its text with linked markers and its sources, or a plain refusal.

    `articles` maps a doc_id to the full article text, to show each cited passage in its
    surroundings; a passage whose article is missing is shown alone.
    """
    if answer.refused:
        parts = [refusal_html(answer)]
    else:
        body = sentences_html(answer, turn) if answer.sentences else \
            answer_text_html(answer.text, turn, answer.citations)
        parts = [f'<div class="qa-answer">{body}</div>', sources_html(answer.citations, turn, articles or {})]
    parts += [f'<div class="qa-note">{escape(note)}</div>' for note in answer.notes]
    if answer.timings.total:
        parts.append(f'<div class="qa-note">Took {answer.timings.total:.1f} s.</div>')
    return "".join(parts)


def answer_text_html(text: str, turn: int, citations: Sequence[Citation]) -> str:
    """The answer text, escaped, with each [n] that names a citation turned into a link to its source."""
    titles = {c.n: c.title for c in citations}
    out, last = [], 0
    for m in _MARKER.finditer(text):
        out.append(escape(text[last:m.start()]))
        n = int(m[1])
        if n in titles:
            out.append(f'<a class="qa-cite" href="#{source_id(turn, n)}" title="{escape(titles[n])}">'
                       f'{escape(m[0])}</a>')
        else:
            out.append(escape(m[0]))
        last = m.end()
    out.append(escape(text[last:]))
    return "".join(out)


def sentences_html(answer: Answer, turn: int) -> str:
    """The answer's sentences, escaped, each followed by links to the sources it rests on."""
    titles = {c.n: c.title for c in answer.citations}
    out = []
    for s in answer.sentences:
        links = "".join(f'<a class="qa-cite" href="#{source_id(turn, n)}" title="{escape(titles.get(n, ""))}">'
                        f'{escape(f"[{n}]")}</a>' for n in s.citations if n in titles)
        body = s.text.rstrip()
        end = body[-1] if body[-1:] in (".", "!", "?") else "."
        out.append(f'<span class="qa-sentence">{escape(body.rstrip(".!?").rstrip())} {links}{escape(end)}</span>')
    return " ".join(out)


def sources_html(citations: Sequence[Citation], turn: int, articles: Mapping[str, str]) -> str:
    if not citations:
        return ""
    items = "".join(source_html(c, turn, articles.get(c.doc_id)) for c in citations)
    label = "Source" if len(citations) == 1 else f"Sources ({len(citations)})"
    return f'<details class="qa-sources" open><summary>{label}</summary>{items}</details>'


def source_html(c: Citation, turn: int, article: str | None = None) -> str:
    """One numbered source: title, date and file, and the passage in its article with the quote marked."""
    meta = _meta(c.date, c.source)
    if article is not None and 0 <= c.start <= c.end <= len(article):
        text, base = article, 0
    else:
        text, base = c.text, c.start
    context = in_context(text, c.start - base, c.end - base, c.quote_start - base, c.quote_end - base)
    return (f'<div class="qa-source" id="{source_id(turn, c.n)}">'
            f'<div class="qa-source-head"><span class="qa-source-n">[{c.n}]</span> '
            f'<span class="qa-source-title">{escape(c.title)}</span>'
            f' {meta}</div>'
            f'<blockquote class="qa-context">{context}</blockquote></div>')


def in_context(text: str, start: int, end: int, quote_start: int, quote_end: int,
               margin: int = CONTEXT_CHARS) -> str:
    """The passage text[start:end] with up to `margin` characters around it; text[quote_start:quote_end] in <mark>.

    The margins are cut at a space so no word is shown in part; "…" says that the article goes on.
    """
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    quote_start, quote_end = max(start, min(quote_start, end)), max(start, min(quote_end, end))
    lo, hi = _cut_before(text, start, margin), _cut_after(text, end, margin)
    before = ("…" if lo > 0 else "") + text[lo:start].lstrip()
    after = text[end:hi].rstrip() + ("…" if hi < len(text) else "")
    passage = escape(text[start:quote_start])
    if quote_end > quote_start:
        passage += f"<mark>{escape(text[quote_start:quote_end])}</mark>"
    passage += escape(text[quote_end:end])
    return (f'<span class="qa-around">{escape(before)}</span><span class="qa-passage">{passage}</span>'
            f'<span class="qa-around">{escape(after)}</span>')


def _cut_before(text: str, start: int, margin: int) -> int:
    lo = max(0, start - margin)
    if lo == 0:
        return 0
    space = text.find(" ", lo, start)
    return start if space < 0 else space + 1


def _cut_after(text: str, end: int, margin: int) -> int:
    hi = min(len(text), end + margin)
    if hi == len(text):
        return hi
    space = text.rfind(" ", end, hi)
    return end if space < 0 else space


def refusal_html(answer: Answer) -> str:
    """A refusal says so plainly and shows which articles were searched."""
    searched = searched_html(answer.passages)
    return f'<div class="qa-answer qa-refused">{escape(answer.text)}</div>{searched}'


def searched_html(passages: Sequence[Passage]) -> str:
    if not passages:
        return ""
    articles: dict[str, Passage] = {}
    for p in passages:
        articles.setdefault(p.doc_id, p)
    items = "".join(f'<li><span class="qa-source-title">{escape(p.title)}</span> {_meta(p.date, p.source)}</li>'
                    for p in articles.values())
    noun = "passage" if len(passages) == 1 else "passages"
    where = "article" if len(articles) == 1 else "articles"
    return (f'<details class="qa-searched" open><summary>Searched {len(passages)} {noun} from '
            f'{len(articles)} {where}</summary><ul>{items}</ul></details>')


def documents_html(documents: Sequence[DocumentInfo]) -> str:
    """The indexed articles as a table: title, date, passages, file."""
    if not documents:
        return '<p class="qa-empty">No articles indexed yet: add some above.</p>'
    passages = sum(d.passages for d in documents)
    rows = "".join(
        f'<tr><td>{escape(d.title)}</td><td class="qa-nowrap">{escape(d.date or "")}</td>'
        f'<td class="qa-num">{d.passages}</td><td>{where_html(d.source)}</td></tr>'
        for d in sorted(documents, key=lambda d: (d.date or "", d.title), reverse=True))
    noun = "article" if len(documents) == 1 else "articles"
    return (f'<p class="qa-count">{len(documents)} {noun}, {passages} passages</p>'
            '<table class="qa-documents"><thead><tr><th>Title</th><th>Date</th><th>Passages</th><th>File</th>'
            f'</tr></thead><tbody>{rows}</tbody></table>')


def ingest_html(report: IngestReport) -> str:
    """What an upload did: counts, and each rejected file with the reason."""
    counts = [(report.added, "added"), (report.updated, "updated"), (report.unchanged, "unchanged"),
              (report.duplicates, "already indexed under another name"), (len(report.rejected), "rejected")]
    summary = ", ".join(f"{n} {what}" for n, what in counts if n) or "nothing to do"
    rejected = "".join(f'<li><span class="qa-file">{escape(file_name(r.source))}</span>: {escape(r.reason)}</li>'
                       for r in report.rejected)
    state = "qa-error" if report.rejected and not (report.added or report.updated) else "qa-done"
    listing = f'<ul class="qa-rejected">{rejected}</ul>' if rejected else ""
    return f'<div class="{state}" role="status">{escape(summary.capitalize())} ({report.seconds:.1f} s).</div>{listing}'


def message_html(text: str, kind: str = "qa-done") -> str:
    return f'<div class="{kind}" role="status">{escape(text)}</div>'
