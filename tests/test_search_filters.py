"""Searching only some articles: by date range and by source, from the store to the CLI."""

from __future__ import annotations

import pytest

from fakes import FakeGenerator, indexed_store, write_articles
from index import InputError, SearchFilter, Store, ingest
from qa import Assistant, Settings, cli
from qa.retrieval import retrieve

DATED = {
    "reuters/oil-march.txt": "Oil exports rise\n\ndate 2025-03-10\n\nOil exports through the port rose in March.",
    "reuters/oil-july.txt": "Oil exports fall\n\ndate 2025-07-04\n\nOil exports through the port fell in July.",
    "ap/oil-undated.txt": "Oil exports steady\n\nOil exports through the port held steady, traders said.",
}


@pytest.fixture
def dated(tmp_path, embedder) -> Store:
    return indexed_store(tmp_path, embedder, DATED)


def names(passages) -> set[str]:
    return {p.source.rsplit("/", 1)[-1] for p in passages}


@pytest.mark.parametrize("since, until, expected", [
    ("2025-07", None, {"oil-july.txt"}),
    (None, "2025-06-30", {"oil-march.txt"}),
    ("2025", "2025", {"oil-march.txt", "oil-july.txt"}),   # undated articles are in no range
])
def test_a_date_range_keeps_the_articles_dated_in_it(dated, since, until, expected):
    filters = SearchFilter.parse(since, until)
    assert names(dated.search("oil exports port", 10, filters)) == expected
    assert names(dated.keyword_search("oil exports port", 10, filters)) == expected
    assert names(retrieve(dated, "oil exports port", 10, filters=filters)) == expected


def test_a_source_is_any_part_of_the_file_path(dated):
    only_ap = SearchFilter.parse(sources="AP/")
    assert names(retrieve(dated, "oil exports", 10, filters=only_ap)) == {"oil-undated.txt"}
    both = SearchFilter.parse(sources="oil-march.txt, oil-undated")
    assert names(dated.search("oil exports", 10, both)) == {"oil-march.txt", "oil-undated.txt"}


def test_a_month_or_year_means_all_of_it():
    assert SearchFilter.parse("2024-02", "2024-02") == SearchFilter("2024-02-01", "2024-02-29")
    assert SearchFilter.parse("2025", "2025").until == "2025-12-31"
    assert not SearchFilter.parse("", " ", "")
    assert not SearchFilter.parse(None, None, None), "empty boxes of the browser form arrive as None"


@pytest.mark.parametrize("since, until, message", [
    ("July", None, "since 'July' is not a date: write it as 2025-07-04"),
    (None, "2025-13", "until '2025-13' is not a date"),
    ("2025-08", "2025-07", "since 2025-08-01 is after until 2025-07-31"),
])
def test_a_bad_range_says_how_to_write_it(since, until, message):
    with pytest.raises(InputError, match=message):
        SearchFilter.parse(since, until)


def test_a_filter_no_article_passes_is_an_error_naming_it(dated):
    bot = Assistant(dated, FakeGenerator(), Settings(index_dir=dated.index_dir))
    with pytest.raises(InputError, match="no article in the index is dated 2020-01-01 to 2020-12-31"):
        bot.ask("Did oil exports rise?", filters=SearchFilter.parse("2020", "2020"))
    assert names(bot.search("oil exports", 10, SearchFilter.parse(sources="july"))) == {"oil-july.txt"}


def test_ask_filters_from_the_command_line(dated, capsys):
    assert cli.main(["ask", "Did oil exports rise?", "--index", str(dated.index_dir), "--since", "July"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qa: since 'July' is not a date") and "Traceback" not in err


def test_an_approximate_index_filters_too(tmp_path, embedder, monkeypatch):
    monkeypatch.setenv("QA_ANN_THRESHOLD", "20")
    articles = {f"wire/{n:02d}.txt": f"Story {n}\n\ndate 2025-0{1 + n % 9}-01\n\nHarbour cranes number {n} "
                f"and ferry line {n} report cargo volumes." for n in range(40)}
    store = indexed_store(tmp_path, embedder, articles)
    assert store.vector_index.kind == "ivf"
    found = store.search("harbour cranes cargo", 5, SearchFilter.parse("2025-03", "2025-03"))
    assert len(found) == 5 and {p.date for p in found} == {"2025-03-01"}
