"""The yes/no parser on a table of real-world answer styles."""

from __future__ import annotations

import pytest

from mashvlm.unscene.parsing import parse_yes_no

CASES = [
    # plain
    ("Yes", "yes"),
    ("yes", "yes"),
    ("No", "no"),
    ("NO", "no"),
    ("Yes.", "yes"),
    ("No.", "no"),
    ("Yes!", "yes"),
    ("no?", "no"),
    ("  \n Yes.\n", "yes"),
    # leading answer followed by an explanation
    ("Yes, someone is kicking a ball on the court.", "yes"),
    ("no, there is no one in the video.", "no"),
    ("No. The video shows an empty rink.", "no"),
    ("Yes; the man is surfing.", "yes"),
    ("No - the court is empty.", "no"),
    ("No— nobody is there.", "no"),
    ("Yes it is.", "yes"),
    ("No it is not.", "no"),
    ("No, it isn't.", "no"),
    ("No there isn't anyone.", "no"),
    ("No\nThe video shows a snowy mountain.", "no"),
    ("Yes\n\nIn the video, a man...", "yes"),
    # markdown and quoting
    ("**No**", "no"),
    ("**Yes**, a person is dancing.", "yes"),
    ("*no*", "no"),
    ("__Yes__", "yes"),
    ("`yes`", "yes"),
    ('"No."', "no"),
    ("'Yes'", "yes"),
    ("“No”", "no"),
    ("(No)", "no"),
    ("- Yes", "yes"),
    ("# No", "no"),
    ("> Yes, it is.", "yes"),
    # answer prefixes
    ("Answer: Yes", "yes"),
    ("answer: no.", "no"),
    ("**Answer:** No", "no"),
    ("A: No.", "no"),
    ("ASSISTANT: Yes, there is a person skiing.", "yes"),
    ("The answer is yes.", "yes"),
    ("The answer is: No", "no"),
    ("Final answer: yes", "yes"),
    # "no one" / "nobody": a no, however it is written
    ("No one is dunking in the video.", "no"),
    ("No-one is dunking in the video.", "no"),
    ("No one.", "no"),
    ("no  one is there", "no"),
    ("Noone is skiing.", "no"),
    ("Nobody is skiing.", "no"),
    ("Nobody.", "no"),
    ("**Nobody** is there.", "no"),
    ("Answer: No one is surfing.", "no"),
    ("No, one person is surfing.", "no"),
    # not a leading yes/no: unparseable (counted as wrong)
    ("No people are visible.", None),
    ("No ones are here.", None),
    ("Nobodies.", None),
    ("No onion.", None),
    ("None of the people are surfing.", None),
    ("Not really.", None),
    ("Yesterday I saw...", None),
    ("Noah is running.", None),
    ("I think yes.", None),
    ("There is no one in the video.", None),
    ("The video shows a man kicking a ball.", None),
    ("Yes or no?", None),
    ("Yes and no.", None),
    ("Yes, and no.", None),
    ("Yes/No", None),
    ("Y", None),
    ("", None),
    ("   ", None),
    ("A man is surfing.", None),
    (None, None),
    # "no" as determiner after a yes stays a yes
    ("Yes, and no one else is there.", "yes"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_parse_yes_no(text: str | None, expected: str | None) -> None:
    assert parse_yes_no(text) == expected
