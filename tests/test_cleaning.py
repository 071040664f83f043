"""Page furniture out of article text: what is dropped, what must stay, and the dateline's date."""

from __future__ import annotations

import pytest

from index import load_file
from index.cleaning import clean_article
from index.loading import to_document


def test_the_sample_dateline_is_not_passage_text_but_the_date(sample_corpus):
    """The issue's example: 003 starts "date 2023-11-07 In a reaffirmation…", and that was quoted as an answer."""
    doc = load_file(sample_corpus / "003_b0f1806591561c29.txt")
    assert doc.text.startswith("In a reaffirmation of their commitment")
    assert "date 2023" not in doc.text and doc.date == "2023-11-07"


@pytest.mark.parametrize("line", [
    "date 2023-11-07",
    "CNN —",
    "New York CNN Business —",
    "By Ann Lee and Bo Chan",
    "By Ann Lee, Reuters",
    "By Staff | 3 March 2025",
    "*By Ann Lee* | 3 March 2025",
    "**By Ann Lee and Bo Chan**",
    "BY ANN LEE",
    "Reporting by Ann Lee; editing by Bo Chan",
    "– Ann Lee",
    "−Sudiksha Kochi",
    "Contributing: Reuters",
    "From USA TODAY Network and wire reports",
    "Read more: Why the markets fell",
    "READ MORE HERE.",
    "Click here to read the full story.",
    "Sign up for our daily newsletter",
    "Subscribe now for unlimited access",
    "Follow Ann Lee on X @annlee.",
    "Reach Ann Lee at alee@example.com.",
    "Share this article",
    "Share",
    "Advertisement",
    "Back to the top",
    "We use cookies to improve your experience. By continuing you accept our cookie policy.",
    "Firefighters at the scene on Monday. Jane Doe/Getty Images",
    "Crowds gathered in the square. Ann Lee/AP",
    "Photo: Ann Lee",
    "__________",
    "Reuters",
])
def test_furniture_lines_are_dropped(line):
    text = f"Storm floods the harbour\n\n{line}\n\nHeavy rain flooded the harbour on Monday."
    assert clean_article(text).text == "Storm floods the harbour\n\nHeavy rain flooded the harbour on Monday."


@pytest.mark.parametrize("line", [
    "By the end of the week, the harbour had reopened and the ferries were running again.",
    "Readers who want to read more about the storm can find the weather service's report online, he said.",
    "Share prices fell by 3% after the announcement.",
    "By Monday, the water had receded.",
    "By the way, nobody was hurt.",
    "Photographers crowded the steps of the court on Tuesday.",
    "The company said it would follow the rules on Twitter and other networks from now on, but gave no date.",
    "Advertisements for the new phone were pulled after complaints.",
    "– the mayor said, adding that it was too early to tell.",
])
def test_story_lines_that_look_like_furniture_stay(line):
    text = f"Storm floods the harbour\n\n{line}"
    assert clean_article(text).text == text


@pytest.mark.parametrize("text, cleaned", [
    ("WASHINGTON (Reuters) - The Senate passed the bill.", "The Senate passed the bill."),
    ("Headline\n\nKYIV, Ukraine (AP) — Drones hit the city overnight.", "Headline\n\nDrones hit the city overnight."),
])
def test_wire_datelines_are_cut_from_the_first_paragraph(text, cleaned):
    assert clean_article(text).text == cleaned


def test_a_headline_is_never_dropped_even_if_short():
    assert clean_article("Share\n\nThe board met on Monday.").text == "Share\n\nThe board met on Monday."


def test_an_article_of_only_furniture_is_rejected():
    from index import RejectedFile

    with pytest.raises(RejectedFile, match="no article text"):
        to_document("date 2023-01-02\n", "x.txt")


def test_metadata_date_wins_over_the_dateline():
    doc = to_document("date 2023-11-07 Talks resumed in Geneva on Monday.", "x", date="Tue, 08 Nov 2023 10:00:00 GMT")
    assert doc.date == "2023-11-08" and doc.text == "Talks resumed in Geneva on Monday."
