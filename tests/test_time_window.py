"""The time a question names, read from when it is asked (dateparser), and only when it names one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage.time_window import time_window

ASKED = datetime(2023, 5, 30, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(("question", "start", "end"), [
    ("What was the social media activity I did 5 days ago?", datetime(2023, 5, 24), datetime(2023, 5, 27)),
    ("What gardening did I do two weeks ago?", datetime(2023, 5, 12), datetime(2023, 5, 21)),  # a week's slack
    ("What did I buy last month?", datetime(2023, 4, 1), datetime(2023, 5, 1)),
    ("Where did we go in May 2023?", datetime(2023, 5, 1), datetime(2023, 6, 1)),
    ("What did Melanie paint in 2022?", datetime(2022, 1, 1), datetime(2023, 1, 1)),
    ("Which gallery did I visit on 2/15?", datetime(2023, 2, 14), datetime(2023, 2, 17)),
])
def test_a_time_in_the_question_becomes_a_window_read_from_when_it_is_asked(
    question: str, start: datetime, end: datetime
) -> None:
    window = time_window(question, ASKED)
    assert window is not None and (window.start, window.end) == (start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
    assert window.words in question


@pytest.mark.parametrize("question", [
    "How long have I been working in my current role?",
    "What is my second favourite band?",  # "second" is a date to dateparser, not here
    "Where do we meet for lunch?",  # so is "we"
    "When did Caroline go to the support group?",
    "",
])
def test_a_question_that_names_no_time_gets_no_window(question: str) -> None:
    assert time_window(question, ASKED) is None
