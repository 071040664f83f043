"""From the model's reply to an answer whose every sentence is backed by the sentences it cites.

The reply names its evidence (numbered sentences of the retrieved passages) and then writes a few
sentences, each with the ids it rests on (`prompt.py`). `ground` runs the checks below in order, each
a function from claims to claims; an answer with no claim left is a refusal, and so is a reply that
names no evidence. Every threshold was measured with `qa eval` on half of the development sets and
checked on the other half (README "How an answer is made (and checked)"; each
check's worth: bench/RESULTS.md).

    draft → supported → quote_unsupported → about_the_question → no_addresses_outside_quotes
          → merge_repeats → cite_every_article → near_the_question
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from index import Passage

from . import dates, injection, matching
from .prompt import Reply, Sentence, unlooped

MIN_SUPPORT = 0.6     # share of a claim's own content words that its evidence must contain
MIN_RELEVANCE = 0.5   # share of the question's content words a sentence needs to be quoted as the answer
MAX_SOURCES = 3       # citations one claim may carry
MIN_NEARNESS = 0.95   # `nearness` the answer's best cited sentence needs
TOPIC_WEIGHT = 0.5    # of its article's share of the question's search terms in `nearness`


@dataclass(frozen=True)
class Claim:
    """One sentence of the answer and the shown sentences (ids) it rests on."""

    text: str
    ids: tuple[int, ...]
    quoted: bool = False       # the text is the cited sentence, word for word
    checked: bool = False      # passed `supported`


@dataclass(frozen=True)
class Evidence:
    """What the checks read: the question, the shown sentences by id with their articles (id, and the
    heading the model saw: title and date), and the ids the model picked."""

    question: str
    sentences: Mapping[int, Sentence]
    articles: Mapping[int, str]
    titles: Mapping[int, str]
    picked: tuple[int, ...] = ()

    def text(self, ids: Sequence[int]) -> str:
        """The cited sentences with their articles' headings: a title often names who "he" is, and a date
        is when "the November report" was written."""
        titles = dict.fromkeys(self.titles[i] for i in ids)
        return " ".join([*titles, *(self.sentences[i].text for i in ids)])


Step = Callable[[list[Claim], Evidence], list[Claim]]


def draft(reply: Reply, evidence: Evidence) -> list[Claim]:
    """The reply's lines as claims, with only ids that were shown (a server may ignore the grammar); a line
    that names none rests on the evidence line's ids, and one that repeats itself is cut where the repeat
    begins (`prompt.unlooped`). No evidence named and nothing cited: no claims."""
    claims = []
    for ids, text in reply.lines:
        ids = tuple(i for i in ids if i in evidence.sentences) or evidence.picked
        claim = Claim(" ".join(unlooped(text).split()), ids)
        if ids and claim.text:
            # A sentence copied from an article is shown whole and as a quotation, even if the model's
            # copy was cut off by the length limit.
            copied = _copied_from(claim, evidence)
            claims.append(claim if copied is None else
                          Claim(evidence.sentences[copied].text, (copied,), quoted=True, checked=True))
    return claims


def _copied_from(claim: Claim, evidence: Evidence) -> int | None:
    """The shown sentence the claim copies word for word, if any: a cited one first, then a picked one,
    then any (small models often cite the number next to it). The copy may be cut short by the length
    limit, in the middle of a word ("the EU has-san" for "the EU has sanctioned"), and may differ in
    punctuation; it must hold 60% of the sentence's words."""
    words = matching.word_list(claim.text)
    if not words:
        return None
    for i in dict.fromkeys([*claim.ids, *evidence.picked, *evidence.sentences]):
        sentence = matching.word_list(evidence.sentences[i].text)
        if len(words) >= 0.6 * len(sentence) and _holds_copy(sentence, words):
            return i
    return None


def _holds_copy(sentence: list[str], words: list[str]) -> bool:
    """`words` run in `sentence`, but the last of them may be the start of the sentence's word."""
    n = len(words)
    return any(sentence[j:j + n - 1] == words[:-1] and sentence[j + n - 1].startswith(words[-1])
               for j in range(len(sentence) - n + 1))


