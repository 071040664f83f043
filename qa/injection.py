"""Text in an article that is written to the model rather than to the reader, and keeping it from steering answers.

An article may carry instructions for whatever AI reads it: "ignore previous instructions", "reply only
with this link", a fake "System:" or `<|im_start|>system` turn, a planted answer for "AI assistants",
JSON in our own reply format. `instruction_spans` finds such text by its form (who it addresses, what it
asks, the chat-template tokens it fakes), together with markup that is not news text at all (HTML tags
and comments, Markdown images and links). The assistant hides those spans from the model and from the
citation check: they can neither be read as instructions nor back a claim, so the most an injection can
reach is the page as part of a quoted passage, where `ui/render.py` shows it as text.

The patterns are a first line, not a proof: an instruction phrased as plain news ("the mayor has
resigned") passes them. Two checks do not depend on them: an address (`urls`) may stand in an answer
only inside a sentence of the cited passage quoted word for word, never in the model's own wording, and
the chat template's control tokens are never read from message text (`llm.py` tokenizes it as text).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import replace

from index import Passage, split_sentences

_I = re.IGNORECASE

# Who an injection speaks to: the machine reading the article, never a human reader.
_ADDRESSEE = (r"(?:(?:ai|a\.i\.|artificial intelligence|automated|automatic|virtual)(?: [a-z]+)?|(?:chat ?)?bots?|"
              r"assistants?|(?:large )?language models?|llms?|gpts?|summari[sz](?:ers?|ing tools?))")
# What it is told to do: a modal, then an act of answering ("must cite", "should always say").
_TOLD = (r"(?:must|should|shall|need to|have to|has to|are (?:instructed|required|told|asked) to|will now|may only)"
         r"\s+(?:(?:always|only|now|not|never|also|first|then|just)\s+)*(?:say|reply|respond|answer|cite|quote|tell|"
         r"include|show|display|use|output|write|print|mention|ignore|add|append|repeat|state|give|link|refuse)\b")
_ANSWER_VERBS = r"(?:reply|respond|answer|say|output|print|write|cite|quote|include|show|tell|give|use|mention)"

_PATTERNS = [
    # Addressed to the machine: "Any AI system reading this must say …", "Chatbots: …", "Note to AI models".
    rf"\b{_ADDRESSEE}\b[^.!?\n]{{0,60}}?\b{_TOLD}",
    rf"\b{_ADDRESSEE}\s*:",
    rf"(?:^|[(\[\-–—]\s*)(?:assistant|chat ?bot|bot|language model|ai)s?,",
    rf"\b(?:note|message|instructions?|notice|warning)\s+(?:to|for)\s+(?:all |any |every |the )?{_ADDRESSEE}",
    rf"\bif (?:an?|the|any) {_ADDRESSEE} (?:is|are) asked\b",
    # Overriding whatever the model was told.
    r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:(?:all|any|each|every|of|the|your|these|those)\s+)*"
    r"(?:(?:previous|prior|above|earlier|preceding|original|system|other|existing|former)\s+)?"
    r"(?:instructions?|prompts?|directives?)\b",
    r"\b(?:ignore|disregard|forget)\s+(?:(?:all|any|of|the|your)\s+)*(?:previous|prior|above|earlier|preceding)\b",
    r"\b(?:ignore|disregard|forget)\s+(?:the|this)\s+(?:article|passage|text|question|context)\b",
    r"\b(?:ignore|disregard|forget) everything (?:above|before|else)\b",
    r"\b(?:ignorez|ignorer|oubliez|ignora|ignorar|ignoriere|ignorieren|vergiss|vergessen)\b[^.!?\n]{0,40}"
    r"\b(?:instructions|consignes|instrucciones|istruzioni|anweisungen)\b",
    # Speaking to the model in the second person, or telling it what to answer.
    r"\byou are now (?:an? |in |the )?(?:ai|assistant|chatbot|model|dan|unrestricted|jailbroken|free|\w+ mode)\b",
    r"\byour (?:new )?(?:instructions|task|role|rules) (?:is|are)\b",
    r"\bfrom now on,? (?:you|answer|reply|respond|always|every answer|only)\b",
    r"\b(?:the )?(?:correct|real|true|right|accurate) answer (?:is|to (?:any|every|this|the))\b",
    r"\b(?:every|each|any|all|your) (?:answers?|repl(?:y|ies)|responses?) (?:must|should|shall|will)\b",
    r"\b(?:reply|respond|answer)\s+(?:only|just|simply|exclusively)\b",
    r"\b(?:reply|respond|answer)\s+(?:only\s+)?with\s+(?:this|the following|these|[:\"“«])",
    r"(?:^|[.!?:]\s+)(?:please\s+)?(?:reply|respond|answer|say|output|print|write|cite|quote)\b",
    rf"(?:^|[.!?]\s+)(?:always|never|do not|don't) {_ANSWER_VERBS}\b",
    r"\btell\b[^.!?\n]{0,30}\b(?:users?|readers?)\b|\bthe user'?s (?:question|query)\b",
    r"\b(?:system prompt|developer mode|jailbreak|jailbroken)\b|(?-i:\bDAN\b)",
    # Our own reply format, copied so that the model's JSON can be "continued".
    r"\{\s*\"(?:passage|quote|answer)\"\s*:",
]
_INSTRUCTION = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), _I | re.MULTILINE)

# Fake chat turns: template tokens, and a role name opening a line ("System: …", "Assistant: …").
_TEMPLATE_TOKEN = re.compile(r"<\|[^|<>\n]{1,40}\|>|\[/?INST\]|<</?SYS>>|</?s>|</?tool_call>|<\|?endoftext\|?>", _I)
_ROLE_LINE = re.compile(r"^[ \t>*_#-]*(?:system|assistant|user|human|ai|bot|developer|tool)\s*:.*$", _I | re.MULTILINE)
_HASH_TURN = re.compile(r"^\s*#{2,}\s*(?:instruction|response|system|input|prompt|assistant|user)\b.*$",
                        _I | re.MULTILINE)
# A fake system or assistant turn runs from its opening token to the next template token.
_FAKE_TURN = re.compile(r"(?:<\|im_start\|>\s*(?:system|assistant|tool)|<\|(?:system|assistant)\|>|<<SYS>>|\[INST\]"
                        r"|<\|start_header_id\|>\s*(?:system|assistant)\s*<\|end_header_id\|>)"
                        r".*?(?=<\|[^|<>\n]{1,40}\|>|\[/?INST\]|<</?SYS>>|$)", _I | re.DOTALL)
_HASH_BLOCK = re.compile(r"^\s*#{2,}\s*(?:instruction|system|input|prompt)\b.*?(?=^\s*#{2,}|\n\s*\n|\Z)",
                         _I | re.MULTILINE | re.DOTALL)

# Markup that is not news text: HTML tags and comments, Markdown images and links (their target), and
# characters a reader never sees: Unicode tag characters (which can spell out a whole hidden instruction)
# and bidirectional overrides.
_MARKUP = re.compile(r"<!--.*?(?:-->|$)|<script\b.*?(?:</script\s*>|$)|<style\b.*?(?:</style\s*>|$)"
                     r"|</?[a-z][a-z0-9-]*(?:\s[^<>]*)?/?>|!\[[^\]\n]*\]\([^)\n]*\)?|\]\([^)\n]*\)?"
                     r"|[\U000E0000-\U000E007F\u202A-\u202E\u2066-\u2069]+", _I | re.DOTALL)

# An address: a scheme (http:, javascript:, data:…), www., a host with a path, or a defanged one.
URL = re.compile(r"\b[a-z][a-z0-9+.-]*:/*[^\s\"'<>]*[\w/=]|\bwww\d?\.[^\s\"'<>]+"
                 r"|\b[\w-]+(?:(?:\.|\[\.\]|\(\.\))[\w-]+)+/[^\s\"'<>]*|\b[\w-]+(?:\[\.\]|\(\.\))[\w-]+", _I)


def urls(text: str) -> list[str]:
    """Whatever in `text` looks like an address or a link target ("Note: …" and "10:30" do not)."""
    return [u.rstrip(".,;:!?)") for u in URL.findall(text)]


@functools.lru_cache(maxsize=512)
def instruction_spans(text: str) -> tuple[tuple[int, int], ...]:
    """(start, end) spans of `text` written to a model or not news at all, merged and in order.

    A sentence is the unit for instructions (one flagged phrase hides its sentence); fake turns, role
    lines and markup are hidden exactly.
    """
    spans = [m.span() for m in _MARKUP.finditer(text)]
    spans += [m.span() for pattern in (_FAKE_TURN, _HASH_BLOCK, _ROLE_LINE, _HASH_TURN, _TEMPLATE_TOKEN)
              for m in pattern.finditer(text)]
    for start, end in _sentences(text):
        if _INSTRUCTION.search(text[start:end]):  # the sentence alone, so that ^ is its start
            spans.append((start, end))
    return tuple(_merged(spans))


def _sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans, rejoined where a split fell inside a word ("…/log?q=" is one address, not two sentences)."""
    out: list[tuple[int, int]] = []
    for start, end in split_sentences(text):
        if out and out[-1][1] == start and start > 0 and not text[start - 1].isspace():
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def blank(text: str, spans: Sequence[tuple[int, int]] | None = None) -> str:
    """`text` with the given spans (default: `instruction_spans`) replaced by spaces, so offsets still hold."""
    spans = instruction_spans(text) if spans is None else spans
    chars = list(text)
    for start, end in spans:
        chars[start:end] = [c if c == "\n" else " " for c in text[start:end]]
    return "".join(chars)


def without_instructions(passage: Passage) -> Passage:
    """The passage with the text written to the model blanked out (offsets unchanged)."""
    spans = instruction_spans(passage.text)
    return replace(passage, text=blank(passage.text, spans)) if spans else passage
