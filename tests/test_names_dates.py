"""Names spelled as people write them, and the time a question names."""

from __future__ import annotations

import datetime as dt

import pytest

from fakes import indexed_store
from index import Store
from index.names import Vocabulary, fold, spell_out, written_as_names
from qa.dates import Period, named_period
from qa.retrieval import DEFAULT, Recipe, hit_at, retrieve

NAMES = {
    "minister.txt": "Talks in Minsk\n\nForeign minister Péter Szijjártó met his counterpart in Minsk on grain.",
    "bank.txt": "Rates on hold\n\nThe central bank of the United States kept interest rates on hold.",
    "weather.txt": "Storm warning\n\nA storm is expected over the coast; the minister urged caution.",
}


@pytest.fixture
def named(tmp_path, embedder) -> Store:
    return indexed_store(tmp_path, embedder, NAMES)


def test_a_name_without_its_accents_finds_the_article_that_has_them(named):
    assert named.keyword_search("What did Szijjarto discuss?", 3) == []
    found = named.keyword_search("What did Szijjarto discuss?", 3, fuzzy_names=True)
    assert [p.source.rsplit("/", 1)[-1] for p in found] == ["minister.txt"]


def test_a_misspelled_name_finds_its_article(named):
    found = named.keyword_search("Where did Szijarto meet his counterpart?", 3, fuzzy_names=True)
    assert found[0].source.endswith("minister.txt")


def test_us_is_the_united_states(named):
    assert spell_out("Did the US raise rates?") == "Did the US United States raise rates?"
    assert named.keyword_search("US rates", 3, fuzzy_names=True)[0].source.endswith("bank.txt")


def test_only_long_words_and_names_are_matched_loosely():
    vocabulary = Vocabulary(["szijjártó", "minister", "grain"])
    assert vocabulary.spellings("szijjarto") == ["szijjártó"]
    assert vocabulary.spellings("grin") == []          # too short to tell a typo from another word
    assert fold("Szijjártó") == "szijjarto"
    assert written_as_names("Why did Orban meet Putin? Later Xi came.") == ["Orban", "Putin", "Xi"]


TODAY = dt.date(2025, 7, 16)  # a Wednesday


@pytest.mark.parametrize("question, period", [
    ("What happened in October?", Period(month=10)),
    ("Who won on October 5, 2024?", Period("2024-10-05", "2024-10-05")),
    ("What did the bank do in 2024?", Period("2024-01-01", "2024-12-31")),
    ("Who resigned this week?", Period("2025-07-14", "2025-07-20")),
    ("Who resigned last week?", Period("2025-07-07", "2025-07-13")),
    ("What rose last month?", Period("2025-06-01", "2025-06-30")),
    ("Who was elected yesterday?", Period("2025-07-15", "2025-07-15")),
    ("Who may resign?", None),
    ("Who will lead the party?", None),
])
def test_the_time_a_question_names(question, period):
    assert named_period(question, TODAY) == period


def test_articles_of_the_time_asked_rank_higher(tmp_path, embedder):
    # Different figures, so that the three are not one article once their datelines become dates.
    articles = {f"{month}.txt": f"Port traffic\n\ndate 2025-{month}-12\n\nPort traffic rose again, by {n} ships, the "
                f"harbour master said." for n, month in enumerate(("03", "07", "10"), 5)}
    store = indexed_store(tmp_path, embedder, articles)
    question = "How did port traffic change in October?"
    assert retrieve(store, question, 1, recipe=Recipe(dates=True))[0].date == "2025-10-12"
    assert retrieve(store, "How did port traffic change in July?", 1, recipe=Recipe(dates=True))[0].date == "2025-07-12"


class Q:
    sources = ("minister.txt",)
    evidence_any = ("SZIJJÁRTÓ",)


def test_a_hit_needs_the_evidence_in_a_passage_of_a_source_article(named):
    passages = retrieve(named, "Szijjarto grain talks", 3)
    assert hit_at(passages, Q())
    assert not hit_at([p for p in passages if not p.source.endswith("minister.txt")], Q())
    assert DEFAULT.names  # the assistant searches names loosely
