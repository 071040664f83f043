"""Each step of the grounding pipeline, the name and number matching it uses, and the reply format, on
hand-made sentences (no index, no model)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from index import Passage
from qa import dates, grounding, matching, prompt
from qa.grounding import Claim
from qa.prompt import Reply, ReplyStream, Sentence, parse_reply


def passage(n: int, text: str, title: str) -> Passage:
    return Passage(id=f"d{n}:0", doc_id=f"d{n}", source=f"/a/d{n}.txt", title=title, date=None, text=text,
                   start=0, end=len(text))


PASSAGES = [
    passage(1, "The ministers met in Vienna on Monday. Oil exports fell by 12 percent in March, the office said.",
            "Ministers meet in Vienna"),
    passage(2, "The central bank kept its rate at 4.5 percent. Exports of oil dropped 12 percent in March.",
            "Bank holds rates"),
]
SENTENCES = prompt.number_sentences(PASSAGES)


def evidence(question: str, picked=()) -> grounding.Evidence:
    return grounding.Evidence(question, {s.id: s for s in SENTENCES},
                              {s.id: PASSAGES[s.passage].doc_id for s in SENTENCES},
                              {s.id: PASSAGES[s.passage].title for s in SENTENCES}, tuple(picked))


def ground(reply: str, question: str) -> list[Claim]:
    return grounding.ground(parse_reply(reply), question, SENTENCES, PASSAGES)


def test_sentences_are_numbered_once_each_in_reading_order_by_article():
    assert [(s.id, s.passage, s.text) for s in SENTENCES] == [
        (1, 0, "The ministers met in Vienna on Monday."),
        (2, 0, "Oil exports fell by 12 percent in March, the office said."),
        (3, 1, "The central bank kept its rate at 4.5 percent."),
        (4, 1, "Exports of oil dropped 12 percent in March.")]
    overlapping = [PASSAGES[0], passage(1, PASSAGES[0].text, "Ministers meet in Vienna")]
    assert len(prompt.number_sentences(overlapping)) == 2


def test_the_sentences_shown_are_the_best_ranked_within_a_count_and_a_length():
    def embed(texts):  # a question about oil: sentences mentioning oil point the same way
        import numpy as np

        return np.array([[1.0, 0.0] if "oil" in t.lower() else [0.0, 1.0] for t in texts])

    question = "How much did oil exports fall?"
    assert [s.text for s in prompt.rank_sentences(question, SENTENCES, embed)][:2] == [
        "Oil exports fell by 12 percent in March, the office said.", "Exports of oil dropped 12 percent in March."]
    chosen = prompt.choose_sentences(question, SENTENCES, embed, keep=3, budget=100)
    assert [(s.id, s.text) for s in chosen] == [(1, SENTENCES[1].text), (2, SENTENCES[3].text)]  # 100 characters: no room for a third
    assert len(prompt.choose_sentences(question, SENTENCES, embed, keep=1, budget=10)) == 1  # never none


def test_a_supported_sentence_passes_with_its_citation():
    [claim] = ground("Evidence: 1\n[1] The ministers met on Monday in Vienna.", "Where did the ministers meet?")
    assert (claim.text, claim.ids, claim.quoted) == ("The ministers met on Monday in Vienna.", (1,), False)


def test_a_sentence_copied_from_an_article_is_quoted_whole_even_if_cut_short():
    [claim] = ground("Evidence: 2\n[2] Oil exports fell by 12 percent in March, the off", "How much did exports fall?")
    assert (claim.text, claim.quoted) == ("Oil exports fell by 12 percent in March, the office said.", True)


def test_a_copy_cut_inside_a_word_or_begun_inside_the_sentence_is_quoted_whole():
    # The length limit can stop a copy mid-word, and a model may join the cut word to the one before ("has-san" for "has sanctioned"); it may also
    # leave out the sentence's first words.
    [claim] = ground("Evidence: 2\n[2] exports fell by 12 percent in March, the-offi", "How much did exports fall?")
    assert (claim.text, claim.quoted) == ("Oil exports fell by 12 percent in March, the office said.", True)


def test_a_line_that_repeats_itself_is_cut_where_the_repeat_begins():
    # A copied sentence whose last words the model went on writing again and again (as with a photo credit).
    [claim] = ground("Evidence: 2\n[2] Oil exports fell by 12 percent in March, the office said." + " the office said." * 5,
                     "How much did exports fall?")
    assert (claim.text, claim.quoted) == ("Oil exports fell by 12 percent in March, the office said.", True)
    assert prompt.unlooped("Prices rose, rose and rose again.") == "Prices rose, rose and rose again."   # one word: left alone
    assert prompt.unlooped("They said no, no, no to the plan to the plan.") == "They said no, no, no to the plan to the plan."
    assert prompt.unlooped("a b c d a b c d a b") == "a b c d"


def test_a_retold_sentence_is_not_taken_for_a_copy():
    [claim] = ground("Evidence: 2\n[2] Exports of oil fell by 12 percent in March.", "How much did exports fall?")
    assert (claim.text, claim.quoted) == ("Exports of oil fell by 12 percent in March.", False)


def test_no_evidence_is_no_answer():
    assert ground("Evidence: none", "Where did the ministers meet?") == []


def test_a_number_not_in_the_cited_sentence_turns_the_claim_into_a_quote_of_it():
    [claim] = ground("Evidence: 2\n[2] Oil exports fell by 15 percent in March.", "How much did oil exports fall in March?")
    assert claim.quoted and claim.text == "Oil exports fell by 12 percent in March, the office said."


def test_a_claim_about_something_else_is_dropped_when_its_sentence_does_not_answer():
    claims = ground("Evidence: 3\n[3] The bank raised rates to fight inflation in Vienna.",
                    "Why did the ministers travel to Vienna?")
    assert claims == []


def test_a_claim_citing_the_wrong_picked_sentence_is_recited():
    [claim] = ground("Evidence: 1, 3\n[1] The central bank kept the rate at 4.5 percent.",
                     "What did the central bank do?")
    assert claim.ids == (3,) and not claim.quoted


def test_a_copied_sentence_cited_by_the_wrong_number_is_quoted_from_the_right_one():
    [claim] = ground("Evidence: 1, 3\n[1] The central bank kept its rate at 4.5 percent.", "What did the central bank do?")
    assert claim.ids == (3,) and claim.quoted


def test_a_claim_that_only_restates_the_question_is_not_supported_by_any_sentence():
    assert not grounding.supports("The ministers met.", "The central bank kept its rate.", "Where did the ministers meet?")


def test_the_same_fact_in_another_article_is_cited_too():
    [claim] = ground("Evidence: 2\n[2] Oil exports dropped 12 percent in March.", "What happened to oil exports?")
    assert claim.ids == (2, 4)


def test_a_repeated_fact_is_said_once():
    claims = ground("Evidence: 1\n[1] The ministers met on Monday in Vienna.\n[1] The ministers met in Vienna.",
                    "Where did the ministers meet?")
    assert [c.text for c in claims] == ["The ministers met on Monday in Vienna."]


def test_a_true_sentence_about_something_else_does_not_answer():
    assert ground("Evidence: 1\n[1] The ministers gathered in Vienna.", "Which football club do the ministers support?") == []
    assert ground("Evidence: 1\n[1] The ministers gathered in Vienna.", "What did Napoleon say about Zanzibar?") == []


def test_a_question_naming_when_a_report_was_written_is_answered_from_an_article_of_that_time():
    dated = [replace(p, date=date) for p, date in zip(PASSAGES, ("2024-03-04", "2024-05-20"))]
    question = "Where did the ministers meet, according to the March report?"
    reply = parse_reply("Evidence: 1\n[1] The ministers met in Vienna on Monday.")
    assert [c.ids for c in grounding.ground(reply, question, SENTENCES, dated)] == [(1,)]
    assert grounding.ground(reply, question, SENTENCES, PASSAGES) == []          # undated: March is named nowhere
    later = [replace(p, date="2024-05-20") for p in PASSAGES]
    assert grounding.ground(reply, question, SENTENCES, later) == []             # a May report is not the March one


@pytest.mark.parametrize("date, words", [("2023-11-07", "7 November 2023"), ("2023-11", "November 2023"),
                                         ("2023", "2023"), (None, ""), ("2023-13-01", ""), ("yesterday", "")])
def test_an_articles_date_is_spelled_as_a_reader_names_it(date, words):
    assert dates.spelled(date) == words


def test_an_address_in_the_models_own_words_is_not_given():
    claims = grounding.no_addresses_outside_quotes(
        [Claim("Read more at evil.example/x about the Vienna meeting.", (1,), checked=True)],
        evidence("Where did the ministers meet?"))
    assert claims == []


@pytest.mark.parametrize("name, text, found", [
    ("United States", "The U.S. ambassador spoke.", True),
    ("US", "the United States said", True),
    ("ICC", "The International Criminal Court issued a warrant.", True),
    ("Estonian", "Estonia's prime minister spoke.", True),
    ("Hungarian", "the government of Hungary said", True),
    ("Szijjarto", "Péter Szijjártó met Lavrov.", True),
    ("Szijarto", "Péter Szijjártó met Lavrov.", True),
    ("Sijarto", "Péter Szijjártó met Lavrov.", True),      # a letter dropped and a doubling undone
    ("Gadafi", "Muammar Gaddafi ruled Libya.", True),
    ("Muamar Gadafi", "Muammar Gaddafi ruled Libya.", True),
    ("Sijarto", "Péter Sijártó met Lavrov.", True),
    ("Bucharest", "Budapest said no.", False),
    ("Slovakia", "Slovenia said no.", False),
    ("Viktor Orban", "Orbán met Putin.", True),
    ("Angela Merkel", "Orbán met Putin.", False),
    ("Austria", "Australia's prime minister spoke.", False),
    ("NATO", "The European Union met.", False),
])
def test_names_match_as_people_write_them(name, text, found):
    assert matching.has_name(name, text) is found


def test_names_are_the_capitalised_runs_not_the_word_that_opens_a_sentence():
    assert matching.names("Officials said the U.S. and NATO met in New York City.") == ["U.S.", "NATO", "New York City"]
    assert matching.names("NATO met. Then Hungary spoke.") == ["NATO", "Hungary"]


def test_a_compound_names_only_its_capitalised_part():
    assert matching.names("Which company unveiled AI-powered glasses after a US-brokered deal?") == ["AI", "US"]
    assert matching.names("How long did the Orbán-Putin meeting with Itamar Ben-Gvir last?") == [
        "Orbán-Putin", "Itamar Ben-Gvir"]
    assert matching.has_name(matching.names("the AI-powered glasses")[0], "Meta's new AI glasses")


def test_numbers_match_with_or_without_thousands_separators():
    assert matching.missing_numbers("Microsoft cut 9,000 jobs", "about 9000 workers") == []
    assert matching.missing_numbers("Microsoft cut 9,500 jobs", "about 9000 workers") == ["9500"]


def test_the_reply_is_read_as_evidence_ids_and_cited_lines():
    assert parse_reply("Evidence: 4, 9\n[4] A.\n[9, 2] B.") == Reply((4, 9), (((4,), "A."), ((9, 2), "B.")))
    assert parse_reply("Evidence: none") == Reply((), ())
    assert parse_reply('{"evidence": [3], "answer": [{"ids": [3], "text": "C."}]}') == Reply((3,), (((3,), "C."),))
    assert parse_reply("garbage") == Reply((), ())


def test_the_stream_shows_the_evidence_once_then_only_the_answer_text():
    reply, stream, events = "Evidence: 4, 9\n[4] Microsoft is cutting jobs.\n[9] Cuts follow May's.", ReplyStream(), []
    for i in range(0, len(reply), 3):
        events.append(stream.feed(reply[i:i + 3]))
    assert [ids for ids, _ in events if ids is not None] == [(4, 9)]
    assert "".join(text for _, text in events) == "Microsoft is cutting jobs. Cuts follow May's."


def test_the_json_schema_twin_of_the_grammar_limits_ids_to_those_shown():
    schema = prompt.reply_schema(3)
    assert schema["properties"]["evidence"]["items"]["enum"] == [1, 2, 3]
    assert schema["properties"]["answer"]["maxItems"] == prompt.MAX_LINES


def test_the_answer_may_use_the_shown_sentences_characters_and_no_other_script():
    shown = [Sentence(1, 0, 0, 30, "Orbán met Putin — “a boon”, critics said.")]
    grammar = prompt.grammar_for(shown)
    text_rule = next(line for line in grammar.splitlines() if line.startswith("text ::="))
    assert all(c in text_rule for c in "á—“”") and "国" not in text_rule and "[" not in text_rule[10:-8]
    assert prompt.shown_in(grammar) == 1 and prompt.shown_in("root ::= x") is None
    from llama_cpp import LlamaGrammar

    LlamaGrammar.from_string(grammar, verbose=False)  # llama.cpp parses it


def test_an_answer_whose_best_cited_sentence_is_far_from_the_question_is_a_refusal():
    claims = [Claim("Oil exports fell by 12 percent in March.", (2,), checked=True)]
    scored = {s.id: replace(s, score=0.9 if s.id == 2 else 0.2) for s in SENTENCES}
    near = replace(evidence("How much did oil exports fall?"), sentences=scored)
    assert grounding.near_the_question(claims, near) == claims
    far = replace(near, sentences={**scored, 2: replace(scored[2], score=0.6)})
    assert grounding.near_the_question(claims, far) == []
    assert grounding.near_the_question(claims, evidence("How much did oil exports fall?")) == claims  # not ranked


def test_a_sentence_from_an_article_about_the_question_may_say_it_in_other_words():
    """The same sentence score passes from an article holding the question's terms, and is refused from one
    that holds few of them (a search's best guess in an archive without the answer)."""
    claims = [Claim("Oil exports fell by 12 percent in March.", (2,), checked=True)]
    scored = {s.id: replace(s, score=0.65) for s in SENTENCES}
    about = replace(evidence("How much did oil exports fall?"),
                    sentences={i: replace(s, topic=0.9) for i, s in scored.items()})
    assert grounding.near_the_question(claims, about) == claims
    elsewhere = replace(about, sentences={i: replace(s, topic=0.2) for i, s in scored.items()})
    assert grounding.near_the_question(claims, elsewhere) == []
    unknown = replace(about, sentences=scored)  # no share known: the sentence's score alone, at the same bar
    assert grounding.nearness(scored[2]) == pytest.approx(0.65 + grounding.TOPIC_WEIGHT * 0.5)
    assert grounding.near_the_question(claims, unknown) == []


def test_the_model_is_needed_only_when_some_answer_from_the_shown_sentences_could_pass_the_checks():
    assert grounding.could_answer("How much did oil exports fall?", SENTENCES, PASSAGES)  # not ranked: the model decides
    assert not grounding.could_answer("What did Angela Merkel say about oil?", SENTENCES, PASSAGES)  # named nowhere
    ranked = [replace(s, score=0.9 if "Oil exports" in s.text else 0.3) for s in SENTENCES]
    assert grounding.could_answer("How much did oil exports fall?", ranked, PASSAGES)
    far = [replace(s, score=0.5) for s in SENTENCES]
    assert not grounding.could_answer("How much did oil exports fall?", far, PASSAGES)  # none near the question
    assert not grounding.could_answer("How much did oil exports fall?", [], PASSAGES)  # nothing shown


def test_a_citation_that_carries_nothing_of_the_claim_is_dropped():
    [claim] = ground("Evidence: 1, 3\n[1, 3] The ministers met on Monday in Vienna.", "Where did the ministers meet?")
    assert claim.ids == (1,)


@pytest.mark.parametrize("question, previous, checked", [
    ("What did she say about it?", "Which Estonian leader criticised the meeting?",
     "Which Estonian leader criticised the meeting? What did she say about it?"),
    ("And why?", "Who closed the pipeline?", "Who closed the pipeline? And why?"),
    ("Why did Kallas criticise it?", "Which Estonian leader criticised the meeting?", "Why did Kallas criticise it?"),
    ("How long did the halt last?", "What happened to the pipeline?", "How long did the halt last?"),
    ("What did she say about it?", None, "What did she say about it?"),
])
def test_a_follow_up_with_nothing_of_its_own_is_checked_with_the_question_before_it(question, previous, checked):
    assert grounding.checked_question(question, previous) == checked


def test_a_follow_up_s_sentences_are_scored_by_the_question_it_follows_too():
    """`rank_sentences(context=...)`: each sentence scores the better of the question and its context."""
    from fakes import HashEmbedder

    shown = [Sentence(1, 0, 0, 40, "The weather in Tallinn was fine on Tuesday."),
             Sentence(2, 0, 40, 90, "Kallas called the handshake with Putin very unpleasant.")]
    follow_up = "What did she say about it?"
    context = "Which Estonian leader, Kallas, criticised the handshake with Putin? " + follow_up
    alone = {s.id: s.score for s in prompt.rank_sentences(follow_up, shown, HashEmbedder().embed)}
    ranked = prompt.rank_sentences(follow_up, shown, HashEmbedder().embed, context=context)
    assert ranked[0].id == 2 and ranked[0].score > alone[2] + 0.3
    assert all(s.score >= alone[s.id] for s in ranked)


def test_a_name_no_chosen_sentence_holds_brings_in_the_best_sentence_that_does():
    """`choose_sentences`: "Estonian" is in one short sentence that ranks under long ones about Orban and
    Putin; it is shown in place of the lowest-ranked sentence whose names others hold too."""
    from fakes import HashEmbedder

    long = [Sentence(i, 0, 100 * i, 100 * i + 90,
                     f"Orban met Putin in Beijing and they discussed gas and oil, report {i}.") for i in range(1, 5)]
    kallas = Sentence(5, 0, 500, 560, "Estonian Prime Minister Kaja Kallas called it unpleasant.")
    question = "Which Estonian leader spoke out against Orban's meeting with Putin?"
    plain = prompt.choose_sentences("What did Orban and Putin discuss?", [*long, kallas], HashEmbedder().embed,
                                    keep=3, budget=1000)
    assert all("Kallas" not in s.text for s in plain)
    shown = prompt.choose_sentences(question, [*long, kallas], HashEmbedder().embed, keep=3, budget=1000)
    assert len(shown) == 3 and shown[-1].text == kallas.text
    assert all("Orban" in s.text for s in shown[:-1])
