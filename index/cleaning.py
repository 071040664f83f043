"""Article text without the page furniture that news sites print around it.

What a news page carries besides the story: a dateline in front of the first paragraph ("date
2023-11-07 In a…", "WASHINGTON (Reuters) - …", a line "CNN —"), bylines and sign-offs ("By Ann Lee",
"– Ann Lee", "Contributing: Reuters"), calls to action ("Read more", "Sign up for our newsletter",
"Follow him on X", "Share this article", "Advertisement", a cookie notice, a puzzle teaser), photo
captions ending in a credit ("… Jane Doe/Getty Images") and separator rules. Left in, they become
passages and, worse, the quotation an answer cites.

The rules work line by line and only ever drop a whole line or a dateline prefix of a line: a
sentence of the story is never cut in half, so every offset into the cleaned text is still a span of
real article text. A dateline's date becomes the article's date. Each rule is about what news pages
print, not about one site; a line is only dropped when it is short or clearly not prose (a call to
action is at most `_SHORT_LINE` words), so a story that happens to say "read more" keeps its sentence.
What this leaves out: boilerplate in the middle of a paragraph, and site-specific furniture that
follows none of these shapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SHORT_LINE = 40          # words: longer lines are prose, whatever they start with
_BYLINE_WORDS = 8

# "date 2023-11-07 " in front of the first paragraph of the sample articles.
_MACHINE_DATELINE = re.compile(r"^[ \t]*date\s+(?P<date>(?:19|20)\d\d-\d\d-\d\d)\b[ \t]*", re.I | re.M)
# "WASHINGTON (Reuters) - ", "KYIV, Ukraine (AP) — ", "LONDON, Jan 5 (Reuters) - ": place, outlet, dash.
_WIRE_DATELINE = re.compile(
    r"^[A-Z][A-Za-z.'\- ]{1,30}(?:,[A-Za-z0-9.'\- ]{1,30})?\s*\((?:Reuters|AP|AFP|CNN|UPI|dpa|Xinhua)\)\s*[-–—]+\s*")
_DASHES = "-–—−‒"
# A line that is only a place and an outlet before a dash: "CNN —", "New York CNN Business —".
_DASH_LINE = re.compile(rf"^(?:\S+\s+){{0,5}}\S+\s*[{_DASHES}]$")

_LINE_RULES = tuple(re.compile(p, re.I) for p in (
    # Credits.
    r"^(?:contributing|contributors?|reporting|editing|additional reporting)\s*(?:by)?\s*:",
    r"^from .{0,40}\bwire reports$",
    r"^[(\[]?(?:this (?:story|article) has been updated|updated|published|posted)\b.{0,60}$",
    # Calls to action.
    r"^(?:read|see|watch|listen to) (?:more|the full story|next|also|related)\b",
    r"^(?:related|more|most read|recommended)(?: (?:stories|articles|coverage|reading))?\s*:",
    r"^click here\b",
    r"^(?:sign up|subscribe|register|join us|join our|get (?:the|our) .{0,30}newsletter)\b",
    r"^follow\b.{0,120}(?:\bon (?:x|twitter|facebook|instagram|threads|bluesky|tiktok|youtube|linkedin)\b|@\w)",
    r"^(?:reach|contact|email)\b.{0,120}(?:@|\(\d{3}\)|\d{3}-\d{3}-\d{4})",
    r"^share(?: (?:this|on|via)\b.*)?$",
    r"^(?:skip )?advertisement$",
    r"^back to (?:the )?top$",
    r"^(?:need a break|looking for a free .{0,20}puzzle)\?",
    r"\bcookies?\b.{0,80}\b(?:accept|consent|privacy|policy|settings|preferences)\b",
    # Photo captions ending in a credit, and credits on their own.
    r"(?:[A-Za-z.]/\s?(?:AP|AFP|Reuters|EPA|Bloomberg|Getty Images|Shutterstock|iStock(?:photo)?|Pool)\b"
    r"|\bGetty Images|\bAP Photo\b|\bShutterstock|\biStockphoto)[)\].\s]*$",
    r"^\(?(?:photo|photograph|image|picture|credit|image credit|photo credit)s?(?: by)?\s*:",
    r"\(image credit:",
))
# "By Ann Lee", "Reporting by Ann Lee and Bo Chan, Reuters": capitalized names, no sentence end.
_BYLINE = re.compile(r"^(?i:(?:written |reporting |additional reporting |editing |compiled )?by)\s+"
                     r"[A-Z][\w.'\-]+(?:\s+(?:[A-Z][\w.'\-]+|and|&|,))*(?:\s*[,;|]\s*[^.!?]{0,40})?(?<![.!?])$")
# Sign-offs: a dash and a name, "– Ann Lee", "−Sudiksha Kochi"; or only an agency's name.
_SIGN_OFF = re.compile(rf"^[{_DASHES}]+\s*[A-Z][\w.'\-]+(?:\s+[A-Z][\w.'\-]+){{0,3}}$"
                       r"|^(?:[-–—]+\s*)?(?:Reuters|Associated Press|AP|AFP|USA TODAY(?: NETWORK)?)$")
_EMPHASIS = re.compile(r"(?<![\w*])[*_]{1,3}|[*_]{1,3}(?![\w*])")
_SEPARATOR = re.compile(r"^[\s_=*#~•·" + _DASHES + r"]{3,}$")


@dataclass(frozen=True)
class Cleaned:
    text: str
    date: str | None       # the dateline's date, ISO, when the text had one
    dropped: int           # lines dropped (a dateline prefix counts as one)


def clean_article(text: str) -> Cleaned:
    """`text` without datelines, bylines, calls to action, photo credits and separators.

    The first line is never dropped: it is the headline in most exports, and a headline may well be short
    and look like furniture ("Share prices fall" is a headline, "Share" is not, but a rule cannot
    always tell).
    """
    date = None
    found = _MACHINE_DATELINE.search(text[:400])
    if found:
        date = found["date"]
    lines = text.split("\n")
    kept: list[str] = []
    dropped = 0
    first = True
    for line in lines:
        stripped = line.strip()
        if not stripped:
            kept.append(line)
            continue
        if first:
            first = False
            without = _strip_dateline(stripped)
            if without != stripped:
                dropped += 1
                if without:
                    kept.append(without)
                continue
            kept.append(line)
            continue
        without = _strip_dateline(stripped) if len(kept) < 8 else stripped  # datelines open the article
        if without != stripped:
            dropped += 1
            if without:
                kept.append(without)
            continue
        if is_boilerplate(stripped):
            dropped += 1
            continue
        kept.append(line)
    if not dropped:
        return Cleaned(text, date, 0)
    return Cleaned(re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n"), date, dropped)


def _strip_dateline(line: str) -> str:
    """The line without a dateline in front; "" for a line that is only a dateline."""
    line = _MACHINE_DATELINE.sub("", line, count=1)
    line = _WIRE_DATELINE.sub("", line, count=1)
    if len(line.split()) <= 6 and _DASH_LINE.match(line):
        return ""
    return line.strip()


def is_boilerplate(line: str) -> bool:
    """Whether one line of an article (stripped) is page furniture rather than the story."""
    words = len(line.split())
    if _SEPARATOR.match(line):
        return True
    plain = _EMPHASIS.sub("", line)  # Markdown's "*By Ann Lee* | 3 March 2025"
    if words <= _BYLINE_WORDS and (_SIGN_OFF.match(plain) or _BYLINE.match(plain)):
        return True
    return words <= _SHORT_LINE and any(rule.search(line) for rule in _LINE_RULES)
