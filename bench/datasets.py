"""The retrieval benchmarks' data: LoCoMo and LongMemEval, each turned into our JSONL import format and questions.

Each question says which chats make up its corpus and which turns hold its answer (turn ids as the dataset
names them); a turn's id is what follows `<chat>/` in the imported item's source id.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SECONDS_PER_TURN = 5  # turns of a session share its start time; a few seconds apart keeps their order
LOCOMO_CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}  # 5: adversarial


@dataclass(frozen=True)
class Question:
    """One question: the chats it is asked over, its type and the turns that hold its answer."""

    chats: tuple[str, ...]
    text: str
    category: str
    evidence: frozenset[str]
    asked_at: datetime | None = None  # when the question is asked: relative times in it are read from here


@dataclass(frozen=True)
class Dataset:
    """Messages to import (JSONL rows, in order), the questions, the question types in display order."""

    name: str
    source: str
    messages: list[dict]
    questions: list[Question]
    categories: tuple[str, ...]
    note: str = ""


def detect(path: Path) -> str:
    """'longmemeval' for a gzip or a list of question objects with haystacks, else 'locomo'."""
    if path.suffix == ".gz":
        return "longmemeval"
    with path.open(encoding="utf-8") as handle:
        head = handle.read(4096)
    return "longmemeval" if '"haystack_sessions"' in head or '"question_id"' in head else "locomo"


def load_json(path: Path) -> list[dict]:
    """The dataset file, gzip or plain."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


# -- LoCoMo ----------------------------------------------------------------------------------------


def locomo_start(date_time: str) -> datetime:
    """A LoCoMo session time ("1:56 pm on 8 May, 2023") as UTC."""
    return datetime.strptime(date_time, "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def locomo_text(turn: dict) -> str:
    """What a chat export shows for a turn: its text, and the description of a photo it shared."""
    caption = turn.get("blip_caption")
    return f"{turn['text']} [shared a photo: {caption}]" if caption else turn["text"]


def locomo_messages(sample: dict) -> list[dict]:
    """One LoCoMo conversation as JSONL messages, in order."""
    conversation = sample["conversation"]
    sessions = sorted(
        (int(key.removeprefix("session_")), turns)
        for key, turns in conversation.items()
        if key.startswith("session_") and isinstance(turns, list)
    )
    messages = []
    for number, turns in sessions:
        start = locomo_start(conversation[f"session_{number}_date_time"])
        for position, turn in enumerate(turns):
            if locomo_text(turn).strip():
                moment = start + timedelta(seconds=SECONDS_PER_TURN * position)
                messages.append({"id": turn["dia_id"], "chat": sample["sample_id"], "sender": turn["speaker"],
                                 "text": locomo_text(turn), "timestamp": moment.isoformat(), "source": "locomo"})
    return messages


def locomo(samples: list[dict], limit: int | None) -> Dataset:
    """Categories 1-4; evidence ids not among the turns are dropped, questions left without any skipped.

    LoCoMo gives no time for its questions: they were written after the conversation, so each is asked a day
    after its conversation's last message."""
    messages = [message for sample in samples for message in locomo_messages(sample)]
    turns = {(m["chat"], m["id"]) for m in messages}
    ends = {m["chat"]: datetime.fromisoformat(m["timestamp"]) + timedelta(days=1) for m in messages}
    questions = []
    for sample in samples:
        chat = sample["sample_id"]
        for qa in sample["qa"]:
            if qa.get("category") not in LOCOMO_CATEGORIES:
                continue
            ids = {part for entry in qa.get("evidence", []) for part in entry.replace(";", " ").split()}
            evidence = frozenset(i for i in ids if (chat, i) in turns)
            if evidence:
                questions.append(Question((chat,), str(qa["question"]), LOCOMO_CATEGORIES[qa["category"]], evidence,
                                          ends.get(chat)))
    questions = questions[:limit] if limit else questions
    wanted = {chat for question in questions for chat in question.chats}
    return Dataset("LoCoMo", "locomo", [m for m in messages if m["chat"] in wanted], questions,
                   tuple(LOCOMO_CATEGORIES.values()))


# -- LongMemEval -----------------------------------------------------------------------------------

LONGMEMEVAL_TYPES = ("single-session-user", "single-session-assistant", "single-session-preference",
                     "temporal-reasoning", "knowledge-update", "multi-session")


def longmemeval_start(date: str) -> datetime:
    """A LongMemEval session date ("2023/05/30 (Tue) 23:42") as UTC."""
    return datetime.strptime(date.split(" (")[0] + date.split(")")[-1], "%Y/%m/%d %H:%M").replace(tzinfo=UTC)


def longmemeval_question(entry: dict) -> tuple[list[dict], Question]:
    """One question's haystack as JSONL messages (user turns only, one chat per session) and the question.

    As in the official turn-level setup, only user turns are indexed; a turn's id is `<session id>_<i>`, i its
    1-based position in the session with assistant turns counted; gold is the `has_answer` user turns of the
    sessions whose id holds `answer`. A session is named by its position (one filler session can occur twice).
    """
    messages, chats, gold = [], [], set()
    sessions = zip(entry["haystack_session_ids"], entry["haystack_dates"], entry["haystack_sessions"], strict=True)
    for position, (session_id, date, turns) in enumerate(sessions):
        chat = f"{entry['question_id']}/{position}"
        chats.append(chat)
        start = longmemeval_start(date)
        for index, turn in enumerate(turns, start=1):
            if turn["role"] != "user" or not turn["content"].strip():
                continue
            turn_id = f"{session_id}_{index}"
            if turn.get("has_answer") and "answer" in session_id:
                gold.add(turn_id)
            moment = start + timedelta(seconds=SECONDS_PER_TURN * index)
            messages.append({"id": turn_id, "chat": chat, "sender": "User", "text": turn["content"],
                             "timestamp": moment.isoformat(), "source": "longmemeval"})
    return messages, Question(tuple(chats), entry["question"], entry["question_type"], frozenset(gold),
                              longmemeval_start(entry["question_date"]))


def longmemeval(entries: list[dict], limit: int | None) -> Dataset:
    """The first `limit` questions; those without a gold user turn are skipped (counted in the note)."""
    messages, questions, skipped = [], [], 0
    for entry in entries[:limit] if limit else entries:
        rows, question = longmemeval_question(entry)
        if not question.evidence:
            skipped += 1  # all@k would be 1 and any@k 0 by the official formulas: not counted at all here
            continue
        messages += rows
        questions.append(question)
    note = f"{skipped} questions without a gold user turn skipped" if skipped else ""
    return Dataset("LongMemEval", "longmemeval", messages, questions, LONGMEMEVAL_TYPES, note)


def load(path: Path, format: str = "auto", limit: int | None = None) -> Dataset:
    """The dataset at path, in the given or detected format."""
    format = detect(path) if format == "auto" else format
    if format == "locomo":
        return locomo(load_json(path), limit)
    if format == "longmemeval":
        return longmemeval(load_json(path), limit)
    raise ValueError(f"unknown dataset format {format!r}: use locomo or longmemeval")
