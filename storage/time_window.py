"""The time a question points at: "two weeks ago", "yesterday", "in February", "on 2/15" become a window of time,
read from when the question is asked, that the search favours (storage/search.py).

dateparser finds and reads the expressions. It also reads plain words as dates ("we", "second", "may" as a
verb): a match counts only when it holds a time word, a month's name or a number, and the window is as wide as
what the expression names (a day and a day either side, a week and half a week either side, the month, the
year), since people are loose about "two weeks ago".
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from storage.facts import as_utc

TIME_WORDS = re.compile(
    r"\b(?:ago|yesterday|today|tonight|last|past|previous|day|days|week|weeks|weekend|month|months|year|years|"
    r"january|february|march|april|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|\d+)\b",
    re.IGNORECASE,
)
SLACK = {"day": timedelta(days=1), "week": timedelta(days=4)}  # either side of the day or the week named


@dataclass(frozen=True)
class TimeWindow:
    """[start, end) in UTC, and the words of the question that named it."""

    start: datetime
    end: datetime
    words: str


@cache
def _parsers() -> tuple[Any, Any]:
    """dateparser's search and its parser (imported on first use: it loads its language data)."""
    from dateparser.date import DateDataParser
    from dateparser.search import search_dates

    return search_dates, DateDataParser


def _span(moment: datetime, period: str) -> tuple[datetime, datetime]:
    if period == "month":
        first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return first, first + timedelta(days=calendar.monthrange(first.year, first.month)[1])
    if period == "year":
        first = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        return first, first.replace(year=first.year + 1)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    slack = SLACK.get(period, SLACK["day"])
    return day - slack, day + timedelta(days=1) + slack


def time_window(question: str, asked_at: datetime) -> TimeWindow | None:
    """The window of time the question names, read from `asked_at`; None when it names none."""
    if not TIME_WORDS.search(question):
        return None  # most questions: no call into dateparser at all
    search_dates, parser_class = _parsers()
    settings = {"RELATIVE_BASE": as_utc(asked_at).replace(tzinfo=None), "PREFER_DATES_FROM": "past",
                "RETURN_TIME_AS_PERIOD": True}
    found = search_dates(question, languages=["en"], settings=settings) or []
    parser = parser_class(languages=["en"], settings=settings)
    for words, _moment in found:
        if not TIME_WORDS.search(words):
            continue
        data = parser.get_date_data(words)
        if data.date_obj is None:
            continue
        start, end = _span(as_utc(data.date_obj), data.period or "day")
        if start < as_utc(asked_at) + timedelta(days=1):  # a window after the question is a misreading
            return TimeWindow(start, end, words)
    return None
