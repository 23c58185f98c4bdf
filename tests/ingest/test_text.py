from __future__ import annotations

import pytest

from service.errors import BadInput
from service.ingest.text import (
    BODY_MAX,
    MARKUP_ALLOWANCE,
    MAX_TAGS,
    SUMMARY_MAX,
    TITLE_MAX,
    plain_text,
    remove_non_text,
)


def text(value: str, *, paragraphs: bool = False, max_chars: int = SUMMARY_MAX) -> str:
    return plain_text(value, max_chars=max_chars, keep_paragraphs=paragraphs)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<p>Storm hits <b>the</b> coast</p>", "Storm hits the coast"),
        ("Storm<br>hits<br/>coast", "Storm hits coast"),
        ("<p>One</p><p>Two</p>", "One Two"),
        ("<ul><li>a</li><li>b</li></ul>", "a b"),
        ("<table><tr><td>1</td><td>2</td></tr></table>", "1 2"),
        ("<b>bold</b>face", "boldface"),  # inline elements do not separate words
        ("<a href='https://example.com/?a=1&amp;b=2'>link</a>", "link"),
        ("<p>Unclosed <b>bold <i>and italic", "Unclosed bold and italic"),
        ("<b><i>misnested</b> tags</i>", "misnested tags"),
        ("text</p></div> with stray end tags", "text with stray end tags"),
        ("2 < 3 and 5 > 4", "2 < 3 and 5 > 4"),
        ("<p<a b='x>broken", ""),
        ("<!-- a comment --><p>after</p>", "after"),
        ("<html><head><title>Page</title></head><body><p>Body</p></body></html>", "Body"),
        ("<frameset><frame src=x></frameset>", ""),
    ],
)
def test_html_is_reduced_to_text(value: str, expected: str) -> None:
    assert text(value) == expected


@pytest.mark.parametrize(
    "element",
    [
        "<script>alert('x')</script>",
        "<script type=module>import('<p>x</p>')</script>",
        "<style>p { color: red }</style>",
        "<noscript>Enable JavaScript</noscript>",
        "<iframe src=x>frame text</iframe>",
        "<template><p>template</p></template>",
        "<svg><text>vector</text></svg>",
        "<video>Your browser cannot play this</video>",
        "<object>fallback</object>",
        "<select><option>choice</option></select>",
        "<textarea>typed</textarea>",
    ],
)
def test_non_content_elements_are_dropped_with_their_content(element: str) -> None:
    assert text(f"<p>Before {element}after</p>") == "Before after"


@pytest.mark.parametrize(
    "value",
    [
        "<noscript>hidden</noscript><p>shown</p>",  # in the head, its content is still dropped
        "<script>hidden</script>shown",
        "<style>hidden</style><title>hidden</title>shown",
    ],
)
def test_non_content_at_the_start_is_dropped_too(value: str) -> None:
    assert text(value) == "shown"


def test_scripts_nested_in_dropped_elements_are_gone_too() -> None:
    value = "<div>a<object><script>x</script><p>y</p></object><svg><style>s</style></svg>b</div>"
    assert text(value) == "ab"


def test_paragraphs_and_lines_survive_in_bodies() -> None:
    value = (
        "<h1>Title</h1><p>First paragraph,\n   wrapped in the source.</p>"
        "<p>Second<br>with a line break.</p>"
        "<ul><li>one</li><li>two</li></ul>"
        "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"
        "<div>x</div><div>y</div>"
    )
    assert text(value, paragraphs=True) == (
        "Title\n\nFirst paragraph, wrapped in the source.\n\nSecond\nwith a line break."
        "\n\none\ntwo\n\na b\nc d\n\nx\ny"
    )


def test_empty_blocks_leave_no_blank_lines() -> None:
    value = "<p> </p><div><br><br></div><p>a</p><p></p><p></p><p>b</p>"
    assert text(value, paragraphs=True) == "a\n\nb"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("&lt;b&gt;not a tag&lt;/b&gt;", "<b>not a tag</b>"),
        ("&#8211; &#x2013; &eacute; &copy;", "– – é ©"),
        ("AT&T and R&D", "AT&T and R&D"),  # no complete reference: as written
        ("Q&A&notes &unknown; &", "Q&A&notes &unknown; &"),
        ("<p>Tom &amp; Jerry &copy 2024</p>", "Tom & Jerry © 2024"),  # HTML rules in markup
        ("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>", "<script>alert(1)</script>"),
    ],
)
def test_entities_are_decoded(value: str, expected: str) -> None:
    assert text(value) == expected


def test_whitespace_collapses_to_single_spaces() -> None:
    assert text("  a \t b\u00a0\u00a0c\u2003d \n\n e  ") == "a b c d e"