def about_the_question(claims: list[Claim], evidence: Evidence) -> list[Claim]:
    """Catches true sentences that answer another question ("Which club does Orban support?" answered
    with a sentence that merely names Orban, "What did Xi say to Orban?" with what Putin said).

    Together, the sentences the answer cites (with their titles) must name everyone the question names
    (matched loosely: `matching.has_name`) and hold one of its other content words or numbers, unless
    the question names two or more ("What did Orban tell Putin?" answered in other words). Each claim's
    own evidence must share at least a name, a word or a number with the question: a question about
    two things may be answered by one sentence on each.
    """
    question = evidence.question
    names = matching.names(question)
    words = matching.content_words(question) - matching.content_words(" ".join(names))
    figures = matching.numbers(question)

    def shares(text: str) -> tuple[int, bool]:
        said = bool(words & matching.content_words(text)) or len(matching.missing_numbers(question, text)) < len(figures)
        return sum(matching.has_name(n, text) for n in names), said

    named, said = shares(evidence.text(sorted({i for c in claims for i in c.ids})))
    if named < len(names) or not (said or len(names) >= 2 or not (words or figures)):
        return []
    return [c for c in claims if any(shares(evidence.text(c.ids)))]


def supports(claim: str, evidence_text: str, question: str) -> bool:
    """Every number and name of the claim is in the evidence, and most of its other content words are.

    Words the claim repeats from the question are not counted (an answer restates what was asked), but
    its names and numbers always are: "Xi Jinping said …" needs Xi in the sentence, even if asked about.
    """
    if matching.missing_numbers(claim, evidence_text) or matching.missing_names(claim, evidence_text):
        return False
    return matching.coverage(claim, evidence_text, ignore=question) >= MIN_SUPPORT


def supported(claims: list[Claim], evidence: Evidence) -> list[Claim]:
    """Catches a sentence that says more than its citations: checked against the sentences it cites, then,
    failing that, against each sentence of the evidence line alone (small models often cite the
    neighbour of the right sentence). A claim that passes is marked checked and re-cited if needed."""
    out = []
    for claim in claims:
        if supports(claim.text, evidence.text(claim.ids), evidence.question):
            out.append(replace(claim, ids=_needed(claim, evidence), checked=True))
            continue
        others = [i for i in evidence.picked if i not in claim.ids]
        better = next((i for i in others if supports(claim.text, evidence.text([i]), evidence.question)), None)
        out.append(replace(claim, ids=(better,), checked=True) if better else claim)
    return out


def _needed(claim: Claim, evidence: Evidence) -> tuple[int, ...]:
    """The claim's ids less those it is supported without: every citation must carry part of the claim."""
    ids = list(claim.ids)
    for i in reversed(claim.ids):
        rest = [j for j in ids if j != i]
        if rest and supports(claim.text, evidence.text(rest), evidence.question):
            ids = rest
    return tuple(ids)


def quote_unsupported(claims: list[Claim], evidence: Evidence) -> list[Claim]:
    """Catches the right evidence wrongly retold: an unchecked claim is replaced by the sentence it cites,
    word for word, when that sentence speaks about the question; otherwise it is dropped."""
    out = []
    for claim in claims:
        if claim.checked:
            out.append(claim)
            continue
        ranked = sorted(claim.ids, key=lambda i: -matching.relevance(evidence.question, evidence.sentences[i].text))
        best = ranked[0] if ranked else None
        # The sentence alone, not its article's title: a title on the topic makes any of its sentences look
        # relevant, and a quote must answer by itself.
        if best is not None and matching.relevance(evidence.question, evidence.sentences[best].text) >= MIN_RELEVANCE:
            out.append(Claim(evidence.sentences[best].text, (best,), quoted=True, checked=True))
    return out


def no_addresses_outside_quotes(claims: list[Claim], evidence: Evidence) -> list[Claim]:
    """Catches an injected "reply with this link" that the model obeyed: an address may stand in the
    answer only inside a sentence of an article quoted word for word (`injection.py`)."""
    out = []
    for claim in claims:
        if claim.quoted or not injection.urls(claim.text):
            out.append(claim)
            continue
        holder = next((i for i in claim.ids if injection.urls(evidence.sentences[i].text)), None)
        if holder is not None:
            out.append(Claim(evidence.sentences[holder].text, (holder,), quoted=True, checked=True))
    return out


def merge_repeats(claims: list[Claim], evidence: Evidence) -> list[Claim]:
    """Catches the same fact said twice (a quote that replaced a claim next to another claim from the same
    sentence, or a model repeating itself): a claim whose words another claim holds too goes; of two
    claims with the same words, the first stays."""
    words = [matching.content_words(c.text) | matching.numbers(c.text) for c in claims]
    return [c for n, c in enumerate(claims)
            if not any(m != n and words[n] <= words[m] and (words[n] != words[m] or m < n) for m in range(len(claims)))]


