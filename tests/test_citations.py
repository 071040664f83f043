"""Citation parsing, checking and renumbering, on hand-made passages."""

from __future__ import annotations

import pytest

from index import Passage
from qa import citations
from qa.prompt import AnswerStream, parse_reply


def passage(i: int, text: str, doc: str = "d") -> Passage:
    return Passage(id=f"{doc}{i}:0", doc_id=f"{doc}{i}", source=f"/a/{doc}{i}.txt", title="t", date=None,
                   text=text, start=100, end=100 + len(text))


PASSAGES = [
    passage(1, "The ministers met in Vienna on Monday to discuss gas prices."),
    passage(2, "Oil exports fell by 12 percent in March, the statistics office said."),
    passage(3, "The central bank kept its interest rate at 4.5 percent."),
]


def check(text: str, question: str = "") -> tuple[str, list[int]]:
    return citations.render(citations.check(text, PASSAGES, question))


def test_markers_are_renumbered_in_order_of_first_use():
    text, order = check("Oil exports fell by 12 percent in March [2]. The ministers met in Vienna [1].")
    assert text == "Oil exports fell by 12 percent in March [1]. The ministers met in Vienna [2]."
    assert order == [1, 0]


def test_a_marker_pointing_at_no_passage_is_removed_and_the_right_passage_found():
    text, order = check("The central bank kept its rate at 4.5 percent [7].")
    assert text == "The central bank kept its rate at 4.5 percent [1]." and order == [2]


def test_a_wrong_citation_is_replaced_by_the_passage_that_supports_the_sentence():
    text, order = check("The ministers met in Vienna on Monday [3].")
    assert order == [0]


def test_a_sentence_without_markers_gets_its_supporting_passage():
    assert check("Oil exports fell in March.")[1] == [1]


def test_unsupported_sentences_are_dropped_and_supported_ones_kept():
    text, order = check("The ministers met in Vienna [1]. They agreed to cap prices at 80 euros [1].")
    assert text == "The ministers met in Vienna [1]." and order == [0]


@pytest.mark.parametrize("sentence", [
    "Oil exports fell by 15 percent in March [2].",      # a number the passage does not state
    "The harvest was poor because of the drought [1].",  # nothing of it in any passage
    "[1]",                                               # a bare marker
])
def test_nothing_supported_means_no_citations(sentence):
    assert check(sentence) == ("", [])


def test_restating_the_question_is_not_support():
    assert check("The ministers discussed [1].", question="What did the ministers discuss?") == ("", [])


def test_a_name_the_passage_does_not_have_is_not_supported_even_when_the_question_asked_it():
    passage = "Mr Putin said he was working to increase supplies of gas and oil to Hungary."
    question = "What did Xi Jinping say to Orban?"
    assert citations.support("Xi Jinping said he was working to increase supplies of gas", passage, question) == 0
    assert citations.support("Putin said he was working to increase supplies of gas", passage, question) >= 0.6


def test_several_markers_in_one_group():
    text, order = check("The ministers met in Vienna and oil exports fell in March [1, 2].")
    assert order == [0, 1] and text.endswith("[1][2].")


def test_quote_is_found_despite_small_copying_errors():
    p = PASSAGES[1]
    start, end = citations.locate("Oil exports fell by 12 per cent in March", p)
    assert p.text[start - p.start:end - p.start].startswith("Oil exports fell by 12 per")
    assert citations.locate("something else entirely, not here", p) == (p.start, p.end)


def test_names_missing_from_the_articles():
    assert citations.missing_names("What did Xi Jinping tell Orbán's aides?", "Orban met Putin.") == ["Xi", "Jinping"]
    assert citations.missing_names("What did Orbán's aides say?", "Orban met Putin.") == []


def test_sentence_around_a_quote():
    p = passage(9, "First sentence here. The quoted part is in this one. Last one.")
    lo, hi = citations.sentence_around(p, p.start + 25, p.start + 35)
    assert p.text[lo - p.start:hi - p.start] == "The quoted part is in this one."


@pytest.mark.parametrize("raw, expected", [
    ('{"passage": 2, "quote": "q", "answer": "a"}', (2, "q", "a")),
    ('{"passage": 2, "quote": "cut off mid', (2, "cut off mid", "")),
    ("not json at all", (0, "", "")),
    ('{"passage": "x", "answer": "fine"}', (0, "", "fine")),
])
def test_parse_reply_tolerates_broken_output(raw, expected):
    r = parse_reply(raw)
    assert (r.passage, r.quote, r.answer) == expected


def test_answer_stream_shows_only_the_answer_field():
    stream = AnswerStream()
    raw = '{"passage": 1, "quote": "the quote", "answer": "Short answer."}'
    shown = "".join(stream.feed(raw[i:i + 3]) for i in range(0, len(raw), 3))
    assert shown == "Short answer."