def test_plain_bodies_keep_lines_and_at_most_one_blank_line() -> None:
    value = "  First line  \r\nsecond\tline\r\rThird\n\n\n\n  Fourth\u2028fifth\u2029sixth "
    assert text(value, paragraphs=True) == (
        "First line\nsecond line\n\nThird\n\nFourth\nfifth\n\nsixth"
    )


@pytest.mark.parametrize("paragraphs", [False, True])
def test_control_and_invisible_characters_are_removed(paragraphs: bool) -> None:
    value = "a\x00b\x07c\x1bd\x7fe\x85f\x9fg\ufeffh\u200bi\u00adj\u2060k\ufffel\U0010ffffm"
    result = text(value, paragraphs=paragraphs)
    assert result.replace("\n", " ") == "abcde fghijklm"


def test_joiners_and_bidi_marks_stay() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    persian = "می\u200cخواهم"
    assert text(f"{family} {persian} \u200fשלום") == f"{family} {persian} \u200fשלום"


def test_control_characters_from_character_references_are_removed() -> None:
    assert text("<p>a&#1;b&#x7f;c&#xFFFF;d</p>") == "abcd"


def test_text_is_nfc_normalised() -> None:
    assert text("Ca\u0300 va, Re\u0301sume\u0301") == "Cà va, Résumé"
    assert text("<p>A\u030angstr\u00f6m</p>") == "Ångström"


@pytest.mark.parametrize(
    ("limit", "value"),
    [
        (TITLE_MAX, "x" * (TITLE_MAX + 1)),
        (SUMMARY_MAX, "<p>" + "y" * (SUMMARY_MAX + 1) + "</p>"),
        (100, "word " * 30),
    ],
)
def test_text_longer_than_the_limit_is_bad_input(limit: int, value: str) -> None:
    with pytest.raises(BadInput, match=f"is longer than {limit} characters"):
        plain_text(value, max_chars=limit)


def test_the_limit_counts_text_not_markup() -> None:
    value = "<p><b>" + "z" * TITLE_MAX + "</b></p>" + "<i></i>" * 100
    assert plain_text(value, max_chars=TITLE_MAX) == "z" * TITLE_MAX


def test_a_huge_value_is_rejected_before_parsing() -> None:
    value = "<div>" * (10 * 2**20 // 5)  # 10 MB, and deeply nested if it were parsed
    assert len(value) > BODY_MAX * MARKUP_ALLOWANCE
    with pytest.raises(BadInput, match=f"is longer than {BODY_MAX} characters"):
        plain_text(value, max_chars=BODY_MAX, keep_paragraphs=True)


def test_too_many_tags_are_rejected_before_parsing() -> None:
    with pytest.raises(BadInput, match=f"has more than {MAX_TAGS} HTML tags"):
        plain_text("<div>" * (MAX_TAGS + 1), max_chars=BODY_MAX)
    # Less-than signs that start no tag do not count.
    assert plain_text("1 < 2 " * (MAX_TAGS + 1), max_chars=BODY_MAX).startswith("1 < 2 1 < 2")


def test_many_tags_under_the_limit_are_fine() -> None:
    value = "<p>paragraph</p>" * (MAX_TAGS // 2)
    assert text(value, paragraphs=True, max_chars=BODY_MAX).count("\n\n") == MAX_TAGS // 2 - 1


@pytest.mark.parametrize("value", ["bad \ud800 surrogate", "<p>\udfff</p>", "\ud83d"])
def test_lone_surrogates_are_invalid_unicode(value: str) -> None:
    with pytest.raises(BadInput, match="contains invalid Unicode"):
        text(value)


def test_surrogate_references_in_markup_become_replacement_characters() -> None:
    assert text("<p>a&#xD800;b</p>") == "a\ufffdb"


def test_plain_text_passes_through() -> None:
    value = "Regjeringen foreslår høyere barnetrygd – «endelig», sier 3 av 4 foreldre 🙂"
    assert text(value) == value
    assert text(value, paragraphs=True) == value


def test_empty_and_blank_values_become_empty_text() -> None:
    assert text("") == ""
    assert text(" \n\t ") == ""
    assert text("<p> </p>") == ""


def test_break_marks_in_the_input_are_not_taken_for_breaks() -> None:
    assert text("a\ufdd0b<br>c\ufdd1d", paragraphs=True) == "ab\ncd"


def test_remove_non_text_keeps_text() -> None:
    assert remove_non_text("a\x00b\ufdd0c\U0001fffed\n\te") == "abcd\n\te"
    assert remove_non_text("ok 🙂") == "ok 🙂"