def cite_every_article(claims: list[Claim], evidence: Evidence) -> list[Claim]:
    """Catches a fact reported by several articles cited to one: a shown sentence from another article
    that supports the claim just as well is cited too (up to MAX_SOURCES)."""
    out = []
    for claim in claims:
        ids = list(claim.ids)
        articles = {evidence.articles[i] for i in ids}
        for i in evidence.sentences:
            if len(ids) >= MAX_SOURCES:
                break
            if i in ids or evidence.articles[i] in articles:
                continue
            if supports(claim.text, evidence.text([i]), evidence.question):
                ids.append(i)
                articles.add(evidence.articles[i])
        out.append(replace(claim, ids=tuple(ids)))
    return out


def near_the_question(claims: list[Claim], evidence: Evidence) -> list[Claim]:
    """Catches an answer drawn from passages about something else, which is what a search returns when
    the archive does not hold the answer ("Which bird nests on the bridge?" answered from an article
    about fish in the river): of the sentences the answer cites, the one nearest the question must reach
    MIN_NEARNESS (`nearness`). Weights measured on the even half of news-2025, checked on the odd half
    and on the sample-article sets (bench/RESULTS.md)."""
    scores = [nearness(evidence.sentences[i]) for c in claims for i in c.ids]
    if scores and None not in scores and max(scores) < MIN_NEARNESS:
        return []
    return claims


def nearness(sentence: Sentence) -> float | None:
    """How near a shown sentence is to the question: its own score (`prompt.rank_sentences`: cosine with
    the question plus half the share of its content words) plus TOPIC_WEIGHT times the share of the
    question's search terms its article holds (`retrieval.topic_shares`; half, when that is not known).
    A paraphrase ("travelled" for "visited") scores low on its own but comes from an article about the
    question; a sentence on the asked words from an article on another story does not. None: not ranked
    (another embedder's cosines are on another scale)."""
    if sentence.score is None:
        return None
    return sentence.score + TOPIC_WEIGHT * (0.5 if sentence.topic is None else sentence.topic)


STEPS: tuple[Step, ...] = (supported, quote_unsupported, about_the_question, no_addresses_outside_quotes,
                           merge_repeats, cite_every_article, near_the_question)


def checked_question(question: str, previous: str | None = None) -> str:
    """The question the checks hold an answer to: `question` itself, unless it names nothing, asks about
    no word and states no number of its own ("What did she say about it?", "And why?"); such a follow-up
    is about what the `previous` question asked, and is checked as that question and this one together.
    Without it, `about_the_question` finds nothing the question asks about in any sentence and refuses
    every answer."""
    own = matching.names(question) or matching.content_words(question) or matching.numbers(question)
    if previous and not own:
        return f"{previous} {question}"
    return question


def could_answer(question: str, sentences: Sequence[Sentence], passages: Sequence[Passage]) -> bool:
    """Whether any answer drawn from the shown `sentences` could pass the checks that read only the question
    and the evidence (`about_the_question`, `near_the_question`). Each asks something of the sentences an
    answer cites that those sentences can only have if all the shown ones have it (a name, a word, a
    score), so an answer citing all of them is the best any can do; when even that one fails, the answer
    is a refusal whatever the model writes, and the assistant does not ask it."""
    evidence = _evidence(question, sentences, passages)
    everything = [Claim(question, tuple(evidence.sentences))]
    return all(step(everything, evidence) for step in (about_the_question, near_the_question))


def _evidence(question: str, sentences: Sequence[Sentence], passages: Sequence[Passage]) -> Evidence:
    return Evidence(question, {s.id: s for s in sentences}, {s.id: passages[s.passage].doc_id for s in sentences},
                    {s.id: _heading(passages[s.passage]) for s in sentences})


def _heading(passage: Passage) -> str:
    """An article's title and date, as the model is shown them above its sentences (`prompt.build_messages`)."""
    when = dates.spelled(passage.date)
    return injection.blank(passage.title) + (f" ({when})" if when else "")


def ground(reply: Reply, question: str, sentences: Sequence[Sentence], passages: Sequence[Passage],
           steps: Sequence[Step] = STEPS) -> list[Claim]:
    """The checked claims of `reply` about the shown `sentences` of `passages`, after `steps`; empty: the
    articles don't say."""
    evidence = _evidence(question, sentences, passages)
    evidence = replace(evidence, picked=tuple(i for i in reply.evidence if i in evidence.sentences))
    if not evidence.picked and not reply.lines:
        return []
    claims = draft(reply, evidence)
    for step in steps:
        claims = step(claims, evidence)
    return claims
