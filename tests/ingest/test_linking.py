from __future__ import annotations

import pytest

from service.ingest.linking import Linker, Mention, Surface, fold

# Surfaces as (entity id, text, popularity); kind does not affect linking.
CATALOGUE = [
    (1, "Hamas", 50),
    (2, "EU", 80),
    (2, "European Union", 80),
    (3, "New York", 90),
    (4, "New York Times", 40),
    (4, "NYT", 40),
    (5, "Apple", 70),
    (6, "iPhone", 30),
    (7, "US", 95),
    (7, "U.S.", 95),
    (7, "United States", 95),
    (8, "NATO", 60),
    (9, "José Mourinho", 20),
    (9, "Mourinho", 20),
    (10, "Zürich", 15),
    (11, "Recep Tayyip Erdoğan", 35),
    (11, "Erdoğan", 35),
    (12, "Jonas Gahr Støre", 45),
    (12, "Støre", 45),
    (13, "Tromsø", 10),
    (14, "Bærum", 5),
    (15, "Washington", 85),  # the city
    (16, "George Washington", 25),
    (16, "Washington", 25),
    (17, "Москва", 12),
    (18, "X", 1),
    (19, "al-Maliki", 8),
]


@pytest.fixture(scope="module")
def linker() -> Linker:
    return Linker.build(Surface(e, text, "OTHER", pop) for e, text, pop in CATALOGUE)


def linked(
    linker: Linker, title: str, summary: str | None = None, body: str | None = None
) -> set[int]:
    return {m.entity_id for m in linker.link(title, summary, body)}


def test_size_counts_the_linkable_surfaces(linker: Linker) -> None:
    assert linker.size == len(CATALOGUE) - 1  # "X" is a single character


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hamas fighters", {1}),
        ("Hamasville council", set()),
        ("the (Hamas) statement", {1}),
        ("Hamas' leaders and the EU's budget", {1, 2}),
        ("prices in EUR", set()),
        ("EU-wide rules", {2}),
        ("pre-EU era", {2}),
        ("Osloområdet and Tromsøbadet", set()),
        ("i Tromsø, i Bærum.", {13, 14}),
        ("Bærumsveien 10", set()),
        ("2EU", set()),
    ],
)
def test_whole_words_only_with_unicode_letters(
    linker: Linker, text: str, expected: set[int]
) -> None:
    assert linked(linker, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("talk to us about it", set()),
        ("US and U.S. officials", {7}),
        ("Us Weekly", set()),
        ("Nato summit", set()),
        ("NATO summit", {8}),
        ("an apple a day", set()),
        ("Apple shares rose", {5}),
        ("APPLE SHARES ROSE", {5}),
        ("the new iphone and the IPHONE", {6}),
        ("Al-Maliki and al Maliki", {19}),
        ("X marks the spot", set()),
    ],
)
def test_case_rules(linker: Linker, text: str, expected: set[int]) -> None:
    assert linked(linker, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Jose Mourinho was sacked",
        "JOSÉ MOURINHO WAS SACKED",
        "José Mourinho was sacked",  # decomposed é (NFD)
    ],
)
def test_accents_are_ignored(linker: Linker, text: str) -> None:
    assert linked(linker, text) == {9}


def test_accents_beyond_latin1_and_other_scripts(linker: Linker) -> None:
    assert linked(linker, "Zurich and Erdogan") == {10, 11}
    assert linked(linker, "Zürich – “Erdoğan” said") == {10, 11}
    assert linked(linker, "В Москве и Москва 🙂 Erdoğan") == {11, 17}


def test_norwegian_letters_are_letters_of_their_own(linker: Linker) -> None:
    mentions = linker.link(
        "Støre besøkte Tromsø",
        "Statsminister Jonas Gahr Støre var i Bærum.",
        "Store deler av Tromso var stengt. STØRE sa at det var ventet.",
    )
    counts = {m.entity_id: m.mention_count for m in mentions}
    # "Store" (large) and the spelling "Tromso" are other words: ø does not fold to o.
    assert counts == {12: 3, 13: 1, 14: 1}


