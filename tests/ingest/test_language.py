from __future__ import annotations

import importlib
import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.ingest import language
from service.ingest.language import ISO_639_1, SAMPLE_CHARS, detect_language, iso639_1


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Detection must work offline: any attempt to open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("language detection tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Ferry cancelled as gales batter the islands. Islanders were told to expect no "
            "sailings before Thursday, when the wind is forecast to ease.",
            "en",
        ),
        (
            "Council rejects plan for new supermarket. Residents had argued that the store "
            "would bring more traffic to the narrow streets of the old town.",
            "en",
        ),
        (
            "Fergen innstilt på grunn av storm. Øyboerne får beskjed om at det ikke blir noen "
            "avganger før torsdag, når vinden etter planen skal løye.",
            "nb",
        ),
        (
            "Bystyret sa nei til nytt kjøpesenter. Naboene mente at senteret ville gi mer "
            "trafikk i de smale gatene i sentrum.",
            "nb",
        ),
        (
            "Ferja innstilt på grunn av storm. Øybuarane får beskjed om at det ikkje blir "
            "nokon avgangar før torsdag, når vinden etter planen skal løye.",
            "nn",
        ),
        (
            "Fähre wegen Sturm eingestellt. Die Inselbewohner sollen sich darauf einstellen, "
            "dass bis Donnerstag keine Schiffe fahren.",
            "de",
        ),
        (
            "Stadtrat lehnt neuen Supermarkt ab. Anwohner hatten befürchtet, dass das Geschäft "
            "mehr Verkehr in die engen Gassen der Altstadt bringt.",
            "de",
        ),
        (
            "Færgen aflyst på grund af storm. Øboerne får besked om, at der ikke sejler nogen "
            "færger før torsdag, hvor vinden ventes at løje af.",
            "da",
        ),
        (
            "Färjan inställd på grund av storm. Öborna får besked om att inga turer går före "
            "torsdag, då vinden väntas mojna.",
            "sv",
        ),
    ],
)
def test_short_news_texts_are_detected(text: str, expected: str) -> None:
    assert detect_language(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "OK", "Oslo", "BBC", "12:30", "2-1", "Trump", "iPhone 17 Pro", "🙂🙂🙂", "?!"],
)
def test_short_or_unclear_texts_are_undetermined(text: str) -> None:
    assert detect_language(text) == "und"


def test_text_in_no_language_is_undetermined() -> None:
    assert detect_language("xq zvvk plmr qqzx wkkt brrv zzgh") == "und"


def test_control_characters_and_surrogates_do_not_break_detection() -> None:
    text = "Ferry cancelled as gales batter the islands.\x00\x01\ufffe\ud800 No sailings today."
    assert detect_language(text) == "en"


def test_long_texts_are_sampled() -> None:
    text = "Ferry cancelled as gales batter the islands again this winter. " * 50_000
    assert detect_language(text) == "en"


@pytest.mark.parametrize(
    ("code", "ours"),
    [
        ("no", "nb"),
        ("NB", "nb"),
        ("nn", "nn"),
        ("en", "en"),
        ("zh-Hant", "zh"),
        ("pt_BR", "pt"),
        ("iw", "he"),
        ("un", "und"),
        ("xx-Qaai", "und"),
        ("sco", "und"),
        ("", "und"),
    ],
)
def test_detector_codes_map_to_ours(code: str, ours: str) -> None:
    assert iso639_1(code) == ours


def test_the_detector_loads_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(language, "_cld2", None)
    loaded = []
    real_import = importlib.import_module

    def counting_import(name: str) -> object:
        loaded.append(name)
        return real_import(name)

    monkeypatch.setattr(importlib, "import_module", counting_import)
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(detect_language("The storm closed every road."))
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loaded == ["pycld2"]
    assert results == ["en"] * 8


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(st.characters(exclude_categories=())))  # lone surrogates included
def test_any_text_gets_a_code_or_und(text: str) -> None:
    code = detect_language(text)
    assert code == "und" or code in ISO_639_1
    assert code != "no"


def test_only_the_sample_decides() -> None:
    english = "Ferry cancelled as gales batter the islands again this winter. " * 40
    norwegian = "Fergen er innstilt fordi stormen herjer langs hele kysten i natt. " * 40
    assert len(english) >= SAMPLE_CHARS
    assert detect_language(english[:SAMPLE_CHARS] + norwegian) == "en"
    assert detect_language(norwegian[:SAMPLE_CHARS] + english) == "nb"