def test_longest_match_wins_and_matches_do_not_overlap(linker: Linker) -> None:
    assert linked(linker, "The New York Times reported") == {4}
    assert linked(linker, "The New York Times in New York") == {3, 4}
    assert linked(linker, "the European Union and the United States") == {2, 7}


def test_no_match_spans_two_fields(linker: Linker) -> None:
    assert linked(linker, "Flights to New", "York were cancelled") == set()


def test_ambiguity_is_resolved_by_the_other_surfaces_in_the_document(linker: Linker) -> None:
    # Alone, "Washington" is the more popular city.
    assert linked(linker, "Snow in Washington") == {15}
    # With "George Washington" in the text, every "Washington" is the president.
    mentions = linker.link(
        "Washington crossed the Delaware", None, "George Washington led the army."
    )
    assert [(m.entity_id, m.mention_count) for m in mentions] == [(16, 2)]


def test_ties_without_context_go_to_the_most_popular_then_the_lowest_id() -> None:
    linker = Linker.build(
        [
            Surface(3, "Paris", "PLACE", 10),
            Surface(1, "Paris", "PERSON", 10),
            Surface(2, "Paris", "OTHER", 5),
        ]
    )
    assert linked(linker, "Paris") == {1}


def test_salience_prefers_title_then_summary_then_early_body_mentions(linker: Linker) -> None:
    mentions = linker.link(
        "Hamas and the EU",
        "NATO met in Zürich.",
        "Apple said little. " + "Filler text. " * 100 + "Then Mourinho.",
    )
    order = [m.entity_id for m in mentions]
    assert order == [1, 2, 8, 10, 5, 9]  # ties in salience go to the lower id
    assert all(0 < m.salience <= 1 and round(m.salience, 3) == m.salience for m in mentions)
    by_id = {m.entity_id: m.salience for m in mentions}
    assert by_id[1] == by_id[2] == 0.45  # title 0.40 + one mention 0.05
    assert by_id[8] == by_id[10] == 0.25  # summary 0.20 + one mention 0.05
    assert by_id[5] == 0.2  # first in the body 0.15 + one mention 0.05
    assert 0.05 <= by_id[9] < 0.06  # last in the body


def test_mention_counts_and_frequency(linker: Linker) -> None:
    mentions = linker.link(
        "Apple", None, "Apple and Mourinho. " + "Filler text. " * 50 + "Apple, Apple, Apple."
    )
    assert [(m.entity_id, m.mention_count) for m in mentions] == [(5, 5), (9, 1)]
    # Title 0.40 + lead 0.20 (no summary: the body's first 300 characters) + first in the body
    # 0.15 + five mentions 0.25.
    assert mentions[0].salience == 1.0


def test_a_fully_prominent_entity_has_salience_one(linker: Linker) -> None:
    [mention] = linker.link("Hamas", "Hamas again.", "Hamas, Hamas and Hamas.")
    assert mention == Mention(1, 1.0, 5)


def test_nothing_to_link() -> None:
    assert Linker.build([]).link("Hamas", None, None) == []
    assert Linker.build([Surface(1, "Hamas", "ORGANIZATION", 1)]).link("", "", "") == []


def test_fold_keeps_offsets_and_is_the_same_on_every_path() -> None:
    text = "Ærø, Zürich – “Erdoğan” Москва 🙂 ß"
    folded = fold(text)
    assert len(folded) == len(text)
    assert folded == "ærø  zurich    erdogan  москва 🙂 ß"
    # One character folds the same whether the text takes the ASCII, Latin-1, handler or
    # general path.
    for code in range(0x300):
        char = chr(code)
        alone = fold(char)
        assert fold(char + "é")[0] == alone
        assert fold(char + "ğ")[0] == alone
        assert fold(char + "Ж")[0] == alone
